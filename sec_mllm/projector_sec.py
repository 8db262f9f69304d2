"""`sec` projector: Semantic Equitable Clustering of vision tokens, one pass, equal cluster sizes.

What follows the paper (Fan et al., "Semantic Equitable Clustering", arXiv 2405.13337, and its official
backbone code, SecViT): keys ``k_i`` (there a learned linear map of the tokens: ``key_projection=True``;
this project's default clusters the tower's features as they are, see Defaults); a global token
``g = mean_i k_i`` per image (per head when ``heads > 1``); a score ``s_i = cos(k_i, g)``; a sort of the
scores; the sorted sequence cut into equal contiguous chunks (``grouping="band"``). One pass, no
iterations, equal sizes by construction, O(N*d + N log N). The assignment is non-differentiable.
``key_rope=True`` rotates the keys with a 2-D rotary position encoding before the cosine, as the
official backbone does (it rotates its queries and keys by RoPE before sorting), so position shapes the
ordering; without it the ordering depends on content only, which is this project's default.

Sort direction and ties, against the official code: SecViT sorts with ``torch.argsort`` ascending (its
first chunk holds the tokens *least* similar to ``g``) with no tie rule. Here the sort is descending and
stable: rank 0 is the token most similar to ``g`` and equal scores keep raster order, so the result is
deterministic on every device. The band clusters are the same sets in reverse order (our cluster ``j`` is
its chunk ``K - 1 - j``) except where equal scores straddle a chunk boundary.

What is this project's choice (the paper's MLLM connector is not public):

* ``grouping="interleave"``: rank ``r`` goes to cluster ``r mod K`` instead of a contiguous band.
* Cluster sizes when K does not divide N: rank ``r`` (0 = most similar to ``g``) goes to band
  ``floor(r * K / N)``, or to ``r mod K`` when interleaving; either way every cluster holds
  ``floor(N/K)`` or ``ceil(N/K)`` tokens, so sizes differ by at most one.
* Reduction of a cluster to one token: ``reduction="mean"`` averages its members; ``"attn"`` uses a
  query ``W_q`` applied to the cluster mean, the members' keys, softmax over the members only, and the
  members' features as values, so the output stays in the vision tower's feature space.
  Gradients reach ``W_k`` only through this attention; ``key_projection=True`` with ``"mean"`` is
  rejected because ``W_k`` would never receive a gradient.
* ``heads > 1``: the channels are split into heads; each head clusters on its own keys and reduces its
  own channel slice, and output token ``j`` concatenates cluster ``j`` of every head.
  ``aux["assignment"]`` reports head 0; ``aux["assignment_per_head"]`` reports all heads.
* Output order: ``order="score"`` keeps cluster rank (most similar to ``g`` first); ``"position"``
  sorts clusters by the mean raster index of their members (averaged over heads).
* ``position_embedding=True`` adds a learned linear map of Fourier features of each cluster's mean
  (row, col) on the patch grid, so the language model can tell where a cluster lies.
* ``spatial_moments=True`` (off by default): each output token also gets a learned linear map
  (zero-initialised, so training starts from the plain reduction) of its cluster's first spatial
  moments, the members' features weighted by their row and by their column offset from the image
  centre, ``mean_i x_i * (2 r_i - 1)`` and ``mean_i x_i * (2 c_i - 1)`` per head. A band gathers
  similar patches from all over the image, so its mean says what is there but not where; the moments
  say on which side of the image the cluster's content lies (a red patch on the left and a grey one on
  the right give another token than the mirrored pair, where the mean and the mean position agree).
  A ``2D x D`` weight: at D = 1024 about 2 M parameters. Measured (README, K = 4, 3,200 stage-2 steps,
  one seed): position questions 61.8 against 50.9, but 5.1 points below the default overall.
* ``regions=R`` (1 by default): the patch grid is cut into R equal vertical strips, left to right, and
  each strip's patches are ranked by their cosine to the (whole image's) global token and cut into
  K / R bands, so every output token comes from one strip: its tokens say on which side of the image
  their content lies, which a band of similar patches from all over the image cannot (the accuracy
  benchmark's position questions; experiments.cluster_mixing measures how often the asked object shares
  its token with an object of another colour on the other side). Bands only; R must divide K and the
  grid's side. Measured (README, K = 4, 3,200 stage-2 steps): R = 2 answers the position questions as
  avgpool does, and gives back counting, where whole-image bands lead.
* ``key_rope=True``: the official RoPE (per head, the first half of the channels rotated by the row
  index, the second half by the column index, adjacent channel pairs rotated together, angles
  ``10000 ** -linspace(0, 1, dh / 4)``) is applied to the keys for the scores only; the ``attn``
  reduction reads the unrotated keys, because its query is a cluster summary, not a token with a
  position (the backbone rotates both sides of a token-to-token attention). Needs a square grid and a
  head width divisible by 4.

Defaults: band grouping, ``reduction="mean"`` on the tower's own features (no ``W_k``, no ``W_q``), score
order, one head, position embedding. The accuracy benchmark (scripts/benchmark_accuracy.py, three seeds)
chose them by its fixed rule: mean reduction on raw-feature keys led the earlier default (``"attn"`` with a
learned ``W_k``) by 2.5 points, above the larger seed-std (2.2). ``key_projection`` follows ``reduction``
when not given: learned keys with ``"attn"`` (their only gradient path), the raw features with ``"mean"``;
so ``reduction="attn"`` alone restores the earlier default. Checkpoints saved before the change store no
``reduction`` and carry ``projector.key`` / ``projector.query`` weights: the strict loader
(loading.from_pretrained_strict) refuses them with the keys to add to ``projector_config``.

Numerics: scores, counts, sums, the softmax normalisation and the Fourier features are float32 whatever the
input dtype; the output is cast back to it (so bfloat16 clusters above 256 members are still exact means).

Presets (``preset=...``) fix several options at once; an explicit option that disagrees with the preset
raises, and the stored config keeps the preset's name, so a saved model resolves the same way on reload.

* ``"training_free"``: no learned parameter at all, for a checkpoint whose connector was trained on raw
  patch features (e.g. LLaVA-1.5's ``mlp2x_gelu``): ``key_projection=False`` and ``key_rope=False``
  (cluster on the tower's features as they are), ``reduction="mean"``, ``position_embedding=False``,
  ``order="position"``. Mean, rather than a similarity-weighted average, because the connector only ever
  saw single patch features: an average of patches stays inside the span of that input distribution,
  adds no temperature to tune, and at K = N returns each patch unchanged; band members are those whose
  cosine to the global token is close (similar, though not identical, directions), so their mean does not
  wash out as a mean of arbitrary patches would. Position order keeps the clusters in raster order of
  their members, as LLaVA's patches are; with K = N every cluster is one patch and the model reproduces
  LLaVA's logits.

``aux``: ``assignment`` ``[B, N]`` (output token index per input token), ``assignment_per_head``
``[B, H, N]``, ``scores`` ``[B, H, N]`` (the cosine scores, detached).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from .projector_base import Projector, ProjectorOutput, check_num_tokens, grid_side

GROUPINGS = ("band", "interleave")
REDUCTIONS = ("attn", "mean")
ORDERS = ("score", "position")
NUM_FREQUENCIES = 4


# Options a preset may fix; None in SecConfig means "not given" and resolves to DEFAULTS.
DEFAULTS = {
    "reduction": "mean",
    "order": "score",
    "key_projection": None,  # resolved from the reduction: learned keys only where they get a gradient ("attn")
    "key_rope": False,
    "position_embedding": True,
    "spatial_moments": False,
}
PRESETS = {
    "training_free": {
        "key_projection": False,
        "key_rope": False,
        "reduction": "mean",
        "position_embedding": False,
        "order": "position",
        "spatial_moments": False,
    },
}


@dataclass
class SecConfig:
    num_tokens: int = 64  # K
    grouping: str = "band"  # "band" | "interleave"
    reduction: str | None = None  # "mean" (default) | "attn"
    order: str | None = None  # "score" (default) | "position"
    heads: int = 1
    key_projection: bool | None = None  # learned W_k (default with "attn"), or cluster on the raw features
    key_rope: bool | None = None  # 2-D rotary position encoding of the keys before the cosine (official SecViT); off
    position_embedding: bool | None = None  # default True
    spatial_moments: bool | None = None  # add a learned map of each cluster's first spatial moments; off
    regions: int = 1  # cluster within this many equal vertical strips of the patch grid, K / regions bands each
    preset: str | None = None  # a name in PRESETS

    def __post_init__(self) -> None:
        fixed = {}
        if self.preset is not None:
            if self.preset not in PRESETS:
                raise ValueError(f"sec projector: preset={self.preset!r} is not one of {sorted(PRESETS)}")
            fixed = PRESETS[self.preset]
        for key, default in DEFAULTS.items():
            given = getattr(self, key)
            if key in fixed and given is not None and given != fixed[key]:
                raise ValueError(
                    f"sec projector: preset={self.preset!r} sets {key}={fixed[key]!r}, "
                    f"which conflicts with the explicit {key}={given!r}"
                )
            setattr(self, key, fixed.get(key, default) if given is None else given)
        if self.key_projection is None:
            self.key_projection = self.reduction == "attn"


def _choice(value: str, allowed: tuple[str, ...], key: str) -> str:
    if value not in allowed:
        raise ValueError(f"sec projector: {key}={value!r} is not one of {list(allowed)}")
    return value


def fourier_features(pos: torch.Tensor) -> torch.Tensor:
    """``pos`` ``[..., 2]`` in [0, 1] -> ``[..., 4 * NUM_FREQUENCIES]`` sines and cosines."""
    freqs = math.pi * 2.0 ** torch.arange(NUM_FREQUENCIES, device=pos.device, dtype=pos.dtype)  # [F]
    angles = pos[..., None] * freqs  # [..., 2, F]
    return torch.cat([angles.sin(), angles.cos()], dim=-1).flatten(-2)  # [..., 4F]


def global_cosine(keys: torch.Tensor) -> torch.Tensor:
    """``keys`` ``[..., N, d]`` -> cosine of each key with their mean ``[..., N]``.

    One matrix-vector product and the norms: ``F.cosine_similarity`` against a broadcast global token
    materialises the broadcast and was several times slower on CPU.
    """
    glob = keys.mean(dim=-2, keepdim=True)  # [..., 1, d]
    dots = torch.matmul(keys, glob.transpose(-1, -2)).squeeze(-1)  # [..., N]
    norms = torch.linalg.vector_norm(keys, dim=-1) * torch.linalg.vector_norm(glob, dim=-1)  # [..., N]
    return dots / norms.clamp_min(1e-8)


def rope_2d(keys: torch.Tensor, side: int) -> torch.Tensor:
    """SecViT's 2-D rotary encoding of ``keys`` ``[..., N, d]`` on a ``side`` x ``side`` raster grid.

    Channels ``[0, d/2)`` are rotated by the row index and ``[d/2, d)`` by the column index; pairs of
    adjacent channels ``(2i, 2i+1)`` rotate together by ``index * angle_i`` with angles
    ``10000 ** -linspace(0, 1, d / 4)``, each used by two pairs as in the official code.
    """
    n, d = keys.shape[-2], keys.shape[-1]
    angle = (1.0 / 10000 ** torch.linspace(0, 1, d // 4, device=keys.device)).repeat_interleave(2)  # [d/2]
    raster = torch.arange(n, device=keys.device)
    rows, cols = (raster // side).float(), (raster % side).float()  # [N]
    theta = torch.cat([rows[:, None] * angle, cols[:, None] * angle], dim=-1)  # [N, d]: one angle per channel
    sin, cos = theta.sin().to(keys.dtype), theta.cos().to(keys.dtype)
    pairs = keys.unflatten(-1, (d // 2, 2))  # [..., N, d/2, 2]
    rotated = torch.stack([-pairs[..., 1], pairs[..., 0]], dim=-1).flatten(-2)  # [..., N, d]: (-x2, x1) per pair
    return keys * cos + rotated * sin


def take_rows(t: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``t`` ``[B, H, N, d]``, ``index`` ``[B, H, M]`` -> ``t[b, h, index[b, h, m]]`` ``[B, H, M, d]``.

    Whole rows through ``index_select`` on the flattened tokens: ``gather`` with an index expanded
    over ``d`` reads one index per element and was several times slower on CPU.
    """
    b, h, n, d = t.shape
    offsets = torch.arange(b * h, device=t.device).view(b, h, 1) * n  # [B, H, 1]
    rows = (index + offsets).reshape(-1)  # [B*H*M]
    return t.reshape(b * h * n, d).index_select(0, rows).view(b, h, index.shape[-1], d)


