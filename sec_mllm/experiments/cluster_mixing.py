"""Which objects share a token? For Shapes-GQA's "on which side of the picture is the X" questions, where the asked
object's patches go under a compressor, and what else its token holds.

A token can say on which side the asked object lies only if it does not also hold an object of another colour on
the other side: the mean of a red patch on the left and a blue one on the right is the mean of the mirrored pair.
Per compressor and K, over the benchmark's position questions (the object named in the question's annotations,
its patches the 8 px cells its box covers):

- ``target_share``: the share of the object's patches in its main token (the token holding most of them);
- ``alone``: how often that token holds no patch of any other object;
- ``other_objects``: how many other objects have a patch in it, on average;
- ``ambiguous``: how often it holds an object of another colour whose centre is on the other side.

The projectors run on the frozen tower's layer -2 patch features of the test images, as in the model; avgpool's
tokens are its fixed cells.

    python -m sec_mllm.experiments.cluster_mixing --data runs/accuracy_long/data \\
        --out benchmarks/results/cluster_mixing

Writes DIR/cluster_mixing.json (the command and every figure) and DIR/cluster_mixing.md (the table).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from tqdm import tqdm

from ..builder import default_image_processor
from ..files import read_json, write_json_atomic, write_text_atomic
from ..projectors import build_projector
from .invocation import command_line
from .patch_probes import load_tower, patch_features
from .quickstart import SHIPPED_BASE

PATCH = 8  # pixels per patch side of the tiny tower
# label -> (projector, options): the default SEC, the official code's RoPE-on-keys ordering, the baselines
COMPRESSORS = {
    "sec": ("sec", {}),
    "sec/key-rope": ("sec", {"key_rope": True}),
    "sec/halves": ("sec", {"regions": 2}),
    "avgpool": ("avgpool", {}),
    "tome": ("tome", {}),
    "kmeans": ("kmeans", {}),
}
BUDGETS = (16, 4)


def box_patches(obj: dict[str, Any], side: int) -> list[int]:
    """Raster indices of the patches an object's box covers on a ``side`` x ``side`` grid."""
    r0, r1 = obj["y"] // PATCH, (obj["y"] + obj["h"] - 1) // PATCH
    c0, c1 = obj["x"] // PATCH, (obj["x"] + obj["w"] - 1) // PATCH
    return [r * side + c for r in range(r0, min(r1, side - 1) + 1) for c in range(c0, min(c1, side - 1) + 1)]


def image_side(obj: dict[str, Any], width: int) -> str:
    return "left" if obj["x"] + obj["w"] / 2 < width / 2 else "right"


def position_questions(data: Path) -> list[dict[str, Any]]:
    """The benchmark's position questions with the asked object (from the question's annotations) and its scene."""
    folder = data / "gqa" / "data"
    questions = read_json(folder / "testdev_balanced_questions.json")
    scenes = read_json(folder / "testdev_balanced_sceneGraphs.json")
    found = []
    for qid, q in questions.items():
        if q["stratum"]["family"] != "position":
            continue
        targets = set(q["annotations"]["question"].values())
        if len(targets) != 1:
            raise ValueError(
                f"{folder / 'testdev_balanced_questions.json'}: question {qid} names {len(targets)} objects"
            )
        found.append({"image": q["imageId"], "target": targets.pop(), "scene": scenes[q["imageId"]]})
    return found


def mixing(assignment: list[int], question: dict[str, Any], side: int) -> dict[str, float]:
    """The four figures of one question, given the token index of each patch (``assignment`` ``[N]``)."""
    objects = question["scene"]["objects"]
    target = objects[question["target"]]
    tokens = [assignment[i] for i in box_patches(target, side)]
    main = max(set(tokens), key=tokens.count)
    others = [
        o
        for name, o in objects.items()
        if name != question["target"] and any(assignment[i] == main for i in box_patches(o, side))
    ]
    width = question["scene"]["width"]
    return {
        "target_share": tokens.count(main) / len(tokens),
        "alone": float(not others),
        "other_objects": float(len(others)),
        "ambiguous": float(
            any(
                image_side(o, width) != image_side(target, width) and o["attributes"][0] != target["attributes"][0]
                for o in others
            )
        ),
    }


def assignments(name: str, options: dict[str, Any], tokens: int, features: torch.Tensor) -> torch.Tensor:
    """``features`` ``[M, N, D]`` -> token index of every patch ``[M, N]`` (avgpool: its fixed cell)."""
    m, n, d = features.shape
    side = round(n**0.5)
    if name == "avgpool":
        cells = round(tokens**0.5)
        raster = torch.arange(n)
        cell = (raster // side) * cells // side * cells + (raster % side) * cells // side  # [N]
        return cell.expand(m, n)
    projector = build_projector(name, {"num_tokens": tokens, **options}, d).eval()
    with torch.no_grad():
        return projector(features).aux["assignment"]


def measure(data: Path, questions: list[dict[str, Any]], tower_folder: Path) -> dict[str, dict[str, float]]:
    """The four figures per compressor and K, averaged over ``questions`` (position_questions of ``data``)."""
    if not questions:
        raise ValueError(f"{data}: the benchmark has no position questions")
    tower = load_tower(tower_folder)
    processor = default_image_processor(tower.config)
    images = sorted({q["image"] for q in questions})
    folder = data / "gqa" / "data" / "images"
    pixels = processor([Image.open(folder / f"{i}.jpg").convert("RGB") for i in images], return_tensors="pt")
    features = patch_features(tower, pixels["pixel_values"])  # [M, N, D]
    row = {image: i for i, image in enumerate(images)}
    side = round(features.shape[1] ** 0.5)
    table = {}
    for label, (name, options) in tqdm(COMPRESSORS.items(), desc="compressors", leave=False):
        for tokens in BUDGETS:
            assigned = assignments(name, options, tokens, features).tolist()
            per_question = [mixing(assigned[row[q["image"]]], q, side) for q in questions]
            table[f"{label}@{tokens}"] = {
                key: sum(p[key] for p in per_question) / len(per_question) for key in per_question[0]
            }
    return table


def markdown(result: dict[str, Any]) -> str:
    lines = [
        f"`{result['command']}` ({result['questions']} position questions)",
        "",
        "| compressor | target_share | alone | other_objects | ambiguous |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, row in result["table"].items():
        lines.append(
            f"| {name} | {row['target_share']:.2f} | {row['alone']:.2f} | {row['other_objects']:.2f} | "
            f"{row['ambiguous']:.2f} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="the synthetic benchmark folder (experiments.synthetic)")
    parser.add_argument("--out", required=True, help="folder for cluster_mixing.json and .md")
    parser.add_argument("--tower", default=str(SHIPPED_BASE / "clip"), help="vision tower folder (default: shipped)")
    args = parser.parse_args(argv)
    data = Path(args.data)
    if not (data / "gqa" / "data" / "testdev_balanced_questions.json").exists():
        parser.error(f"{data} is not a synthetic benchmark folder: no gqa/data/testdev_balanced_questions.json")
    command = command_line("sec_mllm.experiments.cluster_mixing", argv)
    questions = position_questions(data)
    result = {
        "command": command,
        "questions": len(questions),
        "table": measure(data, questions, Path(args.tower)),
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out / "cluster_mixing.json", result)
    write_text_atomic(out / "cluster_mixing.md", markdown(result))
    print(markdown(result))


if __name__ == "__main__":
    main()
