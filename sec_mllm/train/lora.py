"""LoRA for stage 2: the layers adapters go on, and merging a LoRA output into a full SEC-MLLM.

The LoRA output folder holds the PEFT adapter, ``non_lora_trainables.bin`` (projector + connector),
the processor and ``run_config.json``; the base model is rebuilt from the run configuration (the same
vision tower and language model checkpoints must be reachable), the trained projector + connector are
loaded, and the adapter is merged into the language model's weights. Every load is strict: a missing
projector, connector or adapter weight is an error, never a random or zero value.
"""

from __future__ import annotations

from pathlib import Path

from peft import LoraConfig, PeftModel
from torch import nn
from transformers import AutoProcessor

from ..files import read_json
from ..loading import describe_keys
from .arguments import ModelArguments
from .assemble import model_from_args
from .checkpoints import NON_LORA_FILE, RUN_CONFIG_FILE, load_mm_projector


def lora_targets(model: nn.Module) -> list[str]:
    """Every Linear layer of the language model except its output head."""
    return [
        name
        for name, module in model.named_modules()
        if name.startswith("language_model.") and isinstance(module, nn.Linear) and not name.endswith("lm_head")
    ]


def merge_lora_checkpoint(path: str):
    """Returns ``(merged model, processor)`` for a LoRA output folder."""
    folder = Path(path)
    run_config = read_json(folder / RUN_CONFIG_FILE)
    fields = set(ModelArguments.__dataclass_fields__)
    model_args = ModelArguments(**{k: v for k, v in run_config["model"].items() if k in fields})
    processor = AutoProcessor.from_pretrained(folder)
    base = model_from_args(model_args, processor.tokenizer)
    load_mm_projector(base, str(folder / NON_LORA_FILE))
    return load_adapter_strict(base, folder).merge_and_unload().eval(), processor


def load_adapter_strict(base: nn.Module, folder: Path) -> PeftModel:
    """The LoRA adapter saved in ``folder`` on ``base``; refuses an adapter file that lacks any of its weights
    (PEFT's own ``from_pretrained`` only warns and keeps them at their initial values)."""
    model = PeftModel(base, LoraConfig.from_pretrained(folder))
    result = model.load_adapter(folder, "default")
    if result.missing_keys:
        raise ValueError(f"{folder}: the LoRA adapter lacks {describe_keys(result.missing_keys)}")
    return model
