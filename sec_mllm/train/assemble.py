"""Training flags -> model, in one place: the projector's config from ``--projector_type``,
``--num_visual_tokens``, the ``--sec_*`` options and ``--projector_config``, and the SEC-MLLM that
:class:`~sec_mllm.train.arguments.ModelArguments` describe (used by the training driver and by the LoRA
merge, which rebuilds the base model from a run's saved arguments)."""

from __future__ import annotations

import json
from typing import Any

import torch

from ..builder import build_model
from ..modeling_sec_mllm import SecMllmForConditionalGeneration
from .arguments import ModelArguments


def projector_config(model_args: ModelArguments) -> dict[str, Any]:
    """The projector's config dict from --projector_config, --num_visual_tokens and the --sec_* options."""
    config = json.loads(model_args.projector_config) if model_args.projector_config else {}
    if model_args.num_visual_tokens is not None and model_args.projector_type != "identity":
        config["num_tokens"] = model_args.num_visual_tokens
    sec = {
        "grouping": model_args.sec_grouping,
        "reduction": model_args.sec_reduction,
        "order": model_args.sec_order,
        "heads": model_args.sec_heads,
        "key_projection": model_args.sec_key_projection,
        "position_embedding": model_args.sec_position_embedding,
        "key_rope": model_args.sec_key_rope,
    }
    sec = {k: v for k, v in sec.items() if v is not None}
    if sec and model_args.projector_type != "sec":
        raise SystemExit(f"--sec_* options only apply to --projector_type sec, not {model_args.projector_type}")
    return {**config, **sec}


def vision_select_strategy(model_args: ModelArguments) -> str:
    """LLaVA's ``--mm_vision_select_feature`` (``patch`` / ``cls_patch``) as the config's strategy."""
    return "default" if model_args.mm_vision_select_feature == "patch" else "full"


def model_from_args(
    model_args: ModelArguments, tokenizer: Any, dtype: torch.dtype | None = None
) -> SecMllmForConditionalGeneration:
    """The SEC-MLLM that the model arguments describe (pretrained LM and tower, fresh projector + connector)."""
    return build_model(
        model_args.vision_tower,
        model_args.model_name_or_path,
        model_args.projector_type,
        projector_config(model_args),
        model_args.mm_projector_type,
        tokenizer=tokenizer,
        vision_feature_layer=model_args.mm_vision_select_layer,
        vision_feature_select_strategy=vision_select_strategy(model_args),
        vision_tower_pretrained=model_args.vision_tower_pretrained,
        dtype=dtype,
    )
