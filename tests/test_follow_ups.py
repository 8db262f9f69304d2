"""Follow-up questions (experiments/follow_ups.py): asked about a picture the answer-first generators drew,
they give the same answer as the generator wherever they ask the generator's own question; multi-turn training
data keeps every first question and adds the follow-ups."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from sec_mllm.experiments import synthetic_shapes as shapes
from sec_mllm.experiments import synthetic_text as text
from sec_mllm.experiments.follow_ups import SHAPES_ANSWERS, ask_shapes, ask_signs, follow_ups
from sec_mllm.experiments.synthetic import SyntheticSizes, write_training
from sec_mllm.files import read_json


def test_follow_ups_answer_as_the_generator_does():
    """Every answer-first question is asked again about its own picture (up to 300 tries) with its answer."""
    rng = random.Random(0)
    asked, right = Counter(), Counter()
    cases = [("shapes", *shapes.sample_question(rng)[:4]) for _ in range(180)]
    cases += [("text", *text.sample_text_question(rng)[:4]) for _ in range(80)]
    for i, (kind, family, answer, picture, question) in enumerate(cases):
        ask, draw = ask_shapes if kind == "shapes" else ask_signs, random.Random(i)
        for _ in range(300):
            pair = ask(family, picture, draw)
            if pair is not None and pair[0] == question:
                asked[family] += 1
                right[family] += pair[1] == answer
                break
    families = {c[1] for c in cases}
    assert families == set(shapes.FAMILIES) | set(text.TEXT_FAMILIES)
    assert right == asked and sum(asked.values()) == len(cases), (asked, right)  # all 260 when written


def test_ambiguous_pictures_are_not_asked_about():
    near_middle = shapes.Scene([shapes.Obj("circle", "red", "small", x=28, y=10)])  # centre 32: neither side
    assert ask_shapes("position", near_middle, random.Random(0)) is None
    two_circles = shapes.Scene(
        [shapes.Obj("circle", "red", "small", x=2, y=2), shapes.Obj("circle", "blue", "large", x=30, y=30)]
    )
    assert ask_shapes("query_color", two_circles, random.Random(0)) is None  # "the circle" names two objects
    signs = [text.Sign("stop", "red", "small"), text.Sign("open", "red", "small")]
    assert ask_signs("read_color", signs, random.Random(0)) is None
    assert ask_signs("count_signs", signs, random.Random(0)) == ("How many signs are there?", "2")
    with pytest.raises(ValueError, match="unknown family 'size'"):
        ask_shapes("size", near_middle, random.Random(0))


def test_a_square_beside_a_tiny_object_and_a_tiny_colour_twin_are_not_asked_about():
    """A tiny object is drawn as a 4 px square: "the square" would be ambiguous beside it, and a relation by
    colour needs the colour to be unique among all objects, tiny ones included."""
    scene = shapes.Scene(
        [
            shapes.Obj("square", "purple", "small", x=2, y=2),
            shapes.Obj("circle", "yellow", "large", x=40, y=40),
            shapes.Obj("triangle", "purple", "tiny", x=30, y=5),
        ]
    )
    draw = random.Random(0)
    for family in ("query_color", "verify_color", "choose_color", "compare", "relation"):
        for _ in range(50):
            pair = ask_shapes(family, scene, draw)
            assert pair is None or "square" not in pair[0], pair


def test_follow_ups_never_repeat_a_question_and_keep_answers_balanced():
    rng = random.Random(3)
    _, _, scene, question, _, _ = shapes.sample_question(rng)
    asked = {question}
    pairs = follow_ups(ask_shapes, SHAPES_ANSWERS, scene, random.Random(0), 6, asked)
    questions = [q for q, _ in pairs]
    assert len(set(questions)) == len(questions) and question not in questions
    assert asked == {question, *questions}
    answers = Counter()
    for i in range(400):
        scene = shapes.sample_question(rng)[2]
        for q, a in follow_ups(ask_shapes, SHAPES_ANSWERS, scene, random.Random(i), 4, set()):
            if q.startswith("Are the"):  # "same color?": left to itself 1 in 6 would be "yes"
                answers[a] += 1
    assert 0.35 < answers["yes"] / sum(answers.values()) < 0.65, answers


def test_multi_turn_training_data_changes_nothing_else(tmp_path):
    sizes = SyntheticSizes(gqa_test=0, textvqa_test=0, gqa_train=40, textvqa_train=30, captions=4, text_only=2)
    write_training(tmp_path / "one", sizes, 0)
    write_training(tmp_path / "four", SyntheticSizes(**{**vars(sizes), "turns": 4}), 0)
    for name in ("captions.json", "patch_labels.json"):
        assert (tmp_path / "one" / "train" / name).read_bytes() == (tmp_path / "four" / "train" / name).read_bytes()
    one, four = (read_json(tmp_path / run / "train" / "instructions.json") for run in ("one", "four"))
    assert [r["id"] for r in one] == [r["id"] for r in four]
    extra = 0
    for a, b in zip(one, four):
        a_turns, b_turns = a["conversations"], b["conversations"]
        assert b_turns[:2] == a_turns[:2] and b_turns[len(b_turns) - len(a_turns) + 2 :] == a_turns[2:]
        extra += (len(b_turns) - len(a_turns)) // 2
    images = sizes.gqa_train + sizes.textvqa_train
    assert 2 * images <= extra <= 3 * images, extra  # up to 3 follow-ups per image; some pictures allow fewer
