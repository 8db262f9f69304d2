"""Two-stage training: arguments, stage freezing, checkpoint helpers and the Trainer glue."""

from .stages import configure_trainable, trainable_table

__all__ = ["configure_trainable", "trainable_table"]
