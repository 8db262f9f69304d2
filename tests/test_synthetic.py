"""The synthetic benchmark: real formats accepted by the real loaders and scorers, balance, determinism."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from pathlib import Path

import pytest

from sec_mllm.data import LlavaDataset
from sec_mllm.evaluation import score_gqa, score_textvqa
from sec_mllm.experiments.blind import write_blind_answers
from sec_mllm.experiments.synthetic import SyntheticSizes, generate
from sec_mllm.experiments.synthetic_shapes import ANSWERS
from sec_mllm.files import read_json

SMALL = SyntheticSizes(gqa_test=900, textvqa_test=300, gqa_train=3000, textvqa_train=300, captions=50, text_only=10)


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    return generate(str(tmp_path_factory.mktemp("syn")), SMALL, seed=0)


def _perfect_answers(bench: Path, tmp: Path) -> tuple[Path, Path]:
    questions = read_json(bench / "gqa" / "data" / "testdev_balanced_questions.json")
    rows = [json.loads(line) for line in (bench / "gqa" / "llava_gqa_testdev_balanced.jsonl").read_text().splitlines()]
    gqa = tmp / "gqa.jsonl"
    gqa.write_text(
        "".join(
            json.dumps(
                {
                    "question_id": r["question_id"],
                    "prompt": r["text"],
                    "text": questions[r["question_id"]]["answer"].capitalize() + ".",
                }
            )
            + "\n"
            for r in rows
        )
    )
    annotations = {d["question_id"]: d for d in read_json(bench / "textvqa" / "TextVQA_0.5.1_val.json")["data"]}
    tv_rows = [
        json.loads(line) for line in (bench / "textvqa" / "llava_textvqa_val_v051_ocr.jsonl").read_text().splitlines()
    ]
    tv = tmp / "textvqa.jsonl"
    tv.write_text(
        "".join(
            json.dumps(
                {
                    "question_id": r["question_id"],
                    "prompt": r["text"],
                    "text": Counter(annotations[r["textvqa_question_id"]]["answers"]).most_common(1)[0][0],
                }
            )
            + "\n"
            for r in tv_rows
        )
    )
    return gqa, tv


def test_files_work_with_the_real_scorers(bench, tmp_path):
    gqa, tv = _perfect_answers(bench, tmp_path)
    data = bench / "gqa" / "data"
    result = score_gqa(
        str(gqa),
        str(data / "testdev_balanced_questions.json"),
        str(data / "testdev_balanced_choices.json"),
        str(data / "testdev_balanced_sceneGraphs.json"),
    )
    assert result["accuracy"] == 100.0 and result["validity"] == 100.0 and result["distribution"] == 0.0
    assert set(result["per_structural_type"]) == {"verify", "query", "choose", "logical", "compare"}
    assert score_textvqa(str(tv), str(bench / "textvqa" / "TextVQA_0.5.1_val.json"))["accuracy"] > 95.0
    rows = [json.loads(line) for line in (bench / "gqa" / "llava_gqa_testdev_balanced.jsonl").read_text().splitlines()]
    assert all(
        (data / "images" / r["image"]).is_file()
        and r["text"].endswith("\nAnswer the question using a single word or phrase.")
        for r in rows
    )
    items = read_json(bench / "textvqa" / "TextVQA_0.5.1_val.json")["data"]
    assert all(len(d["answers"]) == 10 for d in items)
    assert len({(d["image_id"], d["question"].lower()) for d in items}) == len(items)
    levels = {round(min(1, Counter(d["answers"])[a] / 3), 1) for d in items for a in d["answers"]}
    assert {0.3, 0.7, 1.0} <= levels or len(levels) >= 3


def test_training_splits_load_with_the_real_dataset(bench, make_model):
    _, processor = make_model()
    captions = LlavaDataset(
        str(bench / "train" / "captions.json"), processor, "plain", str(bench / "train" / "images")
    )
    instructions = LlavaDataset(
        str(bench / "train" / "instructions.json"), processor, "v1", str(bench / "train" / "images")
    )
    assert len(captions) == SMALL.captions and captions.num_skipped == 0
    assert any(length < 0 for length in instructions.modality_lengths)  # text-only samples
    records = read_json(bench / "train" / "instructions.json")
    assert any(len(r["conversations"]) == 4 for r in records)  # multi-turn samples
    assert instructions[0]["labels"].ne(-100).any()


def test_question_only_baseline_scores_at_chance(bench, tmp_path):
    write_blind_answers(
        str(bench / "train" / "instructions.json"),
        str(bench / "gqa" / "llava_gqa_testdev_balanced.jsonl"),
        str(tmp_path / "b.jsonl"),
    )
    questions = read_json(bench / "gqa" / "data" / "testdev_balanced_questions.json")
    chance = sum(1 / len(ANSWERS[q["stratum"]["family"]]) for q in questions.values()) / len(questions) * 100
    blind = score_gqa(str(tmp_path / "b.jsonl"), str(bench / "gqa" / "data" / "testdev_balanced_questions.json"))[
        "accuracy"
    ]
    assert abs(blind - chance) < 5.0, (blind, chance)
    answers = Counter(
        q["answer"] for q in questions.values() if q["stratum"]["family"] in ("exist", "verify_color", "relation")
    )
    assert abs(answers["yes"] - answers["no"]) < 0.15 * (answers["yes"] + answers["no"])


def _digest(root: Path) -> str:
    h = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        h.update(path.relative_to(root).as_posix().encode())
        h.update(path.read_bytes())
    return h.hexdigest()


def test_deterministic_per_seed(tmp_path):
    sizes = SyntheticSizes(gqa_test=20, textvqa_test=10, gqa_train=20, textvqa_train=10, captions=10, text_only=2)
    a, b, c = (generate(str(tmp_path / n), sizes, seed=s) for n, s in (("a", 1), ("b", 1), ("c", 2)))
    assert _digest(a) == _digest(b) != _digest(c)
