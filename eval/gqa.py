"""GQA testdev-balanced: answer with a SEC-MLLM checkpoint and score as LLaVA-1.5 reports it.

    python eval/gqa.py --model-path ckpt --question-file llava_gqa_testdev_balanced.jsonl \
        --image-folder gqa/images --questions testdev_balanced_questions.json --answers-file answers/gqa.jsonl
    torchrun --nproc_per_node 8 eval/gqa.py ...          # sharded; a rerun resumes
    python eval/gqa.py --answers-file answers/gqa.jsonl --questions testdev_balanced_questions.json  # score only

Prints the metrics as JSON and writes them to <answers-file>.scores.json.
"""

from __future__ import annotations

import argparse

from sec_mllm.evaluation.cli import add_common_args, run_and_score
from sec_mllm.evaluation.gqa import score_gqa


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_args(parser)
    parser.add_argument("--questions", required=True, help="GQA questions JSON keyed by question id")
    parser.add_argument("--choices", default=None, help="optional {tier}_choices.json (validity, plausibility)")
    parser.add_argument("--scenes", default=None, help="optional {tier}_sceneGraphs.json (grounding)")
    parser.add_argument("--attentions", default=None, help="optional attentions JSON (grounding)")
    parser.add_argument("--map-size", type=int, default=7)
    args = parser.parse_args()
    run_and_score(
        args,
        lambda: score_gqa(
            args.answers_file, args.questions, args.choices, args.scenes, args.attentions, args.map_size, args.allow_missing
        ),
    )


if __name__ == "__main__":
    main()
