"""Merge a LoRA stage-2 output (scripts/finetune.py --lora_enable True) into a full model.

    python scripts/merge_lora.py --model-path checkpoints/stage2-lora --save-model-path checkpoints/stage2-merged

The result loads with AutoModel.from_pretrained like any stage-2 output.
"""

from __future__ import annotations

import argparse

from sec_mllm.train.lora import merge_lora_checkpoint


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-path", required=True, help="LoRA output folder of scripts/finetune.py")
    parser.add_argument("--save-model-path", required=True, help="where to write the merged model")
    args = parser.parse_args()
    model, processor = merge_lora_checkpoint(args.model_path)
    model.save_pretrained(args.save_model_path)
    processor.save_pretrained(args.save_model_path)
    print(f"merged model written to {args.save_model_path}")


if __name__ == "__main__":
    main()
