"""Shared command-line plumbing of the entry modules run_gqa and run_textvqa: arguments, model loading, distributed
setup, inference (when ``--model-path`` is given), scoring on rank 0, and the scores written atomically
beside the answers file as ``<answers>.scores.json``.

Before the model is loaded, existing answers are checked against ``<answers>.meta.json`` (``provenance``):
answers of another model or other settings are refused, never resumed; ``--overwrite`` starts fresh. The
model is loaded strictly (a missing weight is an error, not a random value). The questions come from LLaVA's
question JSONL + image folder, or from a local Hugging Face dataset in the lmms-lab layout (``--dataset``,
hf_sets.py)."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any, Callable

import torch
import torch.distributed as dist
from transformers import AutoModel, AutoProcessor

from .. import SecMllmConfig  # noqa: F401  (importing the package registers the Auto classes)
from ..files import write_json_atomic
from ..loading import from_pretrained_strict
from .provenance import answers_meta, check_resumable, start_answers_file
from .runner import PROMPT_TEMPLATES, ImageSource, InferenceSettings, dist_info, generate_answers, load_questions

HfQuestions = Callable[[], tuple[list[dict[str, Any]], ImageSource]]  # () -> (question rows, images)


def add_common_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model-path", default=None, help="checkpoint to run; omit to only score --answers-file")
    parser.add_argument("--question-file", help="LLaVA-format question JSONL")
    parser.add_argument("--image-folder", help="folder the question file's images are relative to")
    parser.add_argument(
        "--dataset",
        help="instead of --question-file / --image-folder: a local Hugging Face dataset in the lmms-lab layout "
        "(a parquet file, a folder of parquet files or a save_to_disk folder; images embedded)",
    )
    parser.add_argument("--split", default=None, help="the split of --dataset, when it holds several")
    parser.add_argument("--answers-file", required=True, help="LLaVA-format answer JSONL (written, or read to score)")
    parser.add_argument("--conv-mode", default="vicuna_v1", choices=sorted(PROMPT_TEMPLATES))
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-new-tokens", type=int, default=128)
    parser.add_argument("--num-workers", type=int, default=2)
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    parser.add_argument("--allow-missing", action="store_true", help="score what exists and report the missing count")
    parser.add_argument(
        "--compile",
        nargs="?",
        const="default",
        default=None,
        choices=["default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs"],
        help="torch.compile the model first (compile_for_inference); the mode defaults to inductor's default, "
        "which suits prompts of varying length",
    )
    parser.add_argument(
        "--overwrite", action="store_true", help="discard existing answers (of any model) and answer everything anew"
    )


def barrier() -> None:
    if dist.is_initialized():
        dist.barrier()


def run_and_score(
    args: argparse.Namespace,
    score: Callable[[], dict[str, Any]],
    transform: Callable[[dict], dict] | None = None,
    settings_record: dict[str, Any] | None = None,
    hf_questions: HfQuestions | None = None,
) -> dict[str, Any] | None:
    """Generate answers when ``--model-path`` is set, then score on rank 0 and print the dict as JSON.

    The questions are ``--question-file``'s rows (through ``transform``) with ``--image-folder``, or, with
    ``--dataset``, what ``hf_questions`` returns. ``settings_record``: settings of the entry module that change
    the answers (e.g. ``{"ocr": False}``), recorded in ``<answers>.meta.json`` with the common ones."""
    if args.dataset and (args.question_file or args.image_folder):
        raise SystemExit("--dataset replaces --question-file and --image-folder; give one or the other")
    rank, world = dist_info()
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    if args.model_path:
        if not args.dataset and (not args.question_file or not args.image_folder):
            raise SystemExit("--model-path needs --question-file and --image-folder, or --dataset")
        if args.dataset:
            rows, images = hf_questions()
        else:
            rows, images = load_questions(args.question_file, transform), args.image_folder
        settings_meta = {
            "conv_mode": args.conv_mode,
            "max_new_tokens": args.max_new_tokens,
            "dtype": args.dtype,
            **(settings_record or {}),
        }
        meta = answers_meta(args.model_path, settings_meta)
        if not args.overwrite:
            check_resumable(args.answers_file, meta)  # every rank reads the same files before rank 0 writes
        device = f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}" if torch.cuda.is_available() else "cpu"
        model = from_pretrained_strict(
            AutoModel, args.model_path, "SEC-MLLM", dtype=getattr(torch, args.dtype), trust_remote_code=True
        ).to(device)
        if args.compile:
            if not hasattr(model, "compile_for_inference"):
                raise SystemExit(f"--compile: the model code saved in {args.model_path} has no compile_for_inference")
            model.compile_for_inference(mode=None if args.compile == "default" else args.compile)
        processor = AutoProcessor.from_pretrained(args.model_path, trust_remote_code=True)
        settings = InferenceSettings(
            batch_size=args.batch_size,
            max_new_tokens=args.max_new_tokens,
            prompt_template=args.conv_mode,
            num_workers=args.num_workers,
            model_id=Path(args.model_path).name,
        )
        barrier()
        if rank == 0:  # only now, with questions and model loaded: a run that fails to start discards nothing
            start_answers_file(args.answers_file, meta, args.overwrite)
        barrier()
        generate_answers(model, processor, rows, images, args.answers_file, settings)
    result = None
    if rank == 0:
        result = score()
        write_json_atomic(Path(f"{args.answers_file}.scores.json"), result)
        print(json.dumps(result, indent=2))
    if world > 1 and dist.is_initialized():
        dist.destroy_process_group()
    return result
