"""Rendered-TextVQA: coloured signs carrying words or numbers, with TextVQA-format questions and 10
simulated annotator answers.

Images are 64 x 64 with 1-3 signs. Each sign carries a word from a closed list or a 2-digit number,
drawn with Pillow's built-in font at a stratified size (small: 9 px, medium: 13 px, large: 17 px) in a
stratified position (edge or centre). Questions: "What does the {color} sign say?", "What is written on
the sign?", "What number is on the sign?", "How many signs are there?"; each (image, question) pair is
unique. The 10 answers simulate annotators: 4-10 copies of the canonical answer, surface variants that
the EvalAI normalisation folds (case, a trailing period, "the ...", number words) and a few disagreements,
so the 0.3 / 0.6 / 0.9 levels occur; a "clean" flag marks questions whose 10 answers all agree.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from PIL import Image, ImageDraw, ImageFont

CANVAS = 64
WORDS = (
    "stop",
    "open",
    "exit",
    "sale",
    "cafe",
    "bank",
    "taxi",
    "park",
    "shop",
    "zoo",
    "bus",
    "gym",
    "inn",
    "spa",
    "bar",
    "tea",
)
SIGN_COLORS = {"red": (200, 40, 40), "green": (40, 150, 60), "blue": (40, 70, 200), "black": (30, 30, 30)}
FONT_SIZES = {"small": 9, "medium": 13, "large": 17}
NUMBER_WORDS = {"1": "one", "2": "two", "3": "three"}
TEXT_FAMILIES = ("read_color", "read_single", "read_number", "count_signs")


@dataclass
class Sign:
    text: str
    color: str
    font: str
    box: tuple[int, int, int, int] = (0, 0, 0, 0)

    @property
    def position(self) -> str:
        x0, y0, x1, y1 = self.box
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        return "edge" if min(cx, cy, CANVAS - cx, CANVAS - cy) < 16 else "center"


def _font(size: str) -> ImageFont.ImageFont:
    return ImageFont.load_default(size=FONT_SIZES[size])


def layout(signs: list[Sign], rng: random.Random) -> None:
    placed: list[tuple[int, int, int, int]] = []
    for sign in signs:
        left, top, right, bottom = _font(sign.font).getbbox(sign.text)
        w, h = right - left + 4, bottom - top + 4
        if w > CANVAS - 2:
            raise ValueError("sign too wide")
        for _ in range(200):
            x, y = rng.randint(1, CANVAS - w - 1), rng.randint(1, CANVAS - h - 1)
            box = (x, y, x + w, y + h)
            if all(box[2] + 1 < p[0] or p[2] + 1 < box[0] or box[3] + 1 < p[1] or p[3] + 1 < box[1] for p in placed):
                sign.box = box
                placed.append(box)
                break
        else:
            raise ValueError("no room")


def render(signs: list[Sign], rng: random.Random) -> Image.Image:
    base = rng.randint(190, 240)
    image = Image.new("RGB", (CANVAS, CANVAS), (base, base - rng.randint(0, 20), base - rng.randint(0, 20)))
    draw = ImageDraw.Draw(image)
    for s in signs:
        draw.rectangle(s.box, fill=SIGN_COLORS[s.color])
        draw.text(text_origin(s), s.text, fill=(255, 255, 255), font=_font(s.font))
    return image


def text_origin(sign: Sign) -> tuple[int, int]:
    """Where the sign's text is drawn: its glyphs' box starts 2 px inside the sign's box."""
    left, top, _, _ = _font(sign.font).getbbox(sign.text)
    return sign.box[0] + 2 - left, sign.box[1] + 2 - top


def char_boxes(sign: Sign) -> list[tuple[str, tuple[float, float, float, float]]]:
    """Each character of the sign's text with its box (x0, y0, x1, y1) in image pixels, from the font's advances."""
    font = _font(sign.font)
    x, y = text_origin(sign)
    _, top, _, bottom = font.getbbox(sign.text)
    return [
        (c, (x + font.getlength(sign.text[:i]), y + top, x + font.getlength(sign.text[: i + 1]), y + bottom))
        for i, c in enumerate(sign.text)
    ]


def plausible_wrong(family: str, answer: str) -> list[str]:
    """Answers a careless annotator might give instead."""
    if family == "count_signs":
        return [n for n in ("1", "2", "3", "4") if n != answer]
    if family == "read_number":
        return [answer[::-1], str(int(answer) + 1), str(int(answer) - 1)]
    return [w for w in WORDS if w != answer]


def annotator_answers(answer: str, rng: random.Random, distractors: list[str]) -> tuple[list[str], bool]:
    """10 answers: canonical copies, normalisation-equivalent variants and a few disagreements."""
    agree = rng.choice((10, 10, 9, 8, 7, 6, 5, 4))
    variants = [answer.upper(), answer.capitalize() + ".", "the " + answer, answer + "."]
    if answer in NUMBER_WORDS:
        variants.append(NUMBER_WORDS[answer])
    answers = [answer if rng.random() < 0.6 else rng.choice(variants) for _ in range(agree)]
    answers += [rng.choice(distractors) for _ in range(10 - agree)]
    rng.shuffle(answers)
    return answers, agree == 10


def sample_text_question(rng: random.Random) -> tuple[str, str, list[Sign], str, dict[str, Any]]:
    """(family, answer, signs, question, stratum) with the answer drawn uniformly first."""
    while True:
        family = rng.choice(TEXT_FAMILIES)
        font = rng.choice(tuple(FONT_SIZES))
        try:
            if family == "count_signs":
                answer = rng.choice(("1", "2", "3"))
                signs = [Sign(rng.choice(WORDS), rng.choice(tuple(SIGN_COLORS)), "small") for _ in range(int(answer))]
                question, target = "How many signs are there?", None
            elif family == "read_number":
                answer = str(rng.randint(10, 99))
                signs = [Sign(answer, rng.choice(tuple(SIGN_COLORS)), font)]
                question, target = "What number is on the sign?", signs[0]
            elif family == "read_single":
                answer = rng.choice(WORDS)
                signs = [Sign(answer, rng.choice(tuple(SIGN_COLORS)), font)]
                question, target = "What is written on the sign?", signs[0]
            else:
                answer = rng.choice(WORDS)
                colors = rng.sample(tuple(SIGN_COLORS), rng.randint(2, 3))
                others = rng.sample([w for w in WORDS if w != answer], len(colors) - 1)
                signs = [Sign(answer, colors[0], font)] + [Sign(w, c, "small") for w, c in zip(others, colors[1:])]
                question, target = f"What does the {colors[0]} sign say?", signs[0]
            layout(signs, rng)
        except ValueError:
            continue
        stratum = {
            "family": family,
            "size": target.font if target else "none",
            "position": target.position if target else "none",
        }
        return family, answer, signs, question, stratum


def simulated_ocr(signs: list[Sign], rng: random.Random, drop: float = 0.2) -> list[str]:
    """OCR tokens from the known strings, with tokens dropped (small text more often) and upper-cased."""
    tokens = []
    for s in signs:
        if rng.random() < (drop * 2 if s.font == "small" else drop):
            continue
        tokens.append(s.text.upper())
    return tokens
