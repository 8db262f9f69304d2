"""Projector contract shared by every token compressor.

A projector maps the vision tower's patch tokens ``[B, N, D]`` to ``K`` tokens ``[B, K, D_out]``
(``K <= N``). ``num_output_tokens(N)`` is known before any forward pass, because the processor needs
``K`` to expand each ``<image>`` placeholder. ``forward`` returns a :class:`ProjectorOutput` whose
``aux`` dict carries diagnostics; projectors that assign every input token to one output token put a
``LongTensor [B, N]`` under ``aux["assignment"]`` (the index of the output token that gathers it).

``ProjectorOutput`` is a transformers ``ModelOutput`` (a dict as well as a dataclass), so DeepSpeed
ZeRO-3's module hooks find the tensors in it (they walk tuples, lists and dicts) and fire around the
projector's backward pass; a plain dataclass is opaque to them.

Counts, sums and softmax normalisations inside the projectors accumulate in float32 and cast back to the
input dtype: in bfloat16 integers above 256 are not representable, so a cluster of 300 patches counted in
bfloat16 would be averaged over 256 of them.

Each projector has a small typed config (a dataclass) built from a plain dict with
:func:`parse_config`, which rejects unknown keys and names the allowed ones.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, TypeVar

import torch
from torch import nn
from transformers.utils import ModelOutput

C = TypeVar("C")


@dataclass
class ProjectorOutput(ModelOutput):
    """What every projector returns: ``tokens`` ``[B, K, D_out]`` and free-form diagnostics ``aux``
    (a dict of tensors; ``None`` only when a projector has none)."""

    tokens: torch.Tensor | None = None
    aux: dict[str, torch.Tensor] | None = None


class Projector(nn.Module):
    """Base class: subclasses set ``name``, ``config_class`` and implement the two methods below."""

    name: str = ""
    config_class: type = object

    def __init__(self, in_dim: int) -> None:
        super().__init__()
        self.in_dim = in_dim
        self.out_dim = in_dim

    def num_output_tokens(self, num_input_tokens: int) -> int:
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> ProjectorOutput:  # x: [B, N, D]
        raise NotImplementedError

    def check_input(self, x: torch.Tensor) -> None:
        """Raise a ValueError naming the shape when ``x`` is not ``[B, N, in_dim]``."""
        if x.dim() != 3 or x.shape[-1] != self.in_dim:
            raise ValueError(
                f"projector '{self.name}' expects features of shape [batch, tokens, {self.in_dim}], "
                f"got {tuple(x.shape)}"
            )


def parse_config(config_class: type[C], values: dict[str, Any] | None, projector: str) -> C:
    """Build ``config_class`` from a dict; unknown keys raise a ValueError listing the allowed ones."""
    values = dict(values or {})
    allowed = [f.name for f in dataclasses.fields(config_class)]
    unknown = sorted(set(values) - set(allowed))
    if unknown:
        raise ValueError(f"unknown config key(s) {unknown} for projector '{projector}'; allowed keys: {allowed}")
    return config_class(**values)


def check_num_tokens(num_tokens: int, num_input_tokens: int, projector: str) -> int:
    """Validate ``1 <= K <= N`` and return ``K``."""
    if not isinstance(num_tokens, int) or num_tokens < 1:
        raise ValueError(f"projector '{projector}': num_tokens must be a positive int, got {num_tokens!r}")
    if num_tokens > num_input_tokens:
        raise ValueError(
            f"projector '{projector}': num_tokens={num_tokens} is larger than the number of input "
            f"tokens N={num_input_tokens}; allowed: 1 <= num_tokens <= {num_input_tokens}"
        )
    return num_tokens


def grid_side(num_tokens: int, what: str) -> int:
    """Side of a square token grid; a ValueError when ``num_tokens`` is not a perfect square."""
    side = math.isqrt(num_tokens)
    if side * side != num_tokens:
        raise ValueError(f"{what} must be a perfect square (a square grid of patches), got {num_tokens}")
    return side
