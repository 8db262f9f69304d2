"""`avgpool` projector: 2-D adaptive average pooling of the patch grid to a sqrt(K) x sqrt(K) grid.

Both N and K must be perfect squares. ``aux["assignment"]`` gives each patch the pooled cell whose
bin starts at or before it: row ``r`` of an ``S``-row grid goes to cell row ``floor(r * s / S)``. When
``s`` divides ``S`` the bins are disjoint and this is exact; otherwise adaptive pooling's bins overlap
by one patch and the assignment names the first of the two cells that average that patch.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .projector_base import Projector, ProjectorOutput, check_num_tokens, grid_side


@dataclass
class AvgPoolConfig:
    num_tokens: int = 64  # K, a perfect square


class AvgPoolProjector(Projector):
    name = "avgpool"
    config_class = AvgPoolConfig

    def __init__(self, config: AvgPoolConfig, in_dim: int) -> None:
        super().__init__(in_dim)
        self.config = config
        grid_side(config.num_tokens, "avgpool num_tokens")

    def num_output_tokens(self, num_input_tokens: int) -> int:
        grid_side(num_input_tokens, "avgpool input token count")
        return check_num_tokens(self.config.num_tokens, num_input_tokens, self.name)

    def forward(self, x: torch.Tensor) -> ProjectorOutput:  # x: [B, N, D]
        self.check_input(x)
        b, n, d = x.shape
        k = self.num_output_tokens(n)
        side, out_side = grid_side(n, "avgpool input token count"), grid_side(k, "avgpool num_tokens")
        grid = x.transpose(1, 2).reshape(b, d, side, side)  # [B, D, S, S]
        pooled = F.adaptive_avg_pool2d(grid, out_side)  # [B, D, s, s]
        tokens = pooled.flatten(2).transpose(1, 2)  # [B, K, D]
        cell = torch.arange(side, device=x.device) * out_side // side  # [S]
        assignment = (cell[:, None] * out_side + cell[None, :]).reshape(1, n).expand(b, n)  # [B, N]
        return ProjectorOutput(tokens=tokens, aux={"assignment": assignment})
