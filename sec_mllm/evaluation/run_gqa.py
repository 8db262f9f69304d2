"""GQA testdev-balanced: answer with a SEC-MLLM checkpoint and score as LLaVA-1.5 reports it.

    python -m sec_mllm.evaluation.run_gqa --model-path ckpt --question-file llava_gqa_testdev_balanced.jsonl \
        --image-folder gqa/images --questions testdev_balanced_questions.json --answers-file answers/gqa.jsonl
    torchrun --nproc_per_node 8 -m sec_mllm.evaluation.run_gqa ...     # sharded; a rerun resumes
    python -m sec_mllm.evaluation.run_gqa --answers-file answers/gqa.jsonl \
        --questions testdev_balanced_questions.json                    # score an existing answers file

(``python eval/gqa.py ...`` in a checkout.) Prints the metrics as JSON and writes them to
<answers-file>.scores.json.
"""

from __future__ import annotations

import argparse

from .cli import add_common_args, run_and_score
from .gqa import score_gqa


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_args(parser)
    parser.add_argument("--questions", required=True, help="GQA questions JSON keyed by question id")
    parser.add_argument("--choices", default=None, help="optional {tier}_choices.json (validity, plausibility)")
    parser.add_argument("--scenes", default=None, help="optional {tier}_sceneGraphs.json (grounding)")
    parser.add_argument("--attentions", default=None, help="optional attentions JSON (grounding)")
    parser.add_argument("--map-size", type=int, default=7)
    args = parser.parse_args(argv)
    run_and_score(
        args,
        lambda: score_gqa(
            args.answers_file,
            args.questions,
            args.choices,
            args.scenes,
            args.attentions,
            args.map_size,
            args.allow_missing,
        ),
    )


if __name__ == "__main__":
    main()