def equitable_assignment(scores: torch.Tensor, num_clusters: int, grouping: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Cluster id per token from its score rank, and the sort order.

    ``scores`` ``[..., N]`` -> (cluster ``[..., N]``, order ``[..., N]`` = token index at each rank). Rank 0
    is the highest score; ties keep raster order (stable sort), so the result is deterministic.
    """
    n = scores.shape[-1]
    order = torch.sort(scores, dim=-1, descending=True, stable=True).indices  # [..., N]
    ranks = torch.arange(n, device=scores.device).expand_as(order)
    rank = torch.empty_like(order).scatter_(-1, order, ranks)  # [..., N] rank of each token
    cluster = rank * num_clusters // n if grouping == "band" else rank % num_clusters
    return cluster, order


class SecProjector(Projector):
    name = "sec"
    config_class = SecConfig

    def __init__(self, config: SecConfig, in_dim: int) -> None:
        super().__init__(in_dim)
        self.config = config
        _choice(config.grouping, GROUPINGS, "grouping")
        _choice(config.reduction, REDUCTIONS, "reduction")
        _choice(config.order, ORDERS, "order")
        if config.heads < 1 or in_dim % config.heads:
            raise ValueError(f"sec projector: heads={config.heads} must be >= 1 and divide the width {in_dim}")
        if config.key_projection and config.reduction == "mean":
            raise ValueError(
                "sec projector: key_projection=True needs reduction='attn'; with reduction='mean' the "
                "non-differentiable assignment leaves W_k without gradient (use key_projection=False)"
            )
        if config.num_tokens < 1:
            raise ValueError(f"sec projector: num_tokens must be >= 1, got {config.num_tokens}")
        if not isinstance(config.regions, int) or config.regions < 1:
            raise ValueError(f"sec projector: regions must be a positive int, got {config.regions!r}")
        if config.regions > 1 and config.grouping != "band":
            raise ValueError("sec projector: regions > 1 needs grouping='band' (interleaving would mix the strips)")
        if config.num_tokens % config.regions:
            raise ValueError(
                f"sec projector: regions={config.regions} must divide num_tokens={config.num_tokens} "
                "(each strip gets num_tokens / regions clusters)"
            )
        if config.key_rope and (in_dim // config.heads) % 4:
            raise ValueError(
                f"sec projector: key_rope needs a head width divisible by 4, got {in_dim // config.heads} "
                f"(width {in_dim}, heads={config.heads})"
            )
        self.key = nn.Linear(in_dim, in_dim, bias=False) if config.key_projection else None
        self.query = nn.Linear(in_dim, in_dim, bias=False) if config.reduction == "attn" else None
        self.pos_embed = nn.Linear(4 * NUM_FREQUENCIES, in_dim) if config.position_embedding else None
        self.moments = nn.Linear(2 * in_dim, in_dim, bias=False) if config.spatial_moments else None
        if self.moments is not None:  # starts as the plain reduction; learns what the moments add
            nn.init.zeros_(self.moments.weight)

    def num_output_tokens(self, num_input_tokens: int) -> int:
        if self.config.position_embedding:
            grid_side(num_input_tokens, "sec position_embedding input token count")
        if self.config.key_rope:
            grid_side(num_input_tokens, "sec key_rope input token count")
        if self.config.spatial_moments:
            grid_side(num_input_tokens, "sec spatial_moments input token count")
        if self.config.regions > 1:
            side = grid_side(num_input_tokens, "sec regions input token count")
            if side % self.config.regions:
                raise ValueError(
                    f"sec projector: regions={self.config.regions} must divide the patch grid's side {side}"
                )
        return check_num_tokens(self.config.num_tokens, num_input_tokens, self.name)

    def forward(self, x: torch.Tensor) -> ProjectorOutput:  # x: [B, N, D]
        self.check_input(x)
        b, n, d = x.shape
        k = self.num_output_tokens(n)
        h = self.config.heads
        dh = d // h
        keys = self.key(x) if self.key is not None else x  # [B, N, D]
        keys = keys.view(b, n, h, dh).transpose(1, 2)  # [B, H, N, dh]
        values = x.view(b, n, h, dh).transpose(1, 2)  # [B, H, N, dh]

        with torch.no_grad():
            scoring = keys.float()
            if self.config.key_rope:
                scoring = rope_2d(scoring, grid_side(n, "sec key_rope input token count"))  # [B, H, N, dh]
            scores = global_cosine(scoring)  # [B, H, N]
            ranking = scores
            if self.config.regions > 1:  # strip s ranks above strip s + 1 whatever the cosines ([-1, 1])
                side = grid_side(n, "sec regions input token count")
                strip = torch.arange(n, device=x.device) % side * self.config.regions // side  # [N]
                ranking = scores + 3.0 * (self.config.regions - 1 - strip)
            cluster, order = equitable_assignment(ranking, k, self.config.grouping)  # [B, H, N] each
        raster = torch.arange(n, device=x.device)  # [N]
        spatial = self.pos_embed is not None or self.moments is not None
        side = grid_side(n, "sec position_embedding input token count") if spatial else None
        if n % k == 0:
            pooled, mean_raster, mean_rc, moments = self._reduce_equal(keys, values, order, k, raster, side)
        else:
            pooled, mean_raster, mean_rc, moments = self._reduce_scatter(keys, values, cluster, k, raster, side)
        tokens = pooled.transpose(1, 2).reshape(b, k, d)  # [B, K, D]
        if self.moments is not None:  # moments [B, H, K, 2, dh] -> [B, K, 2 * D] (row moments, then column)
            moments = moments.permute(0, 2, 3, 1, 4).reshape(b, k, 2 * d)
            tokens = tokens + self.moments(moments.to(x.dtype))

        if self.config.order == "position":
            perm = torch.sort(mean_raster, dim=-1, stable=True).indices  # [B, K]
            tokens = take_rows(tokens.unsqueeze(1), perm.unsqueeze(1)).squeeze(1)  # [B, K, D]
        else:  # clusters are already in score order: no copy
            perm = torch.arange(k, device=x.device).expand(b, k)
        slot = torch.empty_like(perm).scatter_(-1, perm, torch.arange(k, device=x.device).expand(b, k))  # [B, K]

        if self.pos_embed is not None:
            mean_rc = mean_rc.mean(1).gather(1, perm.unsqueeze(-1).expand(b, k, 2))  # [B, K, 2]
            # sines of angles up to 8 pi in float32: bfloat16 would round the angle itself by up to 0.06
            tokens = tokens + self.pos_embed(fourier_features(mean_rc.float()).to(x.dtype))

        per_head = slot.unsqueeze(1).expand(b, h, k).gather(-1, cluster)  # [B, H, N] output slot per token
        aux = {"assignment": per_head[:, 0], "assignment_per_head": per_head, "scores": scores}
        return ProjectorOutput(tokens=tokens, aux=aux)

    def _attend(self, q: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
        """Attention logits of each cluster query with its members' keys, scaled."""
        return (q * keys).sum(-1) / math.sqrt(keys.shape[-1])

    def _queries(self, means: torch.Tensor) -> torch.Tensor:
        """``means`` ``[B, H, K, dh]`` -> queries ``[B, H, K, dh]`` (W_q mixes the heads' means)."""
        b, h, k, dh = means.shape
        return self.query(means.transpose(1, 2).reshape(b, k, h * dh)).view(b, k, h, dh).transpose(1, 2)

    @staticmethod
    def _positions(raster: torch.Tensor, side: int | None) -> torch.Tensor | None:
        if side is None:
            return None
        return (
            torch.stack([raster // side, raster % side], dim=-1).float() + 0.5
        ) / side  # [N, 2] (row, col) in [0, 1]

    def _reduce_equal(self, keys, values, order, k, raster, side):
        """Equal cluster sizes (K divides N): view the tokens in rank order as K groups of N / K."""
        b, h, n, dh = values.shape
        m = n // k
        with torch.no_grad():
            members = (
                order.view(b, h, k, m) if self.config.grouping == "band" else order.view(b, h, m, k).transpose(-1, -2)
            )
        flat = members.reshape(b, h, n)  # [B, H, K*M] token index in cluster order
        grouped = take_rows(values, flat).view(b, h, k, m, dh)  # [B, H, K, M, dh]
        means = grouped.mean(3)  # [B, H, K, dh]
        if self.query is not None:
            member_keys = take_rows(keys, flat).view(b, h, k, m, dh)
            weights = torch.softmax(
                self._attend(self._queries(means).unsqueeze(3), member_keys), dim=-1, dtype=torch.float32
            )  # [B, H, K, M]
            pooled = (weights.unsqueeze(-1) * grouped).sum(3).to(values.dtype)  # float32 sum, cast back
        else:
            pooled = means
        mean_raster = members.float().mean(-1).mean(1)  # [B, K]
        rc = self._positions(raster, side)
        member_rc = rc[members] if rc is not None else None  # [B, H, K, M, 2]
        mean_rc = member_rc.mean(3) if member_rc is not None else None  # [B, H, K, 2]
        moments = None
        if self.moments is not None:
            offsets = 2 * member_rc - 1  # [B, H, K, M, 2] (row, col) in (-1, 1), 0 at the image centre
            moments = (offsets.unsqueeze(-1) * grouped.float().unsqueeze(-2)).mean(3)  # [B, H, K, 2, dh]
        return pooled, mean_raster, mean_rc, moments

    def _reduce_scatter(self, keys, values, cluster, k, raster, side):
        """Sizes differing by one (K does not divide N): segment sums with scatter_add."""
        b, h, n, dh = values.shape
        idx = cluster.unsqueeze(-1).expand(b, h, n, dh)  # [B, H, N, dh]
        # counts, sums and the softmax normalisation in float32 (exact beyond 256 members in bfloat16)
        counts = torch.zeros(b, h, k, device=values.device).scatter_add_(
            -1, cluster, torch.ones(b, h, n, device=values.device)
        )  # [B, H, K]
        values_f = values.float()
        means = torch.zeros(b, h, k, dh, device=values.device).scatter_add(2, idx, values_f)  # [B, H, K, dh]
        means = means / counts[..., None]
        if self.query is not None:
            queries = self._queries(means.to(values.dtype))  # [B, H, K, dh]
            logits = self._attend(queries.gather(2, idx), keys).float()  # [B, H, N]
            cmax = logits.new_full((b, h, k), float("-inf")).scatter_reduce(
                -1, cluster, logits, reduce="amax", include_self=True
            )
            weights = torch.exp(logits - cmax.gather(-1, cluster).detach())  # [B, H, N]
            weights = weights / logits.new_zeros(b, h, k).scatter_add(-1, cluster, weights).gather(-1, cluster)
            pooled = torch.zeros(b, h, k, dh, device=values.device).scatter_add(
                2, idx, weights[..., None] * values_f
            )  # softmax over members
        else:
            pooled = means
        pooled = pooled.to(values.dtype)
        counts_f = counts
        mean_raster = (
            torch.zeros_like(counts_f).scatter_add_(-1, cluster, raster.float().expand(b, h, n)) / counts_f
        ).mean(1)
        rc = self._positions(raster, side)
        mean_rc = None
        if rc is not None:
            mean_rc = (
                torch.zeros(b, h, k, 2, device=values.device).scatter_add_(
                    2, cluster.unsqueeze(-1).expand(b, h, n, 2), rc.expand(b, h, n, 2)
                )
                / counts_f[..., None]
            )
        moments = None
        if self.moments is not None:
            offsets = (2 * rc - 1).expand(b, h, n, 2)  # [B, H, N, 2] (row, col) in (-1, 1)
            weighted = (offsets.unsqueeze(-1) * values_f.unsqueeze(-2)).flatten(-2)  # [B, H, N, 2 * dh]
            moments = (
                torch.zeros(b, h, k, 2 * dh, device=values.device).scatter_add_(
                    2, cluster.unsqueeze(-1).expand(b, h, n, 2 * dh), weighted
                )
                / counts_f[..., None]
            )
            moments = moments.view(b, h, k, 2, dh)  # [B, H, K, 2, dh]
        return pooled, mean_raster, mean_rc, moments
