"""The training driver behind ``python -m sec_mllm.train.pretrain`` (stage 1) and ``.finetune`` (stage 2).

Builds the model (every rank does: under ZeRO-3 building is a collective), loads the stage-1
projector + connector (``--pretrain_mm_mlp_adapter``), applies LoRA when asked, freezes per stage, trains
with transformers' Trainer (DeepSpeed when ``--deepspeed`` is given) and writes:

* stage 1: ``mm_projector.bin`` (projector + connector), the model ``config.json`` and the processor; started
  from a sec_mllm checkpoint (``--model_name_or_path`` a converted LLaVA, projector-only tuning), also the
  full model, so that the output loads and evaluates as it is;
* stage 2: a full model that ``AutoModel.from_pretrained`` loads, with its processor; with LoRA, the
  adapter, ``non_lora_trainables.bin`` and the processor (``scripts/merge_lora.py`` makes a full model);
* always: ``run_config.json``, the resolved arguments (training flags never enter ``config.json``).

The output is written into ``<output_dir>/.output-in-progress`` and moved into place by renames, with
``config.json`` / ``adapter_config.json`` and then ``run_config.json`` last: a folder with ``run_config.json``
holds a finished run, and a run that fails or is killed earlier leaves none (nor any half-written file).
``--resume_from_checkpoint`` takes a checkpoint folder or ``True`` (the newest complete ``checkpoint-N``).
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
from pathlib import Path

import torch
from transformers import AutoTokenizer, set_seed

from ..builder import build_processor
from ..data import LlavaCollator, LlavaDataset
from ..files import publish_files
from .arguments import parse_args
from .assemble import check_model_args, image_processor_from_args, is_sec_mllm_checkpoint, model_from_args
from .checkpoints import (
    NON_LORA_FILE,
    OUTPUT_STAGING_DIR,
    RUN_CONFIG_FILE,
    STAGING_DIR,
    load_mm_projector,
    resolve_resume,
    save_mm_projector,
    save_run_config,
)
from .stages import configure_trainable
from .trainer import SecMllmTrainer

logger = logging.getLogger("sec_mllm.train")


def main(stage: int, argv: list[str] | None = None) -> None:
    logging.basicConfig(
        format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO, stream=sys.stdout
    )
    model_args, data_args, args = parse_args(argv)
    resume = resolve_resume(args.resume_from_checkpoint, args.output_dir)  # refused before anything is built
    check_model_args(model_args)
    from_checkpoint = is_sec_mllm_checkpoint(model_args)
    if model_args.tune_mm_mlp_adapter:
        stage = 1
    # Set up the process group now: ZeRO-3 builds partitioned models and sizes its batches from it.
    logger.info("rank %d of %d on %s", args.process_index, args.world_size, args.device)
    if args.deepspeed:
        import deepspeed

        deepspeed.init_distributed(dist_backend="nccl" if torch.cuda.is_available() else "gloo")
    if args.gradient_checkpointing and args.gradient_checkpointing_kwargs is None:
        args.gradient_checkpointing_kwargs = {"use_reentrant": False}

    tokenizer = AutoTokenizer.from_pretrained(
        model_args.tokenizer_name_or_path or model_args.model_name_or_path,
        model_max_length=args.model_max_length,
        padding_side="right",
        cache_dir=args.cache_dir,
    )
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.unk_token or tokenizer.eos_token
    # --seed controls every initialisation: the projector and connector are built (randomly initialised) here,
    # before the Trainer would seed.
    set_seed(args.seed)
    dtype = torch.bfloat16 if args.bf16 and args.deepspeed else None
    model = model_from_args(model_args, tokenizer, dtype)
    model.config.use_cache = False
    processor = build_processor(
        model.config,
        tokenizer,
        image_processor=image_processor_from_args(model_args),
        image_aspect_ratio="pad" if data_args.image_aspect_ratio == "pad" else "original",
    )
    if model_args.pretrain_mm_mlp_adapter:
        count = load_mm_projector(model, model_args.pretrain_mm_mlp_adapter)
        logger.info("loaded %d projector/connector tensors from %s", count, model_args.pretrain_mm_mlp_adapter)

    lora = stage == 2 and args.lora_enable
    if lora:
        from peft import LoraConfig, get_peft_model

        from .lora import lora_targets

        config = LoraConfig(
            r=args.lora_r,
            lora_alpha=args.lora_alpha,
            lora_dropout=args.lora_dropout,
            target_modules=lora_targets(model),
            bias="none",
        )
        model = get_peft_model(model, config)
    table = configure_trainable(
        model,
        stage,
        lora=lora,
        tune_vision_tower=model_args.unfreeze_mm_vision_tower,
        freeze_connector=args.freeze_mm_mlp_adapter,
        freeze_language_model=model_args.freeze_backbone,
    )
    if args.process_index == 0:
        print(f"stage {stage} trainable parameters:\n{table}", flush=True)

    dataset = LlavaDataset(
        data_args.data_path,
        processor,
        model_args.version,
        data_args.image_folder,
        max_length=args.model_max_length,
        skip_bad_samples=data_args.skip_bad_samples,
        storage=data_args.data_storage,
        cache_dir=data_args.data_cache_dir,
    )
    if args.process_index == 0:  # folders a killed run left behind
        for leftover in (STAGING_DIR, OUTPUT_STAGING_DIR):
            shutil.rmtree(Path(args.output_dir) / leftover, ignore_errors=True)
    trainer = SecMllmTrainer(
        model=model,
        args=args,
        train_dataset=dataset,
        data_collator=LlavaCollator(tokenizer.pad_token_id),
        processing_class=processor,
        modality_lengths=dataset.modality_lengths,
    )
    if resume:
        logger.info("resuming from %s", resume)
    trainer.train(resume_from_checkpoint=resume)
    if dataset.num_skipped:
        logger.warning("skipped %d bad sample(s) of %s", dataset.num_skipped, data_args.data_path)

    main_process = trainer.is_world_process_zero()
    staging = str(Path(args.output_dir) / OUTPUT_STAGING_DIR)
    if stage == 1:
        save_mm_projector(trainer.model, staging, main_process)
        if from_checkpoint:
            trainer.save_model(staging)  # the whole model: loads and evaluates as it is
        elif main_process:
            model.config.save_pretrained(staging)
    elif lora:
        trainer.save_model(staging)  # the adapter (gathered under ZeRO-3)
        save_mm_projector(trainer.model, staging, main_process, NON_LORA_FILE)
    else:
        trainer.save_model(staging)
    if main_process:
        processor.save_pretrained(staging)
        save_run_config(staging, model=model_args, data=data_args, training=args)
    if torch.distributed.is_initialized():
        torch.distributed.barrier()
    if main_process:
        publish_files(staging, args.output_dir, last=("adapter_config.json", "config.json", RUN_CONFIG_FILE))
        logger.info("stage %d output written to %s", stage, args.output_dir)
    if torch.distributed.is_initialized():  # a clean teardown: gloo threads alive at exit abort the process
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()
        release_shm_buffer()


def release_shm_buffer() -> None:
    """Remove this rank's shared-memory allreduce buffer of DeepSpeed's CPU backend, once every rank is done.

    DeepSpeed (0.19) creates ``/dev/shm/deepspeed_allreduce_buffer_<uid>_<MASTER_ADDR>_<MASTER_PORT>_<RANK>``
    (about 69 MB of RAM) per rank of a single-machine CPU launch and never unlinks it, so every run would leave
    its buffers behind. Peers that still map the file keep their mapping; only the name goes.
    """
    name = f"deepspeed_allreduce_buffer_{os.getuid()}_{os.environ.get('MASTER_ADDR', '')}_"
    name += f"{os.environ.get('MASTER_PORT', '')}_{os.environ.get('RANK', '0')}"
    Path("/dev/shm", name).unlink(missing_ok=True)
