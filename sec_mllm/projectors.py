"""Exact-name projector registry: ``build_projector(name, config, in_dim)`` and ``list_projectors()``.

Every projector (SEC and the baselines) is an ordinary entry, so every ablation is one config key.
The registry is built from an immutable tuple of classes; :func:`make_registry` rejects duplicate
names, and unknown names raise with the list of choices.
"""

from __future__ import annotations

from typing import Any, Iterable

from .projector_avgpool import AvgPoolProjector
from .projector_base import Projector, ProjectorOutput, parse_config
from .projector_identity import IdentityProjector
from .projector_kmeans import KMeansProjector
from .projector_sec import SecProjector
from .projector_tome import TomeProjector

PROJECTOR_CLASSES: tuple[type[Projector], ...] = (
    SecProjector,
    IdentityProjector,
    AvgPoolProjector,
    TomeProjector,
    KMeansProjector,
)

__all__ = ["Projector", "ProjectorOutput", "build_projector", "list_projectors", "make_registry"]


def make_registry(classes: Iterable[type[Projector]]) -> dict[str, type[Projector]]:
    """Map names to classes; a name used twice raises a ValueError naming both classes."""
    registry: dict[str, type[Projector]] = {}
    for cls in classes:
        if cls.name in registry:
            raise ValueError(
                f"duplicate projector name '{cls.name}': {registry[cls.name].__name__} and {cls.__name__}; "
                f"registered names: {sorted(registry)}"
            )
        registry[cls.name] = cls
    return registry


def list_projectors() -> list[str]:
    """Names accepted by :func:`build_projector`, sorted."""
    return sorted(make_registry(PROJECTOR_CLASSES))


def build_projector(name: str, config: dict[str, Any] | None, in_dim: int) -> Projector:
    """Build the projector called ``name`` (exact match) from a plain config dict."""
    registry = make_registry(PROJECTOR_CLASSES)
    if name not in registry:
        raise ValueError(f"unknown projector '{name}'; choose one of {sorted(registry)}")
    cls = registry[name]
    return cls(parse_config(cls.config_class, config, name), in_dim)
