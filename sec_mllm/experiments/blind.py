"""A blind (question-only) baseline: answer every question with the answer its exact wording most often had
in the training data (falling back to the most frequent answer overall). It never sees an image, so on a
balanced benchmark it scores at chance; anything above chance means answers leak from the questions."""

from __future__ import annotations

import json
import uuid
from collections import Counter, defaultdict
from pathlib import Path

from ..data.llava_dataset import load_records
from ..evaluation.runner import STANDARD_KEYS, load_questions


def question_text(prompt: str) -> str:
    """The question line of a prompt (image placeholder, OCR line and instruction removed)."""
    lines = [line for line in prompt.replace("<image>", "").split("\n") if line.strip()]
    return lines[0].strip().lower()


def fit_blind(training_file: str) -> tuple[dict[str, str], str]:
    by_question: defaultdict[str, Counter] = defaultdict(Counter)
    overall: Counter = Counter()
    for record in load_records(training_file):
        turns = record.get("conversations", [])
        for ask, reply in zip(turns[::2], turns[1::2]):
            by_question[question_text(ask["value"])][reply["value"]] += 1
            overall[reply["value"]] += 1
    return {q: c.most_common(1)[0][0] for q, c in by_question.items()}, overall.most_common(1)[0][0]


def write_blind_answers(training_file: str, question_file: str, answers_file: str) -> None:
    table, fallback = fit_blind(training_file)
    rows = []
    for q in load_questions(question_file):
        extra = {k: v for k, v in q.items() if k not in STANDARD_KEYS}
        rows.append(
            {
                "question_id": q["question_id"],
                "prompt": q["text"],
                "text": table.get(question_text(q["text"]), fallback),
                "answer_id": uuid.uuid4().hex,
                "model_id": "blind",
                "metadata": {},
                **extra,
            }
        )
    Path(answers_file).parent.mkdir(parents=True, exist_ok=True)
    Path(answers_file).write_text("".join(json.dumps(r) + "\n" for r in rows))
