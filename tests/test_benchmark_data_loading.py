"""The data-loading benchmark at a tiny scale: the generated file has the mix's shape, every phase ran with
two ranks started together, exactly one rank converted, the paths agree on the samples, and a rerun keeps
the stored phases. No timing or memory figure is asserted (the machine is noisy)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sec_mllm.experiments import data_loading
from sec_mllm.experiments.llava_mix import SOURCES, generate_mix
from sec_mllm.files import read_json

SCALE = 0.0005


def test_mix_shape(tmp_path):
    shape = generate_mix(tmp_path / "mix.json", seed=3, scale=SCALE)
    records = json.loads((tmp_path / "mix.json").read_text())
    assert shape["samples"] == len(records) == sum(max(1, round(s.count * SCALE)) for s in SOURCES)
    by_folder: dict[str | None, int] = {}
    for r in records:
        folder = r["image"].split("/")[0] if "image" in r else None
        by_folder[folder] = by_folder.get(folder, 0) + 1
        assert ("<image>" in r["conversations"][0]["value"]) == ("image" in r)
    expected: dict[str | None, int] = {}
    for s in SOURCES:
        expected[s.folder] = expected.get(s.folder, 0) + max(1, round(s.count * SCALE))
    assert by_folder == expected
    assert (tmp_path / "mix.json.images.txt").read_text().split() == sorted(
        {r["image"] for r in records if "image" in r}
    )


@pytest.mark.slow
def test_benchmark_runs_and_resumes(tmp_path, monkeypatch):
    argv = ["--out", str(tmp_path / "out"), "--work", str(tmp_path / "work"), "--scale", str(SCALE)]
    argv += ["--repeats", "1", "--min-free-gib", "0"]
    data_loading.main(argv)
    result = read_json(tmp_path / "out" / "data_loading.json")
    phases = result["phases"]
    assert set(phases) == set(data_loading.PHASES) and all(len(ranks) == 2 for ranks in phases.values())
    assert sorted(r["converted"] for r in phases["arrow_first"]) == [False, True]
    assert not any(r["converted"] for r in phases["arrow_cached"])
    assert len({r["samples"] for ranks in phases.values() for r in ranks}) == 1
    worst = max(r["startup_s"] for r in phases["arrow_cached"]) / max(r["startup_s"] for r in phases["list"])
    assert result["ratios"]["startup"] == pytest.approx(worst)
    assert result["command"].startswith("python -m sec_mllm.experiments.data_loading --out")
    assert "| arrow_cached | 1 |" in (tmp_path / "out" / "data_loading.md").read_text()

    def no_launch(*args, **kwargs):
        raise AssertionError("a stored phase was measured again")

    monkeypatch.setattr(data_loading, "launch", no_launch)
    data_loading.main(argv)  # every phase kept
    assert read_json(tmp_path / "out" / "data_loading.json")["phases"] == phases
    assert Path(tmp_path / "work" / "mix665k.shape.json").exists()
