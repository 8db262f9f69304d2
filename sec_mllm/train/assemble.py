"""Training flags -> model, in one place: the projector's config from ``--projector_type``,
``--num_visual_tokens``, the ``--sec_*`` options and ``--projector_config``, and the SEC-MLLM that
:class:`~sec_mllm.train.arguments.ModelArguments` describe (used by the training driver and by the LoRA
merge, which rebuilds the base model from a run's saved arguments).

``--model_name_or_path`` is either a causal LM (LLaVA's meaning: the model is composed from it, the
``--vision_tower`` and a fresh projector + connector) or a saved SEC-MLLM folder, for instance a LLaVA-1.5
converted by ``scripts/convert_llava.py``. A SEC-MLLM folder is loaded whole (tower, projector, connector,
language model, its tokenizer and image processor); projector flags, when given, replace its projector
(options not given are kept from the checkpoint when the type stays; weights whose shapes still fit are
kept, the rest start fresh). Flags that would contradict the checkpoint (another tower, connector or
feature layer) are refused rather than ignored. Projector-type flags default to ``None`` for that reason:
"not given" must be told apart from "given the default".
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

import torch
from transformers import AutoConfig, AutoImageProcessor

from ..builder import build_model
from ..configuration_sec_mllm import SecMllmConfig
from ..files import parse_json_object
from ..modeling_sec_mllm import SecMllmForConditionalGeneration
from .arguments import ModelArguments

logger = logging.getLogger(__name__)

DEFAULT_PROJECTOR = "sec"
DEFAULT_CONNECTOR = "linear"  # LLaVA's default --mm_projector_type
DEFAULT_SELECT_LAYER = -2
DEFAULT_SELECT_FEATURE = "patch"


def checkpoint_model_type(path: str) -> str | None:
    """``model_type`` of the config at ``path`` (hub id or folder), or None when it has no readable config."""
    try:
        return AutoConfig.from_pretrained(path).model_type
    except (OSError, ValueError):
        return None


def is_sec_mllm_checkpoint(model_args: ModelArguments) -> bool:
    return checkpoint_model_type(model_args.model_name_or_path) == SecMllmConfig.model_type


def projector_flags_given(model_args: ModelArguments) -> bool:
    """Whether a flag describes the projector: --projector_type, --num_visual_tokens, --projector_config, --sec_*."""
    names = ["projector_type", "num_visual_tokens", "projector_config"]
    names += [f.name for f in dataclasses.fields(model_args) if f.name.startswith("sec_")]
    return any(getattr(model_args, name) is not None for name in names)


def projector_config(model_args: ModelArguments, projector_type: str | None = None) -> dict[str, Any]:
    """The projector's config dict from --projector_config, --num_visual_tokens and the --sec_* options."""
    projector_type = projector_type or model_args.projector_type or DEFAULT_PROJECTOR
    try:
        config = (
            parse_json_object(model_args.projector_config, "--projector_config") if model_args.projector_config else {}
        )
    except ValueError as err:
        raise SystemExit(str(err)) from err
    if model_args.num_visual_tokens is not None:
        if projector_type == "identity":
            raise SystemExit(
                f"--num_visual_tokens {model_args.num_visual_tokens} has no effect with --projector_type identity, "
                "which keeps every patch token; drop the flag or choose a compressing projector"
            )
        config["num_tokens"] = model_args.num_visual_tokens
    sec = {
        "grouping": model_args.sec_grouping,
        "reduction": model_args.sec_reduction,
        "order": model_args.sec_order,
        "heads": model_args.sec_heads,
        "key_projection": model_args.sec_key_projection,
        "position_embedding": model_args.sec_position_embedding,
        "key_rope": model_args.sec_key_rope,
        "spatial_moments": model_args.sec_spatial_moments,
        "regions": model_args.sec_regions,
    }
    sec = {k: v for k, v in sec.items() if v is not None}
    if sec and projector_type != "sec":
        raise SystemExit(f"--sec_* options only apply to --projector_type sec, not {projector_type}")
    return {**config, **sec}


def vision_select_strategy(model_args: ModelArguments) -> str:
    """LLaVA's ``--mm_vision_select_feature`` (``patch`` / ``cls_patch``) as the config's strategy."""
    return "default" if (model_args.mm_vision_select_feature or DEFAULT_SELECT_FEATURE) == "patch" else "full"


