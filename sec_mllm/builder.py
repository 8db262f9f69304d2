"""Assemble SEC-MLLM models and processors from existing checkpoints (hub id or local path) or configs.

``build_model`` composes a vision tower, a projector, a connector and a causal LM into a
:class:`SecMllmForConditionalGeneration`; pretrained parts keep their weights, the projector and the
connector start from random initialisation; a checkpoint that lacks any weight its part needs is refused
(``loading.from_pretrained_strict``). ``build_processor`` pairs the LM's tokenizer (with an
``<image>`` special token) and an image processor for the tower with the model's K. Starting from an
existing LLaVA checkpoint is ``convert_llava``'s job.
"""

from __future__ import annotations

from typing import Any

import torch
from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForCausalLM,
    AutoTokenizer,
    CLIPImageProcessor,
    PreTrainedConfig,
    PreTrainedTokenizerBase,
)

from .configuration_sec_mllm import SecMllmConfig
from .loading import from_pretrained_strict
from .modeling_sec_mllm import SecMllmForConditionalGeneration
from .processing_sec_mllm import SecMllmProcessor
from .vision import OpenClipVisionConfig, image_normalization

OPEN_CLIP_PREFIX = "open_clip:"
ConfigLike = str | PreTrainedConfig | dict


def ensure_image_token(tokenizer: PreTrainedTokenizerBase, image_token: str = "<image>") -> int:
    """Add ``image_token`` as a special token when the tokenizer lacks it; return its id."""
    if image_token not in tokenizer.get_vocab():
        tokenizer.add_special_tokens({"additional_special_tokens": [image_token]}, replace_extra_special_tokens=False)
    return tokenizer.convert_tokens_to_ids(image_token)


def _as_config(spec: PreTrainedConfig | dict, what: str) -> PreTrainedConfig:
    if isinstance(spec, PreTrainedConfig):
        return spec
    if isinstance(spec, dict) and "model_type" in spec:
        values = dict(spec)
        model_type = values.pop("model_type")
        if model_type == OpenClipVisionConfig.model_type:
            return OpenClipVisionConfig(**values)
        return AutoConfig.for_model(model_type, **values)
    raise ValueError(f"{what} must be a hub id, a local path, a config, or a dict with 'model_type'; got {spec!r}")


def resolve_vision_tower(
    vision_tower: ConfigLike, pretrained_file: str | None = None, dtype: torch.dtype | None = None
) -> tuple[PreTrainedConfig, torch.nn.Module | None]:
    """Vision config and, for checkpoints, the loaded encoder (the tower's ``.model``)."""
    if isinstance(vision_tower, str) and vision_tower.startswith(OPEN_CLIP_PREFIX):
        import open_clip

        name = vision_tower[len(OPEN_CLIP_PREFIX) :]
        model_cfg = open_clip.get_model_config(name)
        if model_cfg is None:
            raise ValueError(f"unknown open_clip model '{name}'; see open_clip.list_models()")
        config = OpenClipVisionConfig(model_name=name, model_cfg=model_cfg)
        if pretrained_file is None:
            return config, None
        clip = open_clip.create_model(name, pretrained=pretrained_file)
        preprocess = open_clip.get_model_preprocess_cfg(clip)
        config.image_mean, config.image_std = list(preprocess["mean"]), list(preprocess["std"])
        return config, clip.visual.to(dtype) if dtype is not None else clip.visual
    if pretrained_file is not None:
        raise ValueError("vision_tower_pretrained is only for open_clip:<model> towers")
    if isinstance(vision_tower, str):
        config = AutoConfig.from_pretrained(vision_tower)
        config = getattr(config, "vision_config", config)  # a full CLIP / SigLIP checkpoint
        return config, from_pretrained_strict(AutoModel, vision_tower, "vision tower", config=config, dtype=dtype)
    return _as_config(vision_tower, "vision_tower"), None


