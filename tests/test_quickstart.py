"""Cluster pictures (the reduced quick start itself runs from an installed wheel in test_layout.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from PIL import Image

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
