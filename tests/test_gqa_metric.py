"""GQA scoring: hand-computed golden case over every eval.py metric, post-processing and bad input."""

from __future__ import annotations

import json

import pytest

from sec_mllm.evaluation.gqa import gqa_metrics, gqa_postprocess, score_gqa


def _q(question, answer, structural, semantic, program, group=None, balanced=True, entailed=(), detailed="x"):
    return {
        "question": question,
        "answer": answer,
        "imageId": "n1",
        "isBalanced": balanced,
        "types": {"structural": structural, "semantic": semantic, "detailed": detailed},
        "groups": {"global": group, "local": "l"},
        "entailed": list(entailed),
        "equivalent": [],
        "semantic": [{"operation": op, "argument": arg, "dependencies": []} for op, arg in program],
        "annotations": {"question": {}, "answer": {}, "fullAnswer": {}},
    }


QUESTIONS = {
    "201307251": _q(
        "Is it overcast?",
        "no",
        "verify",
        "global",
        [("select", "scene"), ("verify weather", "overcast")],
        entailed=["2062325"],
    ),
    "201640614": _q(
        "Who is wearing the dress?",
        "woman",
        "query",
        "rel",
        [("select", "dress"), ("relate", "person,wearing,s"), ("query", "name")],
        group="person",
    ),
    "3": _q(
        "What color is the car?",
        "red",
        "query",
        "attr",
        [("select", "car"), ("query", "color")],
        group="color",
        entailed=["6"],
    ),
    "2062325": _q("Is the car red?", "yes", "verify", "attr", [("select", "car"), ("verify color", "red")]),
    "5": _q("Is there a cat?", "no", "logical", "obj", [("select", "cat"), ("exist", "?")]),
    "6": _q("Is the car blue?", "no", "verify", "attr", [("select", "car"), ("verify color", "blue")], balanced=False),
}
RAW = {"201307251": "No.", "201640614": "The woman", "3": "Red", "2062325": "yes", "5": "Yes!", "6": "yes"}


def test_llava_postprocessing_only_strips_periods_and_lowercases():
    assert [gqa_postprocess(t) for t in ("Yes.", "Yes!", "a man", "T-shirt..", " no")] == [
        "yes",
        "yes!",
        "a man",
        "t-shirt",
        " no",
    ]


def test_golden_case_all_metrics():
    preds = {k: gqa_postprocess(v) for k, v in RAW.items()}
    m = gqa_metrics(QUESTIONS, preds)
    assert f"{m['accuracy']:.2f}" == "60.00"  # 3 of 5 balanced
    assert f"{m['binary']:.2f}" == "66.67"  # verify, verify, logical: 2 of 3
    assert f"{m['open']:.2f}" == "50.00"  # query: 1 of 2
    assert f"{m['distribution']:.2f}" == "0.01"  # person: (0-1)^2/1 = 1, color: 0; weighted mean 0.5; / 100
    assert m["consistency"] == pytest.approx(50.0)  # q1 -> entailed q4 right (1); q3 -> unbalanced q6 wrong (0)
    assert m["validity"] is None and m["plausibility"] is None and m["grounding"] is None
    assert m["per_structural_type"] == {
        "logical": {"accuracy": 0.0, "count": 1},
        "query": {"accuracy": 50.0, "count": 2},
        "verify": {"accuracy": 100.0, "count": 2},
    }
    assert m["per_semantic_type"]["attr"] == {"accuracy": 100.0, "count": 2}
    assert m["per_steps"] == {"1": {"accuracy": 0.0, "count": 1}, "2": {"accuracy": 75.0, "count": 4}}
    assert m["per_words"] == {
        "3": {"accuracy": 100.0, "count": 1},
        "4": {"accuracy": 50.0, "count": 2},
        "5": {"accuracy": 50.0, "count": 2},
    }
    assert m["num_questions"] == 5


def test_consistency_is_not_available_without_entailed_predictions():
    preds = {k: gqa_postprocess(v) for k, v in RAW.items() if k != "6"}
    assert gqa_metrics(QUESTIONS, preds)["consistency"] is None
    with pytest.raises(ValueError, match="consistency needs every entailed question.*'6'"):
        gqa_metrics(QUESTIONS, preds, consistency=True)


def test_validity_plausibility_and_common_rule():
    preds = {k: gqa_postprocess(v) for k, v in RAW.items()}
    yes_no = {"valid": ["yes", "no"], "plausible": ["yes", "no"]}
    choices = {k: yes_no for k in QUESTIONS}
    choices["201640614"] = {"valid": ["woman", "man"], "plausible": ["woman"]}
    choices["3"] = {"valid": ["red", "blue"], "plausible": ["blue"]}
    m = gqa_metrics(QUESTIONS, preds, choices=choices)
    assert m["validity"] == pytest.approx(60.0)  # no, red, yes valid; "the woman", "yes!" not
    assert m["plausibility"] == pytest.approx(40.0)  # red is not plausible for q3
    common = {**QUESTIONS, "3": {**QUESTIONS["3"], "types": {**QUESTIONS["3"]["types"], "detailed": "colorCommon"}}}
    assert gqa_metrics(common, {**preds, "3": "color"}, choices=choices)["validity"] == pytest.approx(60.0)


def test_grounding_matches_eval_py_arithmetic():
    q = _q("Is the cat big?", "yes", "verify", "attr", [("select", "cat")])
    q["annotations"]["question"] = {"3": "o1"}
    scenes = {"n1": {"width": 100, "height": 100, "objects": {"o1": {"x": 0, "y": 50, "w": 50, "h": 50}}}}
    # map_size 2: eval.py reads attention[i][j] as the cell at x = i, y = j; the object covers x<0.5, y>=0.5
    m = gqa_metrics({"1": q}, {"1": "yes"}, scenes=scenes, attentions={"1": [[0.1, 0.6], [0.2, 0.1]]}, map_size=2)
    assert m["grounding"] == pytest.approx(60.0)


def _write_answers(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_score_gqa_files_and_bad_input(tmp_path):
    qfile = tmp_path / "testdev_balanced_questions.json"
    qfile.write_text(json.dumps(QUESTIONS))
    answers = tmp_path / "answers.jsonl"
    rows = [
        {"question_id": k, "prompt": "p", "text": v, "answer_id": "a", "model_id": "m", "metadata": {}}
        for k, v in RAW.items()
    ]
    _write_answers(answers, rows)
    assert score_gqa(str(answers), str(qfile))["accuracy"] == pytest.approx(60.0)

    _write_answers(answers, rows[1:])
    with pytest.raises(ValueError, match=r"1 balanced question\(s\) have no prediction.*201307251"):
        score_gqa(str(answers), str(qfile))
    partial = score_gqa(str(answers), str(qfile), allow_missing=True)
    assert partial["num_missing"] == 1 and partial["accuracy"] == pytest.approx(50.0)

    _write_answers(answers, rows + [{"question_id": "999", "text": "no"}])
    with pytest.raises(ValueError, match=r"answers.jsonl:7: answer for unknown question id '999'"):
        score_gqa(str(answers), str(qfile))

    answers.write_text(json.dumps(rows[0]) + "\n{not json\n")
    with pytest.raises(ValueError, match=r"answers.jsonl:2: malformed JSON line"):
        score_gqa(str(answers), str(qfile))
