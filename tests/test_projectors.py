"""Contract test over every registered projector, plus SEC's properties and the registry's errors."""

from __future__ import annotations

import math

import pytest
import torch

from sec_mllm.projector_sec import SecProjector
from sec_mllm.projectors import PROJECTOR_CLASSES, build_projector, list_projectors, make_registry

N, D = 64, 32  # an 8 x 8 patch grid

CONTRACT_CASES = {
    "sec": [
        {"num_tokens": 16},
        {"num_tokens": 10, "grouping": "interleave", "order": "position", "heads": 2, "position_embedding": False},
        {"num_tokens": 16, "reduction": "mean", "key_projection": False},
        {"num_tokens": 7, "order": "position", "heads": 4},
        {"num_tokens": 16, "preset": "training_free"},
    ],
    "identity": [{}],
    "avgpool": [{"num_tokens": 16}, {"num_tokens": 9}],
    "tome": [{"num_tokens": 16}, {"num_tokens": 5}],
    "kmeans": [{"num_tokens": 16}, {"num_tokens": 6, "iterations": 3}],
}


def test_every_registered_projector_has_contract_cases():
    assert sorted(CONTRACT_CASES) == list_projectors()


@pytest.mark.parametrize(
    "name,config", [(name, cfg) for name, cfgs in CONTRACT_CASES.items() for cfg in cfgs], ids=str
)
def test_projector_contract(name, config):
    torch.manual_seed(0)
    proj = build_projector(name, config, D).eval()
    k = proj.num_output_tokens(N)
    x = torch.randn(3, N, D, requires_grad=True)
    out = proj(x)
    assert out.tokens.shape == (3, k, proj.out_dim)
    assert torch.isfinite(out.tokens).all()
    assignment = out.aux["assignment"]
    assert assignment.dtype == torch.long and assignment.shape == (3, N)
    assert int(assignment.min()) >= 0 and int(assignment.max()) < k

    # batch independence: each image alone gives the same tokens as in the batch
    for i in range(3):
        torch.testing.assert_close(proj(x[i : i + 1].detach()).tokens[0], out.tokens[i].detach(), atol=1e-5, rtol=1e-5)

    # gradients reach the input and every trainable parameter
    (out.tokens * torch.randn_like(out.tokens)).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    for pname, p in proj.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, f"{name}: no gradient for {pname}"

    # state-dict round trip reproduces the output
    torch.manual_seed(1)
    clone = build_projector(name, config, D).eval()
    clone.load_state_dict(proj.state_dict())
    torch.testing.assert_close(clone(x.detach()).tokens, proj(x.detach()).tokens)


