"""`tome` projector: Token Merging (Bolya et al., ICLR 2023) as a token compressor, applied to the
vision tower's output rather than inside its blocks.

Bipartite soft matching, repeated until K tokens remain: alternate tokens form sets A (even positions)
and B (odd positions); each A token finds its most cosine-similar B token; the ``r`` A tokens with the
strongest edges merge into their B partners (``r = min(|A|, current - K)``). Merged tokens are
size-weighted means of the patches they cover. Output order: unmerged A tokens, then B tokens, as in
ToMe. ``aux["assignment"]`` follows every patch through the merges; ``aux["sizes"]`` ``[B, K]`` (float32).
Sums and sizes accumulate in float32 whatever the input dtype; the output tokens are cast back to it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .projector_base import Projector, ProjectorOutput, check_num_tokens


@dataclass
class TomeConfig:
    num_tokens: int = 64  # K


def bipartite_merge_step(
    sums: torch.Tensor, sizes: torch.Tensor, r: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One round of bipartite soft matching that removes ``r`` tokens.

    ``sums`` ``[B, T, D]`` holds size-weighted feature sums and ``sizes`` ``[B, T]`` the patch counts.
    Returns the new sums ``[B, T - r, D]``, sizes ``[B, T - r]`` and ``new_index`` ``[B, T]``: where each
    old token went.
    """
    b, t, d = sums.shape
    means = sums / sizes[..., None]
    a, bb = means[:, ::2], means[:, 1::2]  # [B, Ta, D], [B, Tb, D]
    ta, tb = a.shape[1], bb.shape[1]
    sim = F.normalize(a.float(), dim=-1) @ F.normalize(bb.float(), dim=-1).transpose(1, 2)  # [B, Ta, Tb]
    best, partner = sim.max(dim=-1)  # [B, Ta]
    edge_order = torch.sort(best, dim=-1, descending=True, stable=True).indices  # [B, Ta]
    merged, kept = edge_order[:, :r], edge_order[:, r:]  # [B, r], [B, Ta - r]

    sums_a, sums_b = sums[:, ::2], sums[:, 1::2]
    sizes_a, sizes_b = sizes[:, ::2], sizes[:, 1::2]
    dst = partner.gather(1, merged)  # [B, r]
    new_b_sums = sums_b.scatter_add(
        1, dst[..., None].expand(b, r, d), sums_a.gather(1, merged[..., None].expand(b, r, d))
    )
    new_b_sizes = sizes_b.scatter_add(1, dst, sizes_a.gather(1, merged))
    kept_sums = sums_a.gather(1, kept[..., None].expand(b, ta - r, d))
    new_sums = torch.cat([kept_sums, new_b_sums], dim=1)  # [B, T - r, D]
    new_sizes = torch.cat([sizes_a.gather(1, kept), new_b_sizes], dim=1)  # [B, T - r]

    n_kept = ta - r
    index_a = torch.empty(b, ta, dtype=torch.long, device=sums.device)
    index_a.scatter_(1, kept, torch.arange(n_kept, device=sums.device).expand(b, n_kept))
    index_a.scatter_(1, merged, n_kept + dst)
    index_b = n_kept + torch.arange(tb, device=sums.device).expand(b, tb)
    new_index = torch.empty(b, t, dtype=torch.long, device=sums.device)
    new_index[:, ::2], new_index[:, 1::2] = index_a, index_b
    return new_sums, new_sizes, new_index


class TomeProjector(Projector):
    name = "tome"
    config_class = TomeConfig

    def __init__(self, config: TomeConfig, in_dim: int) -> None:
        super().__init__(in_dim)
        self.config = config
        if config.num_tokens < 1:
            raise ValueError(f"tome projector: num_tokens must be >= 1, got {config.num_tokens}")

    def num_output_tokens(self, num_input_tokens: int) -> int:
        return check_num_tokens(self.config.num_tokens, num_input_tokens, self.name)

    def forward(self, x: torch.Tensor) -> ProjectorOutput:  # x: [B, N, D]
        self.check_input(x)
        b, n, _ = x.shape
        k = self.num_output_tokens(n)
        # float32 sums and sizes: in bfloat16 a merged token of more than 256 patches would count wrong
        sums, sizes = x.float(), torch.ones(b, n, device=x.device)  # [B, T, D], [B, T]
        assignment = torch.arange(n, device=x.device).expand(b, n)  # [B, N]
        while sums.shape[1] > k:
            t = sums.shape[1]
            r = min((t + 1) // 2, t - k)
            sums, sizes, new_index = bipartite_merge_step(sums, sizes, r)
            assignment = new_index.gather(1, assignment)
        tokens = (sums / sizes[..., None]).to(x.dtype)  # [B, K, D]
        return ProjectorOutput(tokens=tokens, aux={"assignment": assignment, "sizes": sizes})
