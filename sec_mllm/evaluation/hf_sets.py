"""GQA and TextVQA read from local Hugging Face datasets in the lmms-lab layouts (images embedded), as an
alternative to LLaVA's question JSONL + image folder + annotation JSON.

A dataset is a ``.parquet`` file, a folder of parquet files (a hub download: ``<split>-00000-of-0000N.parquet``
names; with several splits in one folder ``split`` picks one), or a ``save_to_disk`` folder.

lmms-lab/GQA (config ``testdev_balanced_instructions``, split ``testdev``): one row per question.
  used for inference: ``id``, ``imageId``, ``question``;
  used for scoring:   ``answer``, ``isBalanced``, ``types`` {structural, semantic, detailed}, ``groups``
                      {global, local}, ``semantic`` [{operation, argument, dependencies}]; optional
                      ``entailed``, ``equivalent`` (consistency), ``annotations``, ``fullAnswer``.
  Images come from the config ``testdev_balanced_images`` (``id`` = imageId, ``image``), found beside the
  instructions (``..._instructions`` -> ``..._images``) unless given, or from an ``image`` column of the
  instructions themselves (a joined dataset).
lmms-lab/textvqa (split ``validation``): one row per question.
  used for inference: ``question_id``, ``image_id``, ``question``, ``image``; ``ocr_tokens`` for the
  prompt with OCR tokens; used for scoring: ``answers`` (10 per question).

The prompts are LLaVA-1.5's question files' (the answers files then have the same rows, so the scores are
those of the JSONL path): GQA ``question + "\\nAnswer the question using a single word or phrase."``;
TextVQA the question with its first letter upper-cased, then (unless no OCR) ``"\\nReference OCR token: "``
+ the ``ocr_tokens`` joined by ``", "``, then the same instruction. TextVQA rows take LLaVA's ids
(``question_id`` = image id) and carry ``textvqa_question_id``, by which the scorer matches them.

Robustness (the hub's serialisations): ``entailed`` / ``equivalent`` may be lists or strings holding a list
(JSON or Python literal) or comma-separated ids; ``annotations`` parts may be GQA's ``{position: objectId}``
mappings or lists of ``{objectId, value}`` (read as ``{value: objectId}``); ``image`` may be a decoded
``Image`` feature, a ``{bytes, path}`` struct (parquet without Hugging Face metadata) or raw bytes.
"""

from __future__ import annotations

import ast
import io
import json
import os
import re
from pathlib import Path
from typing import Any

import datasets
from PIL import Image

GQA_SUFFIX = "\nAnswer the question using a single word or phrase."
OCR_PREFIX = "\nReference OCR token: "
GQA_QUESTION_COLUMNS = ("id", "imageId", "question")
GQA_SCORE_COLUMNS = ("answer", "isBalanced", "types", "groups", "semantic")
GQA_IMAGE_COLUMNS = ("id", "image")
TEXTVQA_QUESTION_COLUMNS = ("question_id", "image_id", "question", "image")
TEXTVQA_SCORE_COLUMNS = ("answers",)
SAVED_MARKERS = ("dataset_info.json", "state.json", "dataset_dict.json")


def load_local_dataset(path: str | os.PathLike, split: str | None = None) -> datasets.Dataset:
    """One split of a local dataset: a parquet file, a folder of parquet files, or a ``save_to_disk`` folder."""
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"{path}: no such file or folder")
    if p.is_dir() and any((p / m).exists() for m in SAVED_MARKERS):
        loaded = datasets.load_from_disk(str(p))
        if isinstance(loaded, datasets.DatasetDict):
            return loaded[_pick_split(path, list(loaded), split)]
        return loaded
    files = [p] if p.is_file() else sorted(p.rglob("*.parquet"))
    if not files or any(f.suffix != ".parquet" for f in files):
        raise ValueError(f"{path}: expected a .parquet file, a folder of parquet files or a save_to_disk folder")
    by_split: dict[str, list[Path]] = {}
    for f in files:
        by_split.setdefault(f.name.split("-")[0] if "-" in f.name else "", []).append(f)
    if len(by_split) > 1:
        files = by_split[_pick_split(path, sorted(by_split), split)]
    return datasets.Dataset.from_parquet([str(f) for f in files])


