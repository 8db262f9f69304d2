"""LLaVA training records: reading the JSON / JSONL files and checking one record.

A record is ``{"id", "image" (optional, relative to image_folder), "conversations": [{"from": "human" |
"gpt", "value": ...}, ...]}``; text-only records have no ``image``. Files are JSON lists or JSONL.

``check_record`` is the one definition of a usable sample, shared by the list-based dataset and the Arrow
conversion (llava_arrow.py), so both paths accept, reject and reword exactly the same samples.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterator

from ..files import iter_json_array, iter_jsonl, read_json
from .templates import BadSample

ROLES = {"human": "human", "user": "human", "gpt": "gpt", "assistant": "gpt"}


def load_records(path: str | os.PathLike) -> list[Any]:
    """All records of a JSON list or JSONL file, parsed at once as LLaVA does (the list storage's way);
    malformed JSON names the file and position."""
    if str(path).endswith(".jsonl"):
        return [record for _, record in iter_jsonl(path)]
    data = read_json(path)
    if not isinstance(data, list):
        raise ValueError(f"{path}: expected a JSON list of samples, got {type(data).__name__}")
    return data


def iter_records(path: str | os.PathLike) -> Iterator[Any]:
    """The records of a JSON list or JSONL file, parsed one at a time (the Arrow conversion's way): the
    memory held is one record and a window of the file, not the file's Python objects."""
    if str(path).endswith(".jsonl"):
        for _, record in iter_jsonl(path):
            yield record
    else:
        yield from iter_json_array(path, what="list of samples")


def sample_id(record: Any, index: int) -> str:
    """The id bad-sample messages use: the record's ``id``, else its position in the file."""
    return str(record.get("id", index)) if isinstance(record, dict) else str(index)


def conversation_turns(record: dict[str, Any], image_token: str) -> list[tuple[str, str]]:
    """Validated ``[(role, text)]``; ``<image>`` moved to the start of the first human turn as LLaVA does.

    The result always starts with a human turn and alternates human / gpt.
    """
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


def check_record(record: Any, image_token: str, image_folder: Path | None) -> tuple[list[tuple[str, str]], str | None]:
    """``(turns, image)`` of a usable record, else :class:`BadSample` saying why (image existence included)."""
    if not isinstance(record, dict):
        raise BadSample(f"expected a JSON object, got {type(record).__name__}")
    turns = conversation_turns(record, image_token)
    image = record.get("image")
    if image is not None:
        if image_folder is None:
            raise BadSample("has an image but no image_folder was given")
        if not (image_folder / image).is_file():
            raise MissingImage(image_folder / image)
    return turns, image


class MissingImage(BadSample):
    """A record whose image file does not exist (the Arrow cache re-checks these when it is reopened)."""

    def __init__(self, path: Path) -> None:
        super().__init__(f"image file {path} is missing")
        self.path = path


def modality_length(turns: list[tuple[str, str]], has_image: bool) -> int:
    """Rough length for grouping: the word count, positive with an image, negative text-only (as LLaVA)."""
    words = sum(len(value.split()) for _, value in turns)
    return words if has_image else -words
