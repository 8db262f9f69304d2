"""Trainer glue: modality-length grouping and separate learning rates for the projector + connector
(``--mm_projector_lr``) and the vision tower (``--mm_vision_tower_lr``), on top of transformers' Trainer."""

from __future__ import annotations

from typing import Sequence

import torch
from transformers import Trainer

from ..data.sampler import ModalityLengthGroupedSampler
from .stages import component_of


class SecMllmTrainer(Trainer):
    def __init__(self, *args, modality_lengths: Sequence[int] | None = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.modality_lengths = modality_lengths

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
