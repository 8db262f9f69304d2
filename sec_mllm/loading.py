"""Strict loading of user checkpoints: a weight the model needs that the checkpoint does not hold is an error.

transformers' ``from_pretrained`` initialises missing weights at random and only logs a report; a folder
that is not the checkpoint it claims to be (or lost a shard) then loads "successfully" with a random
vision tower or language model. ``from_pretrained_strict`` asks for the loading report and refuses when
any weight is missing or has the wrong shape, naming the folder and the keys. Unexpected weights (a full
CLIP checkpoint's text tower when only the vision tower is loaded) are allowed, except under the projector:
there they mean the config builds a different projector than the one trained (a checkpoint saved before the
`sec` default changed to mean reduction stores no ``reduction`` but holds ``projector.key`` / ``query``).
"""

from __future__ import annotations

from collections import Counter
from typing import Any, Iterable

KEYS_SHOWN = 8
PROJECTOR = "projector."  # the token compressor's weights in a SEC-MLLM state dict


def describe_keys(keys: Iterable[str]) -> str:
    """``"39 weight(s), under model.vision_tower (39): model.vision_tower.a, ..."`` (grouped by two parts)."""
    keys = sorted(keys)
    groups = Counter(".".join(k.split(".")[:2]) for k in keys)
    where = ", ".join(f"{prefix} ({n})" for prefix, n in sorted(groups.items()))
    shown = ", ".join(keys[:KEYS_SHOWN]) + (", ..." if len(keys) > KEYS_SHOWN else "")
    return f"{len(keys)} weight(s), under {where}: {shown}"


def check_loading_info(info: dict[str, Any], source: str, what: str) -> None:
    """Raise when transformers' loading report lists missing or shape-mismatched weights, or projector weights
    the config does not build."""
    missing = set(info.get("missing_keys") or ())
    mismatched = {entry[0] if isinstance(entry, tuple) else entry for entry in info.get("mismatched_keys") or ()}
    problems = []
    if missing:
        problems.append(f"missing {describe_keys(missing)}")
    if mismatched:
        problems.append(f"wrong shape {describe_keys(mismatched)}")
    stray = sorted(k for k in info.get("unexpected_keys") or () if k.startswith(PROJECTOR))
    if problems:
        raise ValueError(
            f"{source}: not a complete {what} checkpoint ({'; '.join(problems)}); refusing to fill them with "
            "random values"
        )
    if stray:
        hint = (
            '; saved before the sec default became reduction="mean"? Add "reduction": "attn" to '
            "projector_config in its config.json"
            if any(k.startswith(PROJECTOR + "query.") for k in stray)
            else ""
        )
        raise ValueError(
            f"{source}: the {what} checkpoint holds projector weights its config does not build "
            f"({describe_keys(stray)}); refusing to load it without them{hint}"
        )


def from_pretrained_strict(model_class: Any, path: str, what: str, **kwargs: Any) -> Any:
    """``model_class.from_pretrained(path, **kwargs)`` that refuses missing or mismatched weights."""
    model, info = model_class.from_pretrained(path, output_loading_info=True, **kwargs)
    check_loading_info(info, str(path), what)
    return model
