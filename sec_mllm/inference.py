"""Load any checkpoint a user already has for inference, and change its number of visual tokens K in place.

``load_pretrained(path, num_tokens=None)`` takes a saved SEC-MLLM folder or a transformers-format LLaVA-1.5
(hub id or folder). A LLaVA is converted on the fly with the training-free SEC preset (no learned weight:
usable without tuning; all N tokens, i.e. LLaVA itself, when ``num_tokens`` is None). Anything else is
refused with a ValueError that names what the folder lacks; a weight missing from either is an error
(``loading.from_pretrained_strict``). The demo and the lmms-eval plugin load through
here, so both accept the same checkpoints and give the same errors.

``replace_projector`` swaps the projector of a loaded model (and the K of its processor) without touching
the other weights; ``set_num_tokens`` changes K of the current projector and keeps its learned weights,
whose shapes do not depend on K. Both are plain module replacements on the model object, so a demo can
compare K with all N tokens on one copy of the language model.
"""

from __future__ import annotations

import contextlib
import dataclasses
from typing import Any, Iterator

import torch
from transformers import AutoConfig, AutoModel, AutoProcessor

from .configuration_sec_mllm import SecMllmConfig
from .convert_llava import check_llava_checkpoint, llava_to_sec_mllm
from .loading import from_pretrained_strict
from .modeling_sec_mllm import SecMllmForConditionalGeneration
from .processing_sec_mllm import SecMllmProcessor
from .projectors import PROJECTOR_CLASSES, build_projector, make_registry

TRAINING_FREE = {"preset": "training_free"}


def load_pretrained(
    path: str,
    num_tokens: int | None = None,
    dtype: torch.dtype | None = None,
    device: str | torch.device | None = None,
) -> tuple[SecMllmForConditionalGeneration, SecMllmProcessor]:
    """``(model, processor)`` in eval mode for a SEC-MLLM or LLaVA-1.5 checkpoint; ``num_tokens`` sets K."""
    try:
        model_type = AutoConfig.from_pretrained(path).model_type
    except (OSError, ValueError):
        model_type = None
    if model_type == SecMllmConfig.model_type:
        model = from_pretrained_strict(AutoModel, path, "SEC-MLLM", dtype=dtype)
        processor = AutoProcessor.from_pretrained(path)
        if num_tokens is not None:
            set_num_tokens(model, processor, num_tokens)
    else:
        llava_config = check_llava_checkpoint(path)  # raises, naming what is missing, for anything not a LLaVA
        check_num_tokens_of(llava_config, num_tokens)
        projector = ("identity", {}) if num_tokens is None else ("sec", {"num_tokens": num_tokens, **TRAINING_FREE})
        model, processor = llava_to_sec_mllm(path, *projector, dtype=dtype)
    if device is not None:
        model.to(device)
    return model.eval(), processor


def check_num_tokens_of(llava_config: Any, num_tokens: int | None) -> None:
    """Refuse K outside 1..N for a LLaVA before its weights are read (N = its image_seq_length)."""
    n = getattr(llava_config, "image_seq_length", None)
    if num_tokens is not None and n is not None and not 1 <= num_tokens <= n:
        raise ValueError(f"num_tokens={num_tokens} is outside 1..N: this LLaVA's vision tower gives N={n} tokens")


def replace_projector(
    model: SecMllmForConditionalGeneration,
    processor: SecMllmProcessor,
    projector_type: str,
    projector_config: dict[str, Any],
) -> None:
    """Give ``model`` a new projector (weights kept when the type stays) and ``processor`` its K."""
    projector = build_projector(projector_type, projector_config, model.vision_tower.hidden_size)
    k = projector.num_output_tokens(model.config.num_vision_patches)  # raises for K > N
    if projector_type == model.config.projector_type:
        projector.load_state_dict(model.projector.state_dict())
    reference = next(iter(model.connector.parameters()))
    model.projector = projector.to(device=reference.device, dtype=reference.dtype).eval()
    model.config.projector_type, model.config.projector_config = projector_type, dict(projector_config)
    model.num_image_tokens = processor.num_image_tokens = k


def has_num_tokens(projector_type: str) -> bool:
    """Whether the projector called ``projector_type`` has a K (``num_tokens``) to choose."""
    config_class = make_registry(PROJECTOR_CLASSES)[projector_type].config_class
    return "num_tokens" in {f.name for f in dataclasses.fields(config_class)}


def set_num_tokens(model: SecMllmForConditionalGeneration, processor: SecMllmProcessor, num_tokens: int) -> None:
    """Change K of the model's projector; a ValueError when it has no K (identity) or K is not in 1..N."""
    projector_type = model.config.projector_type
    if not has_num_tokens(projector_type):
        raise ValueError(
            f"projector '{projector_type}' keeps all N={model.config.num_vision_patches} tokens and has no K to set; "
            "convert the model with a compressing projector (e.g. sec with the training_free preset)"
        )
    if not isinstance(num_tokens, int) or isinstance(num_tokens, bool):
        raise ValueError(f"num_tokens must be an integer, got {num_tokens!r}")
    replace_projector(model, processor, projector_type, {**model.config.projector_config, "num_tokens": num_tokens})


@contextlib.contextmanager
def projector_swapped(
    model: SecMllmForConditionalGeneration,
    processor: SecMllmProcessor,
    projector_type: str,
    projector_config: dict[str, Any],
) -> Iterator[None]:
    """Use another projector inside the block; the original module, config and K come back afterwards."""
    saved = (model.projector, model.config.projector_type, dict(model.config.projector_config), model.num_image_tokens)
    replace_projector(model, processor, projector_type, projector_config)
    try:
        yield
    finally:
        model.projector, model.config.projector_type, model.config.projector_config, k = saved
        model.num_image_tokens = processor.num_image_tokens = k
