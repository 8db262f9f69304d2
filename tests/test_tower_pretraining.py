"""Tower pretraining (experiments/tower_pretraining.py): the position start (with the 2-D sin-cos table a tower's
patch features say where the patch is, with CLIP's small random table they hardly do), the dense heads' masked
losses and the tower trained on dense targets alone."""

from __future__ import annotations

import pytest
import torch
from transformers import CLIPVisionConfig, CLIPVisionModel

from sec_mllm.experiments.tower_pretraining import DenseHeads, pretrain_dense_tower, sincos_positions, start_positions


def _column_r2(tower: CLIPVisionModel, images: torch.Tensor) -> float:
    """R^2 of a least-squares read-out of each patch's column from its layer -2 features."""
    with torch.no_grad():
        features = tower(pixel_values=images, output_hidden_states=True).hidden_states[-2][:, 1:]  # [M, 64, D]
    x = torch.cat([features.reshape(-1, features.shape[-1]), torch.ones(features.shape[0] * 64, 1)], 1)
    column = (torch.arange(64) % 8).repeat(features.shape[0]).float()
    half = len(images) // 2 * 64  # fit on the first half of the images, score on the second
    w = torch.linalg.lstsq(x[:half], column[:half, None]).solution
    residual = (x[half:] @ w).squeeze(1) - column[half:]
    return float(1 - residual.pow(2).mean() / column[half:].var())


def test_sincos_table_encodes_row_and_column():
    table = sincos_positions(16, 8)  # [64, 16]
    assert table.shape == (64, 16)
    assert torch.unique(table, dim=0).shape[0] == 64  # every patch has its own code
    assert torch.equal(table[0, 8:], table[8, 8:]) and not torch.equal(table[0, :8], table[8, :8])  # row / column
    with pytest.raises(ValueError, match="divisible by 4, got 18"):
        sincos_positions(18, 8)


def test_sincos_start_makes_position_readable_from_patch_features():
    config = CLIPVisionConfig(
        image_size=64, patch_size=8, hidden_size=32, intermediate_size=64, num_hidden_layers=3, num_attention_heads=4
    )
    images = torch.randn(40, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    r2 = {}
    for positions in ("learned", "sincos"):
        torch.manual_seed(0)
        tower = CLIPVisionModel(config).eval()
        start_positions(tower.embeddings, config, positions)
        r2[positions] = _column_r2(tower, images)
    assert r2["sincos"] > 0.8 and r2["learned"] < 0.5, r2
    with pytest.raises(ValueError, match="one of learned, sincos, got 'rope'"):
        start_positions(tower.embeddings, config, "rope")


def test_dense_targets_from_fresh_images(tmp_path, tokenizer):
    """``dense_images``: the dense heads learn from generated labelled images (the same ones for the same seed),
    a batch per step beside the captions; the caption images' label file and fresh images do not mix."""
    from sec_mllm.builder import default_image_processor
    from sec_mllm.experiments.patch_labels import labelled_images
    from sec_mllm.experiments.synthetic import SyntheticSizes, generate
    from sec_mllm.experiments.tower_pretraining import pretrain_clip

    torch.set_num_threads(1)
    sizes = SyntheticSizes(gqa_test=4, textvqa_test=4, gqa_train=8, textvqa_train=8, captions=32, text_only=2)
    generate(str(tmp_path), sizes, 0)
    config = CLIPVisionConfig(
        image_size=64, patch_size=8, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4
    )
    first, again = (labelled_images(6, "s", default_image_processor(config)) for _ in range(2))
    assert first[0].shape == (6, 3, 64, 64) and first[1]["kind"].shape == (6, 64)
    assert torch.equal(first[0], again[0]) and all(torch.equal(first[1][k], again[1][k]) for k in first[1])
    captions, images = str(tmp_path / "train" / "captions.json"), str(tmp_path / "train" / "images")
    _, curves = pretrain_clip(captions, images, tokenizer, config, steps=40, batch_size=16, dense_images=64)
    assert len(curves["dense"]) == len(curves["contrastive"]) == 40
    assert sum(curves["dense"][-5:]) < 0.8 * sum(curves["dense"][:5]), curves["dense"]
    with pytest.raises(ValueError, match="not both"):
        pretrain_clip(captions, images, tokenizer, config, steps=1, patch_labels_file="labels.json", dense_images=8)
    with pytest.raises(ValueError, match="dense_images must be >= 0"):
        pretrain_clip(captions, images, tokenizer, config, steps=1, dense_images=-1)


def _labelled(count: int, config: CLIPVisionConfig, seed: str = "t") -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    from sec_mllm.builder import default_image_processor
    from sec_mllm.experiments.patch_labels import labelled_images

    return labelled_images(count, seed, default_image_processor(config))


class _Offset(torch.nn.Module):
    """A read-out plus a per-patch offset whose gradient shows which patches a loss uses."""

    def __init__(self, linear: torch.nn.Linear, shape: tuple[int, ...]) -> None:
        super().__init__()
        self.linear, self.offset = linear, torch.nn.Parameter(torch.zeros(shape))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x) + self.offset


