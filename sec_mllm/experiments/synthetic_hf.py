"""The synthetic benchmark's GQA and TextVQA test sets in the Hugging Face layouts of lmms-lab/GQA and
lmms-lab/textvqa (parquet, images embedded), laid out as the hub's files are:

    <root>/hf/GQA/testdev_balanced_instructions/testdev-00000-of-00001.parquet
    <root>/hf/GQA/testdev_balanced_images/testdev-00000-of-00001.parquet
    <root>/hf/textvqa/data/validation-00000-of-00001.parquet

    python -m sec_mllm.experiments.synthetic_hf --root data/synthetic     # after experiments.synthetic

The rows hold what the JSONL + JSON files of experiments/synthetic.py hold, in the lmms-lab columns and
types (evaluation/hf_sets.py lists the columns it reads): images are the same files' bytes; GQA's
``entailed`` / ``equivalent`` are strings holding a JSON list and ``annotations`` lists of ``{objectId,
value}``, as the hub stores them; TextVQA's ``ocr_tokens`` are the simulated OCR tokens of the OCR question
file, ``question`` the annotation's (lower-case) question. Questions keep the question files' order.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import datasets

from ..evaluation.textvqa import OCR_LINE
from ..files import iter_jsonl, read_json

STRING, INT32, BOOL = datasets.Value("string"), datasets.Value("int32"), datasets.Value("bool")
OBJECTS = datasets.List({"objectId": STRING, "value": STRING})
GQA_INSTRUCTIONS = datasets.Features(
    {
        "id": STRING,
        "imageId": STRING,
        "question": STRING,
        "answer": STRING,
        "fullAnswer": STRING,
        "isBalanced": BOOL,
        "groups": {"global": STRING, "local": STRING},
        "entailed": STRING,
        "equivalent": STRING,
        "types": {"structural": STRING, "semantic": STRING, "detailed": STRING},
        "annotations": {"answer": OBJECTS, "fullAnswer": OBJECTS, "question": OBJECTS},
        "semantic": datasets.List({"operation": STRING, "argument": STRING, "dependencies": datasets.List(INT32)}),
        "semanticStr": STRING,
    }
)
GQA_IMAGES = datasets.Features({"id": STRING, "image": datasets.Image()})
TEXTVQA = datasets.Features(
    {
        "image_id": STRING,
        "question_id": INT32,
        "question": STRING,
        "question_tokens": datasets.List(STRING),
        "image": datasets.Image(),
        "image_width": INT32,
        "image_height": INT32,
        "flickr_original_url": STRING,
        "flickr_300k_url": STRING,
        "answers": datasets.List(STRING),
        "image_classes": datasets.List(STRING),
        "set_name": STRING,
        "ocr_tokens": datasets.List(STRING),
    }
)


def _objects(mapping: dict[str, str]) -> list[dict[str, str]]:
    return [{"objectId": obj, "value": position} for position, obj in mapping.items()]


def _embedded(path: Path) -> dict[str, Any]:
    return {"bytes": path.read_bytes(), "path": path.name}


def gqa_tables(root: Path) -> tuple[datasets.Dataset, datasets.Dataset]:
    """(instructions, images) of the synthetic Shapes-GQA test set."""
    questions = read_json(root / "gqa" / "data" / "testdev_balanced_questions.json")
    rows = []
    for _, line in iter_jsonl(root / "gqa" / "llava_gqa_testdev_balanced.jsonl"):
        q = questions[line["question_id"]]
        rows.append(
            {
                "id": line["question_id"],
                "imageId": q["imageId"],
                "question": q["question"],
                "answer": q["answer"],
                "fullAnswer": q["fullAnswer"],
                "isBalanced": q["isBalanced"],
                "groups": q["groups"],
                "entailed": json.dumps(q["entailed"]),
                "equivalent": json.dumps(q["equivalent"]),
                "types": q["types"],
                "annotations": {k: _objects(q["annotations"][k]) for k in ("answer", "fullAnswer", "question")},
                "semantic": q["semantic"],
                "semanticStr": q.get("semanticStr", ""),
            }
        )
    image_ids = sorted({r["imageId"] for r in rows})
    folder = root / "gqa" / "data" / "images"
    images = [{"id": i, "image": _embedded(folder / f"{i}.jpg")} for i in image_ids]
    return (
        datasets.Dataset.from_list(rows, features=GQA_INSTRUCTIONS),
        datasets.Dataset.from_list(images, features=GQA_IMAGES),
    )


def textvqa_table(root: Path) -> datasets.Dataset:
    """The synthetic Rendered-TextVQA test set (validation split)."""
    data = {d["question_id"]: d for d in read_json(root / "textvqa" / "TextVQA_0.5.1_val.json")["data"]}
    rows = []
    for _, line in iter_jsonl(root / "textvqa" / "llava_textvqa_val_v051_ocr.jsonl"):
        d = data[line["textvqa_question_id"]]
        ocr_line = next(part for part in line["text"].split("\n") if part.startswith(OCR_LINE))
        tokens = ocr_line[len(OCR_LINE) :]
        rows.append(
            {
                **{k: d[k] for k in TEXTVQA if k not in ("image", "ocr_tokens")},
                "image": _embedded(root / "textvqa" / "train_images" / line["image"]),
                "ocr_tokens": tokens.split(", ") if tokens else [],
            }
        )
    return datasets.Dataset.from_list(rows, features=TEXTVQA)


def write_hf_layouts(root: str | Path) -> Path:
    """Write both sets under ``<root>/hf`` (see the module docstring); returns that folder."""
    root = Path(root)
    out = root / "hf"
    instructions, images = gqa_tables(root)
    files = {
        out / "GQA" / "testdev_balanced_instructions" / "testdev-00000-of-00001.parquet": instructions,
        out / "GQA" / "testdev_balanced_images" / "testdev-00000-of-00001.parquet": images,
        out / "textvqa" / "data" / "validation-00000-of-00001.parquet": textvqa_table(root),
    }
    for path, table in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        table.to_parquet(str(path))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", required=True, help="a folder written by python -m sec_mllm.experiments.synthetic")
    print(f"wrote {write_hf_layouts(parser.parse_args().root)}")


if __name__ == "__main__":
    main()
