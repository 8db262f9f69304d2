"""Two-stage training: arguments (LLaVA's flags), flags -> model (assemble), stage freezing, checkpoint
helpers, the Trainer glue, LoRA, the driver (run) and the entry modules ``pretrain``, ``finetune`` and
``merge_lora`` (``python -m sec_mllm.train.pretrain ...``)."""

from .stages import configure_trainable, trainable_table

__all__ = ["configure_trainable", "trainable_table"]
