"""Trainer glue: modality-length grouping, separate learning rates for the projector + connector
(``--mm_projector_lr``) and the vision tower (``--mm_vision_tower_lr``), and checkpoints that are complete or
absent, on top of transformers' Trainer.

Non-standard: transformers writes ``checkpoint-N`` in place, so a process killed while saving leaves a
half-written folder that ``resume_from_checkpoint=True`` then picks. Here the Trainer's own saving (model,
DeepSpeed's per-rank optimizer shards, scheduler, RNG states, trainer state) is pointed at
``<output_dir>/.checkpoint-in-progress/checkpoint-N`` (``_get_output_dir`` while a checkpoint is written);
once every rank has finished, the saving process renames it to ``<output_dir>/checkpoint-N`` and applies
``save_total_limit`` there.
"""

from __future__ import annotations

import contextlib
import shutil
from pathlib import Path
from typing import Sequence

import torch
from transformers import Trainer
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR, rotate_checkpoints

from ..data.sampler import ModalityLengthGroupedSampler
from ..files import replace_folder
from .checkpoints import STAGING_DIR, TRAINER_STATE_FILE
from .stages import component_of


class SecMllmTrainer(Trainer):
    def __init__(self, *args, modality_lengths: Sequence[int] | None = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.modality_lengths = modality_lengths
        self.writing_checkpoint = False

    def _get_output_dir(self, trial) -> str:
        run_dir = super()._get_output_dir(trial)
        return str(Path(run_dir) / STAGING_DIR) if self.writing_checkpoint else run_dir

    def _save_checkpoint(self, model: torch.nn.Module, trial) -> None:
        run_dir = Path(super()._get_output_dir(trial))
        name = f"{PREFIX_CHECKPOINT_DIR}-{self.state.global_step}"
        staging, final = run_dir / STAGING_DIR / name, run_dir / name
        if self.args.should_save:
            shutil.rmtree(staging, ignore_errors=True)  # left by a killed run
        self.accelerator.wait_for_everyone()
        self.writing_checkpoint = True
        try:
            super()._save_checkpoint(model, trial)
        finally:
            self.writing_checkpoint = False
        self.accelerator.wait_for_everyone()  # every rank has written its part (DeepSpeed: its own shards)
        if self.args.should_save:
            if self.state.best_model_checkpoint == str(staging):
                self.state.best_model_checkpoint = str(final)
                self.state.save_to_json(str(staging / TRAINER_STATE_FILE))
            replace_folder(staging, final)
            with contextlib.suppress(OSError):
                staging.parent.rmdir()  # when empty
            rotate_checkpoints(
                output_dir=str(run_dir),
                save_total_limit=self.args.save_total_limit,
                best_model_checkpoint=self.state.best_model_checkpoint,
                use_mtime=True,
            )
        self.accelerator.wait_for_everyone()

    def _get_train_sampler(self, train_dataset=None) -> torch.utils.data.Sampler | None:
        if self.args.group_by_modality_length and self.modality_lengths is not None:
            return ModalityLengthGroupedSampler(
                self.modality_lengths,
                self.args.train_batch_size * self.args.gradient_accumulation_steps,
                self.args.world_size,
                self.args.seed,
            )
        return super()._get_train_sampler(train_dataset)

    def create_optimizer(self, model=None) -> torch.optim.Optimizer:
        special = {
            "projector": self.args.mm_projector_lr,
            "connector": self.args.mm_projector_lr,
            "vision_tower": self.args.mm_vision_tower_lr,
        }
        if self.optimizer is not None or all(lr is None for lr in special.values()):
            return super().create_optimizer(model)
        opt_model = self.model if model is None else model
        decay = set(self.get_decay_parameter_names(opt_model))
        groups: dict[tuple[float, float], list[torch.nn.Parameter]] = {}
        for name, param in opt_model.named_parameters():
            if not param.requires_grad:
                continue
            lr = special.get(component_of(name)) or self.args.learning_rate
            wd = self.args.weight_decay if name in decay else 0.0
            groups.setdefault((lr, wd), []).append(param)
        optimizer_cls, kwargs = self.get_optimizer_cls_and_kwargs(self.args, opt_model)
        kwargs.pop("lr", None)
        self.optimizer = optimizer_cls(
            [{"params": ps, "lr": lr, "weight_decay": wd} for (lr, wd), ps in groups.items()],
            lr=self.args.learning_rate,
            **kwargs,
        )
        return self.optimizer
