"""The cluster-mixing measure: which patches a box covers, avgpool's cells, and the four figures on a known scene."""

import torch

from sec_mllm.experiments.cluster_mixing import assignments, box_patches, mixing


def _object(x: int, y: int, w: int, h: int, colour: str) -> dict:
    return {"name": "circle", "x": x, "y": y, "w": w, "h": h, "attributes": [colour, "small"], "relations": []}


def test_box_patches_cover_the_cells_a_box_touches():
    assert box_patches(_object(0, 0, 8, 8, "red"), 8) == [0]
    assert box_patches(_object(4, 4, 8, 8, "red"), 8) == [0, 1, 8, 9]
    assert box_patches(_object(60, 60, 8, 8, "red"), 8) == [63]  # clipped to the grid


def test_avgpool_cells_are_its_fixed_quadrants():
    quadrant = assignments("avgpool", {}, 4, torch.zeros(1, 64, 8))[0].view(8, 8)
    assert quadrant[:4, :4].unique().tolist() == [0] and quadrant[:4, 4:].unique().tolist() == [1]
    assert quadrant[4:, :4].unique().tolist() == [2] and quadrant[4:, 4:].unique().tolist() == [3]


def test_a_token_shared_with_another_colour_on_the_other_side_is_ambiguous():
    scene = {
        "width": 64,
        "height": 64,
        "objects": {
            "0": _object(0, 0, 8, 8, "red"),
            "1": _object(56, 0, 8, 8, "blue"),
            "2": _object(0, 56, 8, 8, "red"),
        },
    }
    question = {"image": "n1", "target": "0", "scene": scene}
    one_token = [0] * 64
    assert mixing(one_token, question, 8) == {
        "target_share": 1.0,
        "alone": 0.0,
        "other_objects": 2.0,
        "ambiguous": 1.0,
    }
    quadrants = assignments("avgpool", {}, 4, torch.zeros(1, 64, 8))[0].tolist()
    assert mixing(quadrants, question, 8) == {
        "target_share": 1.0,
        "alone": 1.0,
        "other_objects": 0.0,
        "ambiguous": 0.0,
    }
    halves = [0 if i % 8 < 4 else 1 for i in range(64)]  # the red one below shares the token: same side, same colour
    assert mixing(halves, question, 8)["ambiguous"] == 0.0 and mixing(halves, question, 8)["other_objects"] == 1.0