def build_model(
    vision_tower: ConfigLike,
    language_model: ConfigLike,
    projector_type: str = "sec",
    projector_config: dict[str, Any] | None = None,
    connector_type: str = "mlp2x_gelu",
    *,
    tokenizer: str | PreTrainedTokenizerBase | None = None,
    image_token: str = "<image>",
    vision_feature_layer: int = -2,
    vision_feature_select_strategy: str = "default",
    vision_tower_pretrained: str | None = None,
    dtype: torch.dtype | None = None,
    freeze_vision_tower: bool = True,
) -> SecMllmForConditionalGeneration:
    """Compose a SEC-MLLM.

    ``vision_tower``: a CLIP / SigLIP hub id or path, ``"open_clip:<model>"`` (weights from
    ``vision_tower_pretrained``), or a vision config (random init). ``language_model``: a causal LM hub
    id or path, or a config (random init). ``tokenizer`` (object or path; defaults to the LM's path)
    provides the image token id; ``<image>`` is added to it when missing and the LM's embeddings grow.
    """
    vision_config, vision_model = resolve_vision_tower(vision_tower, vision_tower_pretrained, dtype)
    lm = None
    if isinstance(language_model, str):
        lm = from_pretrained_strict(AutoModelForCausalLM, language_model, "language model", dtype=dtype)
        text_config = lm.config
        tokenizer = language_model if tokenizer is None else tokenizer
    else:
        text_config = _as_config(language_model, "language_model")
    if tokenizer is None:
        raise ValueError("build_model needs a tokenizer (object or path) when language_model is a config")
    if isinstance(tokenizer, str):
        tokenizer = AutoTokenizer.from_pretrained(tokenizer)
    image_token_id = ensure_image_token(tokenizer, image_token)

    config = SecMllmConfig(
        vision_config=vision_config,
        text_config=text_config,
        projector_type=projector_type,
        projector_config=dict(projector_config or {}),
        connector_type=connector_type,
        image_token_id=image_token_id,
        vision_feature_layer=vision_feature_layer,
        vision_feature_select_strategy=vision_feature_select_strategy,
    )
    model = SecMllmForConditionalGeneration(config, language_model=lm, vision_model=vision_model)
    if len(tokenizer) > model.get_input_embeddings().num_embeddings:
        model.resize_token_embeddings(len(tokenizer))
    if dtype is not None:  # loaded parts came in this dtype; under ZeRO-3 they must not be cast again
        fresh = [model.projector, model.connector]
        fresh += [model.vision_tower] if vision_model is None else []
        fresh += [model.language_model] if lm is None else []
        for part in fresh:
            part.to(dtype)
    model.vision_tower.requires_grad_(not freeze_vision_tower)
    return model


def default_image_processor(vision_config: PreTrainedConfig) -> CLIPImageProcessor:
    """CLIP-style preprocessing (resize the short side, centre crop) at the tower's size and statistics."""
    mean, std = image_normalization(vision_config)
    side = vision_config.image_size
    return CLIPImageProcessor(
        size={"shortest_edge": side},
        crop_size={"height": side, "width": side},
        image_mean=list(mean),
        image_std=list(std),
    )


def build_processor(
    config: SecMllmConfig,
    tokenizer: str | PreTrainedTokenizerBase,
    image_processor: Any = None,
    image_token: str = "<image>",
    image_aspect_ratio: str = "pad",
) -> SecMllmProcessor:
    """Processor whose K equals ``config.num_image_tokens``."""
    if isinstance(tokenizer, str):
        tokenizer = AutoTokenizer.from_pretrained(tokenizer)
    token_id = ensure_image_token(tokenizer, image_token)
    if token_id != config.image_token_id:
        raise ValueError(
            f"the tokenizer gives {image_token!r} id {token_id} but the model config expects "
            f"image_token_id={config.image_token_id}"
        )
    return SecMllmProcessor(
        image_processor=image_processor or default_image_processor(config.vision_config),
        tokenizer=tokenizer,
        num_image_tokens=config.num_image_tokens,
        image_token=image_token,
        image_aspect_ratio=image_aspect_ratio,
    )
