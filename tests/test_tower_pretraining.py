"""Tower position start (experiments/tower_pretraining.py): with the 2-D sin-cos table a tower's patch features
say where the patch is, with CLIP's small random table they hardly do (why "on which side" questions failed)."""

from __future__ import annotations

import pytest
import torch
from transformers import CLIPVisionConfig, CLIPVisionModel

from sec_mllm.experiments.tower_pretraining import sincos_positions, start_positions


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
