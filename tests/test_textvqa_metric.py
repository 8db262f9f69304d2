"""TextVQA scoring: normalisation rules, the 0 / 0.3 / 0.6 / 0.9 / 1.0 levels, matching and bad input."""

from __future__ import annotations

import json

import pytest

from sec_mllm.evaluation.textvqa import normalize_answer, question_from_prompt, score_textvqa, vqa_accuracy


@pytest.mark.parametrize(
    "raw,normalized",
    [
        ("Coca-Cola", "coca cola"),
        ("Classic.", "classic"),
        ("Three", "3"),
        ("$2.39", "$2.39"),
        ("The Beatles", "beatles"),
        ("John's", "john 's"),
        ("it's", "it 's"),
        ("Dont", "don't"),
        ("1,000", "1000"),
        ("3.5", "3.5"),
        ("5.", "5"),
        ("a-b", "b"),
        ("x / y", "x y"),
        ("(ok)", "ok"),
        ("Im", "im"),
        ("12:30", "12:30"),
        ("what?", "what"),
        ("  None\n", "0"),
        ("hello  world!", "hello world"),
        ("oclock", "o'clock"),
    ],
)
def test_normalization_table(raw, normalized):
    assert normalize_answer(raw) == normalized


def test_period_removal_stops_after_32():
    assert normalize_answer("." * 40) == "." * 8


@pytest.mark.parametrize("k,score", [(0, 0.0), (1, 0.3), (2, 0.6), (3, 0.9), (4, 1.0), (10, 1.0)])
def test_score_levels(k, score):
    assert vqa_accuracy("stop", ["stop"] * k + ["go"] * (10 - k)) == pytest.approx(score)


def test_exactly_ten_answers_required():
    with pytest.raises(ValueError, match="exactly 10 answers, got 9"):
        vqa_accuracy("a", ["a"] * 9)


def test_question_recovery_matches_llava():
    assert (
        question_from_prompt(
            "What is it?\nReference OCR token: A, B\nAnswer the question using a single word or phrase."
        )
        == "what is it?"
    )
    assert question_from_prompt("Reference OCR token: A\nWhat is it?\nAnswer briefly.") == "what is it?"
    assert question_from_prompt("What is it?\nAnswer the question using a single word or phrase.") == "what is it?"
    with pytest.raises(ValueError, match="2 lines"):
        question_from_prompt("one line")


ITEMS = [  # (question_id, image_id, question, answers, prediction) -> expected score
    (11, "a" * 16, "what brand is it?", ["coca cola"] * 2 + ["pepsi"] * 8, "Coca-Cola"),  # 0.6
    (12, "a" * 16, "how many cans?", ["3", "three", "three"] + ["4"] * 7, "Three."),  # 0.9
    (13, "b" * 16, "who played?", ["the beatles"] * 4 + ["stones"] * 6, "Beatles"),  # 1.0
    (14, "c" * 16, "what does it say?", ["dont"] + ["stop"] * 9, "Don't"),  # 0.3
    (15, "d" * 16, "what color?", ["red"] * 10, "nothing"),  # 0.0
]


@pytest.fixture
def textvqa_files(tmp_path):
    data = [
        {
            "question_id": qid,
            "image_id": img,
            "question": q,
            "answers": ans,
            "set_name": "val",
            "question_tokens": q.split(),
            "image_classes": [],
            "flickr_original_url": "",
            "flickr_300k_url": "",
            "image_width": 64,
            "image_height": 64,
        }
        for qid, img, q, ans, _ in ITEMS
    ]
    ann = tmp_path / "TextVQA_0.5.1_val.json"
    ann.write_text(
        json.dumps({"dataset_type": "val", "dataset_name": "textvqa", "dataset_version": "0.5.1", "data": data})
    )
    rows = []
    for i, (qid, img, q, _, pred) in enumerate(ITEMS):
        ocr = "\nReference OCR token: X, Y" if i % 2 == 0 else ""
        rows.append(
            {
                "question_id": img,
                "prompt": f"{q.capitalize()}{ocr}\nAnswer the question using a single word or phrase.",
                "text": pred,
                "answer_id": "x",
                "model_id": "m",
                "metadata": {},
            }
        )
    return ann, rows


def _write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def test_golden_file_score(textvqa_files, tmp_path):
    ann, rows = textvqa_files
    result = score_textvqa(_write(tmp_path / "a.jsonl", rows), str(ann))
    assert f"{result['accuracy']:.2f}" == "56.00"  # (0.6 + 0.9 + 1.0 + 0.3 + 0) / 5
    by_id = [{**r, "textvqa_question_id": item[0], "prompt": "ignored"} for r, item in zip(rows, ITEMS)]
    assert score_textvqa(_write(tmp_path / "b.jsonl", by_id), str(ann))["accuracy"] == pytest.approx(56.0)


def test_bad_textvqa_input(textvqa_files, tmp_path):
    ann, rows = textvqa_files
    with pytest.raises(ValueError, match=r"1 annotated question\(s\) have no answer.*15"):
        score_textvqa(_write(tmp_path / "a.jsonl", rows[:4]), str(ann))
    assert score_textvqa(_write(tmp_path / "a.jsonl", rows[:4]), str(ann), allow_missing=True)[
        "accuracy"
    ] == pytest.approx(70.0)
    unknown = rows + [{**rows[0], "prompt": "Something else?\nAnswer."}]
    with pytest.raises(
        ValueError, match=r"a.jsonl:6: no annotation for image 'aaaaaaaaaaaaaaaa' and question 'something else\?'"
    ):
        score_textvqa(_write(tmp_path / "a.jsonl", unknown), str(ann))
    with pytest.raises(ValueError, match=r"a.jsonl:6: second answer for TextVQA question 11"):
        score_textvqa(_write(tmp_path / "a.jsonl", rows + [rows[0]]), str(ann))
