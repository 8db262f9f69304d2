"""The quick start's pipeline gives the same numbers for the same command; cluster pictures. (The reduced quick
start itself runs from an installed wheel in test_layout.py.)"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import pytest
import torch
from PIL import Image

from sec_mllm.experiments.quickstart import QuickstartConfig, build_base, summarize, train_and_eval
from sec_mllm.experiments.synthetic import generate
from sec_mllm.visualize import draw_clusters, palette

ROOT = Path(__file__).resolve().parents[1]


def test_cluster_picture_colours_each_patch_by_its_cluster():
    image = Image.new("RGB", (4, 4), (0, 0, 0))
    assignment = torch.tensor([0, 0, 1, 1] * 2 + [2, 2, 3, 3] * 2)  # a 4 x 4 grid in four quadrants
    picture = draw_clusters(image, assignment, 4, scale=10, alpha=1.0)
    right = picture.crop((48, 0, 88, 40))  # the tinted copy
    colors = palette(4)
    assert right.getpixel((1, 1)) == colors[0] and right.getpixel((38, 1)) == colors[1]
    assert right.getpixel((1, 38)) == colors[2] and right.getpixel((38, 38)) == colors[3]
    with pytest.raises(ValueError, match="square patch grid, got 5"):
        draw_clusters(image, torch.zeros(5, dtype=torch.long), 1)


@pytest.mark.slow
def test_the_same_command_twice_gives_the_same_numbers(tmp_path):
    """Two runs of stage 1 + stage 2 (DeepSpeed, 2 CPU ranks) + evaluation with one seed: the same weights and
    the same answers. --seed must seed the projector and connector, which are built before the Trainer seeds."""
    cfg = QuickstartConfig.reduced(str(tmp_path))
    cfg.ranks = 2
    data, base = tmp_path / "data", tmp_path / "base"
    generate(str(data), cfg.sizes, cfg.seed)
    build_base(cfg, data, base)
    flags = ["--projector_type", "sec", "--num_visual_tokens", "16"]
    for name in ("first", "second"):
        train_and_eval(cfg, name, flags, data, base, tmp_path, seed=3)
    first = torch.load(tmp_path / "first" / "stage1" / "mm_projector.bin", weights_only=True)
    second = torch.load(tmp_path / "second" / "stage1" / "mm_projector.bin", weights_only=True)
    assert first.keys() == second.keys() and all(torch.equal(first[k], second[k]) for k in first)
    for answers in ("gqa.jsonl", "textvqa.jsonl"):
        texts = [
            [json.loads(line)["text"] for line in (tmp_path / run / answers).read_text().splitlines()]
            for run in ("first", "second")
        ]
        assert texts[0] == texts[1]
    assert summarize(tmp_path / "first", data) == summarize(tmp_path / "second", data)


def test_step_flags_set_the_run_and_the_stored_command():
    from sec_mllm.experiments.quickstart import build_parser, command_line, config_from_args

    argv = ["--out", "qs", "--stage2-steps", "1200", "--lm-steps", "0"]
    cfg = config_from_args(build_parser().parse_args(argv), command_line(argv))
    assert (cfg.stage2_steps, cfg.lm_steps, cfg.clip_steps) == (1200, 0, QuickstartConfig.clip_steps)
    assert cfg.command == "python -m sec_mllm.quickstart --out qs --stage2-steps 1200 --lm-steps 0"
    assert cfg.tower == "dense" and not cfg.dense_tower and cfg.dense_images == 0
    assert cfg.sizes.turns == 8
    assert config_from_args(build_parser().parse_args(["--turns", "4"]), "").sizes.turns == 4
    with pytest.raises(SystemExit, match="--turns must be > 0, got 0"):
        config_from_args(build_parser().parse_args(["--turns", "0"]), "")
    assert config_from_args(build_parser().parse_args(["--tower-images", "500"]), "").tower_images == 500
    with pytest.raises(SystemExit, match="--tower-images must be > 0, got 0"):
        config_from_args(build_parser().parse_args(["--tower-images", "0"]), "")
    with pytest.raises(SystemExit, match="are for --tower contrastive"):
        config_from_args(build_parser().parse_args(["--dense-tower"]), "")
    with pytest.raises(SystemExit, match="--tower-images is the dense tower's"):
        config_from_args(build_parser().parse_args(["--tower", "contrastive", "--tower-images", "5"]), "")
    contrastive = ["--tower", "contrastive"]
    assert config_from_args(build_parser().parse_args([*contrastive, "--dense-tower"]), "").dense_tower
    assert config_from_args(build_parser().parse_args([*contrastive, "--dense-images", "500"]), "").dense_images == 500
    with pytest.raises(SystemExit, match="--dense-images must be > 0, got 0"):
        config_from_args(build_parser().parse_args([*contrastive, "--dense-images", "0"]), "")
    with pytest.raises(SystemExit, match="give one of the two"):
        config_from_args(build_parser().parse_args([*contrastive, "--dense-images", "500", "--dense-tower"]), "")
    assert cfg.tower_positions == QuickstartConfig.tower_positions
    assert config_from_args(build_parser().parse_args(["--tower-positions", "sincos"]), "").tower_positions == "sincos"
    with pytest.raises(SystemExit, match="--stage2-steps must be > 0, got 0"):
        config_from_args(build_parser().parse_args(["--stage2-steps", "0"]), "")
    assert build_parser().parse_args([]).identity
    assert not build_parser().parse_args(["--no-identity"]).identity
    assert build_parser().parse_args(["--identity"]).identity
    assert "identity" not in asdict(cfg)  # not part of the recipe an accuracy work folder records


def test_the_shipped_base_is_used_only_for_its_own_recipe(tmp_path):
    """A base folder serves a config only when the base fields it was built with are the config's; training
    settings (steps of stage 2, learning rate) do not matter, anything the base is made from does."""
    from sec_mllm.experiments.quickstart import base_recipe, shipped_base

    cfg = QuickstartConfig()
    assert shipped_base(cfg, tmp_path) is None  # no recipe.json: nothing shipped
    (tmp_path / "recipe.json").write_text(json.dumps({"recipe": base_recipe(cfg), "info": {}}))
    assert shipped_base(cfg, tmp_path) == tmp_path
    assert shipped_base(QuickstartConfig(stage2_steps=7, learning_rate=1.0), tmp_path) == tmp_path
    for change in ({"lm_steps": 1}, {"clip_steps": 1}, {"seed": 1}, {"split_digits": False}, {"tower": "contrastive"}):
        assert shipped_base(QuickstartConfig(**change), tmp_path) is None, change


def test_the_package_ships_the_default_recipes_base():
    """The quick start's and the accuracy benchmark's default recipe find the base in the package (built by
    ``python -m sec_mllm.experiments.pretrained_base --out sec_mllm/base_assets``)."""
    from sec_mllm.experiments.quickstart import SHIPPED_BASE, shipped_base

    assert shipped_base(QuickstartConfig()) == SHIPPED_BASE
    record = json.loads((SHIPPED_BASE / "recipe.json").read_text())
    assert record["command"] == "python -m sec_mllm.experiments.pretrained_base --out sec_mllm/base_assets"
    for part in ("lm/config.json", "lm/model.safetensors", "lm/tokenizer.json", "clip/config.json"):
        assert (SHIPPED_BASE / part).exists(), part


def test_split_digits_reads_numbers_digit_by_digit():
    """With ``split_digits`` (the recipe's tokenizer, as LLaMA's) a number is one token per digit even when the
    corpus repeats it; without, BPE merges a frequent number into one token."""
    from sec_mllm.tiny import train_tokenizer

    corpus = ["USER: What number is on the sign? ASSISTANT: 39 47 39 47"] * 50
    split = train_tokenizer(corpus, vocab_size=300, split_digits=True)
    merged = train_tokenizer(corpus, vocab_size=300)
    assert [t for t in split.tokenize(" 39") if t.strip("Ġ")] == ["3", "9"]
    assert any(t.strip("Ġ") == "39" for t in merged.tokenize(" 39"))
    assert split.decode(split(" 39 and 47")["input_ids"]) == " 39 and 47"
