"""Per-patch ground truth of the synthetic images: what each 8 x 8 patch of a 64 x 64 image shows.

The generator knows every object and sign it draws, so each patch gets labels derived from the geometry
(no random draws: the images stay the same): ``color`` (the colour class of the object or sign covering
most of the patch, 0 = background), ``kind`` (circle / square / triangle / tiny object / sign, 0 = none),
``centre`` (1 where the patch holds the centre of an object or sign) and ``chars`` (the characters whose
glyph box overlaps the patch). They serve two experiments: linear probes of a tower's patch features (does
the tower keep what a question needs?) and dense supervision of the tiny tower's pretraining, a stand-in
for the local detail that real CLIP features carry and a tower trained on 4,000 captions does not learn.
"""

from __future__ import annotations

from typing import Any

from PIL import Image, ImageDraw

from . import synthetic_shapes as shapes
from . import synthetic_text as text

PATCH = 8
GRID = shapes.CANVAS // PATCH  # 8 x 8 patches
COLOR_CLASSES = ("none", *(f"shape:{c}" for c in shapes.COLORS), *(f"sign:{c}" for c in text.SIGN_COLORS))
KIND_CLASSES = ("none", "circle", "square", "triangle", "tiny", "sign")
CHARS = "abcdefghijklmnopqrstuvwxyz0123456789"


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
    centre = [0] * GRID * GRID
    for obj in scene.objects:
        centre[_patch_of(*obj.center)] = 1
    return {"color": color, "kind": kind, "centre": centre, "chars": [""] * GRID * GRID}


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
    centre = [0] * GRID * GRID
    chars: list[set[str]] = [set() for _ in range(GRID * GRID)]
    for sign in signs:
        x0, y0, x1, y1 = sign.box
        centre[_patch_of((x0 + x1) / 2, (y0 + y1) / 2)] = 1
        for char, box in text.char_boxes(sign):
            for patch in _overlapping_patches(box):
                chars[patch].add(char.lower())
    return {"color": color, "kind": kind, "centre": centre, "chars": ["".join(sorted(c)) for c in chars]}
