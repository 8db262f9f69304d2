"""Shapes-GQA: procedurally drawn scenes of shapes and GQA-format questions about them.

Scenes are 64 x 64 (8-px patches: an 8 x 8 grid) with 2-6 objects placed freely (not on a grid, which
would flatter grid pooling): a shape (circle, square, triangle), a colour (6), a size stratum (tiny: 4 px,
smaller than a patch; small: 8 px; large: 16 px) and a position stratum (edge: centre within 12 px of the
border; centre otherwise). Tiny objects have no recognisable shape, so questions name them by colour.

Each question is generated answer-first: the family and the answer are drawn uniformly, then a scene is
built that makes the answer true, so answers are balanced per question wording and a question-only model
scores at chance. Families map onto GQA's structural / semantic types; the stratum (family, size,
position of the target) is kept in ``groups.local`` and in an extra ``stratum`` field.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from PIL import Image, ImageDraw

CANVAS = 64
SHAPES = ("circle", "square", "triangle")
COLORS = {
    "red": (220, 40, 40),
    "green": (40, 170, 60),
    "blue": (50, 80, 220),
    "yellow": (230, 210, 40),
    "purple": (150, 60, 190),
    "orange": (240, 140, 30),
}
SIZES = {"tiny": 4, "small": 8, "large": 16}
COUNTS = ("0", "1", "2", "3", "4")
FAMILIES = (
    "exist",
    "query_color",
    "verify_color",
    "choose_color",
    "position",
    "relation",
    "logical",
    "compare",
    "count",
)
# family -> (structural, semantic, detailed, global group)
GQA_TYPES = {
    "exist": ("verify", "obj", "exist", None),
    "query_color": ("query", "attr", "queryAttr", "color"),
    "verify_color": ("verify", "attr", "verifyAttr", None),
    "choose_color": ("choose", "attr", "chooseAttr", None),
    "position": ("query", "attr", "positionQuery", "position"),
    "relation": ("verify", "rel", "relVerify", None),
    "logical": ("logical", "obj", "existAnd", None),
    "compare": ("compare", "attr", "sameColor", None),
    "count": ("query", "obj", "count", "count"),
}
ANSWERS = {
    "exist": ("yes", "no"),
    "verify_color": ("yes", "no"),
    "relation": ("yes", "no"),
    "logical": ("yes", "no"),
    "compare": ("yes", "no"),
    "query_color": tuple(COLORS),
    "choose_color": tuple(COLORS),
    "position": ("left", "right"),
    "count": COUNTS,
}


@dataclass
class Obj:
    shape: str
    color: str
    size: str
    x: int = 0  # top-left corner
    y: int = 0

    @property
    def side(self) -> int:
        return SIZES[self.size]

    @property
    def center(self) -> tuple[float, float]:
        return self.x + self.side / 2, self.y + self.side / 2

    @property
    def position(self) -> str:
        cx, cy = self.center
        return "edge" if min(cx, cy, CANVAS - cx, CANVAS - cy) < 12 else "center"

    def name(self) -> str:
        return f"{self.color} object" if self.size == "tiny" else f"{self.color} {self.shape}"


@dataclass
class Scene:
    objects: list[Obj] = field(default_factory=list)


def article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


class Unsatisfiable(Exception):
    """The random layout could not realise the requested answer; the caller draws again."""


def place(objects: list[Obj], rng: random.Random, side_of: dict[int, str] | None = None) -> None:
    """Free, non-overlapping placement; ``side_of`` pins some objects to the left / right half."""
    placed: list[Obj] = []
    for i, obj in enumerate(objects):
        for _ in range(200):
            s = obj.side
            lo, hi = 1, CANVAS - s - 1
            if side_of and i in side_of:
                lo, hi = (lo, CANVAS // 2 - s - 3) if side_of[i] == "left" else (CANVAS // 2 + 3, hi)
            obj.x, obj.y = rng.randint(lo, hi), rng.randint(1, CANVAS - s - 1)
            if all(
                obj.x + s + 2 <= o.x or o.x + o.side + 2 <= obj.x or obj.y + s + 2 <= o.y or o.y + o.side + 2 <= obj.y
                for o in placed
            ):
                placed.append(obj)
                break
        else:
            raise Unsatisfiable("no room")


def draw_object(draw: ImageDraw.ImageDraw, o: Obj, fill: tuple[int, int, int] | int) -> None:
    """The object's geometry (tiny objects are drawn as squares: 4 px carry no recognisable shape)."""
    box = (o.x, o.y, o.x + o.side - 1, o.y + o.side - 1)
    if o.shape == "circle" and o.size != "tiny":
        draw.ellipse(box, fill=fill)
    elif o.shape == "triangle" and o.size != "tiny":
        top, left, right, bottom = (o.x + o.side / 2, o.y), o.x, o.x + o.side - 1, o.y + o.side - 1
        draw.polygon([top, (left, bottom), (right, bottom)], fill=fill)
    else:
        draw.rectangle(box, fill=fill)


