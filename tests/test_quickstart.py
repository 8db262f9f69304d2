"""A reduced quick start (small sizes, a few steps) through the same code path as the README command."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image

from sec_mllm.visualize import draw_clusters, palette

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_reduced_quickstart(tmp_path):
    out = tmp_path / "qs"
    result = subprocess.run([sys.executable, str(ROOT / "scripts" / "quickstart.py"), "--reduced", "--out", str(out)],
                            capture_output=True, text=True, timeout=900, cwd=ROOT)
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    results = json.loads((out / "results.json").read_text())
    for bench in ("gqa", "textvqa"):
        assert set(results[bench]) == {"sec", "identity", "blind"}
        for model in results[bench].values():
            assert 0.0 <= model["accuracy"] <= 100.0 and set(model["per_stratum"]) == {"family", "size", "position"}
    assert {"data_s", "base_s", "sec", "identity", "blind_s"} <= set(results["timings"])
    assert results["base"]["clip_loss_last"] < results["base"]["clip_loss_first"]
    assert len(results["cluster_pictures"]) == 5 and all(Path(p).is_file() for p in results["cluster_pictures"])
    assert "overall" in result.stdout and "stage 2" in result.stdout


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
