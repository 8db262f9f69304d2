"""Batched, sharded, resumable greedy inference over LLaVA-format question files.

Question rows are ``{"question_id", "image", "text", ...}``; answer rows are LLaVA's
``{"question_id", "prompt", "text", "answer_id", "model_id", "metadata"}`` plus any extra keys of the
question row (e.g. ``textvqa_question_id``). Each process (torchrun / accelerate launch: ``RANK`` and
``WORLD_SIZE``) takes every ``WORLD_SIZE``-th question, appends answers to its own shard file and flushes
after each batch. A rerun skips rows already answered (keyed by question id and prompt, since TextVQA
repeats ids) and drops a torn last line; rank 0 merges the shards in question-file order into the
answers file atomically, then removes them. Whether existing answers may be resumed at all (same model and
settings) is checked by the command line before it loads the model (``provenance.py``).
"""

from __future__ import annotations

import json
import os
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch
import torch.distributed as dist
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from ..files import iter_jsonl, require_keys

PROMPT_TEMPLATES = {
    "vicuna_v1": (
        "A chat between a curious user and an artificial intelligence assistant. The assistant gives helpful, "
        "detailed, and polite answers to the user's questions. USER: {question} ASSISTANT:"
    ),
    "plain": "{question}",
    "chat_template": None,  # the tokenizer's own chat template (Llama 3, Qwen2, ...)
}
STANDARD_KEYS = ("question_id", "image", "text", "category")


@dataclass
class InferenceSettings:
    batch_size: int = 8
    max_new_tokens: int = 128
    prompt_template: str = "vicuna_v1"
    num_workers: int = 0
    model_id: str = "sec_mllm"


def row_key(question_id: Any, text: str) -> tuple[str, str]:
    return str(question_id), text


def load_questions(question_file: str, transform: Callable[[dict], dict] | None = None) -> list[dict[str, Any]]:
    """Question rows (after ``transform``); a repeated (question id, text) key raises naming both lines, before
    anything is generated (TextVQA's files repeat ids across different questions, which is allowed)."""
    rows, seen = [], {}
    for lineno, rec in iter_jsonl(question_file):
        require_keys(rec, ("question_id", "image", "text"), f"{question_file}:{lineno}")
        row = transform(rec) if transform else rec
        key = row_key(row["question_id"], row["text"])
        if key in seen:
            raise ValueError(
                f"{question_file}:{lineno}: duplicate question (question_id {row['question_id']!r} with the same "
                f"text as line {seen[key]}); each (question_id, text) must be unique"
            )
        seen[key] = lineno
        rows.append(row)
    return rows


ImageSource = Callable[[dict[str, Any]], Image.Image]  # question row -> RGB image (e.g. hf_sets.EmbeddedImages)


class QuestionImages(Dataset):
    """Loads each question's image (RGB) from ``images``: a folder (a missing file names the question), or a
    callable taking the question row."""

    def __init__(self, rows: list[dict[str, Any]], images: str | ImageSource) -> None:
        self.rows, self.images = rows, images

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> tuple[dict[str, Any], Image.Image]:
        row = self.rows[i]
        if callable(self.images):
            return row, self.images(row)
        path = Path(self.images) / row["image"]
        try:
            with Image.open(path) as im:
                return row, im.convert("RGB")
        except (OSError, ValueError) as err:
            raise ValueError(f"question {row['question_id']!r}: cannot read image {path}: {err}") from err


def read_done(path: Path) -> set[tuple[str, str]]:
    """Keys of the complete rows in an answers file; a torn final line is cut off the file."""
    if not path.exists():
        return set()
    done, good_bytes = set(), 0
    with path.open("rb") as f:
        for raw in f:
            try:
                rec = json.loads(raw)
            except json.JSONDecodeError:
                break
            if not raw.endswith(b"\n"):
                break
            done.add(row_key(rec["question_id"], rec["prompt"]))
            good_bytes += len(raw)
    if good_bytes != path.stat().st_size:
        with path.open("r+b") as f:
            f.truncate(good_bytes)
    return done


