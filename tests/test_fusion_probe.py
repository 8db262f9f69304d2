"""The fusion-classifier probe (experiments/fusion_probe.py): balanced families stay at chance without an image,
a family that needs only colours is learned from raw pixels, runs repeat exactly, bad names are refused."""

from __future__ import annotations

import json

import pytest
import torch
from transformers import CLIPVisionConfig

from sec_mllm.builder import default_image_processor
from sec_mllm.experiments import fusion_probe
from sec_mllm.experiments.fusion_probe import sample_questions


def _processor():
    return default_image_processor(CLIPVisionConfig(image_size=64, patch_size=8))


def test_family_restriction_and_fresh_images():
    questions = sample_questions(12, "t", _processor(), "read_number")
    assert set(questions.families) == {"read_number"}
    assert questions.pixels.shape == (12, 3, 64, 64)
    assert all(a.isdigit() for a in questions.answers)
    mixed = sample_questions(40, "t", _processor(), None)
    assert {"shapes", "text"} == {"shapes" if f in fusion_probe.shapes.FAMILIES else "text" for f in mixed.families}


def _run(tmp_path, name, features, family, steps=60):
    return fusion_probe.run(
        tmp_path / name,
        tmp_path / "work",
        features,
        steps=steps,
        train_size=400,
        test_size=400,
        seed=0,
        family=family,
        command="test",
    )


def test_blind_at_chance_pixels_learn_colours_and_runs_repeat(tmp_path):
    torch.set_num_threads(1)
    result = _run(tmp_path, "a", ["none", "pixels"], "choose_color", steps=150)
    blind, pixels = (result["feature_sets"][n]["final"]["choose_color"] for n in ("none", "pixels"))
    # "Is the square red or blue?": the two options are shuffled, so the question alone gives 50 %.
    assert abs(blind - 50) < 10, blind
    assert pixels > blind + 6, (pixels, blind)  # 62.2 against 52.2 when written (400 test questions)
    curve = result["feature_sets"]["pixels"]["curve"]
    assert [c["samples"] for c in curve] == [c["step"] * 64 for c in curve] and curve[-1]["step"] == 150
    again = _run(tmp_path, "b", ["pixels"], "choose_color", steps=150)
    assert again["feature_sets"]["pixels"] == result["feature_sets"]["pixels"]
    saved = json.loads((tmp_path / "a" / "fusion_probe.json").read_text())
    assert saved["feature_sets"]["pixels"]["final"] == pytest.approx(result["feature_sets"]["pixels"]["final"])
    assert (tmp_path / "a" / "fusion_probe.png").stat().st_size > 0
    assert "| choose_color |" in (tmp_path / "a" / "fusion_probe.md").read_text()


def test_ground_truth_features_read_the_sign(tmp_path):
    """The ``labels`` set (a perfect tower) names the sign's word, which the question alone cannot (1 in 16)."""
    torch.set_num_threads(1)
    result = _run(tmp_path, "labels", ["labels"], "read_single", steps=100)
    assert result["feature_sets"]["labels"]["final"]["read_single"] > 80  # 100.0 at 150 steps when written
    questions = sample_questions(3, "t", _processor(), "read_single", with_labels=True)
    assert questions.labels.shape == (3, 64, 168)
    assert questions.labels[:, :, 7:11].sum() > 0 and questions.labels[:, :, 1:7].sum() == 0  # sign colours only
    assert sample_questions(3, "t", _processor(), "read_single").labels.numel() == 0


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--features", "dense", "clip"], "unknown feature set(s) clip; choose from none, pixels"),
        (["--family", "colour"], "unknown family 'colour'; choose from exist"),
        (["--steps", "0"], "must be > 0"),
    ],
)
def test_bad_arguments_name_the_allowed_values(tmp_path, capsys, argv, message):
    with pytest.raises(SystemExit):
        fusion_probe.main(["--out", str(tmp_path / "out"), *argv])
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