def test_dense_heads_learn_each_attribute_where_it_exists():
    """The sign's text and its spelling are learned on sign patches only, size on object and sign patches only,
    colour and the place in the grid on every patch."""
    config = CLIPVisionConfig(image_size=64, patch_size=8, hidden_size=16, num_hidden_layers=1, num_attention_heads=2)
    _, labels = _labelled(4, config)  # images 1 and 3 show signs
    torch.manual_seed(0)
    heads = DenseHeads(16)
    for name in ("text", "slots", "size", "color", "column"):
        head = getattr(heads, name)
        setattr(heads, name, _Offset(head, (4, 64, head.out_features)))
    heads.loss(torch.randn(4, 64, 16), labels).backward()
    sign, thing = labels["text"] > 0, labels["kind"] > 0  # [4, 64]
    assert bool(sign.any()) and bool((thing & ~sign).any()) and bool((~thing).any())
    for name, where in (("text", sign), ("slots", sign), ("size", thing)):
        grad = getattr(heads, name).offset.grad.abs().sum(-1)  # [4, 64]
        assert float(grad[~where].sum()) == 0.0 and bool((grad[where] > 0).all()), name
    for name in ("color", "column"):
        assert bool((getattr(heads, name).offset.grad.abs().sum(-1) > 0).all()), name


def test_slots_spell_words_and_numbers():
    from sec_mllm.experiments.patch_labels import CHARS, TEXT_CLASSES, slot_table

    table = slot_table()
    spelled = ["".join(CHARS[c - 1] for c in row if c) for row in table.tolist()]
    assert spelled[0] == "" and spelled[1:] == list(TEXT_CLASSES[1:])
    assert table[TEXT_CLASSES.index("39")].tolist() == [1 + CHARS.index("3"), 1 + CHARS.index("9"), 0, 0]


def test_dense_tower_learns_from_fresh_images_alone_and_repeats():
    """``pretrain_dense_tower``: a plain CLIP vision tower whose dense loss falls; the same seed gives the same
    weights; a tower with no images is refused."""
    torch.set_num_threads(1)
    config = CLIPVisionConfig(
        image_size=64, patch_size=8, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4
    )
    tower, curves = pretrain_dense_tower(config, images=64, steps=60, batch_size=16)
    again, _ = pretrain_dense_tower(config, images=64, steps=60, batch_size=16)
    assert isinstance(tower, CLIPVisionModel) and not tower.training
    assert sum(curves["dense"][-5:]) < 0.7 * sum(curves["dense"][:5]), curves["dense"]
    first, second = tower.state_dict(), again.state_dict()
    assert all(torch.equal(first[k], second[k]) for k in first)
    with pytest.raises(ValueError, match="images must be > 0, got 0"):
        pretrain_dense_tower(config, images=0, steps=1)
