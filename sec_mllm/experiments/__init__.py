"""Experiments: users of the library, never imported by it.

The synthetic benchmark (``synthetic``, ``synthetic_shapes``, ``synthetic_text``), the tiny tower's
pretraining (``tower_pretraining``), the blind question-only baseline (``blind``), per-stratum accuracy
(``strata``), the one-command quick start (``quickstart``) and the two suites that compare compressors:
``accuracy`` (every projector at the same token budget, over seeds) and ``speed`` (projector time,
prefill, KV cache, training throughput). Each suite is an entry module (``python -m
sec_mllm.experiments.accuracy ...``).
"""
