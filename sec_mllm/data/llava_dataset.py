"""LLaVA-format training data: the 558K caption format and the mix665k instruction format.

A record is ``{"id", "image" (optional, relative to image_folder), "conversations": [{"from": "human" |
"gpt", "value": ...}, ...]}``; text-only records have no ``image``. Files are JSON lists or JSONL.

Records are checked when the dataset is built (structure, roles, one ``<image>`` per image, an
assistant turn, the image file exists) and tokenized lazily; images are decoded lazily (any PIL mode to
RGB, LLaVA's pad-to-square with the image processor's mean colour when ``image_aspect_ratio="pad"``).
A bad sample raises a ValueError naming the file and the sample id; with ``skip_bad_samples`` it is
logged, skipped and counted (``num_skipped``); a sample found bad only when loaded (an unreadable image,
labels fully masked) is replaced by the next good one and counted too.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from torch.utils.data import Dataset

from ..files import iter_jsonl, read_json
from .templates import BadSample, resolve_template, tokenize_conversation

logger = logging.getLogger(__name__)
ROLES = {"human": "human", "user": "human", "gpt": "gpt", "assistant": "gpt"}


def load_records(path: str) -> list[dict[str, Any]]:
    """A JSON list or JSONL file of records; malformed JSON names the file and position."""
    if str(path).endswith(".jsonl"):
        return [rec for _, rec in iter_jsonl(path)]
    data = read_json(path)
    if not isinstance(data, list):
        raise ValueError(f"{path}: expected a JSON list of samples, got {type(data).__name__}")
    return data


def conversation_turns(record: dict[str, Any], image_token: str) -> list[tuple[str, str]]:
    """Validated ``[(role, text)]``; ``<image>`` moved to the start of the first human turn as LLaVA does."""
    conv = record.get("conversations")
    if not isinstance(conv, list) or not conv:
        raise BadSample("no 'conversations' list")
    turns = []
    for i, turn in enumerate(conv):
        if not isinstance(turn, dict) or turn.get("from") not in ROLES or not isinstance(turn.get("value"), str):
            raise BadSample(f"turn {i} must be {{'from': human|gpt, 'value': str}}, got {turn!r}")
        turns.append((ROLES[turn["from"]], turn["value"]))
    if turns[0][0] == "gpt":  # LLaVA drops a leading assistant turn
        turns = turns[1:]
    for i, (role, _) in enumerate(turns):
        if role != ("human" if i % 2 == 0 else "gpt"):
            raise BadSample(f"turns must alternate human / gpt; turn {i} is {role}")
    if not any(role == "gpt" for role, _ in turns):
        raise BadSample("no assistant (gpt) turn")
    n_placeholders = sum(value.count(image_token) for _, value in turns)
    n_images = 0 if record.get("image") is None else 1
    if isinstance(record.get("image"), list):
        raise BadSample("several images per sample are not supported")
    if n_placeholders != n_images:
        raise BadSample(f"{n_placeholders} {image_token!r} placeholder(s) for {n_images} image(s)")
    if n_images:
        rest = [(r, v.replace(image_token, "").strip()) for r, v in turns]
        turns = [(rest[0][0], image_token + "\n" + rest[0][1])] + rest[1:]
    return turns


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
    ) -> None:
        self.data_path, self.processor = data_path, processor
        self.template = resolve_template(template)
        self.image_folder = Path(image_folder) if image_folder else None
        self.max_length, self.skip_bad_samples = max_length, skip_bad_samples
        self.num_skipped = 0
        self.samples: list[tuple[str, list[tuple[str, str]], str | None]] = []
        for index, record in enumerate(load_records(data_path)):
            sample_id = str(record.get("id", index)) if isinstance(record, dict) else str(index)
            try:
                if not isinstance(record, dict):
                    raise BadSample(f"expected a JSON object, got {type(record).__name__}")
                turns = conversation_turns(record, processor.image_token)
                image = record.get("image")
                if image is not None:
                    if self.image_folder is None:
                        raise BadSample("has an image but no image_folder was given")
                    if not (self.image_folder / image).is_file():
                        raise BadSample(f"image file {self.image_folder / image} is missing")
                self.samples.append((sample_id, turns, image))
            except BadSample as err:
                self.report(sample_id, err)
        if not self.samples:
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
    def modality_lengths(self) -> list[int]:
        """Rough lengths for grouping: positive for samples with an image, negative for text-only (as LLaVA)."""
        lengths = []
        for _, turns, image in self.samples:
            words = sum(len(value.split()) for _, value in turns)
            lengths.append(words if image is not None else -words)
        return lengths

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
