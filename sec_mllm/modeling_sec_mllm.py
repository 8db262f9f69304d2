"""SEC-MLLM: a LLaVA-style model whose vision tokens are compressed by a projector before the LM.

    pixel_values [B, 3, H, W] -> vision_tower -> [B, N, D_v] -> projector -> [B, K, D_v]
                              -> connector -> [B, K, D_lm] -> scattered into the K image-token
                                 positions of the text embeddings -> language_model -> logits

Module names are the state-dict API: ``vision_tower.``, ``projector.``, ``connector.``,
``language_model.`` (a full ``AutoModelForCausalLM``, so its own ``lm_head`` and weight tying apply).
The model composes and never branches on projector names. Placeholder ids are looked up as id 0 before
the features replace them, so the image token may lie outside the LM's vocabulary.

Non-standard parts:

* No host synchronisation inside a compiled forward. The image-token count is checked against the images
  (clear errors naming both counts) only in eager mode and before any device work of the forward is queued,
  so the one ``int()`` it costs waits for nothing but the inputs; under ``torch.compile`` the check is skipped
  (``torch.compiler.is_compiling()``) and the forward is one graph with static shapes for a fixed K.
  :meth:`SecMllmForConditionalGeneration.compile_for_inference` is the documented way to use it.
* A batch without images still runs the image path on one zero image, whose features enter the embeddings
  through an exact zero (the sum of an empty slice of them), when training with gradients or under ZeRO-3
  (and not in a cached decoding step): every rank then calls the vision tower, projector and connector in
  every step, so ZeRO-3's per-module parameter gathers (a collective) and the gradient reductions match
  across ranks even when one rank's micro-batch is text-only (LLaVA feeds a zero image for the same
  reason). Inference outside ZeRO-3 skips it.
* The projector runs in its own dtype (its parameters', or the tower's when it has none); the connector in
  its own.
* The cache keyword: transformers >= 5.24 calls it ``cache`` and deprecates ``past_key_values``; the
  forward accepts either and hands the language model the one its ``forward`` declares, so neither
  spelling warns.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any

import torch
from transformers import AutoModelForCausalLM, GenerationMixin, PreTrainedModel
from transformers.integrations.deepspeed import is_deepspeed_zero3_enabled
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
    _skip_keys_device_placement = ["past_key_values", "cache"]
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
        # the language model's name for the KV cache: "cache" (transformers >= 5.24) or "past_key_values"
        lm_arguments = inspect.signature(self.language_model.forward).parameters
        self.lm_cache_argument = "cache" if "cache" in lm_arguments else "past_key_values"
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
        """``pixel_values`` ``[B, 3, H, W]`` -> features ``[B, K, D_lm]`` and the projector's ``aux``.

        The projector runs in its own dtype (its parameters' dtype, or the tower's output dtype when it has no
        parameters), the connector in its own.
        """
        feats = self.vision_tower(
            pixel_values, self.config.vision_feature_layer, self.config.vision_feature_select_strategy
        )  # [B, N, D_v]
        proj_param = next(iter(self.projector.parameters()), None)
        projected = self.projector(feats if proj_param is None else feats.to(proj_param.dtype))  # tokens [B, K, D_v]
        conn_dtype = next(iter(self.connector.parameters())).dtype
        return ImageEncoding(features=self.connector(projected.tokens.to(conn_dtype)), aux=projected.aux or {})

    def get_image_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """``pixel_values`` ``[B, 3, H, W]`` -> ``[B, K, D_lm]``."""
        return self.encode_images(pixel_values).features

    def merge_image_features(
        self, input_ids: torch.Tensor, inputs_embeds: torch.Tensor, image_features: torch.Tensor
    ) -> torch.Tensor:
        """Scatter ``image_features`` ``[B_img, K, D]`` into the image-token positions of ``inputs_embeds``.

        A count mismatch raises in eager mode; a compiled caller skips the check (it would synchronise).
        """
        if not torch.compiler.is_compiling():
            self._check_image_tokens(input_ids, image_features.shape[0], image_features.shape[1], None)
        mask = input_ids == self.config.image_token_id  # [B, T]
        return inputs_embeds.masked_scatter(mask.unsqueeze(-1), image_features.to(inputs_embeds.dtype))

    def _check_image_tokens(
        self, input_ids: torch.Tensor, num_images: int | None, tokens_per_image: int, cache: Any
    ) -> None:
        """Raise a ValueError naming both counts when the image tokens do not match the images.

        ``num_images`` is None when no ``pixel_values`` were given: image tokens are then an error, except in a
        decoding step over a cache (the prompt's images were consumed by the prefill). One host sync (``int``).
        """
        n_tokens = int((input_ids == self.config.image_token_id).sum())
        if num_images is None:
            cached = cache.get_seq_length() if cache is not None else 0
            if n_tokens and cached == 0:
                raise ValueError(f"input_ids hold {n_tokens} image tokens but no pixel_values were given")
            return
        n_features = num_images * tokens_per_image
        if n_tokens != n_features:
            raise ValueError(
                f"image tokens and image features do not match: the text holds {n_tokens} image tokens "
                f"(id {self.config.image_token_id}) but {num_images} image(s) x "
                f"{tokens_per_image} tokens give {n_features} features"
            )

    def _runs_placeholder_image(self, cache: Any) -> bool:
        """Whether a batch without images must still run the image path (see the module docstring).

        True when training with gradients or under DeepSpeed ZeRO-3, except in a decoding step over a cache
        (every rank decodes in lock step there, none with images). Never inside a compiled forward.
        """
        if torch.compiler.is_compiling():
            return False
        if not (self.training and torch.is_grad_enabled()) and not is_deepspeed_zero3_enabled():
            return False
        return cache is None or cache.get_seq_length() == 0

    def _placeholder_image_term(self, like: torch.Tensor) -> torch.Tensor:
        """A zero image through tower, projector and connector, reduced to an exact 0 that keeps the graph.

        The sum over an empty slice is 0 in every dtype (no ``0 * inf`` risk), and its backward sends zero
        gradients to the projector and connector, so gradient hooks and reductions fire on every rank.
        """
        size = self.vision_tower.image_size
        pixels = torch.zeros(1, 3, size, size, device=like.device, dtype=like.dtype)  # [1, 3, H, W]
        features = self.get_image_features(pixels)  # [1, K, D_lm]
        return features[:, :0].sum().to(like.dtype)

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        pixel_values: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        cache: Any = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.LongTensor | None = None,
        use_cache: bool | None = None,
        logits_to_keep: int | torch.Tensor = 0,
        past_key_values: Any = None,
        **kwargs,
    ) -> CausalLMOutputWithPast:
        """The LM's forward with the image features scattered into the image-token positions.

        ``cache`` and ``past_key_values`` are two spellings of the KV cache (transformers >= 5.24 and
        earlier); give at most one. Returns the language model's output.
        """
        if cache is not None and past_key_values is not None and cache is not past_key_values:
            raise ValueError("pass the KV cache as `cache` or as `past_key_values`, not both")
        cache = cache if cache is not None else past_key_values
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("pass exactly one of input_ids and inputs_embeds")
        if input_ids is None and pixel_values is not None:
            raise ValueError("pixel_values need input_ids to locate the image tokens; got inputs_embeds only")
        if input_ids is not None:
            if not torch.compiler.is_compiling():  # before any device work: the count's sync waits for nothing
                num_images = None if pixel_values is None else pixel_values.shape[0]
                self._check_image_tokens(input_ids, num_images, self.num_image_tokens, cache)
            image_mask = input_ids == self.config.image_token_id  # [B, T]
            inputs_embeds = self.get_input_embeddings()(input_ids.masked_fill(image_mask, 0))  # [B, T, D]
            if pixel_values is not None:
                features = self.get_image_features(pixel_values)  # [B_img, K, D]
                inputs_embeds = inputs_embeds.masked_scatter(
                    image_mask.unsqueeze(-1), features.to(inputs_embeds.dtype)
                )  # [B, T, D]
            elif self._runs_placeholder_image(cache):
                inputs_embeds = inputs_embeds + self._placeholder_image_term(inputs_embeds)
        return self.language_model(
            inputs_embeds=inputs_embeds,
            attention_mask=attention_mask,
            position_ids=position_ids,
            labels=labels,
            use_cache=use_cache,
            logits_to_keep=logits_to_keep,
            **{self.lm_cache_argument: cache},
            **kwargs,
        )

    def compile_for_inference(
        self,
        mode: str | None = None,
        *,
        dynamic: bool | None = None,
        fullgraph: bool = False,
        backend: str = "inductor",
    ) -> "SecMllmForConditionalGeneration":
        """Compile the whole forward (vision tower, projector, connector, LM) for inference; returns ``self``.

        One ``torch.compile`` region (torch's ``nn.Module.compile``): the forward has no host synchronisation
        and, for a fixed image size and K, static shapes, so it traces as a single graph (``fullgraph=True``
        holds). ``mode`` is torch.compile's: ``None`` (inductor's default: fused kernels, any shapes; the
        choice for ``generate`` over prompts of varying length, e.g. evaluation), ``"reduce-overhead"``
        (CUDA graphs on top: the lowest latency for a fixed prompt length at batch 1, as in the speed suite;
        CUDA only, and every new shape records a new graph, so a growing cache is a poor fit), or
        ``"max-autotune"`` / ``"max-autotune-no-cudagraphs"``. ``dynamic``: torch.compile's (``None`` marks a
        dimension dynamic once it changes); ``backend``: torch.compile's (``"eager"`` only traces, which checks
        that the forward is one graph without compiling kernels). Outputs match eager within the dtype's rounding.

        Also: the model goes to eval mode; the vision tower runs once eagerly on a zero image (transformers
        installs its hidden-state hooks on the first call, which dynamo cannot trace); and ``generate``'s own
        auto-compilation is switched off (``generation_config.disable_compile``) because the forward it would
        wrap is compiled already. Not for training or DeepSpeed ZeRO-3.
        """
        self.eval()
        size = self.vision_tower.image_size
        param = next(iter(self.vision_tower.parameters()))
        with torch.no_grad():
            self.vision_tower(
                torch.zeros(1, 3, size, size, device=param.device, dtype=param.dtype),
                self.config.vision_feature_layer,
                self.config.vision_feature_select_strategy,
            )
        if self.generation_config is not None:
            self.generation_config.disable_compile = True
        self.compile(mode=mode, dynamic=dynamic, fullgraph=fullgraph, backend=backend)
        return self


__all__ = ["SecMllmForConditionalGeneration", "SecMllmPreTrainedModel", "ImageEncoding"]