def build_prompt(tokenizer: Any, template: str | None, question: str) -> str:
    """The inference prompt: a format string, or (``None``) the tokenizer's chat template with a generation prompt."""
    if template is not None:
        return template.format(question=question)
    if tokenizer.chat_template is None:
        raise ValueError("--conv-mode chat_template needs a tokenizer with a chat_template")
    return tokenizer.apply_chat_template(
        [{"role": "user", "content": question}], tokenize=False, add_generation_prompt=True
    )


def _collate(batch: list[tuple[dict[str, Any], Image.Image]]) -> tuple[list[dict[str, Any]], list[Image.Image]]:
    return [b[0] for b in batch], [b[1] for b in batch]


def dist_info() -> tuple[int, int]:
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


@torch.no_grad()
def generate_answers(
    model: torch.nn.Module,
    processor: Any,
    rows: list[dict[str, Any]],
    image_folder: str | ImageSource,
    answers_file: str,
    settings: InferenceSettings,
) -> Path:
    """Answer ``rows`` into ``answers_file`` (sharded across ranks, resumable). Returns the merged file.

    ``image_folder``: the folder the rows' ``image`` paths are relative to, or a callable row -> image."""
    rank, world = dist_info()
    final = Path(answers_file)
    final.parent.mkdir(parents=True, exist_ok=True)
    shard = final.with_name(f"{final.name}.shard{rank}of{world}")
    done = read_done(final) | read_done(shard)
    mine = [r for r in rows[rank::world] if row_key(r["question_id"], r["text"]) not in done]
    template = PROMPT_TEMPLATES[settings.prompt_template]
    processor.tokenizer.padding_side = "left"
    model.eval()
    loader = DataLoader(
        QuestionImages(mine, image_folder),
        batch_size=settings.batch_size,
        num_workers=settings.num_workers,
        collate_fn=_collate,
    )
    with (
        shard.open("a", encoding="utf-8") as out,
        tqdm(total=len(mine), desc=f"answers (rank {rank})", disable=rank != 0) as bar,
    ):
        for batch_rows, images in loader:
            prompts = [build_prompt(processor.tokenizer, template, "<image>\n" + r["text"]) for r in batch_rows]
            inputs = processor(images=images, text=prompts, return_tensors="pt").to(model.device)
            ids = model.generate(**inputs, max_new_tokens=settings.max_new_tokens, do_sample=False)
            texts = processor.tokenizer.batch_decode(ids[:, inputs["input_ids"].shape[1] :], skip_special_tokens=True)
            for row, text in zip(batch_rows, texts):
                extra = {k: v for k, v in row.items() if k not in STANDARD_KEYS}
                record = {
                    "question_id": row["question_id"],
                    "prompt": row["text"],
                    "text": text.strip(),
                    "answer_id": uuid.uuid4().hex,
                    "model_id": settings.model_id,
                    "metadata": {},
                    **extra,
                }
                out.write(json.dumps(record) + "\n")
            out.flush()
            os.fsync(out.fileno())
            bar.update(len(batch_rows))
    if world > 1 and dist.is_initialized():
        dist.barrier()
    if rank == 0:
        merge_shards(rows, final, world)
    if world > 1 and dist.is_initialized():
        dist.barrier()
    return final


def merge_shards(rows: list[dict[str, Any]], final: Path, world: int) -> None:
    """Write the answers of every shard (and of an earlier merge) in question order, atomically."""
    sources = [final] + [final.with_name(f"{final.name}.shard{r}of{world}") for r in range(world)]
    answers: dict[tuple[str, str], str] = {}
    for src in sources:
        if src.exists():
            with src.open(encoding="utf-8") as f:
                for line in f:
                    rec = json.loads(line)
                    answers.setdefault(
                        row_key(rec["question_id"], rec["prompt"]), line if line.endswith("\n") else line + "\n"
                    )
    tmp = final.with_name(f".{final.name}.tmp")
    with tmp.open("w", encoding="utf-8") as f:
        for r in rows:
            line = answers.get(row_key(r["question_id"], r["text"]))
            if line is not None:
                f.write(line)
    os.replace(tmp, final)
    for src in sources[1:]:
        src.unlink(missing_ok=True)
