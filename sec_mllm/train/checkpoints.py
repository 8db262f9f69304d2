"""Checkpoint helpers: projector + connector weights (``mm_projector.bin``, LLaVA's file name), non-LoRA
trainables, and the run configuration saved beside a checkpoint.

Under DeepSpeed ZeRO-3 the parameters are partitioned; gathering them is a collective, so every rank
calls these functions and rank 0 writes. Loading happens before DeepSpeed partitions the freshly built
projector and connector, so the weights arrive whole (LLaVA's "size 0 under ZeRO-3" cannot occur); a
partitioned target is still handled by gathering with rank 0 as the modifier.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import re
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..files import write_json_atomic

MM_PROJECTOR_FILE = "mm_projector.bin"
NON_LORA_FILE = "non_lora_trainables.bin"
RUN_CONFIG_FILE = "run_config.json"
TRAINABLE_PREFIXES = ("projector.", "connector.")


def _strip(name: str) -> str:
    """``base_model.model.connector.0.weight`` (PEFT) -> ``connector.0.weight``."""
    match = re.search(r"(projector|connector)\..*", name)
    return match.group(0) if match else name


def _gathered(params: list[nn.Parameter], modifier_rank: int | None = None):
    if any(hasattr(p, "ds_id") for p in params):
        import deepspeed

        return deepspeed.zero.GatheredParameters(params, modifier_rank=modifier_rank)
    return contextlib.nullcontext()


def mm_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """Full (gathered) projector + connector weights on CPU, keyed ``projector.*`` / ``connector.*``."""
    named = [(n, p) for n, p in model.named_parameters() if _strip(n).startswith(TRAINABLE_PREFIXES)]
    with _gathered([p for _, p in named]):
        return {_strip(n): p.detach().cpu().clone() for n, p in named}


def save_mm_projector(model: nn.Module, output_dir: str, is_main: bool, file_name: str = MM_PROJECTOR_FILE) -> None:
    state = mm_state_dict(model)  # every rank gathers
    if is_main:
        Path(output_dir).mkdir(parents=True, exist_ok=True)
        torch.save(state, Path(output_dir) / file_name)


def load_mm_projector(model: nn.Module, path: str) -> int:
    """Load stage-1 weights (ours, or LLaVA's ``model.mm_projector.*`` keys) into projector + connector.

    Every connector weight must be present, and every projector weight the model has; returns the count.
    """
    raw = torch.load(path, map_location="cpu", weights_only=True)
    state = {}
    for key, value in raw.items():
        llava = re.search(r"mm_projector\.(.*)", key)
        state["connector." + llava.group(1) if llava else _strip(key)] = value
    params = {_strip(n): p for n, p in model.named_parameters() if _strip(n).startswith(TRAINABLE_PREFIXES)}
    missing = sorted(set(params) - set(state))
    unexpected = sorted(set(state) - set(params))
    if missing or unexpected:
        raise ValueError(
            f"{path}: does not fit this model's projector/connector: missing {missing}, unexpected {unexpected}"
        )
    with _gathered(list(params.values()), modifier_rank=0), torch.no_grad():
        for name, param in params.items():
            if tuple(state[name].shape) != tuple(param.shape):
                raise ValueError(
                    f"{path}: {name} has shape {tuple(state[name].shape)}, the model expects {tuple(param.shape)}"
                )
            param.copy_(state[name].to(param.dtype))
    return len(params)


def save_run_config(output_dir: str, **groups: Any) -> None:
    """Write the resolved arguments (one dict per group) to ``run_config.json`` atomically."""

    def plain(obj: Any) -> dict[str, Any]:
        values = obj.to_dict() if hasattr(obj, "to_dict") else dataclasses.asdict(obj)
        return json.loads(json.dumps(values, default=str))

    write_json_atomic(Path(output_dir) / RUN_CONFIG_FILE, {name: plain(obj) for name, obj in groups.items()})
