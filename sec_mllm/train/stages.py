"""Stage freezing, in one function.

Stage 1 (align) trains the projector and the connector; stage 2 (instruct) adds the language model, or
only its LoRA adapters. The vision tower stays frozen unless asked. The function returns (and logs) a
table of parameters per component so every run states what it trains.
"""

from __future__ import annotations

import logging

from torch import nn

logger = logging.getLogger(__name__)
COMPONENTS = ("vision_tower", "projector", "connector", "language_model")


def component_of(name: str) -> str:
    """Top-level component of a parameter name (PEFT prefixes such as ``base_model.model.`` ignored)."""
    for part in name.split("."):
        if part in COMPONENTS:
            return part
    return "other"


def configure_trainable(
    model: nn.Module,
    stage: int,
    *,
    lora: bool = False,
    tune_vision_tower: bool = False,
    freeze_connector: bool = False,
    freeze_language_model: bool = False,
) -> str:
    """Set ``requires_grad`` for ``stage`` (1 or 2) and return the table of trainable parameters."""
    if stage not in (1, 2):
        raise ValueError(f"stage must be 1 or 2, got {stage}")
    for name, param in model.named_parameters():
        part = component_of(name)
        if part in ("projector", "connector"):
            train = not (stage == 2 and freeze_connector)
        elif part == "vision_tower":
            train = tune_vision_tower
        elif part == "language_model":
            train = stage == 2 and not freeze_language_model and (not lora or "lora_" in name)
        else:
            train = False
        param.requires_grad_(train)
    table = trainable_table(model)
    logger.info("stage %d trainable parameters:\n%s", stage, table)
    return table


def trainable_table(model: nn.Module) -> str:
    totals = {c: [0, 0] for c in COMPONENTS + ("other",)}
    for name, param in model.named_parameters():
        count = param.ds_numel if hasattr(param, "ds_numel") else param.numel()
        entry = totals[component_of(name)]
        entry[0] += count
        entry[1] += count if param.requires_grad else 0
    lines = [f"{'component':<16}{'parameters':>14}{'trainable':>14}"]
    for part, (total, trainable) in totals.items():
        if total:
            lines.append(f"{part:<16}{total:>14,}{trainable:>14,}")
    all_total = sum(t for t, _ in totals.values())
    all_train = sum(t for _, t in totals.values())
    lines.append(f"{'total':<16}{all_total:>14,}{all_train:>14,}")
    return "\n".join(lines)
