"""`identity` projector: all N patch tokens pass through unchanged (the LLaVA-1.5 baseline, K = N)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .projector_base import Projector, ProjectorOutput


@dataclass
class IdentityConfig:
    """No options: the identity keeps every token."""


class IdentityProjector(Projector):
    name = "identity"
    config_class = IdentityConfig

    def __init__(self, config: IdentityConfig, in_dim: int) -> None:
        super().__init__(in_dim)
        self.config = config

    def num_output_tokens(self, num_input_tokens: int) -> int:
        return num_input_tokens

    def forward(self, x: torch.Tensor) -> ProjectorOutput:  # x: [B, N, D]
        self.check_input(x)
        b, n, _ = x.shape
        assignment = torch.arange(n, device=x.device).expand(b, n)  # [B, N]
        return ProjectorOutput(tokens=x, aux={"assignment": assignment})
