"""LLaVA checkpoint -> SEC-MLLM: start from a transformers-format LLaVA-1.5 (``LlavaForConditionalGeneration``).

    python -m sec_mllm.convert_llava --llava llava-hf/llava-1.5-7b-hf --out checkpoints/llava-sec144 \
        --projector-type sec --projector-config '{"num_tokens": 144}'

The vision tower, connector (``multi_modal_projector``), language model, tokenizer, image processor and
image token id come from the LLaVA folder; the projector is new (random unless it has no weights, as
``identity``). With ``projector_type="identity"`` the result reproduces LLaVA's logits.

Kept apart from the model, as transformers keeps its ``convert_*.py`` scripts apart: nothing in the
model imports this module, so a saved checkpoint never carries the conversion code.
"""

from __future__ import annotations

import argparse
from typing import Any

import torch
from transformers import AutoConfig, AutoProcessor, LlavaConfig, LlavaForConditionalGeneration

from .configuration_sec_mllm import SecMllmConfig
from .files import parse_json_object, save_pretrained_atomic
from .loading import from_pretrained_strict
from .modeling_sec_mllm import SecMllmForConditionalGeneration
from .processing_sec_mllm import SecMllmProcessor


def llava_state_dict_to_sec_mllm(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename transformers-format LLaVA keys to SEC-MLLM keys (the projector has no LLaVA counterpart)."""
    renames = (
        ("model.vision_tower.", "vision_tower.model."),
        ("model.multi_modal_projector.linear_1.", "connector.0."),
        ("model.multi_modal_projector.linear_2.", "connector.2."),
        ("model.language_model.", "language_model.model."),
        ("lm_head.", "language_model.lm_head."),
    )
    out = {}
    for key, value in state_dict.items():
        for old, new in renames:
            if key.startswith(old):
                out[new + key[len(old) :]] = value
                break
        else:
            raise ValueError(f"unexpected LLaVA weight '{key}'")
    return out


def llava_to_sec_mllm(
    path: str,
    projector_type: str = "identity",
    projector_config: dict[str, Any] | None = None,
    dtype: torch.dtype | None = None,
    image_aspect_ratio: str = "pad",
) -> tuple[SecMllmForConditionalGeneration, SecMllmProcessor]:
    """Load a transformers-format LLaVA folder as a SEC-MLLM with the given projector, plus its processor."""
    found = AutoConfig.from_pretrained(path)
    if not isinstance(found, LlavaConfig):
        raise ValueError(
            f"{path}: not a LLaVA checkpoint (its config.json has model_type {found.model_type!r}, not 'llava')"
        )
    llava = from_pretrained_strict(LlavaForConditionalGeneration, path, "LLaVA", dtype=dtype)
    lcfg = llava.config
    if not isinstance(lcfg.vision_feature_layer, int):
        raise ValueError(f"multi-layer vision features {lcfg.vision_feature_layer} are not supported")
    if lcfg.projector_hidden_act != "gelu":
        raise ValueError(f"LLaVA connector activation {lcfg.projector_hidden_act!r} is not supported (only gelu)")
    config = SecMllmConfig(
        vision_config=lcfg.vision_config.to_dict(),
        text_config=lcfg.text_config.to_dict(),
        projector_type=projector_type,
        projector_config=dict(projector_config or {}),
        connector_type="mlp2x_gelu",
        image_token_id=lcfg.image_token_id,
        vision_feature_layer=lcfg.vision_feature_layer,
        vision_feature_select_strategy=lcfg.vision_feature_select_strategy,
    )
    model = SecMllmForConditionalGeneration(config)
    missing, unexpected = model.load_state_dict(llava_state_dict_to_sec_mllm(llava.state_dict()), strict=False)
    missing = [k for k in missing if not k.startswith("projector.")]
    if missing or unexpected:
        raise ValueError(f"LLaVA weights do not fit: missing {missing}, unexpected {unexpected}")
    if dtype is not None:
        model.to(dtype)
    model.vision_tower.requires_grad_(False)
    llava_processor = AutoProcessor.from_pretrained(path)
    processor = SecMllmProcessor(
        image_processor=llava_processor.image_processor,
        tokenizer=llava_processor.tokenizer,
        num_image_tokens=model.num_image_tokens,
        image_token=llava_processor.image_token,
        image_aspect_ratio=image_aspect_ratio,
        chat_template=llava_processor.chat_template,
    )
    return model, processor


def from_llava_pretrained(
    path: str,
    projector_type: str = "identity",
    projector_config: dict[str, Any] | None = None,
    dtype: torch.dtype | None = None,
) -> SecMllmForConditionalGeneration:
    """The model alone; ``llava_to_sec_mllm`` also returns the processor."""
    return llava_to_sec_mllm(path, projector_type, projector_config, dtype)[0]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--llava", required=True, help="hub id or local path of a LlavaForConditionalGeneration folder"
    )
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--projector-type", default="identity")
    parser.add_argument("--projector-config", default="{}", help="JSON dict of projector options")
    parser.add_argument("--dtype", default=None, choices=["float32", "bfloat16", "float16"])
    parser.add_argument("--image-aspect-ratio", default="pad", choices=["pad", "original"])
    args = parser.parse_args(argv)
    dtype = getattr(torch, args.dtype) if args.dtype else None
    try:
        projector_config = parse_json_object(args.projector_config, "--projector-config")
    except ValueError as err:
        parser.error(str(err))
    model, processor = llava_to_sec_mllm(
        args.llava,
        args.projector_type,
        projector_config,
        dtype,
        args.image_aspect_ratio,
    )
    save_pretrained_atomic(args.out, model, processor)
    print(f"wrote {args.out}: projector={args.projector_type}, {model.num_image_tokens} image tokens")


if __name__ == "__main__":
    main()
