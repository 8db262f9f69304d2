"""Configuration of SEC-MLLM: vision tower + projector (token compressor) + connector + causal LM.

``SecMllmConfig`` holds architecture only, never training flags. Sub-configs: ``vision_config`` (a
transformers CLIP / SigLIP vision config, or ``vision.OpenClipVisionConfig`` for open_clip towers) and
``text_config`` (any causal LM config). The number of image tokens K is derived from the vision grid and
the projector (:attr:`SecMllmConfig.num_image_tokens`); it is never stored.
"""

from __future__ import annotations

from typing import Any

import torch
from transformers import AutoConfig, PreTrainedConfig
from transformers.configuration_utils import SubConfigSpec

from .projectors import build_projector
from .vision import OpenClipVisionConfig, vision_num_patches


class SecMllmConfig(PreTrainedConfig):
    """Architecture of a SEC-MLLM.

    Args:
        vision_config: vision tower config (``clip_vision_model``, ``siglip_vision_model`` or
            ``sec_mllm_open_clip_vision``).
        text_config: the language model's config (any ``AutoModelForCausalLM`` type).
        projector_type: registry name of the token compressor (``sec``, ``identity``, ``avgpool``, ...).
        projector_config: that projector's options as a plain dict (e.g. ``{"num_tokens": 144}``).
        connector_type: ``mlp2x_gelu`` (LLaVA-1.5) or ``linear``.
        image_token_id: id of the placeholder token the processor repeats K times per image.
        vision_feature_layer: hidden-state index of the vision tower (-2 = penultimate, as LLaVA).
        vision_feature_select_strategy: ``default`` drops the CLS token, ``full`` keeps it.
    """

    model_type = "sec_mllm"
    attribute_map = {"image_token_index": "image_token_id"}
    sub_configs_defaults = {
        "vision_config": SubConfigSpec(config_class=AutoConfig, model_type="clip_vision_model"),
        "text_config": SubConfigSpec(config_class=AutoConfig, model_type="llama"),
    }

    vision_config: dict | PreTrainedConfig | None = None
    text_config: dict | PreTrainedConfig | None = None
    projector_type: str = "sec"
    projector_config: dict | None = None
    connector_type: str = "mlp2x_gelu"
    image_token_id: int = 32000
    vision_feature_layer: int = -2
    vision_feature_select_strategy: str = "default"
    tie_word_embeddings: bool = False

    def __post_init__(self, **kwargs: Any) -> None:
        if (
            isinstance(self.vision_config, dict)
            and self.vision_config.get("model_type") == OpenClipVisionConfig.model_type
        ):
            self.vision_config = OpenClipVisionConfig(**self.vision_config)
        if self.projector_config is None:
            self.projector_config = {}
        super().__post_init__(**kwargs)

    @property
    def num_vision_patches(self) -> int:
        """N: tokens the vision tower hands to the projector."""
        return vision_num_patches(self.vision_config, self.vision_feature_select_strategy)

    @property
    def num_image_tokens(self) -> int:
        """K: tokens each image contributes to the language model (derived, never stored)."""
        with torch.device("meta"):
            projector = build_projector(self.projector_type, self.projector_config, self.vision_config.hidden_size)
        return projector.num_output_tokens(self.num_vision_patches)


__all__ = ["SecMllmConfig", "OpenClipVisionConfig", "vision_num_patches"]
