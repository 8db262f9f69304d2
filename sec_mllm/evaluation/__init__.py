"""Evaluation: pure metric functions (GQA, TextVQA), scoring of answer files, the batched / sharded /
resumable inference runner, and the entry modules ``run_gqa`` and ``run_textvqa``."""

from .gqa import gqa_metrics, gqa_postprocess, score_gqa
from .runner import InferenceSettings, generate_answers, load_questions
from .textvqa import normalize_answer, score_textvqa, vqa_accuracy

__all__ = [
    "InferenceSettings",
    "generate_answers",
    "gqa_metrics",
    "gqa_postprocess",
    "load_questions",
    "normalize_answer",
    "score_gqa",
    "score_textvqa",
    "vqa_accuracy",
]
