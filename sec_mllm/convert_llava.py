"""LLaVA checkpoint -> SEC-MLLM: start from a transformers-format LLaVA-1.5 (``LlavaForConditionalGeneration``).

    python -m sec_mllm.convert_llava --llava llava-hf/llava-1.5-7b-hf --out checkpoints/llava-sec144 \
        --projector-type sec --projector-config '{"num_tokens": 144}'

The vision tower, connector (``multi_modal_projector``), language model, tokenizer, image processor and
image token id come from the LLaVA folder; the projector is new. With ``projector_type="identity"`` the
result reproduces LLaVA's logits. Training-free compression needs a projector without weights:
``projector_type="sec", projector_config={"num_tokens": 144, "preset": "training_free"}`` (at K = N it
reproduces LLaVA's logits too). A projector with learned parameters starts random: a warning (and the
command line) says so, and stage 1 (``scripts/pretrain.py --model_name_or_path <converted folder>``) must
tune it before its numbers mean anything.

Kept apart from the model, as transformers keeps its ``convert_*.py`` scripts apart: nothing in the
model imports this module, so a saved checkpoint never carries the conversion code.
"""

from __future__ import annotations

import argparse
import warnings
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


class UntrainedProjectorWarning(UserWarning):
    """The converted model's projector has learned parameters that nobody trained yet."""


def check_llava_checkpoint(path: str) -> LlavaConfig:
    """The LLaVA config of ``path``; a ValueError naming what is missing when ``path`` is not a LLaVA-1.5 folder."""
    try:
        config = AutoConfig.from_pretrained(path)
    except (OSError, ValueError) as err:
        raise ValueError(
            f"{path} is not a LLaVA checkpoint: no readable config.json with model_type 'llava' ({err})"
        ) from err
    if isinstance(config, LlavaConfig):
        return config
    model_type = getattr(config, "model_type", None)
    hint = (
        "; it is already a sec_mllm checkpoint: load it with AutoModel.from_pretrained"
        if model_type == "sec_mllm"
        else ""
    )
    raise ValueError(
        f"{path} is not a LLaVA-1.5 checkpoint (LlavaForConditionalGeneration): its config.json has model_type "
        f"{model_type!r}, not 'llava', so it lacks the vision_config, text_config and multi_modal_projector "
        f"(connector) that the conversion reads{hint}"
    )


def untrained_projector_note(model: SecMllmForConditionalGeneration) -> str | None:
    """A warning text when the projector has learned parameters (random after a conversion), else None."""
    count = sum(p.numel() for p in model.projector.parameters())
    if not count:
        return None
    return (
        f"projector '{model.config.projector_type}' has {count:,} learned parameters that are UNTRAINED (random): "
        "tune them with stage 1 (scripts/pretrain.py --model_name_or_path <this folder> --tune_mm_mlp_adapter True) "
        "before its numbers mean anything, or use a projector without weights "
        '(e.g. sec with {"preset": "training_free"})'
    )


def llava_to_sec_mllm(
    path: str,
    projector_type: str = "identity",
    projector_config: dict[str, Any] | None = None,
    dtype: torch.dtype | None = None,
    image_aspect_ratio: str = "pad",
) -> tuple[SecMllmForConditionalGeneration, SecMllmProcessor]:
    """Load a transformers-format LLaVA folder as a SEC-MLLM with the given projector, plus its processor."""
    check_llava_checkpoint(path)  # names what a folder that is not a LLaVA lacks
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
    note = untrained_projector_note(model)
    if note:
        warnings.warn(note, UntrainedProjectorWarning, stacklevel=2)
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
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UntrainedProjectorWarning)  # the note is printed below instead
        model, processor = llava_to_sec_mllm(
            args.llava, args.projector_type, projector_config, dtype, args.image_aspect_ratio
        )
    save_pretrained_atomic(args.out, model, processor)
    print(f"wrote {args.out}: projector={args.projector_type}, {model.num_image_tokens} image tokens")
    note = untrained_projector_note(model)
    print(f"WARNING: {note}" if note else "the projector has no learned parameters: usable as it is (training-free)")


if __name__ == "__main__":
    main()
