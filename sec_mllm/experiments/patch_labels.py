"""Per-patch ground truth of the synthetic images: what each 8 x 8 patch of a 64 x 64 image shows.

The generator knows every object and sign it draws, so each patch gets labels derived from the geometry
(no random draws: the images stay the same): ``color`` (the colour class of the object or sign covering
most of the patch, 0 = background), ``kind`` (circle / square / triangle / tiny object / sign, 0 = none),
``size`` (the object's size stratum, or the sign's font size), ``centre`` (1 where the patch holds the centre
of an object or sign), ``text`` (the word or number written on the sign covering the patch, 0 = none) and
``chars`` (the characters whose glyph box overlaps the patch); ``label_tensors`` adds ``slots`` (the sign's text
spelled out: its character at each of the first ``SLOTS`` places, derived from ``text``), which lets a tower learn
letters and digits shared across words and numbers instead of 106 unrelated classes. They serve two
experiments: linear probes of a tower's patch features (does the tower keep what a question needs?) and dense
supervision of the tiny tower's pretraining, a stand-in for the local detail that real CLIP features carry and a
tower trained on 4,000 captions does not learn. ``one_hot`` turns them into the features of a perfect tower (the fusion
probe's ``labels`` set: what a classifier can do when the tower keeps everything a question needs).
"""

from __future__ import annotations

import random
from typing import Any

import torch
from PIL import Image, ImageDraw

from . import synthetic_shapes as shapes
from . import synthetic_text as text

PATCH = 8
GRID = shapes.CANVAS // PATCH  # 8 x 8 patches
COLOR_CLASSES = ("none", *(f"shape:{c}" for c in shapes.COLORS), *(f"sign:{c}" for c in text.SIGN_COLORS))
KIND_CLASSES = ("none", "circle", "square", "triangle", "tiny", "sign")
SIZE_CLASSES = ("none", *shapes.SIZES, *(f"font:{f}" for f in text.FONT_SIZES))
TEXT_CLASSES = ("none", *text.WORDS, *(str(n) for n in range(10, 100)))
CHARS = "abcdefghijklmnopqrstuvwxyz0123456789"
SLOTS = 4  # the longest sign text: 4 characters


def slot_table() -> torch.Tensor:
    """For each text class, its characters by place: ``[len(TEXT_CLASSES), SLOTS]``, 0 = no character, else
    1 + the index in ``CHARS`` (class 0, no text, is all zeros)."""
    table = torch.zeros(len(TEXT_CLASSES), SLOTS, dtype=torch.long)
    for i, written in enumerate(TEXT_CLASSES[1:], start=1):
        for place, char in enumerate(written):
            table[i, place] = 1 + CHARS.index(char)
    return table


def _dominant(id_map: Image.Image) -> list[int]:
    """Per patch (raster order): the non-zero id covering most of its pixels, 0 when none."""
    pixels = id_map.load()
    out = []
    for row in range(GRID):
        for col in range(GRID):
            counts: dict[int, int] = {}
            for y in range(row * PATCH, (row + 1) * PATCH):
                for x in range(col * PATCH, (col + 1) * PATCH):
                    if pixels[x, y]:
                        counts[pixels[x, y]] = counts.get(pixels[x, y], 0) + 1
            out.append(max(counts, key=lambda k: (counts[k], -k)) if counts else 0)
    return out


