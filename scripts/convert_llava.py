"""Convert a transformers-format LLaVA checkpoint into a SEC-MLLM checkpoint.

    python scripts/convert_llava.py --llava llava-hf/llava-1.5-7b-hf --out checkpoints/llava-sec144 \
        --projector-type sec --projector-config '{"num_tokens": 144}'

The vision tower, connector (multi_modal_projector), language model, tokenizer, image processor and
image token id come from the LLaVA folder; the projector is new (random unless it has no weights, as
``identity``). With ``--projector-type identity`` the result reproduces LLaVA's logits.
"""

from __future__ import annotations

import argparse
import json

import torch

from sec_mllm import llava_to_sec_mllm


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--llava", required=True, help="hub id or local path of a LlavaForConditionalGeneration folder")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--projector-type", default="identity")
    parser.add_argument("--projector-config", default="{}", help="JSON dict of projector options")
    parser.add_argument("--dtype", default=None, choices=["float32", "bfloat16", "float16"])
    parser.add_argument("--image-aspect-ratio", default="pad", choices=["pad", "original"])
    args = parser.parse_args()
    dtype = getattr(torch, args.dtype) if args.dtype else None
    model, processor = llava_to_sec_mllm(
        args.llava, args.projector_type, json.loads(args.projector_config), dtype, args.image_aspect_ratio
    )
    model.save_pretrained(args.out)
    processor.save_pretrained(args.out)
    print(f"wrote {args.out}: projector={args.projector_type}, {model.num_image_tokens} image tokens")


if __name__ == "__main__":
    main()
