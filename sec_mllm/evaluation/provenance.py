"""Provenance of an answers file, so that a rerun resumes only answers of the same model and settings.

Before the first answer is written, the command line records which model and settings produce the answers
in a sidecar, ``<answers>.meta.json`` (written atomically; the answers file itself stays plain LLaVA-format
JSONL for the scorers and LLaVA's own scripts). A rerun into the same answers file (merged file or any
``.shard*`` file) resumes only when the record matches: the resolved model path, the model fingerprint and
the generation settings (conversation template, max new tokens, dtype, and what the entry module adds, e.g.
TextVQA's OCR switch). Otherwise it refuses, naming both sides; ``--overwrite`` starts fresh. Answers with
no record (written by another tool) are refused the same way. Batch size and worker count are not part of
the record: they do not change greedy answers' content in principle, and changing them is how one recovers
from running out of memory.

The fingerprint is cheap by design (no hashing of gigabytes): SHA-256 over the folder's small files whole
(config, generation config, processor and tokenizer files, remote code, weight indexes) and, for each
weight file (``*.safetensors``, ``*.bin``, ``*.pt``), its name, size and ``SAMPLES`` chunks of
``SAMPLE_BYTES`` read at evenly spaced offsets (about 4 MiB per file whatever its size; a safetensors
header, with every tensor's name, dtype and shape, is in the first chunk). Two trainings of one
architecture differ in the sampled bytes; a change confined to a few small tensors between the samples
could go unseen, which is why the path is compared too. A hub id is fingerprinted by its resolved commit.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from ..files import read_json, write_json_atomic

SAMPLES = 64
SAMPLE_BYTES = 64 * 1024
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth")
SMALL_FILE_SUFFIXES = (".json", ".txt", ".model", ".py", ".jinja", ".tiktoken")
META_VERSION = 1


def meta_path(answers_file: str | Path) -> Path:
    answers_file = Path(answers_file)
    return answers_file.with_name(f"{answers_file.name}.meta.json")


def answer_files(answers_file: str | Path) -> list[Path]:
    """The merged answers file and every shard file of it that exists."""
    answers_file = Path(answers_file)
    found = [answers_file] if answers_file.exists() else []
    return found + sorted(answers_file.parent.glob(f"{answers_file.name}.shard*"))


def _sampled_digest(path: Path, digest: Any) -> None:
    size = path.stat().st_size
    digest.update(f"{path.name}:{size}\n".encode())
    with path.open("rb") as f:
        if size <= SAMPLES * SAMPLE_BYTES:
            digest.update(f.read())
            return
        for i in range(SAMPLES):  # the first chunk starts the file (a safetensors header), the last one ends it
            f.seek((size - SAMPLE_BYTES) * i // (SAMPLES - 1))
            digest.update(f.read(SAMPLE_BYTES))


def folder_fingerprint(folder: Path) -> str:
    """SHA-256 of a checkpoint folder's small files and sampled weight files (see the module docstring)."""
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.iterdir() if p.is_file()):
        if path.name.endswith(WEIGHT_SUFFIXES):
            _sampled_digest(path, digest)
        elif path.name.endswith(SMALL_FILE_SUFFIXES):
            digest.update(f"{path.name}\n".encode())
            digest.update(path.read_bytes())
    return "sha256:" + digest.hexdigest()


def model_fingerprint(model_path: str) -> tuple[str, str]:
    """``(resolved path or hub id, fingerprint)`` of a local checkpoint folder or a hub id (its commit)."""
    folder = Path(model_path)
    if folder.is_dir():
        return str(folder.resolve()), folder_fingerprint(folder)
    from transformers.utils import cached_file

    config = Path(cached_file(model_path, "config.json"))  # <cache>/snapshots/<commit>/config.json
    return model_path, f"commit:{config.parent.name}"


def answers_meta(model_path: str, settings: dict[str, Any]) -> dict[str, Any]:
    path, fingerprint = model_fingerprint(model_path)
    return {"version": META_VERSION, "model_path": path, "model_fingerprint": fingerprint, "settings": settings}


def meta_differences(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """Human-readable ``field: recorded -> now`` lines for every field that differs."""
    lines = []
    for key in ("model_path", "model_fingerprint"):
        if old.get(key) != new.get(key):
            lines.append(f"{key}: {old.get(key)!r} (recorded) vs {new.get(key)!r} (now)")
    old_settings, new_settings = old.get("settings", {}), new.get("settings", {})
    for key in sorted(set(old_settings) | set(new_settings)):
        if old_settings.get(key) != new_settings.get(key):
            lines.append(f"{key}: {old_settings.get(key)!r} (recorded) vs {new_settings.get(key)!r} (now)")
    return lines


def check_resumable(answers_file: str | Path, meta: dict[str, Any]) -> None:
    """Raise SystemExit when existing answers (merged or shards) were not produced with ``meta``."""
    existing = answer_files(answers_file)
    if not existing:
        return
    sidecar = meta_path(answers_file)
    hint = "pass --overwrite to start fresh, or choose another --answers-file"
    names = ", ".join(str(p) for p in existing)
    if not sidecar.exists():
        raise SystemExit(
            f"{names}: answers exist but {sidecar} (the record of the model and settings that wrote them) does "
            f"not, so they cannot be resumed safely; {hint}"
        )
    recorded = read_json(sidecar)
    differences = meta_differences(recorded, meta)
    if differences:
        raise SystemExit(
            f"{names}: written by another model or with other settings than this run:\n  "
            + "\n  ".join(differences)
            + f"\n{hint}"
        )


def start_answers_file(answers_file: str | Path, meta: dict[str, Any], overwrite: bool) -> None:
    """Rank 0, after every rank passed ``check_resumable`` (or with ``overwrite``): remove old answers, shards
    and scores when overwriting, then record ``meta``."""
    answers_file = Path(answers_file)
    if overwrite:
        for path in answer_files(answers_file):
            path.unlink()
        answers_file.with_name(f"{answers_file.name}.scores.json").unlink(missing_ok=True)
    write_json_atomic(meta_path(answers_file), meta)
