"""Vision towers: transformers CLIP / SigLIP vision models and open_clip models behind one interface.

A tower takes ``pixel_values`` ``[B, 3, H, W]`` and returns the patch features of one layer
``[B, N, D]``. Layer indices follow transformers' ``hidden_states`` convention for every tower:
``0`` is the patch embedding, ``i`` the output of block ``i``, ``-1`` the last block and ``-2`` the
penultimate block (LLaVA's default). ``select_strategy="default"`` drops the CLS token (CLIP,
open_clip); SigLIP has none. Towers are built from configs here; weights come from the checkpoint.
"""

from __future__ import annotations

import torch
from torch import nn
from transformers import AutoModel, PreTrainedConfig

from .configuration_sec_mllm import OpenClipVisionConfig

OPENAI_CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


class VisionTower(nn.Module):
    """Common interface: ``hidden_size``, ``image_size`` and ``forward(pixel_values, layer, strategy)``."""

    def __init__(self, config: PreTrainedConfig) -> None:
        super().__init__()
        self.image_size: int = config.image_size
        self.hidden_size: int = config.hidden_size

    def check_pixels(self, pixel_values: torch.Tensor) -> None:
        expected = (3, self.image_size, self.image_size)
        if pixel_values.dim() != 4 or tuple(pixel_values.shape[1:]) != expected:
            raise ValueError(
                f"pixel_values must have shape [batch, {expected[0]}, {expected[1]}, {expected[2]}] for this "
                f"vision tower, got {tuple(pixel_values.shape)}"
            )


class HFVisionTower(VisionTower):
    """A transformers vision model (``CLIPVisionModel``, ``SiglipVisionModel``) under ``.model``."""

    def __init__(self, config: PreTrainedConfig, model: nn.Module | None = None) -> None:
        super().__init__(config)
        self.model = model if model is not None else AutoModel.from_config(config)
        self.has_cls = config.model_type == "clip_vision_model"

    def forward(self, pixel_values: torch.Tensor, layer: int, strategy: str) -> torch.Tensor:
        self.check_pixels(pixel_values)
        dtype = next(self.model.parameters()).dtype
        out = self.model(pixel_values=pixel_values.to(dtype), output_hidden_states=True)
        feats = out.hidden_states[layer]  # [B, 1 + N, D] for CLIP, [B, N, D] for SigLIP
        return feats[:, 1:] if self.has_cls and strategy == "default" else feats


class OpenClipVisionTower(VisionTower):
    """The ``visual`` module of an open_clip model under ``.model``."""

    def __init__(self, config: OpenClipVisionConfig, model: nn.Module | None = None) -> None:
        super().__init__(config)
        try:
            import open_clip
        except ImportError as err:  # pragma: no cover - open_clip is a declared dependency
            raise ImportError("open_clip vision towers need `pip install open_clip_torch`") from err
        cfg = open_clip.model.CLIPVisionCfg(**config.vision_cfg)
        self.model = model if model is not None else open_clip.model._build_vision_tower(config.model_cfg.get("embed_dim", cfg.width), cfg)
        self.num_layers = cfg.layers

    def forward(self, pixel_values: torch.Tensor, layer: int, strategy: str) -> torch.Tensor:
        self.check_pixels(pixel_values)
        if layer == 0 or not -self.num_layers <= layer <= self.num_layers:
            raise ValueError(
                f"vision_feature_layer={layer} is not available for this open_clip tower; allowed: "
                f"1..{self.num_layers} or -{self.num_layers}..-1"
            )
        block = layer - 1 if layer > 0 else self.num_layers + layer
        dtype = next(self.model.parameters()).dtype
        out = self.model.forward_intermediates(
            pixel_values.to(dtype), indices=[block], output_fmt="NLC", intermediates_only=True, output_extra_tokens=True
        )
        feats = out["image_intermediates"][0]  # [B, N, D]
        if strategy == "full":
            feats = torch.cat([out["image_intermediates_prefix"][0], feats], dim=1)  # [B, 1 + N, D]
        return feats


def build_vision_tower(config: PreTrainedConfig, model: nn.Module | None = None) -> VisionTower:
    """Tower for a vision config: open_clip for ``sec_mllm_open_clip_vision``, transformers otherwise.
    ``model``: an already loaded encoder to wrap instead of a randomly initialised one."""
    if isinstance(config, OpenClipVisionConfig):
        return OpenClipVisionTower(config, model)
    if config.model_type not in ("clip_vision_model", "siglip_vision_model"):
        raise ValueError(
            f"unsupported vision tower type '{config.model_type}'; allowed: clip_vision_model, "
            f"siglip_vision_model, {OpenClipVisionConfig.model_type}"
        )
    return HFVisionTower(config, model)


def image_normalization(config: PreTrainedConfig) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """(mean, std) the tower expects: OpenAI CLIP's, SigLIP's 0.5, or the open_clip config's own."""
    if isinstance(config, OpenClipVisionConfig):
        return tuple(config.image_mean or OPENAI_CLIP_MEAN), tuple(config.image_std or OPENAI_CLIP_STD)
    if config.model_type == "siglip_vision_model":
        return (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)
    return OPENAI_CLIP_MEAN, OPENAI_CLIP_STD
