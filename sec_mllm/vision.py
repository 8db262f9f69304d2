"""Vision towers: transformers CLIP / SigLIP vision models and open_clip models behind one interface.

A tower takes ``pixel_values`` ``[B, 3, H, W]`` and returns the patch features of one layer
``[B, N, D]``. Layer indices follow transformers' ``hidden_states`` convention for every tower:
``0`` is the patch embedding, ``i`` the output of block ``i``, ``-1`` the last block and ``-2`` the
penultimate block (LLaVA's default). ``select_strategy="default"`` drops the CLS token (CLIP,
open_clip); SigLIP has none. Towers are built from configs here; weights come from the checkpoint.
:class:`OpenClipVisionConfig` describes an open_clip tower (transformers has no config class for one).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from transformers import AutoModel, PreTrainedConfig

OPENAI_CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


VISION_FEATURE_SELECT_STRATEGIES = ("default", "full")


class OpenClipVisionConfig(PreTrainedConfig):
    """An open_clip vision tower: ``model_name`` plus the full open_clip model config it was built from.

    ``model_cfg`` is what ``open_clip.get_model_config(model_name)`` returns (``embed_dim``,
    ``vision_cfg``, ...), stored so that the tower can be rebuilt without open_clip's registry.
    """

    model_type = "sec_mllm_open_clip_vision"

    model_name: str = "ViT-B-32"
    model_cfg: dict | None = None
    image_mean: list | None = None
    image_std: list | None = None

    @property
    def vision_cfg(self) -> dict[str, Any]:
        if not self.model_cfg or "vision_cfg" not in self.model_cfg:
            raise ValueError(f"open_clip vision config for '{self.model_name}' has no model_cfg['vision_cfg']")
        return self.model_cfg["vision_cfg"]

    @property
    def image_size(self) -> int:
        size = self.vision_cfg.get("image_size", 224)
        return size if isinstance(size, int) else size[0]

    @property
    def patch_size(self) -> int:
        return self.vision_cfg.get("patch_size", 16)

    @property
    def hidden_size(self) -> int:
        return self.vision_cfg["width"]


def vision_num_patches(vision_config: PreTrainedConfig, select_strategy: str) -> int:
    """Number of vision tokens N the tower hands to the projector (CLS dropped under "default")."""
    if select_strategy not in VISION_FEATURE_SELECT_STRATEGIES:
        raise ValueError(
            f"vision_feature_select_strategy={select_strategy!r} is not one of "
            f"{list(VISION_FEATURE_SELECT_STRATEGIES)}"
        )
    patches = (vision_config.image_size // vision_config.patch_size) ** 2
    has_cls = vision_config.model_type in ("clip_vision_model", OpenClipVisionConfig.model_type)
    return patches + (1 if has_cls and select_strategy == "full" else 0)


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
        self.model = (
            model
            if model is not None
            else open_clip.model._build_vision_tower(config.model_cfg.get("embed_dim", cfg.width), cfg)
        )
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
            pixel_values.to(dtype),
            indices=[block],
            output_fmt="NLC",
            intermediates_only=True,
            output_extra_tokens=True,
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
