"""Command-line arguments of scripts/pretrain.py and scripts/finetune.py.

Every argument LLaVA-1.5's scripts/v1_5 pretrain.sh, finetune.sh and finetune_lora.sh pass is accepted
with LLaVA's meaning (``--mm_projector_type`` is the connector), including transformers 4 spellings
that transformers 5 renamed (``--evaluation_strategy``, ``--warmup_ratio``). This project's own: ``--projector_type``,
``--num_visual_tokens``, the ``--sec_*`` options, ``--projector_config`` (JSON), ``--skip_bad_samples``,
``--tokenizer_name_or_path``, ``--data_storage`` and ``--data_cache_dir`` (data/llava_arrow.py). LLaVA options
this project does not implement are refused with a message.
``--deepspeed`` takes a file or the name of a config shipped with the package (``zero2``, ``zero3``,
``zero3_offload``), so the LLaVA-style ``configs/deepspeed/zero3.json`` works outside a checkout too.
How the model arguments become a model (and which of them a sec_mllm checkpoint accepts) is
``assemble.py``'s job; flags whose default must be told apart from "not given" default to None there.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import torch
import transformers

RENAMED = {"--evaluation_strategy": "--eval_strategy", "--warmup_ratio": "--warmup_steps"}
DEEPSPEED_CONFIGS = ("zero2", "zero3", "zero3_offload")


def deepspeed_config_path(name: str) -> str:
    """Path of a DeepSpeed config shipped with the package (``zero2``, ``zero3``, ``zero3_offload``)."""
    stem = name.removesuffix(".json")
    if stem not in DEEPSPEED_CONFIGS:
        raise ValueError(
            f"no packaged DeepSpeed config {name!r}; choose one of {list(DEEPSPEED_CONFIGS)} or pass a file"
        )
    return str(resources.files("sec_mllm") / "configs" / "deepspeed" / f"{stem}.json")


def resolve_deepspeed(value: str | None) -> str | None:
    """``--deepspeed``: an existing file, or the name of a packaged config (``zero2``, ``configs/deepspeed/zero3.json``
    from outside a checkout, ...)."""
    if not value or Path(value).is_file():
        return value
    name = Path(value).name
    if name.removesuffix(".json") in DEEPSPEED_CONFIGS:
        return deepspeed_config_path(name)
    raise SystemExit(f"--deepspeed {value}: no such file, and not a packaged config ({', '.join(DEEPSPEED_CONFIGS)})")


@dataclass
class ModelArguments:
    model_name_or_path: str = field(
        metadata={"help": "causal LM (hub id or local path), or a saved sec_mllm checkpoint (e.g. a converted LLaVA)"}
    )
    vision_tower: str = field(
        default=None,
        metadata={"help": "CLIP / SigLIP hub id or path, or open_clip:<model> (not with a sec_mllm checkpoint)"},
    )
    vision_tower_pretrained: str | None = field(default=None, metadata={"help": "open_clip weights file"})
    tokenizer_name_or_path: str | None = field(default=None, metadata={"help": "defaults to model_name_or_path"})
    version: str = field(default="v1", metadata={"help": "conversation template: plain, v1, chat_template"})
    mm_projector_type: str | None = field(
        default=None, metadata={"help": "connector (LLaVA's name): linear (default), mlp2x_gelu"}
    )
    projector_type: str | None = field(
        default=None,
        metadata={
            "help": "token compressor: sec (default), identity, avgpool, tome, kmeans; with a sec_mllm "
            "checkpoint, any projector flag replaces its projector"
        },
    )
    num_visual_tokens: int | None = field(default=None, metadata={"help": "K, the projector's num_tokens"})
    projector_config: str | None = field(default=None, metadata={"help": "JSON dict of further projector options"})
    sec_grouping: str | None = field(default=None, metadata={"help": "band or interleave"})
    sec_reduction: str | None = field(default=None, metadata={"help": "mean (default) or attn"})
    sec_order: str | None = field(default=None, metadata={"help": "score or position"})
    sec_heads: int | None = field(default=None)
    sec_key_projection: bool | None = field(
        default=None, metadata={"help": "learned keys W_k; default: True with attn reduction, False with mean"}
    )
    sec_position_embedding: bool | None = field(default=None)
    sec_key_rope: bool | None = field(default=None, metadata={"help": "2-D RoPE on the keys before scoring"})
    sec_spatial_moments: bool | None = field(
        default=None, metadata={"help": "add a learned map of each cluster's features weighted by row and column"}
    )
    sec_regions: int | None = field(
        default=None, metadata={"help": "cluster within this many vertical strips of the patch grid (default 1)"}
    )
    mm_vision_select_layer: int | None = field(default=None, metadata={"help": "default -2 (penultimate)"})
    mm_vision_select_feature: str | None = field(
        default=None, metadata={"help": "patch (drop CLS, default) or cls_patch"}
    )
    pretrain_mm_mlp_adapter: str | None = field(default=None, metadata={"help": "stage-1 mm_projector.bin"})
    tune_mm_mlp_adapter: bool = field(default=False, metadata={"help": "stage 1: train projector + connector only"})
    freeze_backbone: bool = field(default=False, metadata={"help": "keep the language model frozen"})
    unfreeze_mm_vision_tower: bool = field(default=False)
    mm_use_im_start_end: bool = field(default=False)
    mm_use_im_patch_token: bool = field(default=False)
    mm_patch_merge_type: str = field(default="flat")


@dataclass
class DataArguments:
    data_path: str = field(default=None, metadata={"help": "LLaVA JSON / JSONL file"})
    image_folder: str | None = field(default=None)
    image_aspect_ratio: str = field(default="square", metadata={"help": "pad, or square / original (no padding)"})
    lazy_preprocess: bool = field(default=True, metadata={"help": "accepted for LLaVA compatibility; always lazy"})
    is_multimodal: bool = field(default=True)
    skip_bad_samples: bool = field(
        default=False, metadata={"help": "log, skip and count bad samples instead of failing"}
    )
    data_storage: str = field(
        default="arrow",
        metadata={
            "help": "arrow: one memory-mapped Arrow copy of --data_path shared by all ranks; list: LLaVA's",
            "choices": ["arrow", "list"],
        },
    )
    data_cache_dir: str | None = field(
        default=None, metadata={"help": "folder for the Arrow copy of --data_path (default: beside the file)"}
    )


@dataclass
class TrainingArguments(transformers.TrainingArguments):
    model_max_length: int = field(default=2048)
    group_by_modality_length: bool = field(default=False)
    mm_projector_lr: float | None = field(default=None, metadata={"help": "learning rate of projector + connector"})
    mm_vision_tower_lr: float | None = field(default=None)
    lora_enable: bool = field(default=False)
    lora_r: int = field(default=64)
    lora_alpha: int = field(default=16)
    lora_dropout: float = field(default=0.05)
    lora_weight_path: str = field(default="")
    lora_bias: str = field(default="none")
    bits: int = field(default=16)
    double_quant: bool = field(default=True)
    quant_type: str = field(default="nf4")
    cache_dir: str | None = field(default=None)
    freeze_mm_mlp_adapter: bool = field(default=False)
    remove_unused_columns: bool = field(default=False)

    def __post_init__(self) -> None:
        if not torch.cuda.is_available():
            if self.tf32:
                raise SystemExit(
                    "--tf32 needs an NVIDIA GPU; this machine has none (drop --tf32 or pass --tf32 False)"
                )
            if self.fp16:
                raise SystemExit("--fp16 is not supported on CPU; use --bf16 True or fp32")
            self.use_cpu = True  # two CPU ranks under DeepSpeed need it
        super().__post_init__()


def check_supported(model_args: ModelArguments, data_args: DataArguments, training_args: TrainingArguments) -> None:
    """Refuse, with a message, the options this project does not implement or that cannot work here."""
    refusals = []
    if model_args.mm_use_im_start_end:
        refusals.append(
            "--mm_use_im_start_end True (image start/end tokens) is not supported; use False as LLaVA-1.5 does"
        )
    if model_args.mm_use_im_patch_token:
        refusals.append("--mm_use_im_patch_token True is not supported; use False as LLaVA-1.5 does")
    if model_args.mm_patch_merge_type != "flat":
        refusals.append(f"--mm_patch_merge_type {model_args.mm_patch_merge_type} is not supported (only flat)")
    if model_args.mm_vision_select_feature not in (None, "patch", "cls_patch"):
        refusals.append(
            f"--mm_vision_select_feature must be patch or cls_patch, got {model_args.mm_vision_select_feature}"
        )
    if training_args.bits != 16:
        refusals.append(f"--bits {training_args.bits}: quantized training is not supported (use 16)")
    if training_args.lora_weight_path:
        refusals.append("--lora_weight_path is not supported")
    if training_args.lora_bias != "none":
        refusals.append(f"--lora_bias {training_args.lora_bias} is not supported (only none)")
    if data_args.image_aspect_ratio not in ("pad", "square", "original"):
        refusals.append(
            f"--image_aspect_ratio {data_args.image_aspect_ratio} is not supported (pad, square, original)"
        )
    if not data_args.data_path:
        refusals.append("--data_path is required")
    if refusals:
        raise SystemExit("unsupported arguments:\n  " + "\n  ".join(refusals))


def rename_flag(arg: str) -> str:
    """Map a transformers 4 spelling (``--evaluation_strategy``, also ``--evaluation_strategy=no``) to today's."""
    flag, sep, value = arg.partition("=")
    return RENAMED.get(flag, flag) + sep + value