def render(scene: Scene, rng: random.Random) -> Image.Image:
    base = rng.randint(200, 235)
    image = Image.new("RGB", (CANVAS, CANVAS), (base, base, base - rng.randint(0, 15)))
    draw = ImageDraw.Draw(image)
    for o in scene.objects:
        draw_object(draw, o, COLORS[o.color])
    return image


def caption(scene: Scene) -> str:
    parts = []
    for o in sorted(scene.objects, key=lambda o: o.center[0]):
        side = "left" if o.center[0] < CANVAS / 2 else "right"
        what = f"tiny {o.color} object" if o.size == "tiny" else f"{o.size} {o.color} {o.shape}"
        parts.append(f"{article(what)} {what} on the {side}")
    return ", ".join(parts) + "."


def _random_obj(
    rng: random.Random,
    avoid: set[tuple[str, str]] = frozenset(),
    sizes=("small", "large", "tiny"),
    avoid_shapes: set[str] = frozenset(),
    avoid_colors: set[str] = frozenset(),
) -> Obj:
    for _ in range(100):
        o = Obj(rng.choice(SHAPES), rng.choice(tuple(COLORS)), rng.choice(sizes))
        if (o.color, o.shape) not in avoid and o.shape not in avoid_shapes and o.color not in avoid_colors:
            return o
    raise Unsatisfiable("attributes")


def build_question(
    family: str, answer: str, rng: random.Random
) -> tuple[Scene, str, dict[str, Any], list[tuple[str, str]]]:
    """A scene where ``answer`` is right for a ``family`` question: (scene, question, stratum, program)."""
    n_distract = rng.randint(1, 4)
    sizes = ("tiny", "small", "large")
    if family == "exist":
        color, shape = rng.choice(tuple(COLORS)), rng.choice(SHAPES)
        target = Obj(shape, color, rng.choice(("small", "large")))
        others = [_random_obj(rng, avoid={(color, shape)}, sizes=("small", "large")) for _ in range(n_distract)]
        objs = ([target] if answer == "yes" else []) + others
        q, program = (
            f"Is there {article(color)} {color} {shape}?",
            [("select", shape), ("filter color", color), ("exist", "?")],
        )
    elif family in ("query_color", "verify_color", "choose_color"):
        size = rng.choice(sizes)
        color = answer if family == "query_color" else rng.choice(tuple(COLORS))
        shape = rng.choice(SHAPES)
        if family == "choose_color":
            color = answer
        if family == "verify_color" and answer == "no":
            asked = rng.choice([c for c in COLORS if c != color])
        else:
            asked = color
        target = Obj(shape, color, size)
        if size == "tiny":  # named by "tiny object": no other tiny object
            others = [_random_obj(rng, sizes=("small", "large")) for _ in range(n_distract)]
            ref = "the tiny object"
        else:
            others = [_random_obj(rng, avoid_shapes={shape}, sizes=("small", "large")) for _ in range(n_distract)]
            ref = f"the {shape}"
        objs = [target] + others
        if family == "query_color":
            q, program = f"What color is {ref}?", [("select", ref.split()[-1]), ("query", "color")]
        elif family == "verify_color":
            q, program = f"Is {ref} {asked}?", [("select", ref.split()[-1]), ("verify color", asked)]
        else:
            other = rng.choice([c for c in COLORS if c != color])
            a, b = (color, other) if rng.random() < 0.5 else (other, color)
            q, program = f"Is {ref} {a} or {b}?", [("select", ref.split()[-1]), ("choose color", f"{a}|{b}")]
    elif family == "position":
        target = Obj(rng.choice(SHAPES), rng.choice(tuple(COLORS)), rng.choice(sizes))
        others = [_random_obj(rng, avoid_colors={target.color}, sizes=("small", "large")) for _ in range(n_distract)]
        objs = [target] + others
        place(objs, rng, {0: answer})
        q = f"On which side of the picture is the {target.name()}?"
        program = [("select", target.name()), ("query", "hposition")]
        return Scene(objs), q, {"size": target.size, "position": target.position, "target": 0}, program
    elif family == "relation":
        a = Obj(rng.choice(SHAPES), rng.choice(tuple(COLORS)), rng.choice(("small", "large")))
        b = _random_obj(rng, avoid={(a.color, a.shape)}, sizes=("small", "large"), avoid_colors={a.color})
        others = [
            _random_obj(
                rng,
                avoid={(a.color, a.shape), (b.color, b.shape)},
                sizes=("small", "large"),
                avoid_colors={a.color, b.color},
            )
            for _ in range(rng.randint(0, 2))
        ]
        objs = [a, b] + others
        place(objs, rng, {0: "left", 1: "right"} if answer == "yes" else {0: "right", 1: "left"})
        q = f"Is the {a.name()} to the left of the {b.name()}?"
        program = [("select", b.name()), ("relate", "to the left of"), ("select", a.name()), ("verify", "rel")]
        return Scene(objs), q, {"size": a.size, "position": a.position, "target": 0}, program
    elif family == "logical":
        s1, s2 = rng.sample(SHAPES, 2)
        present = [s1, s2] if answer == "yes" else [rng.choice((s1, s2))]
        missing = {s1, s2} - set(present)
        objs = [Obj(s, rng.choice(tuple(COLORS)), rng.choice(("small", "large"))) for s in present]
        objs += [_random_obj(rng, avoid_shapes=missing, sizes=("small", "large")) for _ in range(rng.randint(0, 2))]
        q, program = (
            f"Are there both {s1}s and {s2}s?",
            [("select", s1), ("exist", "?"), ("select", s2), ("exist", "?"), ("and", "")],
        )
    elif family == "compare":
        s1, s2 = rng.sample(SHAPES, 2)
        c1 = rng.choice(tuple(COLORS))
        c2 = c1 if answer == "yes" else rng.choice([c for c in COLORS if c != c1])
        third = ({*SHAPES} - {s1, s2}).pop()
        objs = [Obj(s1, c1, rng.choice(("small", "large"))), Obj(s2, c2, rng.choice(("small", "large")))]
        objs += [Obj(third, rng.choice(tuple(COLORS)), "small") for _ in range(rng.randint(0, 2))]
        q, program = f"Are the {s1} and the {s2} the same color?", [("select", s1), ("select", s2), ("same", "color")]
    elif family == "count":
        color, shape = rng.choice(tuple(COLORS)), rng.choice(SHAPES)
        size = rng.choice(("small", "large"))
        n = int(answer)
        objs = [Obj(shape, color, size) for _ in range(n)]
        objs += [_random_obj(rng, avoid={(color, shape)}, sizes=("small", "large")) for _ in range(rng.randint(0, 2))]
        q, program = (
            f"How many {color} {shape}s are there?",
            [("select", shape), ("filter color", color), ("count", "")],
        )
    else:
        raise ValueError(f"unknown family {family!r}")
    if family not in ("query_color", "verify_color", "choose_color", "exist"):
        rng.shuffle(objs)
    place(objs, rng)
    has_target = family in ("query_color", "verify_color", "choose_color") or (family == "exist" and answer == "yes")
    target = objs[0] if has_target else None
    stratum = {
        "size": target.size if target else "none",
        "position": target.position if target else "none",
        "target": 0 if target else None,
    }
    if family == "count":
        stratum = {"size": objs[0].size if objs and answer != "0" else "none", "position": "none", "target": None}
    return Scene(objs), q, stratum, program


