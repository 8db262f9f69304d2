"""GQA scoring as LLaVA-1.5 reports it: LLaVA's post-processing, then the official eval.py metrics.

Post-processing (LLaVA's convert_gqa_for_eval): ``prediction = text.rstrip('.').lower()``; nothing else.
Metrics (GQA eval.py), over questions with ``isBalanced``: accuracy, binary (structural type not
``query``) and open (``query``); accuracy per structural type, semantic type, steps number (program
operations except ``exist`` / ``query: name`` / ``choose name``) and words number; distribution (chi
square of predicted vs gold answer counts per ``groups.global``, weighted by group size, / 100, lower is
better). When their inputs exist: validity / plausibility (a choices file), consistency (every entailed
question present with a prediction), grounding (scene graphs and attention maps). Metrics whose inputs
are absent are reported as ``None`` ("n/a"), never as 0.

Differences from eval.py, on purpose: a missing input gives ``None`` instead of a crash or a 0.00%
(consistency is ``None`` too when no scored question has entailed questions, where eval.py prints 0.00%);
grounding keeps eval.py's arithmetic (attention[i][j] is the cell at x = i, y = j; the whole-scene
region is never added, as in eval.py) so the numbers agree.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from ..files import iter_jsonl, read_json, require_keys

STEP_EXCLUDED = ("exist", "query: name", "choose name")


def gqa_postprocess(text: str) -> str:
    """LLaVA's convert_gqa_for_eval: strip trailing periods, lower case."""
    return text.rstrip(".").lower()


def steps_number(question: dict[str, Any]) -> int:
    return sum(
        1
        for op in question["semantic"]
        if not any(word in f"{op['operation']}: {op['argument']}" for word in STEP_EXCLUDED)
    )


def _pct(values: list[float]) -> float:
    return 100.0 * sum(values) / len(values) if values else 0.0


def _belongs(prediction: str, group: list[str], question: dict[str, Any]) -> bool:
    if "Common" in question["types"]["detailed"]:
        group = ["color", "material", "shape"]
    return prediction in group


def _grounding(question: dict[str, Any], scene: dict[str, Any], attention: list[list[float]], map_size: int) -> float:
    def region(obj_id: str) -> tuple[float, float, float, float]:
        o = scene["objects"][obj_id]
        w, h = scene["width"], scene["height"]
        return o["x"] / w, o["y"] / h, (o["x"] + o["w"]) / w, (o["y"] + o["h"]) / h

    def overlap(a0: float, a1: float, b0: float, b1: float) -> float:
        lo, hi = max(a0, b0), min(a1, b1)
        return hi - lo if hi > lo else 0.0

    regions = [region(p) for p in question["annotations"]["question"].values()]
    regions += [region(p) for p in question["annotations"]["fullAnswer"].values()]
    edge = 1.0 / map_size
    total = 0.0
    for x0, y0, x1, y1 in regions:
        for i in range(map_size):
            for j in range(map_size):
                cell = (edge * i, edge * j, edge * (i + 1), edge * (j + 1))
                inter = overlap(cell[0], cell[2], x0, x1) * overlap(cell[1], cell[3], y0, y1)
                total += attention[i][j] * inter / (edge * edge)
    return total


