"""Merge a LoRA stage-2 output (finetune with --lora_enable True) into a full model.

    python -m sec_mllm.train.merge_lora --model-path checkpoints/stage2-lora --save-model-path checkpoints/stage2

The result loads with AutoModel.from_pretrained like any stage-2 output.
"""

from __future__ import annotations

import argparse

from ..files import save_pretrained_atomic
from .lora import merge_lora_checkpoint


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-path", required=True, help="LoRA output folder of the finetune run")
    parser.add_argument("--save-model-path", required=True, help="where to write the merged model")
    args = parser.parse_args(argv)
    model, processor = merge_lora_checkpoint(args.model_path)
    save_pretrained_atomic(args.save_model_path, model, processor)
    print(f"merged model written to {args.save_model_path}")


if __name__ == "__main__":
    main()
