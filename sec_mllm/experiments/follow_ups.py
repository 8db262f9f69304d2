"""Follow-up questions about an image that already has one: multi-turn training conversations, as LLaVA's.

The benchmark's questions are drawn answer-first (the scene is built to make a drawn answer true, so the
question alone gives chance). A training image can carry more supervision than that one answer: LLaVA-1.5's
mix groups several VQA questions about the same image into one conversation, so one pass over the image
tokens trains several answers. Here the extra questions are asked about the scene as drawn, each family's
answer computed from the objects or signs; a question whose answer the picture would leave ambiguous (a
colour shared by two objects, an object near the middle for "which side", a square asked about beside a tiny
object, which is drawn as a small square) is not asked. Answers are drawn first and balanced per family, as
the benchmark's (``follow_ups``). Only training data uses them; the test sets stay answer-first.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

from . import synthetic_shapes as shapes
from . import synthetic_text as text
from .synthetic_shapes import CANVAS, COLORS, SHAPES, Obj, Scene, article

MIDDLE_MARGIN = 4  # px: an object whose centre is this close to the middle is on neither side
RELATION_MARGIN = 6  # px: two objects this close in x are neither left nor right of each other


def _unique(objects: list[Obj], key: str) -> list[Obj]:
    """Objects whose ``key`` attribute (colour or shape) no other object in ``objects`` shares."""
    values = [getattr(o, key) for o in objects]
    return [o for o in objects if values.count(getattr(o, key)) == 1]


def _color_and_shape(named: list[Obj], rng: random.Random, existing: float) -> tuple[str, str]:
    """A (colour, shape) to ask about: with probability ``existing`` one of ``named``'s, else a random one."""
    if named and rng.random() < existing:
        target = rng.choice(named)
        return target.color, target.shape
    return rng.choice(tuple(COLORS)), rng.choice(SHAPES)


def ask_shapes(family: str, scene: Scene, rng: random.Random) -> tuple[str, str] | None:
    """A ``family`` question about ``scene`` and its answer, or None when the scene does not allow one."""
    named = [o for o in scene.objects if o.size != "tiny"]  # named by shape; tiny objects are "the tiny object"
    tiny = [o for o in scene.objects if o.size == "tiny"]
    # "the <shape>" names one object: its shape is unique, and no tiny object (a small square) could be meant
    by_shape = [o for o in _unique(named, "shape") if not (tiny and o.shape == "square")]
    if family == "exist":
        color, shape = _color_and_shape(named, rng, 0.5)
        if any(o.color == color for o in tiny):  # a tiny object of that colour could pass for one
            return None
        present = any(o.color == color and o.shape == shape for o in named)
        return f"Is there {article(color)} {color} {shape}?", "yes" if present else "no"
    if family in ("query_color", "verify_color", "choose_color"):
        targets = [(o, f"the {o.shape}") for o in by_shape]
        targets += [(o, "the tiny object") for o in tiny if len(tiny) == 1]
        if not targets:
            return None
        target, ref = rng.choice(targets)
        if family == "query_color":
            return f"What color is {ref}?", target.color
        other = rng.choice([c for c in COLORS if c != target.color])
        if family == "verify_color":
            asked = target.color if rng.random() < 0.5 else other
            return f"Is {ref} {asked}?", "yes" if asked == target.color else "no"
        a, b = (target.color, other) if rng.random() < 0.5 else (other, target.color)
        return f"Is {ref} {a} or {b}?", target.color
    if family == "position":
        targets = [o for o in _unique(scene.objects, "color") if abs(o.center[0] - CANVAS / 2) >= MIDDLE_MARGIN]
        if not targets:
            return None
        target = rng.choice(targets)
        side = "left" if target.center[0] < CANVAS / 2 else "right"
        return f"On which side of the picture is the {target.name()}?", side
    if family == "relation":
        distinct = [o for o in _unique(scene.objects, "color") if o.size != "tiny"]
        if len(distinct) < 2:
            return None
        a, b = rng.sample(distinct, 2)
        if abs(a.center[0] - b.center[0]) < RELATION_MARGIN:
            return None
        return f"Is the {a.name()} to the left of the {b.name()}?", "yes" if a.center[0] < b.center[0] else "no"
    if family == "logical":
        s1, s2 = rng.sample(SHAPES, 2)
        present = {o.shape for o in named}
        if tiny and "square" in (s1, s2) and "square" not in present:  # tiny objects are drawn as squares
            return None
        return f"Are there both {s1}s and {s2}s?", "yes" if {s1, s2} <= present else "no"
    if family == "compare":
        if len(by_shape) < 2:
            return None
        a, b = rng.sample(by_shape, 2)
        return f"Are the {a.shape} and the {b.shape} the same color?", "yes" if a.color == b.color else "no"
    if family == "count":
        color, shape = _color_and_shape(named, rng, 0.7)
        n = sum(o.color == color and o.shape == shape for o in named)
        if any(o.color == color for o in tiny) or str(n) not in shapes.COUNTS:
            return None
        return f"How many {color} {shape}s are there?", str(n)
    raise ValueError(f"unknown family {family!r}; choose from {', '.join(shapes.FAMILIES)}")


