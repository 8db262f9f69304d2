"""Checkpoint helpers: projector + connector weights (``mm_projector.bin``, LLaVA's file name), non-LoRA
trainables, the run configuration saved beside a checkpoint, and which Trainer checkpoints are complete.

Under DeepSpeed ZeRO-3 the parameters are partitioned; gathering them is a collective, so every rank
calls these functions and rank 0 writes. Loading happens before DeepSpeed partitions the freshly built
projector and connector, so the weights arrive whole (LLaVA's "size 0 under ZeRO-3" cannot occur); a
partitioned target is still handled by gathering with rank 0 as the modifier.

Files are written under a temporary name and renamed, so each is complete or absent. Trainer checkpoints
(``checkpoint-N``) are written into ``STAGING_DIR`` and renamed into place once complete
(``SecMllmTrainer``); ``resolve_resume`` turns ``--resume_from_checkpoint`` (a folder, or ``True`` for the
latest complete one) into a folder, skipping with a warning any incomplete ``checkpoint-N`` (written by
another tool, or by a version of this one that wrote in place) and refusing an explicit incomplete one.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import pickle
import re
import tempfile
from pathlib import Path
from typing import Any

import torch
from torch import nn
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

from ..files import write_json_atomic

logger = logging.getLogger(__name__)
MM_PROJECTOR_FILE = "mm_projector.bin"
NON_LORA_FILE = "non_lora_trainables.bin"
RUN_CONFIG_FILE = "run_config.json"
TRAINABLE_PREFIXES = ("projector.", "connector.")
STAGING_DIR = ".checkpoint-in-progress"  # <output_dir>/.checkpoint-in-progress/checkpoint-N while being written
OUTPUT_STAGING_DIR = ".output-in-progress"  # the final output while being written
TRAINER_STATE_FILE = "trainer_state.json"
WEIGHT_FILES = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
    "adapter_model.safetensors",
    "adapter_model.bin",
)
CHECKPOINT_NAME = re.compile(rf"^{PREFIX_CHECKPOINT_DIR}-(\d+)$")


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


def torch_save_atomic(obj: Any, path: str | os.PathLike) -> None:
    """``torch.save`` to a temporary file in the same folder, then rename it over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_mm_projector(model: nn.Module, output_dir: str, is_main: bool, file_name: str = MM_PROJECTOR_FILE) -> None:
    state = mm_state_dict(model)  # every rank gathers
    if is_main:
        torch_save_atomic(state, Path(output_dir) / file_name)


def load_mm_projector(model: nn.Module, path: str) -> int:
    """Load stage-1 weights (ours, or LLaVA's ``model.mm_projector.*`` keys) into projector + connector.

    Every connector weight must be present, and every projector weight the model has; returns the count.
    """
    if not Path(path).is_file():
        raise FileNotFoundError(f"{path}: no such file")
    try:
        raw = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError) as err:
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ValueError(f"{path}: not a readable weights file (tensors only): {reason}") from err
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: expected a dict of tensors, got {type(raw).__name__}")
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


def checkpoint_problem(folder: str | os.PathLike) -> str | None:
    """Why ``folder`` is not a complete Trainer checkpoint (``None`` when it is): its trainer state (written
    last) must parse and name its step, and its weights (a model or adapter file, or DeepSpeed's ``latest``
    tag with the tagged folder) must be present, with every shard an index names."""
    folder = Path(folder)
    state_file = folder / TRAINER_STATE_FILE
    try:
        state = json.loads(state_file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return f"no {TRAINER_STATE_FILE}"
    except (OSError, ValueError) as err:
        return f"unreadable {TRAINER_STATE_FILE}: {err}"
    match = CHECKPOINT_NAME.match(folder.name)
    if match and state.get("global_step") != int(match.group(1)):
        return f"{TRAINER_STATE_FILE} is for step {state.get('global_step')}, not {match.group(1)}"
    latest = folder / "latest"
    if latest.is_file():
        tag = latest.read_text(encoding="utf-8").strip()
        if not (folder / tag).is_dir():
            return f"DeepSpeed's 'latest' names {tag}, which is missing"
        return None
    present = [name for name in WEIGHT_FILES if (folder / name).is_file()]
    if not present:
        return f"no model weights (none of {', '.join(WEIGHT_FILES)}, nor a DeepSpeed 'latest' tag)"
    for index in (name for name in present if name.endswith(".index.json")):
        try:
            shards = set(json.loads((folder / index).read_text(encoding="utf-8"))["weight_map"].values())
        except (OSError, ValueError, KeyError) as err:
            return f"unreadable {index}: {err}"
        missing = sorted(name for name in shards if not (folder / name).is_file())
        if missing:
            return f"{index} names missing shard(s) {missing}"
    return None


def list_checkpoints(output_dir: str | os.PathLike) -> list[Path]:
    """``checkpoint-N`` folders of ``output_dir``, newest (highest N) first."""
    folder = Path(output_dir)
    if not folder.is_dir():
        return []
    found = [p for p in folder.iterdir() if p.is_dir() and CHECKPOINT_NAME.match(p.name)]
    return sorted(found, key=lambda p: int(CHECKPOINT_NAME.match(p.name).group(1)), reverse=True)


def resolve_resume(value: str | bool | None, output_dir: str) -> str | None:
    """``--resume_from_checkpoint``: ``None`` / ``False`` -> ``None``; ``True`` -> the newest complete
    ``checkpoint-N`` of ``output_dir`` (newer incomplete ones are skipped with a warning); a folder -> itself
    when complete. A folder that is not a complete checkpoint, or ``True`` with none, is refused."""
    if value is None or value is False or str(value).lower() in ("", "false"):
        return None
    if value is True or str(value).lower() == "true":
        for checkpoint in list_checkpoints(output_dir):
            problem = checkpoint_problem(checkpoint)
            if problem is None:
                return str(checkpoint)
            logger.warning("skipping incomplete checkpoint %s: %s", checkpoint, problem)
        raise SystemExit(f"--resume_from_checkpoint True: no complete checkpoint-N folder in {output_dir}")
    folder = Path(value)
    if not folder.is_dir():
        raise SystemExit(f"--resume_from_checkpoint {value}: no such folder")
    problem = checkpoint_problem(folder)
    if problem is not None:
        complete = [c for c in list_checkpoints(folder.parent) if checkpoint_problem(c) is None]
        hint = f"; the newest complete one there is {complete[0]}" if complete else ""
        raise SystemExit(f"--resume_from_checkpoint {value}: not a complete checkpoint ({problem}){hint}")
    return str(folder)