@pytest.mark.parametrize("name", ["sec", "avgpool", "tome", "kmeans"])
def test_mean_projectors_output_the_mean_of_assigned_tokens(name):
    config = {"num_tokens": 16}
    if name == "sec":
        config.update(reduction="mean", key_projection=False, position_embedding=False)
    proj = build_projector(name, config, D).eval()
    x = torch.randn(2, N, D)
    out = proj(x)
    for b in range(2):
        for j in range(16):
            members = out.aux["assignment"][b] == j
            if members.any():
                torch.testing.assert_close(out.tokens[b, j], x[b, members].mean(0), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("grouping", ["band", "interleave"])
@pytest.mark.parametrize("n,k", [(7, 3), (10, 4), (64, 16), (65, 16), (50, 1), (12, 12)])
def test_sec_cluster_sizes_equal_within_one(grouping, n, k):
    proj = build_projector(
        "sec", {"num_tokens": k, "grouping": grouping, "heads": 2, "position_embedding": False}, D
    ).eval()
    out = proj(torch.randn(2, n, D))
    for head_assignment in out.aux["assignment_per_head"].flatten(0, 1):  # every image, every head
        sizes = torch.bincount(head_assignment, minlength=k)
        assert sizes.sum() == n  # every token in exactly one cluster
        assert sizes.min() >= 1 and sizes.max() - sizes.min() <= 1
        assert sizes.min() == n // k


def _sec(**config):
    base = {"num_tokens": 2, "key_projection": False, "reduction": "mean", "position_embedding": False}
    return build_projector("sec", {**base, **config}, 2).eval()


# Hand-built: mean = (1, 1.05); cosine ranks: token 2 (1,1) > token 3 (1,1.2) > token 1 (0,2) > token 0 (2,0)
HAND = torch.tensor([[[2.0, 0.0], [0.0, 2.0], [1.0, 1.0], [1.0, 1.2]]])


def test_sec_known_answer_band():
    out = _sec()(HAND)
    assert out.aux["assignment"].tolist() == [[1, 1, 0, 0]]
    torch.testing.assert_close(out.tokens, torch.tensor([[[1.0, 1.1], [1.0, 1.0]]]))


def test_sec_known_answer_interleave():
    out = _sec(grouping="interleave")(HAND)
    assert out.aux["assignment"].tolist() == [[1, 0, 0, 1]]
    torch.testing.assert_close(out.tokens, torch.tensor([[[0.5, 1.5], [1.5, 0.6]]]))


def test_sec_known_answer_position_order():
    out = _sec(order="position")(HAND)
    assert out.aux["assignment"].tolist() == [[0, 0, 1, 1]]
    torch.testing.assert_close(out.tokens, torch.tensor([[[1.0, 1.0], [1.0, 1.1]]]))


def test_sec_attention_weights_sum_to_one_per_cluster():
    proj = build_projector("sec", {"num_tokens": 4, "position_embedding": False}, D).eval()
    x = torch.ones(1, 16, D)  # identical members: any convex combination returns the member itself
    torch.testing.assert_close(proj(x).tokens, torch.ones(1, 4, D))


def test_registry_rejects_unknown_and_duplicate_names():
    with pytest.raises(ValueError, match=r"unknown projector 'sek'.*'sec'"):
        build_projector("sek", {}, D)
    with pytest.raises(ValueError, match="duplicate projector name 'sec'"):
        make_registry(PROJECTOR_CLASSES + (SecProjector,))
    with pytest.raises(ValueError, match=r"unknown config key\(s\) \['k'\].*num_tokens"):
        build_projector("sec", {"k": 3}, D)


@pytest.mark.parametrize(
    "name,config,n,match",
    [
        ("sec", {"num_tokens": 65, "position_embedding": False}, 64, "num_tokens=65 is larger than"),
        ("tome", {"num_tokens": 100}, 64, "num_tokens=100 is larger than"),
        ("avgpool", {"num_tokens": 10}, 64, "perfect square.*10"),
        ("avgpool", {"num_tokens": 4}, 60, "perfect square.*60"),
        ("sec", {"grouping": "random"}, 64, "grouping='random' is not one of"),
        ("sec", {"heads": 3}, 64, "heads=3 must"),
        ("sec", {"key_projection": True}, 64, "key_projection=True needs reduction='attn'"),  # the default is mean
        ("sec", {"preset": "fast"}, 64, "preset='fast' is not one of"),
        (
            "sec",
            {"preset": "training_free", "reduction": "attn"},
            64,
            "sets reduction='mean'.*explicit reduction='attn'",
        ),
        ("sec", {"preset": "training_free", "key_projection": True}, 64, "sets key_projection=False.*explicit"),
        ("sec", {"preset": "training_free", "key_rope": True}, 64, "sets key_rope=False.*explicit key_rope=True"),
    ],
)
def test_bad_projector_values_raise(name, config, n, match):
    with pytest.raises(ValueError, match=match):
        build_projector(name, config, D).num_output_tokens(n)


def test_wrong_feature_shape_raises():
    with pytest.raises(ValueError, match=r"\[batch, tokens, 32\].*\(2, 16, 8\)"):
        build_projector("sec", {"num_tokens": 4}, D)(torch.randn(2, 16, 8))


@pytest.mark.parametrize("grouping", ["band", "interleave"])
@pytest.mark.parametrize("reduction,key_projection", [("attn", True), ("mean", False)])
def test_sec_equal_size_fast_path_matches_the_general_path(grouping, reduction, key_projection):
    from sec_mllm.projector_sec import equitable_assignment

    proj = build_projector(
        "sec",
        {
            "num_tokens": 16,
            "grouping": grouping,
            "reduction": reduction,
            "key_projection": key_projection,
            "heads": 2,
            "spatial_moments": True,
        },
        D,
    ).eval()
    x = torch.randn(2, N, D)
    keys = (proj.key(x) if proj.key is not None else x).view(2, N, 2, D // 2).transpose(1, 2)
    values = x.view(2, N, 2, D // 2).transpose(1, 2)
    scores = torch.nn.functional.cosine_similarity(keys, keys.mean(2, keepdim=True), dim=-1)
    cluster, order = equitable_assignment(scores, 16, grouping)
    raster = torch.arange(N)
    fast = proj._reduce_equal(keys, values, order, 16, raster, 8)
    general = proj._reduce_scatter(keys, values, cluster, 16, raster, 8)
    for a, b in zip(fast, general):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


def test_sec_spatial_moments_tell_where_a_clusters_content_lies():
    plain_config = {"num_tokens": 1, "position_embedding": False}
    plain = build_projector("sec", plain_config, 8).eval()
    moments = build_projector("sec", {**plain_config, "spatial_moments": True}, 8).eval()
    torch.manual_seed(0)
    x = torch.randn(1, 16, 8)
    torch.testing.assert_close(moments(x).tokens, plain(x).tokens)  # zero-initialised: starts as the plain mean
    torch.nn.init.normal_(moments.moments.weight)
    mirrored = x.view(1, 4, 4, 8).flip(2).reshape(1, 16, 8)  # the same patches, left and right swapped
    torch.testing.assert_close(plain(mirrored).tokens, plain(x).tokens)  # one cluster's mean: blind to the swap
    assert not torch.allclose(moments(mirrored).tokens, moments(x).tokens, atol=1e-3)
    # the row moments do not see a left-right swap; the column moments change sign
    offsets = (torch.arange(4).float() + 0.5) / 4 * 2 - 1  # [4] row or column offset in (-1, 1)
    rows, cols = offsets.repeat_interleave(4), offsets.repeat(4)  # [16] raster order
    expected = torch.cat([(rows[:, None] * x[0]).mean(0), (cols[:, None] * x[0]).mean(0)])  # [2 * D]
    torch.testing.assert_close(
        moments(x).tokens[0, 0], x[0].mean(0) + moments.moments.weight @ expected, atol=1e-5, rtol=1e-5
    )
    with pytest.raises(ValueError, match="perfect square"):
        moments.num_output_tokens(15)


@pytest.mark.parametrize("n,k,regions", [(64, 4, 2), (64, 16, 4), (64, 6, 2), (36, 6, 3)])
def test_sec_regions_keep_every_token_inside_one_vertical_strip(n, k, regions):
    torch.manual_seed(0)
    proj = build_projector("sec", {"num_tokens": k, "regions": regions}, D).eval()
    out = proj(torch.randn(2, n, D))
    assert out.tokens.shape == (2, k, D)
    side = math.isqrt(n)
    strip = torch.arange(n) % side * regions // side  # [N] strip of each patch, left to right
    for b in range(2):
        assignment = out.aux["assignment"][b]
        sizes = torch.bincount(assignment, minlength=k)
        assert int(sizes.max() - sizes.min()) <= 1
        for j in range(k):  # token j holds patches of strip j // (k / regions) only
            assert strip[assignment == j].unique().tolist() == [j // (k // regions)]
        # inside a strip the bands still follow the cosine to the whole image's global token
        scores = out.aux["scores"][b, 0]
        first, second = scores[assignment == 0], scores[assignment == 1] if k // regions > 1 else None
        if second is not None:
            assert first.min() >= second.max()


@pytest.mark.parametrize(
    "config,n,match",
    [
        ({"num_tokens": 4, "regions": 3}, 64, "regions=3 must divide num_tokens=4"),
        ({"num_tokens": 6, "regions": 3}, 64, "regions=3 must divide the patch grid's side 8"),
        ({"num_tokens": 4, "regions": 2, "grouping": "interleave"}, 64, "regions > 1 needs grouping='band'"),
        ({"num_tokens": 4, "regions": 0}, 64, "regions must be a positive int"),
    ],
)
def test_sec_regions_refuse_what_they_cannot_cut(config, n, match):
    with pytest.raises(ValueError, match=match):
        build_projector("sec", config, D).num_output_tokens(n)


def test_rope_2d_rotates_by_row_then_column_and_keeps_relative_angles():
    from sec_mllm.projector_sec import rope_2d

    side, d = 4, 8
    x = torch.randn(d).expand(side * side, d)  # the same key at every position
    rotated = rope_2d(x, side)  # [N, d]
    torch.testing.assert_close(rotated.norm(dim=-1), x.norm(dim=-1))  # a rotation
    torch.testing.assert_close(rotated[0], x[0])  # position (0, 0) is not rotated
    row, col = torch.arange(side * side) // side, torch.arange(side * side) % side
    same_row = rotated[row == 2]
    assert torch.allclose(same_row[:, : d // 2], same_row[:1, : d // 2].expand_as(same_row[:, : d // 2]))
    same_col = rotated[col == 1]
    assert torch.allclose(same_col[:, d // 2 :], same_col[:1, d // 2 :].expand_as(same_col[:, d // 2 :]))
    # RoPE's hallmark: the dot product of two rotated keys depends only on their offset
    a, b = torch.randn(d), torch.randn(d)
    ra, rb = rope_2d(a.expand(side * side, d), side), rope_2d(b.expand(side * side, d), side)
    torch.testing.assert_close(ra[0] @ rb[5], ra[10] @ rb[15])  # (0,0)-(1,1) and (2,2)-(3,3)


def test_sec_key_rope_lets_position_shape_the_ordering():
    x = torch.randn(1, 1, 8).expand(1, 16, 8)  # identical content: without position every score ties
    content_only = build_projector(
        "sec", {"num_tokens": 4, "key_projection": False, "reduction": "mean", "position_embedding": False}, 8
    ).eval()
    with_rope = build_projector(
        "sec",
        {"num_tokens": 4, "key_projection": False, "reduction": "mean", "position_embedding": False, "key_rope": True},
        8,
    ).eval()
    raster_bands = (torch.arange(16) // 4).unsqueeze(0)
    assert torch.equal(content_only(x).aux["assignment"], raster_bands)  # ties keep raster order
    assignment = with_rope(x).aux["assignment"]
    assert not torch.equal(assignment, raster_bands)
    assert torch.bincount(assignment[0], minlength=4).tolist() == [4, 4, 4, 4]
    with pytest.raises(ValueError, match="divisible by 4"):
        build_projector("sec", {"num_tokens": 4, "key_rope": True, "heads": 4}, 8)
    with pytest.raises(ValueError, match="perfect square"):
        with_rope.num_output_tokens(15)


# bfloat16 holds integers exactly only up to 256: clusters above that size must be counted and summed in float32
BIG_N, BIG_K = 1024, 3  # a 32 x 32 grid cut into 3 clusters of 341-342 patches (3 does not divide 1024)


@pytest.mark.parametrize(
    "name,config",
    [
        ("kmeans", {"num_tokens": BIG_K}),
        ("tome", {"num_tokens": BIG_K}),
        ("sec", {"num_tokens": BIG_K, "reduction": "mean", "key_projection": False, "position_embedding": False}),
    ],
    ids=["kmeans", "tome", "sec_plain"],
)
def test_clusters_above_256_stay_exact_means_in_bfloat16(name, config):
    torch.manual_seed(0)
    v, w = torch.randn(2, D).bfloat16()
    # 683 patches along v, then 341 along w, with magnitudes 1, 2, 4 in turn (cosines within a direction tie
    # exactly): cluster sizes such as 341 and 683 are not even representable in bfloat16
    scale = (2.0 ** (torch.arange(BIG_N) % 3)).bfloat16()
    direction = torch.where(torch.arange(BIG_N)[:, None] < 683, v, w)  # [N, D]
    x = (scale[:, None] * direction).unsqueeze(0)  # [1, N, D], exact in bfloat16
    proj = build_projector(name, config, D).to(torch.bfloat16)
    out = proj(x)
    assert out.tokens.dtype == torch.bfloat16
    assignment = out.aux["assignment"][0]
    sizes = torch.bincount(assignment, minlength=BIG_K)
    assert int(sizes.max()) > 256  # the case this test is about
    for j in range(BIG_K):
        if sizes[j]:  # the members' mean, summed in float64, rounded once to bfloat16
            expected = x[0, assignment == j].double().mean(0).bfloat16()
            torch.testing.assert_close(out.tokens[0, j], expected, rtol=0, atol=0)
    if name == "tome":
        assert out.aux["sizes"].sum().item() == BIG_N and out.aux["sizes"].dtype == torch.float32


def test_sec_attention_over_clusters_above_256_in_bfloat16_matches_float32():
    """The unequal path's softmax normalisation sums ~341 weights: in bfloat16 that sum stalls far below 1."""
    torch.manual_seed(0)
    x = torch.randn(D).expand(1, BIG_N, D).clone()
    proj = build_projector("sec", {"num_tokens": BIG_K}, D)  # learned keys, attention, position embedding
    expected = proj(x.bfloat16().float()).tokens
    got = proj.to(torch.bfloat16)(x.bfloat16()).tokens
    assert got.dtype == torch.bfloat16
    torch.testing.assert_close(got.float(), expected, rtol=2**-7, atol=2**-7)


def test_training_free_preset_has_no_parameters_and_keeps_patches_at_k_equal_n():
    proj = build_projector("sec", {"num_tokens": N, "preset": "training_free"}, D)
    assert not list(proj.parameters())
    config = proj.config
    assert (config.key_projection, config.key_rope, config.reduction, config.position_embedding, config.order) == (
        False,
        False,
        "mean",
        False,
        "position",
    )
    x = torch.randn(2, N, D)
    assert torch.equal(proj(x).tokens, x)  # each cluster one patch, raster order
    # explicit options that agree with the preset, and options it leaves free, are accepted
    same = build_projector("sec", {"num_tokens": 8, "preset": "training_free", "reduction": "mean", "heads": 2}, D)
    assert same.config.heads == 2 and not list(same.parameters())


def test_sec_defaults_are_mean_reduction_on_the_towers_features():
    """The benchmark's rule chose mean reduction without W_k; ``reduction="attn"`` alone brings back learned keys."""
    default = build_projector("sec", {"num_tokens": 4}, 32)
    assert (default.config.reduction, default.config.key_projection) == ("mean", False)
    assert default.key is None and default.query is None and default.pos_embed is not None
    attn = build_projector("sec", {"num_tokens": 4, "reduction": "attn"}, 32)
    assert attn.config.key_projection and attn.key is not None and attn.query is not None
    raw_keys = build_projector("sec", {"num_tokens": 4, "reduction": "attn", "key_projection": False}, 32)
    assert raw_keys.key is None and raw_keys.query is not None