def ask_signs(family: str, signs: list[text.Sign], rng: random.Random) -> tuple[str, str] | None:
    """A ``family`` question about a sign image and its answer, or None when the image does not allow one."""
    if family == "count_signs":
        return "How many signs are there?", str(len(signs))
    if family == "read_color":
        colors = [s.color for s in signs]
        alone = [s for s in signs if colors.count(s.color) == 1]
        if not alone:
            return None
        sign = rng.choice(alone)
        return f"What does the {sign.color} sign say?", sign.text
    if family in ("read_single", "read_number"):
        if len(signs) != 1 or signs[0].text.isdigit() != (family == "read_number"):
            return None
        question = "What number is on the sign?" if family == "read_number" else "What is written on the sign?"
        return question, signs[0].text
    raise ValueError(f"unknown family {family!r}; choose from {', '.join(text.TEXT_FAMILIES)}")


Asker = Callable[[str, Any, random.Random], tuple[str, str] | None]


def follow_ups(
    ask: Asker,
    answers: dict[str, tuple[str, ...] | None],
    picture: Any,
    rng: random.Random,
    count: int,
    asked: set[str],
    tries: int = 20,
) -> list[tuple[str, str]]:
    """Up to ``count`` more (question, answer) pairs from ``ask(family, picture, rng)``, no question twice (``asked``
    holds the questions already in the conversation and is updated). Answer-first, as the benchmark: a family
    and an answer are drawn uniformly (``answers``: family -> its answers, None where the picture fixes a
    uniformly drawn answer anyway, as a sign's word), then up to ``tries`` questions of that family until one
    has that answer; so a family's answers stay balanced wherever the pictures allow them (left to themselves
    most "same color?" answers would be "no" and most counts 0 or 1)."""
    out: list[tuple[str, str]] = []
    for _ in range(5 * count):
        if len(out) == count:
            break
        family = rng.choice(tuple(answers))
        choices = answers[family]
        wanted = rng.choice(choices) if choices else None
        for _ in range(tries):
            pair = ask(family, picture, rng)
            if pair is not None and wanted in (None, pair[1]) and pair[0] not in asked:
                asked.add(pair[0])
                out.append(pair)
                break
    return out


# Answers to balance per family; colour answers follow the scene's uniformly drawn colours, a sign's text is fixed.
SHAPES_ANSWERS: dict[str, tuple[str, ...] | None] = {
    **shapes.ANSWERS,
    "query_color": None,
    "choose_color": None,
}
SIGNS_ANSWERS: dict[str, tuple[str, ...] | None] = dict.fromkeys(text.TEXT_FAMILIES)
