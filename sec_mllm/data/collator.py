"""Padding collator: right-pads ``input_ids`` (pad id) and ``labels`` (-100), builds the attention mask,
and stacks the images of the samples that have one, in sample order (the model scatters them into the
image tokens in that order)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch.nn.utils.rnn import pad_sequence

from .templates import IGNORE_INDEX


@dataclass
class LlavaCollator:
    pad_token_id: int

    def __call__(self, batch: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        input_ids = pad_sequence([b["input_ids"] for b in batch], batch_first=True, padding_value=self.pad_token_id)
        labels = pad_sequence([b["labels"] for b in batch], batch_first=True, padding_value=IGNORE_INDEX)
        lengths = torch.tensor([len(b["input_ids"]) for b in batch])
        attention_mask = (torch.arange(input_ids.shape[1])[None, :] < lengths[:, None]).long()  # [B, T]
        out = {"input_ids": input_ids, "labels": labels, "attention_mask": attention_mask}
        images = [b["pixel_values"] for b in batch if b["pixel_values"] is not None]
        if images:
            out["pixel_values"] = torch.stack(images)  # [B_img, 3, H, W]
        return out
