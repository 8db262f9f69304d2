"""Connectors: map the projector's K tokens from the vision width to the language model's width.

Names keep LLaVA's ``mm_projector_type`` meaning: ``linear`` and ``mlp{N}x_gelu`` (``mlp2x_gelu`` is
LLaVA-1.5's). Built as ``nn.Sequential`` so parameter names (``0.weight``, ``2.weight``) match the keys
of LLaVA's ``mm_projector.bin``.
"""

from __future__ import annotations

import re

from torch import nn

CONNECTOR_CHOICES = ("linear", "mlp2x_gelu", "mlp<N>x_gelu")


def build_connector(name: str, in_dim: int, out_dim: int) -> nn.Sequential:
    """``linear`` or ``mlp<N>x_gelu`` (N >= 1 Linear layers with GELU in between)."""
    if name == "linear":
        return nn.Sequential(nn.Linear(in_dim, out_dim))
    match = re.fullmatch(r"mlp(\d+)x_gelu", name)
    if match is None or int(match.group(1)) < 1:
        raise ValueError(f"unknown connector '{name}'; choose one of {list(CONNECTOR_CHOICES)}")
    layers: list[nn.Module] = [nn.Linear(in_dim, out_dim)]
    for _ in range(int(match.group(1)) - 1):
        layers += [nn.GELU(), nn.Linear(out_dim, out_dim)]
    return nn.Sequential(*layers)
