"""`kmeans` projector: cosine k-means over the patch tokens of each image (a clustering baseline).

Deterministic initialisation: the K centroids start at K patches evenly spaced in raster order
(``round(j * (N - 1) / max(K - 1, 1))``). Each of ``iterations`` rounds assigns every token to the most
cosine-similar centroid and moves each centroid to the normalised mean of its members (an empty
cluster keeps its centroid). The output token of a cluster is the plain mean of its members' features;
an empty cluster outputs the patch nearest its centroid. Assignments are non-differentiable; gradients
flow through the means. Counts and sums accumulate in float32 and the means are cast back to the input dtype.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .projector_base import Projector, ProjectorOutput, check_num_tokens


@dataclass
class KMeansConfig:
    num_tokens: int = 64  # K
    iterations: int = 10


class KMeansProjector(Projector):
    name = "kmeans"
    config_class = KMeansConfig

    def __init__(self, config: KMeansConfig, in_dim: int) -> None:
        super().__init__(in_dim)
        self.config = config
        if config.iterations < 1:
            raise ValueError(f"kmeans projector: iterations must be >= 1, got {config.iterations}")
        if config.num_tokens < 1:
            raise ValueError(f"kmeans projector: num_tokens must be >= 1, got {config.num_tokens}")

    def num_output_tokens(self, num_input_tokens: int) -> int:
        return check_num_tokens(self.config.num_tokens, num_input_tokens, self.name)

    def forward(self, x: torch.Tensor) -> ProjectorOutput:  # x: [B, N, D]
        self.check_input(x)
        b, n, d = x.shape
        k = self.num_output_tokens(n)
        with torch.no_grad():
            xn = F.normalize(x.float(), dim=-1)  # [B, N, D]
            init = torch.round(torch.linspace(0, n - 1, k, device=x.device)).long()  # [K]
            centroids = xn[:, init]  # [B, K, D]
            for _ in range(self.config.iterations):
                assign = (xn @ centroids.transpose(1, 2)).argmax(-1)  # [B, N]
                sums = torch.zeros_like(centroids).scatter_add_(1, assign[..., None].expand(b, n, d), xn)
                counts = torch.zeros(b, k, device=x.device).scatter_add_(1, assign, torch.ones_like(xn[..., 0]))
                centroids = torch.where(counts[..., None] > 0, F.normalize(sums, dim=-1), centroids)
            sim = xn @ centroids.transpose(1, 2)  # [B, N, K]
            assign = sim.argmax(-1)  # [B, N]
            nearest = sim.argmax(1)  # [B, K] patch nearest each centroid
        # counts and sums in float32 (exact beyond 256 members in bfloat16), cast back at the end
        counts = torch.zeros(b, k, device=x.device).scatter_add_(
            1, assign, torch.ones(b, n, device=x.device)
        )  # [B, K]
        sums = torch.zeros(b, k, d, device=x.device).scatter_add(1, assign[..., None].expand(b, n, d), x.float())
        fallback = x.gather(1, nearest[..., None].expand(b, k, d))  # [B, K, D]
        means = (sums / counts.clamp(min=1)[..., None]).to(x.dtype)  # [B, K, D]
        tokens = torch.where(counts[..., None] > 0, means, fallback)
        return ProjectorOutput(tokens=tokens, aux={"assignment": assign})