def check_model_args(model_args: ModelArguments) -> None:
    """Refuse flags that cannot describe a model with ``--model_name_or_path`` (before anything is loaded)."""
    model_type = checkpoint_model_type(model_args.model_name_or_path)
    if model_type == "llava":
        raise SystemExit(
            f"--model_name_or_path {model_args.model_name_or_path} is a LLaVA checkpoint; convert it first "
            "(python scripts/convert_llava.py --llava ... --out ckpt --projector-type sec --projector-config "
            "'{\"num_tokens\": 144}') and pass --model_name_or_path ckpt"
        )
    if model_type != SecMllmConfig.model_type:
        if not model_args.vision_tower:
            raise SystemExit("--vision_tower is required (unless --model_name_or_path is a sec_mllm checkpoint)")
        return
    config = SecMllmConfig.from_pretrained(model_args.model_name_or_path)
    where = f"--model_name_or_path {model_args.model_name_or_path} is a sec_mllm checkpoint"
    conflicts = []
    if model_args.vision_tower or model_args.vision_tower_pretrained:
        conflicts.append("--vision_tower / --vision_tower_pretrained: it holds its vision tower; drop the flag")
    if model_args.mm_projector_type not in (None, config.connector_type):
        conflicts.append(
            f"--mm_projector_type {model_args.mm_projector_type}: its connector is {config.connector_type}"
        )
    if model_args.mm_vision_select_layer not in (None, config.vision_feature_layer):
        conflicts.append(
            f"--mm_vision_select_layer {model_args.mm_vision_select_layer}: "
            f"it reads layer {config.vision_feature_layer}"
        )
    if model_args.mm_vision_select_feature is not None and vision_select_strategy(model_args) != (
        config.vision_feature_select_strategy
    ):
        conflicts.append(
            f"--mm_vision_select_feature {model_args.mm_vision_select_feature}: its strategy is "
            f"{config.vision_feature_select_strategy}"
        )
    if conflicts:
        raise SystemExit(f"{where}; these flags contradict it:\n  " + "\n  ".join(conflicts))


def model_from_checkpoint(
    model_args: ModelArguments, dtype: torch.dtype | None = None
) -> SecMllmForConditionalGeneration:
    """A saved SEC-MLLM, its projector replaced when projector flags are given (see the module docstring)."""
    path = model_args.model_name_or_path
    config = SecMllmConfig.from_pretrained(path)
    if projector_flags_given(model_args):
        new_type = model_args.projector_type or config.projector_type
        kept = dict(config.projector_config) if new_type == config.projector_type else {}
        new_config = {**kept, **projector_config(model_args, new_type)}
        if (new_type, new_config) != (config.projector_type, config.projector_config):
            logger.info(
                "replacing the checkpoint's projector %s %s by %s %s",
                config.projector_type,
                config.projector_config,
                new_type,
                new_config,
            )
        config.projector_type, config.projector_config = new_type, new_config
    model, info = SecMllmForConditionalGeneration.from_pretrained(
        path, config=config, dtype=dtype, output_loading_info=True
    )
    outside = [k for key in ("missing_keys", "unexpected_keys", "mismatched_keys") for k in info.get(key, ()) if k]
    outside = [k if isinstance(k, str) else k[0] for k in outside]
    fresh = sorted(k for k in outside if k.startswith("projector."))
    if fresh:
        logger.warning("projector tensors not in %s start fresh: %s", path, fresh)
    others = sorted(k for k in outside if not k.startswith("projector."))
    if others:
        raise ValueError(f"{path}: weights outside the projector do not fit this model: {others}")
    model.vision_tower.requires_grad_(not model_args.unfreeze_mm_vision_tower)
    return model


def model_from_args(
    model_args: ModelArguments, tokenizer: Any, dtype: torch.dtype | None = None
) -> SecMllmForConditionalGeneration:
    """The SEC-MLLM that the model arguments describe: a saved SEC-MLLM loaded whole, or pretrained LM and
    tower with a fresh projector + connector."""
    check_model_args(model_args)
    if is_sec_mllm_checkpoint(model_args):
        return model_from_checkpoint(model_args, dtype)
    return build_model(
        model_args.vision_tower,
        model_args.model_name_or_path,
        model_args.projector_type or DEFAULT_PROJECTOR,
        projector_config(model_args),
        model_args.mm_projector_type or DEFAULT_CONNECTOR,
        tokenizer=tokenizer,
        vision_feature_layer=(
            DEFAULT_SELECT_LAYER if model_args.mm_vision_select_layer is None else model_args.mm_vision_select_layer
        ),
        vision_feature_select_strategy=vision_select_strategy(model_args),
        vision_tower_pretrained=model_args.vision_tower_pretrained,
        dtype=dtype,
    )


def image_processor_from_args(model_args: ModelArguments) -> Any:
    """A SEC-MLLM checkpoint's own image processor (e.g. LLaVA's), or None for the tower's default."""
    return (
        AutoImageProcessor.from_pretrained(model_args.model_name_or_path)
        if is_sec_mllm_checkpoint(model_args)
        else None
    )
