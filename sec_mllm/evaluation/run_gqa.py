"""GQA testdev-balanced: answer with a SEC-MLLM checkpoint and score as LLaVA-1.5 reports it.

    python -m sec_mllm.evaluation.run_gqa --model-path ckpt --question-file llava_gqa_testdev_balanced.jsonl \
        --image-folder gqa/images --questions testdev_balanced_questions.json --answers-file answers/gqa.jsonl
    torchrun --nproc_per_node 8 -m sec_mllm.evaluation.run_gqa ...     # sharded; a rerun resumes
    python -m sec_mllm.evaluation.run_gqa --answers-file answers/gqa.jsonl \
        --questions testdev_balanced_questions.json                    # score an existing answers file
    python -m sec_mllm.evaluation.run_gqa --model-path ckpt --answers-file answers/gqa.jsonl \
        --dataset GQA/testdev_balanced_instructions                    # lmms-lab/GQA, downloaded

(``python eval/gqa.py ...`` in a checkout.) Prints the metrics as JSON and writes them to
<answers-file>.scores.json. With ``--dataset`` (hf_sets.py) the questions, the images
(``--dataset-images``, default: the ``..._images`` config beside the instructions) and, without
``--questions``, the scoring data come from the lmms-lab/GQA parquet files.
"""

from __future__ import annotations

import argparse

from .cli import add_common_args, run_and_score
from .gqa import score_gqa
from .hf_sets import GqaDataset


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_args(parser)
    parser.add_argument(
        "--questions", help="GQA questions JSON keyed by question id (default with --dataset: its rows)"
    )
    parser.add_argument("--dataset-images", help="with --dataset: the lmms-lab/GQA images config (id, image)")
    parser.add_argument("--choices", default=None, help="optional {tier}_choices.json (validity, plausibility)")
    parser.add_argument("--scenes", default=None, help="optional {tier}_sceneGraphs.json (grounding)")
    parser.add_argument("--attentions", default=None, help="optional attentions JSON (grounding)")
    parser.add_argument("--map-size", type=int, default=7)
    args = parser.parse_args(argv)
    if not args.questions and not args.dataset:
        parser.error("give --questions (GQA questions JSON) or --dataset (lmms-lab/GQA instructions)")
    hf = GqaDataset(args.dataset, args.dataset_images, args.split) if args.dataset else None
    run_and_score(
        args,
        lambda: score_gqa(
            args.answers_file,
            args.questions or hf.questions(),
            args.choices,
            args.scenes,
            args.attentions,
            args.map_size,
            args.allow_missing,
        ),
        hf_questions=lambda: (hf.rows(), hf.image_source()),
    )


if __name__ == "__main__":
    main()
