"""SEC-MLLM: a LLaVA-style model whose vision tokens are compressed by a projector before the LM.

    pixel_values [B, 3, H, W] -> vision_tower -> [B, N, D_v] -> projector -> [B, K, D_v]
                              -> connector -> [B, K, D_lm] -> scattered into the K image-token
                                 positions of the text embeddings -> language_model -> logits

Module names are the state-dict API: ``vision_tower.``, ``projector.``, ``connector.``,
``language_model.`` (a full ``AutoModelForCausalLM``, so its own ``lm_head`` and weight tying apply).
The model composes and never branches on projector names. Placeholder ids are looked up as id 0 before
the features replace them, so the image token may lie outside the LM's vocabulary.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from transformers import AutoModelForCausalLM, GenerationMixin, PreTrainedModel
from transformers.modeling_outputs import CausalLMOutputWithPast

from .configuration_sec_mllm import SecMllmConfig
from .connectors import build_connector
from .projectors import build_projector
from .vision import build_vision_tower


@dataclass
class ImageEncoding:
    """Output of :meth:`SecMllmForConditionalGeneration.encode_images`."""

    features: torch.Tensor  # [B, K, D_lm]
    aux: dict[str, torch.Tensor]  # the projector's diagnostics (e.g. "assignment" [B, N])


class SecMllmPreTrainedModel(PreTrainedModel):
    config_class = SecMllmConfig
    config: SecMllmConfig
    base_model_prefix = ""
    supports_gradient_checkpointing = True
    _skip_keys_device_placement = ["past_key_values"]
    _supports_flash_attn = True
    _supports_sdpa = True
    _supports_flex_attn = True
    _supports_attention_backend = True


class SecMllmForConditionalGeneration(SecMllmPreTrainedModel, GenerationMixin):
    """Vision tower + projector + connector + causal LM, with ``generate`` and a KV cache."""

    def __init__(
        self,
        config: SecMllmConfig,
        language_model: PreTrainedModel | None = None,
        vision_model: torch.nn.Module | None = None,
    ) -> None:
        """Build from ``config``; pretrained ``language_model`` / ``vision_model`` modules, when given, are
        used as they are (so DeepSpeed ZeRO-3 partitioned checkpoints are never materialised twice)."""
        super().__init__(config)
        if language_model is not None and config.text_config._attn_implementation is None:
            # building the composite config reset the loaded LM's choice; use the one just resolved
            config.text_config._attn_implementation = config._attn_implementation
        for pretrained in (language_model, vision_model):
            for module in pretrained.modules() if pretrained is not None else ():
                module._is_hf_initialized = True  # post_init must keep loaded weights
        self.vision_tower = build_vision_tower(config.vision_config, vision_model)
        self.projector = build_projector(config.projector_type, config.projector_config, self.vision_tower.hidden_size)
        self.num_image_tokens = self.projector.num_output_tokens(config.num_vision_patches)
        self.connector = build_connector(config.connector_type, self.projector.out_dim, config.text_config.hidden_size)
        self.language_model = (
            language_model if language_model is not None else AutoModelForCausalLM.from_config(config.text_config)
        )
        self.post_init()
        if self.generation_config is not None:
            # A generated placeholder would ask for image features that do not exist.
            self.generation_config.suppress_tokens = [config.image_token_id]

    def save_pretrained(self, save_directory: str, *args, **kwargs) -> None:
        """As transformers', plus an ``AutoModelForImageTextToText`` entry in ``auto_map`` for remote code."""
        if self._auto_class is not None:
            module = self.__class__.__module__.split(".")[-1]
            auto_map = dict(getattr(self.config, "auto_map", None) or {})
            auto_map["AutoModelForImageTextToText"] = f"{module}.{self.__class__.__name__}"
            self.config.auto_map = auto_map
        super().save_pretrained(save_directory, *args, **kwargs)

    def get_input_embeddings(self) -> torch.nn.Module:
        return self.language_model.get_input_embeddings()

    def set_input_embeddings(self, value: torch.nn.Module) -> None:
        self.language_model.set_input_embeddings(value)

    def get_output_embeddings(self) -> torch.nn.Module:
        return self.language_model.get_output_embeddings()

    def set_output_embeddings(self, value: torch.nn.Module) -> None:
        self.language_model.set_output_embeddings(value)

    def get_decoder(self) -> torch.nn.Module:
        return self.language_model.get_decoder()

    def encode_images(self, pixel_values: torch.Tensor) -> ImageEncoding:
        """``pixel_values`` ``[B, 3, H, W]`` -> features ``[B, K, D_lm]`` and the projector's ``aux``."""
        feats = self.vision_tower(
            pixel_values, self.config.vision_feature_layer, self.config.vision_feature_select_strategy
        )  # [B, N, D_v]
        proj_dtype = next(iter(self.connector.parameters())).dtype
        projected = self.projector(feats.to(proj_dtype))  # tokens [B, K, D_v]
        return ImageEncoding(features=self.connector(projected.tokens), aux=projected.aux)

    def get_image_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """``pixel_values`` ``[B, 3, H, W]`` -> ``[B, K, D_lm]``."""
        return self.encode_images(pixel_values).features

    def merge_image_features(
        self, input_ids: torch.Tensor, inputs_embeds: torch.Tensor, image_features: torch.Tensor
    ) -> torch.Tensor:
        """Scatter ``image_features`` ``[B_img, K, D]`` into the image-token positions of ``inputs_embeds``."""
        mask = input_ids == self.config.image_token_id  # [B, T]
        n_tokens, n_features = int(mask.sum()), image_features.shape[0] * image_features.shape[1]
        if n_tokens != n_features:
            raise ValueError(
                f"image tokens and image features do not match: the text holds {n_tokens} image tokens "
                f"(id {self.config.image_token_id}) but {image_features.shape[0]} image(s) x "
                f"{image_features.shape[1]} tokens give {n_features} features"
            )
        return inputs_embeds.masked_scatter(mask.unsqueeze(-1), image_features.to(inputs_embeds.dtype))

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        pixel_values: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        past_key_values=None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.LongTensor | None = None,
        use_cache: bool | None = None,
        logits_to_keep: int | torch.Tensor = 0,
        **kwargs,
    ) -> CausalLMOutputWithPast:
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("pass exactly one of input_ids and inputs_embeds")
        if input_ids is not None:
            image_mask = input_ids == self.config.image_token_id  # [B, T]
            inputs_embeds = self.get_input_embeddings()(input_ids.masked_fill(image_mask, 0))  # [B, T, D]
            if pixel_values is not None:
                inputs_embeds = self.merge_image_features(
                    input_ids, inputs_embeds, self.get_image_features(pixel_values)
                )
            elif (past_key_values is None or past_key_values.get_seq_length() == 0) and bool(image_mask.any()):
                raise ValueError(f"input_ids hold {int(image_mask.sum())} image tokens but no pixel_values were given")
        elif pixel_values is not None:
            raise ValueError("pixel_values need input_ids to locate the image tokens; got inputs_embeds only")
        return self.language_model(
            inputs_embeds=inputs_embeds,
            attention_mask=attention_mask,
            position_ids=position_ids,
            past_key_values=past_key_values,
            labels=labels,
            use_cache=use_cache,
            logits_to_keep=logits_to_keep,
            **kwargs,
        )


__all__ = ["SecMllmForConditionalGeneration", "SecMllmPreTrainedModel", "ImageEncoding"]
