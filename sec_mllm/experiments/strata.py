"""Accuracy per stratum (question family, target size, target position) for benchmarks whose questions
carry a ``stratum`` dict, as the synthetic Shapes-GQA and Rendered-TextVQA do."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from ..evaluation.gqa import gqa_postprocess
from ..evaluation.textvqa import find_annotation, index_annotations, vqa_accuracy
from ..files import iter_jsonl, read_json

STRATUM_KEYS = ("family", "size", "position")


def _summarise(scored: list[tuple[dict[str, str], float]]) -> dict[str, dict[str, dict[str, float]]]:
    table: dict[str, defaultdict[str, list[float]]] = {k: defaultdict(list) for k in STRATUM_KEYS}
    for stratum, score in scored:
        for key in STRATUM_KEYS:
            table[key][str(stratum.get(key, "none"))].append(score)
    return {
        k: {v: {"accuracy": 100.0 * sum(s) / len(s), "count": len(s)} for v, s in sorted(vals.items())}
        for k, vals in table.items()
    }


def gqa_by_stratum(answers_file: str, questions_file: str) -> dict[str, Any]:
    questions = read_json(questions_file)
    scored = []
    for _, rec in iter_jsonl(answers_file):
        q = questions[str(rec["question_id"])]
        scored.append((q.get("stratum", {}), float(gqa_postprocess(rec["text"]) == q["answer"])))
    return _summarise(scored)


def textvqa_by_stratum(answers_file: str, annotation_file: str) -> dict[str, Any]:
    by_id, by_key = index_annotations(read_json(annotation_file)["data"])
    scored = []
    for lineno, rec in iter_jsonl(answers_file):
        item = find_annotation(rec, by_id, by_key, f"{answers_file}:{lineno}")
        scored.append((item.get("stratum", {}), vqa_accuracy(rec["text"], item["answers"])))
    return _summarise(scored)