def gqa_metrics(
    questions: dict[str, dict[str, Any]],
    predictions: dict[str, str],
    choices: dict[str, dict[str, list[str]]] | None = None,
    scenes: dict[str, dict[str, Any]] | None = None,
    attentions: dict[str, list[list[float]]] | None = None,
    map_size: int = 7,
    consistency: bool | None = None,
    allow_missing: bool = False,
) -> dict[str, Any]:
    """All eval.py metrics for already post-processed ``predictions`` ``{question_id: answer}``.

    ``consistency=None`` computes it when every entailed question of a balanced question is in
    ``questions`` and has a prediction; ``True`` requires that (a clear error otherwise).
    """
    balanced = {qid: q for qid, q in questions.items() if q["isBalanced"]}
    missing = [qid for qid in balanced if qid not in predictions]
    if missing and not allow_missing:
        raise ValueError(
            f"{len(missing)} balanced question(s) have no prediction, e.g. {missing[:5]}; "
            "pass allow_missing=True (--allow-missing) to score what exists"
        )
    scored = {qid: q for qid, q in balanced.items() if qid in predictions}
    entailed_needed = {e for qid, q in scored.items() for e in q.get("entailed", []) if e != qid}
    consistency_ok = all(e in questions and e in predictions for e in entailed_needed)
    if consistency and not consistency_ok:
        absent = sorted(e for e in entailed_needed if e not in questions or e not in predictions)
        raise ValueError(
            f"consistency needs every entailed question with a prediction; {len(absent)} missing, e.g. {absent[:5]}"
        )
    has_entailed = bool(entailed_needed)
    do_consistency = (consistency_ok and has_entailed) if consistency is None else consistency

    acc: list[float] = []
    by_type: dict[str, list[float]] = {"binary": [], "open": []}
    per: dict[str, defaultdict[Any, list[float]]] = {
        k: defaultdict(list) for k in ("structural", "semantic", "steps", "words")
    }
    valid, plausible, consist, grounding = [], [], [], []
    gold_dist: defaultdict[str, defaultdict[str, int]] = defaultdict(lambda: defaultdict(int))
    pred_dist: defaultdict[str, defaultdict[str, int]] = defaultdict(lambda: defaultdict(int))
    for qid, q in scored.items():
        pred, gold = predictions[qid], q["answer"]
        correct = pred == gold
        score = float(correct)
        acc.append(score)
        by_type["open" if q["types"]["structural"] == "query" else "binary"].append(score)
        per["structural"][q["types"]["structural"]].append(score)
        per["semantic"][q["types"]["semantic"]].append(score)
        per["steps"][steps_number(q)].append(score)
        per["words"][len(q["question"].split())].append(score)
        if choices is not None:
            valid.append(float(_belongs(pred, choices[qid]["valid"], q)))
            plausible.append(float(_belongs(pred, choices[qid]["plausible"], q)))
        if scenes is not None and attentions is not None:
            grounding.append(_grounding(q, scenes[q["imageId"]], attentions[qid], map_size))
        group = q["groups"]["global"]
        if group is not None:
            gold_dist[group][gold] += 1
            pred_dist[group][pred] += 1
        entailed = [e for e in q.get("entailed", []) if e != qid]
        if do_consistency and correct and entailed:
            consist.append(sum(float(predictions[e] == questions[e]["answer"]) for e in entailed) / len(entailed))

    weighted, total = 0.0, 0
    for group, gold_counts in gold_dist.items():
        chi = sum((pred_dist[group].get(a, 0) - e) ** 2 / e for a, e in gold_counts.items())
        size = sum(gold_counts.values())
        weighted, total = weighted + chi * size, total + size

    def breakdown(values: dict[Any, list[float]]) -> dict[str, dict[str, float | int]]:
        return {str(k): {"accuracy": _pct(v), "count": len(v)} for k, v in sorted(values.items())}

    return {
        "accuracy": _pct(acc),
        "binary": _pct(by_type["binary"]),
        "open": _pct(by_type["open"]),
        "consistency": _pct(consist) if do_consistency else None,
        "validity": _pct(valid) if choices is not None else None,
        "plausibility": _pct(plausible) if choices is not None else None,
        "grounding": _pct(grounding) if grounding else None,
        "distribution": weighted / total / 100 if total else None,
        "per_structural_type": breakdown(per["structural"]),
        "per_semantic_type": breakdown(per["semantic"]),
        "per_steps": breakdown(per["steps"]),
        "per_words": breakdown(per["words"]),
        "num_questions": len(scored),
        "num_missing": len(missing),
    }


def load_gqa_predictions(answers_file: str, questions: dict[str, Any] | None = None) -> dict[str, str]:
    """LLaVA-format answer JSONL -> ``{question_id: post-processed prediction}``.

    Answers for question ids absent from ``questions`` raise, naming the line; so do duplicates.
    """
    predictions: dict[str, str] = {}
    for lineno, rec in iter_jsonl(answers_file):
        where = f"{answers_file}:{lineno}"
        require_keys(rec, ("question_id", "text"), where)
        qid = str(rec["question_id"])
        if questions is not None and qid not in questions:
            raise ValueError(f"{where}: answer for unknown question id {qid!r}")
        if qid in predictions:
            raise ValueError(f"{where}: second answer for question id {qid!r}")
        predictions[qid] = gqa_postprocess(rec["text"])
    return predictions


def score_gqa(
    answers_file: str,
    questions_file: str | dict[str, dict[str, Any]],
    choices_file: str | None = None,
    scenes_file: str | None = None,
    attentions_file: str | None = None,
    map_size: int = 7,
    allow_missing: bool = False,
) -> dict[str, Any]:
    """Score a LLaVA-format answers JSONL against GQA questions: a questions JSON keyed by id (e.g.
    testdev_balanced_questions.json), or that mapping itself (e.g. from hf_sets.GqaDataset.questions)."""
    if isinstance(questions_file, dict):
        questions = questions_file
    else:
        questions = read_json(questions_file)
        if not isinstance(questions, dict):
            raise ValueError(f"{questions_file}: expected a JSON object keyed by question id")
    predictions = load_gqa_predictions(answers_file, questions)
    choices = read_json(choices_file) if choices_file else None
    scenes = read_json(scenes_file) if scenes_file else None
    attentions = None
    if attentions_file:
        attentions = {str(a["questionId"]): a["attention"] for a in read_json(attentions_file)}
    return gqa_metrics(questions, predictions, choices, scenes, attentions, map_size, allow_missing=allow_missing)