def parse_args(argv: list[str] | None = None) -> tuple[ModelArguments, DataArguments, TrainingArguments]:
    argv = list(sys.argv[1:] if argv is None else argv)
    for i, arg in enumerate(argv):
        if arg.partition("=")[0] == "--warmup_ratio":  # transformers 5 reads warmup_steps < 1 as a ratio
            value = arg.partition("=")[2] or (argv[i + 1] if i + 1 < len(argv) else "")
            if not 0 <= float(value or "nan") < 1:
                raise SystemExit(f"--warmup_ratio must be in [0, 1), got {value!r}")
    argv = [rename_flag(a) for a in argv]
    for i, arg in enumerate(argv):
        flag, sep, value = arg.partition("=")
        if flag == "--deepspeed" and sep:
            argv[i] = f"--deepspeed={resolve_deepspeed(value)}"
        elif flag == "--deepspeed" and i + 1 < len(argv):
            argv[i + 1] = resolve_deepspeed(argv[i + 1])
    parser = transformers.HfArgumentParser((ModelArguments, DataArguments, TrainingArguments))
    model_args, data_args, training_args, unknown = parser.parse_args_into_dataclasses(
        args=argv, return_remaining_strings=True
    )
    if unknown:
        raise SystemExit(f"unknown argument(s) {unknown}; see --help for the accepted ones")
    check_supported(model_args, data_args, training_args)
    return model_args, data_args, training_args
