"""The looking diagnostic (experiments/looking.py) on a tiny checkpoint and a small synthetic benchmark: every
family is measured, shares and divergences are in range, and a question paired with its own image shows no
difference (the swap, not noise, is what the KL measures)."""

from __future__ import annotations

import json
import math

import pytest

from sec_mllm.experiments.looking import main, measure
from sec_mllm.experiments.quickstart import CHAT_TEMPLATE
from sec_mllm.experiments.synthetic import SyntheticSizes, generate

SMALL = SyntheticSizes(gqa_test=10, textvqa_test=8, gqa_train=1, textvqa_train=1, captions=1, text_only=1)


@pytest.fixture
def chat_checkpoint(saved_sec, tmp_path):
    model, processor, _ = saved_sec
    processor.tokenizer.chat_template = CHAT_TEMPLATE
    model.save_pretrained(tmp_path / "chat")
    processor.save_pretrained(tmp_path / "chat")
    return model, str(tmp_path / "chat")


def test_measures_every_family_in_range(chat_checkpoint, tmp_path):
    model, path = chat_checkpoint
    generate(str(tmp_path / "data"), SMALL, 0)
    main(["--model-path", path, "--data", str(tmp_path / "data"), "--out", str(tmp_path / "out")])
    saved = json.loads((tmp_path / "out" / "looking.json").read_text())
    assert saved["command"].startswith("python -m sec_mllm.experiments.looking --model-path")
    families = saved["families"]
    assert sum(v["count"] for v in families["shapes_gqa"].values()) == 10
    assert sum(v["count"] for v in families["rendered_textvqa"].values()) == 8
    layers = model.config.text_config.num_hidden_layers
    for per_family in families.values():
        for v in per_family.values():
            assert len(v["attention_on_image"]) == layers and all(0 <= a <= 1 for a in v["attention_on_image"])
            assert v["kl_swapped"] >= 0 and math.isfinite(v["nll_real"]) and math.isfinite(v["nll_swapped"])
    assert "| shapes_gqa |" in (tmp_path / "out" / "looking.md").read_text()


def test_own_image_as_the_swap_changes_nothing(chat_checkpoint, tmp_path):
    _, path = chat_checkpoint
    generate(str(tmp_path / "data"), SMALL, 0)
    result = measure(path, tmp_path / "data", limit=1)  # one question: its "other" image is its own
    for per_family in result.values():
        (v,) = per_family.values()
        assert v["kl_swapped"] == pytest.approx(0, abs=1e-6) and v["nll_real"] == pytest.approx(v["nll_swapped"])


def test_not_a_benchmark_folder(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["--model-path", "x", "--data", str(tmp_path), "--out", str(tmp_path / "out")])
    assert (
        "is not a synthetic benchmark folder: missing gqa/llava_gqa_testdev_balanced.jsonl" in capsys.readouterr().err
    )
    assert not (tmp_path / "out").exists()
