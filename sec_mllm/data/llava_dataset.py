"""LLaVA-format training data: the 558K caption format and the mix665k instruction format.

Records (see records.py) are checked when the dataset is built (structure, roles, one ``<image>`` per
image, an assistant turn, the image file exists) and tokenized lazily; images are decoded lazily (any PIL
mode to RGB, LLaVA's pad-to-square with the image processor's mean colour when ``image_aspect_ratio="pad"``).
A bad sample raises a ValueError naming the file and the sample id; with ``skip_bad_samples`` it is
logged, skipped and counted (``num_skipped``); a sample found bad only when loaded (an unreadable image,
labels fully masked) is replaced by the next good one and counted too.

Two storages hold the checked samples, with the same samples, order, messages and lengths:

* ``"arrow"`` (default): one memory-mapped Arrow copy of the file made with ``datasets`` and shared by
  every rank (llava_arrow.py: converted once, cached beside the file or in ``cache_dir``, keyed by the
  file's size, mtime, ctime and inode). Image existence is checked at conversion and stored, not
  re-checked at every start.
* ``"list"``: LLaVA's way, the parsed records as Python objects in every rank, every image checked at
  every start. Several GB per rank for the 665K mix (benchmarks/results/data_loading).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from .llava_arrow import ArrowSamples, open_llava_arrow
from .records import check_record, load_records, modality_length, sample_id
from .templates import BadSample, resolve_template, tokenize_conversation

logger = logging.getLogger(__name__)
STORAGES = ("arrow", "list")
__all__ = ["STORAGES", "LlavaDataset", "load_records"]


class LlavaDataset(Dataset):
    """Tokenized LLaVA samples: ``{"input_ids", "labels", "pixel_values" (or None), "id"}``."""

    def __init__(
        self,
        data_path: str,
        processor: Any,
        template: str,
        image_folder: str | None = None,
        max_length: int | None = None,
        skip_bad_samples: bool = False,
        storage: str = "arrow",
        cache_dir: str | None = None,
    ) -> None:
        self.data_path, self.processor = data_path, processor
        self.template = resolve_template(template)
        self.image_folder = Path(image_folder) if image_folder else None
        self.max_length, self.skip_bad_samples = max_length, skip_bad_samples
        self.num_skipped = 0
        if storage not in STORAGES:
            raise ValueError(f"unknown storage {storage!r}; choose one of {list(STORAGES)}")
        self.storage = storage
        self.samples: ArrowSamples | list[tuple[str, list[tuple[str, str]], str | None]]
        if storage == "arrow":
            self.samples = open_llava_arrow(data_path, processor.image_token, image_folder, cache_dir)
            for bad in self.samples.bad:
                self.report(bad["id"], BadSample(bad["reason"]))
        else:
            self.samples = []
            for index, record in enumerate(load_records(data_path)):
                sid = sample_id(record, index)
                try:
                    turns, image = check_record(record, processor.image_token, self.image_folder)
                    self.samples.append((sid, turns, image))
                except BadSample as err:
                    self.report(sid, err)
        if not len(self.samples):
            raise ValueError(f"{data_path}: no usable samples")

    def report(self, sample_id: str, err: Exception) -> None:
        message = f"{self.data_path}: sample {sample_id}: {err}"
        if not self.skip_bad_samples:
            raise ValueError(message) from err
        self.num_skipped += 1
        logger.warning("skipping bad sample (%d so far): %s", self.num_skipped, message)

    def __len__(self) -> int:
        return len(self.samples)

    @property
    def modality_lengths(self) -> np.ndarray:
        """Rough lengths for grouping (``[num_samples]``): positive with an image, negative text-only (as LLaVA)."""
        if self.storage == "arrow":
            return self.samples.modality_lengths()
        return np.array([modality_length(turns, image is not None) for _, turns, image in self.samples], np.int32)

    def load_image(self, image: str) -> torch.Tensor:
        path = self.image_folder / image
        try:
            with Image.open(path) as im:
                prepared = self.processor.prepare_image(im)
        except (OSError, ValueError) as err:
            raise BadSample(f"cannot read image {path}: {err}") from err
        return self.processor.image_processor(prepared, return_tensors="pt")["pixel_values"][0]  # [3, H, W]

    def build(self, index: int) -> dict[str, Any]:
        sample_id, turns, image = self.samples[index]
        input_ids, labels = tokenize_conversation(
            turns,
            self.processor.tokenizer,
            self.template,
            self.processor.image_token_id,
            self.processor.num_image_tokens,
            self.max_length,
            self.processor.image_token,
        )
        pixel_values = self.load_image(image) if image is not None else None
        return {"input_ids": input_ids, "labels": labels, "pixel_values": pixel_values, "id": sample_id}

    def __getitem__(self, index: int) -> dict[str, Any]:
        for offset in range(len(self.samples)):
            i = (index + offset) % len(self.samples)
            try:
                return self.build(i)
            except BadSample as err:
                self.report(self.samples[i][0], err)
        raise ValueError(f"{self.data_path}: every sample is bad")