def _pick_split(path: str | os.PathLike, splits: list[str], split: str | None) -> str:
    if split is not None:
        if split not in splits:
            raise ValueError(f"{path}: no split {split!r}; it has {splits}")
        return split
    if len(splits) != 1:
        raise ValueError(f"{path}: several splits {splits}; choose one with --split")
    return splits[0]


def require_columns(dataset: datasets.Dataset, columns: tuple[str, ...], path: str | os.PathLike, layout: str) -> None:
    missing = [c for c in columns if c not in dataset.column_names]
    if missing:
        raise ValueError(
            f"{path}: missing column(s) {missing} of the {layout} layout (it has {sorted(dataset.column_names)})"
        )


def text_rows(dataset: datasets.Dataset) -> list[dict[str, Any]]:
    """Every row as a dict, without the (large) image column."""
    return dataset.remove_columns([c for c in ("image",) if c in dataset.column_names]).to_list()


def to_image(value: Any, where: str) -> Image.Image:
    if isinstance(value, Image.Image):
        return value.convert("RGB")
    data = value.get("bytes") if isinstance(value, dict) else value
    if isinstance(value, dict) and not data and value.get("path"):
        with Image.open(value["path"]) as im:
            return im.convert("RGB")
    if not isinstance(data, (bytes, bytearray)):
        raise ValueError(f"{where}: no image data (got {type(value).__name__})")
    with Image.open(io.BytesIO(data)) as im:
        return im.convert("RGB")


class EmbeddedImages:
    """Images embedded in a dataset, found by an id column: called with a question row (its ``image`` key)."""

    def __init__(self, dataset: datasets.Dataset, id_column: str, source: str | os.PathLike) -> None:
        self.source = str(source)
        self.row_of: dict[str, int] = {}
        for i, key in enumerate(dataset[id_column]):
            self.row_of.setdefault(str(key), i)
        self.images = dataset.select_columns(["image"])

    def __call__(self, row: dict[str, Any]) -> Image.Image:
        index = self.row_of.get(str(row["image"]))
        where = f"{self.source}: image {row['image']!r} (question {row['question_id']!r})"
        if index is None:
            raise ValueError(f"{where}: not in the dataset")
        return to_image(self.images[index]["image"], where)


def id_list(value: Any) -> list[str]:
    """Question ids from a list, a string holding a list (JSON or Python literal), or comma-separated ids."""
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        return [str(v) for v in value]
    text = str(value).strip()
    if not text:
        return []
    for parse in (json.loads, ast.literal_eval):
        try:
            parsed = parse(text)
        except (ValueError, SyntaxError):
            continue
        return [str(v) for v in parsed] if isinstance(parsed, (list, tuple)) else [str(parsed)]
    return [t for t in re.split(r"[\s,\[\]'\"]+", text) if t]


def object_map(value: Any) -> dict[str, str]:
    """A GQA annotation part as ``{position: objectId}``, from a mapping or a list of ``{objectId, value}``."""
    if not value:
        return {}
    if isinstance(value, dict):
        return {str(k): str(v) for k, v in value.items()}
    return {str(item.get("value", i)): str(item["objectId"]) for i, item in enumerate(value)}


def gqa_question(row: dict[str, Any]) -> dict[str, Any]:
    """A row of the lmms-lab layout as an entry of GQA's questions JSON (what ``gqa_metrics`` reads)."""
    return {
        "question": row["question"],
        "answer": row["answer"],
        "fullAnswer": row.get("fullAnswer"),
        "imageId": str(row["imageId"]),
        "isBalanced": bool(row["isBalanced"]),
        "types": dict(row["types"]),
        "groups": dict(row["groups"]),
        "entailed": id_list(row.get("entailed")),
        "equivalent": id_list(row.get("equivalent")),
        "semantic": [{**op, "dependencies": list(op.get("dependencies") or [])} for op in row["semantic"]],
        "annotations": {k: object_map(v) for k, v in (row.get("annotations") or {}).items()},
    }


