"""TextVQA val: answer with a SEC-MLLM checkpoint and score with the m4c / EvalAI metric.

    python -m sec_mllm.evaluation.run_textvqa --model-path ckpt --question-file llava_textvqa_val_v051_ocr.jsonl \
        --image-folder textvqa/train_images --annotation-file TextVQA_0.5.1_val.json \
        --answers-file answers/textvqa.jsonl [--no-ocr]
    torchrun --nproc_per_node 8 -m sec_mllm.evaluation.run_textvqa ...     # sharded; a rerun resumes

    python -m sec_mllm.evaluation.run_textvqa --model-path ckpt --dataset textvqa/data --split validation \
        --answers-file answers/textvqa.jsonl [--no-ocr]                 # lmms-lab/textvqa, downloaded

(``python eval/textvqa.py ...`` in a checkout.) With ``--dataset`` (hf_sets.py) the questions, images,
OCR tokens and, without ``--annotation-file``, the answers to score against come from the lmms-lab/textvqa
parquet files; the prompts have LLaVA's question files' shape. With OCR tokens in the prompt (the default, as
LLaVA-1.5's 58.2) the model may copy text it never read; --no-ocr drops the "Reference OCR token:" line
(lmms-eval's default setting).
"""

from __future__ import annotations

import argparse

from .cli import add_common_args, run_and_score
from .hf_sets import TextVqaDataset
from .textvqa import drop_ocr_line, score_textvqa


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_args(parser)
    parser.add_argument("--annotation-file", help="TextVQA_0.5.1_val.json (default with --dataset: its rows)")
    parser.add_argument("--no-ocr", action="store_true", help="drop OCR tokens from the prompts")
    args = parser.parse_args(argv)
    if not args.annotation_file and not args.dataset:
        parser.error("give --annotation-file (TextVQA_0.5.1_val.json) or --dataset (lmms-lab/textvqa)")
    hf = TextVqaDataset(args.dataset, args.split, ocr=not args.no_ocr) if args.dataset else None
    run_and_score(
        args,
        lambda: score_textvqa(args.answers_file, args.annotation_file or hf.annotations(), args.allow_missing),
        transform=drop_ocr_line if args.no_ocr else None,
        settings_record={"ocr": not args.no_ocr},
        hf_questions=lambda: (hf.rows(), hf.image_source()),
    )


if __name__ == "__main__":
    main()