def _patch_of(x: float, y: float) -> int:
    col, row = min(int(x // PATCH), GRID - 1), min(int(y // PATCH), GRID - 1)
    return row * GRID + col


def _overlapping_patches(box: tuple[float, float, float, float]) -> list[int]:
    x0, y0, x1, y1 = box
    cols = range(max(0, int(x0 // PATCH)), min(GRID, int((x1 - 1e-6) // PATCH) + 1))
    rows = range(max(0, int(y0 // PATCH)), min(GRID, int((y1 - 1e-6) // PATCH) + 1))
    return [r * GRID + c for r in rows for c in cols]


def shapes_labels(scene: shapes.Scene) -> dict[str, Any]:
    """Labels of a Shapes-GQA scene (objects drawn with the renderer's own geometry)."""
    id_map = Image.new("L", (shapes.CANVAS, shapes.CANVAS), 0)
    draw = ImageDraw.Draw(id_map)
    for i, obj in enumerate(scene.objects):
        shapes.draw_object(draw, obj, i + 1)
    owner = _dominant(id_map)
    colors = list(shapes.COLORS)
    color = [0 if o == 0 else 1 + colors.index(scene.objects[o - 1].color) for o in owner]
    kind = []
    for o in owner:
        obj = scene.objects[o - 1] if o else None
        kind.append(0 if obj is None else KIND_CLASSES.index("tiny" if obj.size == "tiny" else obj.shape))
    size = [0 if o == 0 else SIZE_CLASSES.index(scene.objects[o - 1].size) for o in owner]
    centre = [0] * GRID * GRID
    for obj in scene.objects:
        centre[_patch_of(*obj.center)] = 1
    empty = [0] * GRID * GRID
    return {"color": color, "kind": kind, "size": size, "centre": centre, "text": empty, "chars": [""] * GRID * GRID}


def text_labels(signs: list[text.Sign]) -> dict[str, Any]:
    """Labels of a Rendered-TextVQA image: sign colour and kind per patch, and the characters in each patch."""
    id_map = Image.new("L", (text.CANVAS, text.CANVAS), 0)
    draw = ImageDraw.Draw(id_map)
    for i, sign in enumerate(signs):
        draw.rectangle(sign.box, fill=i + 1)
    owner = _dominant(id_map)
    sign_colors = list(text.SIGN_COLORS)
    offset = 1 + len(shapes.COLORS)
    color = [0 if o == 0 else offset + sign_colors.index(signs[o - 1].color) for o in owner]
    kind = [0 if o == 0 else KIND_CLASSES.index("sign") for o in owner]
    size = [0 if o == 0 else SIZE_CLASSES.index(f"font:{signs[o - 1].font}") for o in owner]
    written = [0 if o == 0 else TEXT_CLASSES.index(signs[o - 1].text) for o in owner]
    centre = [0] * GRID * GRID
    chars: list[set[str]] = [set() for _ in range(GRID * GRID)]
    for sign in signs:
        x0, y0, x1, y1 = sign.box
        centre[_patch_of((x0 + x1) / 2, (y0 + y1) / 2)] = 1
        for char, box in text.char_boxes(sign):
            for patch in _overlapping_patches(box):
                chars[patch].add(char.lower())
    chars_present = ["".join(sorted(c)) for c in chars]
    return {"color": color, "kind": kind, "size": size, "centre": centre, "text": written, "chars": chars_present}


def one_hot(labels: dict[str, Any]) -> torch.Tensor:
    """One image's labels as per-patch features ``[N, F]``: one-hot colour, kind, size and text, the centre flag
    and the multi-hot characters (F = 11 + 6 + 7 + 107 + 1 + 36 = 168)."""
    tensors = label_tensors(labels)
    classes_of = {"color": COLOR_CLASSES, "kind": KIND_CLASSES, "size": SIZE_CLASSES, "text": TEXT_CLASSES}
    parts = [torch.nn.functional.one_hot(tensors[k], len(c)).float() for k, c in classes_of.items()]  # [N, C]
    return torch.cat([*parts, tensors["centre"][:, None], tensors["chars"]], 1)


def chars_multi_hot(chars: list[str]) -> torch.Tensor:
    """Per patch, the characters present (``labels["chars"]``) as a multi-hot ``[N, len(CHARS)]``."""
    out = torch.zeros(len(chars), len(CHARS))
    for patch, present in enumerate(chars):
        for c in present:
            out[patch, CHARS.index(c)] = 1.0
    return out


def label_tensors(labels: dict[str, Any]) -> dict[str, torch.Tensor]:
    """One image's per-patch ground truth as tensors: color / kind / size / text ``[N]`` (long), slots ``[N, SLOTS]``
    (long, ``slot_table``), centre ``[N]`` and chars ``[N, len(CHARS)]`` (float, multi-hot)."""
    written = torch.tensor(labels["text"])
    return {
        "color": torch.tensor(labels["color"]),
        "kind": torch.tensor(labels["kind"]),
        "size": torch.tensor(labels["size"]),
        "text": written,
        "slots": slot_table()[written],
        "centre": torch.tensor(labels["centre"], dtype=torch.float),
        "chars": chars_multi_hot(labels["chars"]),
    }


def labelled_images(count: int, seed: str, processor: Any) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """``count`` fresh images, alternating Shapes-GQA scenes and Rendered-TextVQA signs (drawn as the benchmark
    draws them for a question), with their labels: pixels ``[M, 3, H, W]`` as ``processor`` prepares them and
    label_tensors' fields stacked ``[M, ...]``. The same ``seed`` gives the same images."""
    if count <= 0:
        raise ValueError(f"count must be > 0, got {count}")
    rng = random.Random(seed)
    pixels, labels = [], []
    for i in range(count):
        if i % 2 == 0:
            _, _, scene, _, _, _ = shapes.sample_question(rng)
            image, label = shapes.render(scene, rng), shapes_labels(scene)
        else:
            _, _, signs, _, _ = text.sample_text_question(rng)
            image, label = text.render(signs, rng), text_labels(signs)
        pixels.append(processor(image, return_tensors="pt")["pixel_values"][0])
        labels.append(label_tensors(label))
    return torch.stack(pixels), {k: torch.stack([y[k] for y in labels]) for k in labels[0]}