def gqa_images_path(instructions: str | os.PathLike) -> Path:
    """The ``..._images`` config beside a ``..._instructions`` one (the hub's folder layout)."""
    text = str(instructions)
    head, sep, tail = text.rpartition("_instructions")
    return Path(head + "_images" + tail) if sep else Path(text)


class GqaDataset:
    """lmms-lab/GQA instructions (+ images): question rows for the runner, questions for the scorer."""

    def __init__(self, path: str | os.PathLike, images: str | os.PathLike | None = None, split: str | None = None):
        self.path, self.images_path, self.split = path, images, split
        self.dataset = load_local_dataset(path, split)
        require_columns(self.dataset, GQA_QUESTION_COLUMNS, path, "lmms-lab/GQA instructions")

    def rows(self) -> list[dict[str, Any]]:
        return [
            {
                "question_id": str(r["id"]),
                "image": str(r["imageId"]),
                "text": r["question"] + GQA_SUFFIX,
                "category": "default",
            }
            for r in text_rows(self.dataset.select_columns(list(GQA_QUESTION_COLUMNS)))
        ]

    def image_source(self) -> EmbeddedImages:
        if "image" in self.dataset.column_names:
            return EmbeddedImages(self.dataset, "imageId", self.path)
        path = self.images_path or gqa_images_path(self.path)
        if not Path(path).exists():
            raise FileNotFoundError(
                f"{self.path} has no image column and {path} does not exist: pass the images config "
                "(lmms-lab/GQA testdev_balanced_images) with --dataset-images"
            )
        images = load_local_dataset(path, self.split)
        require_columns(images, GQA_IMAGE_COLUMNS, path, "lmms-lab/GQA images")
        return EmbeddedImages(images, "id", path)

    def questions(self) -> dict[str, dict[str, Any]]:
        require_columns(self.dataset, GQA_SCORE_COLUMNS, self.path, "lmms-lab/GQA instructions")
        return {str(r["id"]): gqa_question(r) for r in text_rows(self.dataset)}


class TextVqaDataset:
    """lmms-lab/textvqa: question rows for the runner (with or without OCR tokens), annotations for the scorer."""

    def __init__(self, path: str | os.PathLike, split: str | None = None, ocr: bool = True) -> None:
        self.path, self.ocr = path, ocr
        self.dataset = load_local_dataset(path, split)
        require_columns(self.dataset, TEXTVQA_QUESTION_COLUMNS, path, "lmms-lab/textvqa")

    def rows(self) -> list[dict[str, Any]]:
        columns = ["question_id", "image_id", "question"] + (["ocr_tokens"] if self.ocr else [])
        if self.ocr:
            require_columns(self.dataset, ("ocr_tokens",), self.path, "lmms-lab/textvqa (prompts with OCR tokens)")
        rows = []
        for r in text_rows(self.dataset.select_columns(columns)):
            text = r["question"][:1].upper() + r["question"][1:]
            if self.ocr:
                text += OCR_PREFIX + ", ".join(r["ocr_tokens"] or [])
            rows.append(
                {
                    "question_id": str(r["image_id"]),
                    "image": str(r["image_id"]),
                    "text": text + GQA_SUFFIX,
                    "category": "default",
                    "textvqa_question_id": r["question_id"],
                }
            )
        return rows

    def image_source(self) -> EmbeddedImages:
        return EmbeddedImages(self.dataset, "image_id", self.path)

    def annotations(self) -> list[dict[str, Any]]:
        require_columns(self.dataset, TEXTVQA_SCORE_COLUMNS, self.path, "lmms-lab/textvqa")
        keep = ["question_id", "image_id", "question", "answers"]
        return text_rows(self.dataset.select_columns(keep))