def gqa_record(
    family: str,
    question: str,
    answer: str,
    image_id: str,
    qid: str,
    stratum: dict[str, Any],
    program: list[tuple[str, str]],
) -> dict[str, Any]:
    structural, semantic, detailed, group = GQA_TYPES[family]
    ops = [
        {"operation": op, "argument": arg, "dependencies": [i - 1] if i else []} for i, (op, arg) in enumerate(program)
    ]
    return {
        "question": question,
        "answer": answer,
        "fullAnswer": f"The answer is {answer}.",
        "imageId": image_id,
        "isBalanced": True,
        "types": {"structural": structural, "semantic": semantic, "detailed": detailed},
        "groups": {"global": group, "local": f"{family}|{stratum['size']}|{stratum['position']}"},
        "entailed": [],
        "equivalent": [qid],
        "semantic": ops,
        "semanticStr": " -> ".join(f"{op}: {arg}" for op, arg in program),
        "annotations": {"question": {}, "answer": {}, "fullAnswer": {}},
        "stratum": {"family": family, "size": stratum["size"], "position": stratum["position"]},
    }


def scene_graph(scene: Scene) -> dict[str, Any]:
    return {
        "width": CANVAS,
        "height": CANVAS,
        "objects": {
            str(i): {
                "name": o.shape,
                "x": o.x,
                "y": o.y,
                "w": o.side,
                "h": o.side,
                "attributes": [o.color, o.size],
                "relations": [],
            }
            for i, o in enumerate(scene.objects)
        },
    }


def sample_question(
    rng: random.Random, family: str | None = None
) -> tuple[str, str, Scene, str, dict[str, Any], list]:
    """Draw a family and an answer uniformly and build a scene for them (retrying rare failed layouts)."""
    while True:
        fam = family or rng.choice(FAMILIES)
        answer = rng.choice(ANSWERS[fam])
        try:
            scene, question, stratum, program = build_question(fam, answer, rng)
            return fam, answer, scene, question, stratum, program
        except Unsatisfiable:
            continue
