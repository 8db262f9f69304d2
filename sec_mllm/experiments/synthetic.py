"""Synthetic GQA- and TextVQA-format benchmark with LLaVA-format training splits (Shapes-GQA and
Rendered-TextVQA; see synthetic_shapes.py and synthetic_text.py for what the images and questions are).

    python -m sec_mllm.experiments.synthetic --out data/synthetic --seed 0

writes, in the layouts the real benchmarks and LLaVA use:

    gqa/llava_gqa_testdev_balanced.jsonl         LLaVA question file (with GQA's instruction suffix)
    gqa/data/images/n<id>.jpg                    JPEG quality 95
    gqa/data/testdev_balanced_questions.json     GQA questions keyed by id (types, groups, isBalanced, stratum)
    gqa/data/testdev_all_questions.json          (+ testdev_balanced_all_questions.json, the same content)
    gqa/data/testdev_balanced_choices.json       valid / plausible answers (validity, plausibility)
    gqa/data/testdev_balanced_sceneGraphs.json   GQA scene-graph schema (grounding)
    textvqa/TextVQA_0.5.1_val.json               TextVQA annotations (10 answers each, stratum, clean flag)
    textvqa/train_images/<image_id>.png          PNG: JPEG would blur small glyphs
    textvqa/llava_textvqa_val_v051_ocr.jsonl     LLaVA question file with simulated OCR tokens
    textvqa/llava_textvqa_val_v051_noocr.jsonl   the same without OCR tokens (use this for compression studies)
    train/images/*                               training images
    train/captions.json                          stage 1, LLaVA's 558K caption format
    train/instructions.json                      stage 2, LLaVA's mix665k format (multi-turn and text-only samples)
    train/patch_labels.json                      per-patch ground truth of every training image (patch_labels.py)

Deterministic per seed: every split draws from its own generator seeded by (seed, split name).
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm import tqdm

from ..files import write_json_atomic
from . import patch_labels
from . import synthetic_shapes as shapes
from . import synthetic_text as text
from .follow_ups import SHAPES_ANSWERS, SIGNS_ANSWERS, ask_shapes, ask_signs, follow_ups

SUFFIX = "\nAnswer the question using a single word or phrase."
DESCRIBE = "Describe the image briefly."
CAPTION_PROMPTS = ("Describe the image briefly.", "What is in the picture?", "Give a short description of the image.")


@dataclass
class SyntheticSizes:
    gqa_test: int = 600
    textvqa_test: int = 400
    gqa_train: int = 6000
    textvqa_train: int = 4000
    captions: int = 4000
    text_only: int = 100
    # The first N training questions of each benchmark go on with a request to describe the image (as LLaVA's
    # detailed-description samples); no random draw, so the rest of the data does not change with N.
    descriptions: int = 0
    # Questions per training image (at most): the answer-first one, then up to turns - 1 follow-ups about the picture
    # (follow_ups.py; drawn from their own random stream, so the rest of the data does not change with turns).
    turns: int = 1


def _jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def write_gqa_test(root: Path, n: int, seed: int) -> None:
    rng = random.Random(f"{seed}-gqa-test")
    images = root / "gqa" / "data" / "images"
    images.mkdir(parents=True, exist_ok=True)
    questions, rows, choices, scenes = {}, [], {}, {}
    for i in tqdm(range(n), desc="Shapes-GQA test", leave=False):
        family, answer, scene, question, stratum, program = shapes.sample_question(rng)
        image_id, qid = f"n{100000 + i}", str(200000000 + i)
        shapes.render(scene, rng).save(images / f"{image_id}.jpg", quality=95)
        record = shapes.gqa_record(family, question, answer, image_id, qid, stratum, program)
        if stratum.get("target") is not None:
            record["annotations"]["question"] = {str(len(question.split()) - 1): str(stratum["target"])}
        questions[qid] = record
        valid = list(shapes.ANSWERS[family])
        plausible = [answer] + rng.sample([a for a in valid if a != answer], min(2, len(valid) - 1))
        choices[qid] = {"valid": valid, "plausible": plausible}
        scenes[image_id] = shapes.scene_graph(scene)
        rows.append({"question_id": qid, "image": f"{image_id}.jpg", "text": question + SUFFIX, "category": "default"})
    data = root / "gqa" / "data"
    _jsonl(root / "gqa" / "llava_gqa_testdev_balanced.jsonl", rows)
    for name in (
        "testdev_balanced_questions.json",
        "testdev_all_questions.json",
        "testdev_balanced_all_questions.json",
    ):
        write_json_atomic(data / name, questions)
    write_json_atomic(data / "testdev_balanced_choices.json", choices)
    write_json_atomic(data / "testdev_balanced_sceneGraphs.json", scenes)


def write_textvqa_test(root: Path, n: int, seed: int) -> None:
    rng = random.Random(f"{seed}-textvqa-test")
    folder = root / "textvqa" / "train_images"
    folder.mkdir(parents=True, exist_ok=True)
    data, ocr_rows, plain_rows = [], [], []
    for i in tqdm(range(n), desc="Rendered-TextVQA test", leave=False):
        family, answer, signs, question, stratum = text.sample_text_question(rng)
        image_id = f"{rng.getrandbits(64):016x}"
        text.render(signs, rng).save(folder / f"{image_id}.png")
        answers, clean = text.annotator_answers(answer, rng, text.plausible_wrong(family, answer))
        qid = 30000 + i
        data.append(
            {
                "question": question.lower(),
                "image_id": image_id,
                "image_classes": ["sign"],
                "flickr_original_url": "",
                "flickr_300k_url": "",
                "image_width": text.CANVAS,
                "image_height": text.CANVAS,
                "answers": answers,
                "question_tokens": question.lower().rstrip("?").split(),
                "question_id": qid,
                "set_name": "val",
                "stratum": stratum,
                "clean": clean,
            }
        )
        ocr = ", ".join(text.simulated_ocr(signs, rng))
        base = {"question_id": image_id, "image": f"{image_id}.png", "category": "default", "textvqa_question_id": qid}
        ocr_rows.append({**base, "text": f"{question}\nReference OCR token: {ocr}{SUFFIX}"})
        plain_rows.append({**base, "text": question + SUFFIX})
    write_json_atomic(
        root / "textvqa" / "TextVQA_0.5.1_val.json",
        {"dataset_type": "val", "dataset_name": "textvqa", "dataset_version": "0.5.1", "data": data},
    )
    _jsonl(root / "textvqa" / "llava_textvqa_val_v051_ocr.jsonl", ocr_rows)
    _jsonl(root / "textvqa" / "llava_textvqa_val_v051_noocr.jsonl", plain_rows)


def write_training(root: Path, sizes: SyntheticSizes, seed: int) -> None:
    rng = random.Random(f"{seed}-train")
    turn_rng = random.Random(f"{seed}-train-turns")  # follow-up questions only
    folder = root / "train" / "images"
    folder.mkdir(parents=True, exist_ok=True)
    captions, instructions = [], []
    labels: dict[str, dict[str, Any]] = {}  # image file -> per-patch ground truth (patch_labels.py)

    def human(question: str) -> dict[str, str]:
        return {"from": "human", "value": question}

    for i in tqdm(range(sizes.captions), desc="captions", leave=False):
        if rng.random() < 0.6:
            _, _, scene, _, _, _ = shapes.sample_question(rng)
            image, words = shapes.render(scene, rng), shapes.caption(scene)
            labels[f"cap{i}.png"] = patch_labels.shapes_labels(scene)
        else:
            _, _, signs, _, _ = text.sample_text_question(rng)
            image = text.render(signs, rng)
            labels[f"cap{i}.png"] = patch_labels.text_labels(signs)
            words = text.caption(signs)
        image.save(folder / f"cap{i}.png")
        captions.append(
            {
                "id": f"cap{i}",
                "image": f"cap{i}.png",
                "conversations": [human(rng.choice(CAPTION_PROMPTS) + "\n<image>"), {"from": "gpt", "value": words}],
            }
        )
    for i in tqdm(range(sizes.gqa_train), desc="Shapes-GQA train", leave=False):
        _, answer, scene, question, _, _ = shapes.sample_question(rng)
        shapes.render(scene, rng).save(folder / f"gqa{i}.png")
        labels[f"gqa{i}.png"] = patch_labels.shapes_labels(scene)
        turns = [human("<image>\n" + question + SUFFIX), {"from": "gpt", "value": answer}]
        for q, a in follow_ups(ask_shapes, SHAPES_ANSWERS, scene, turn_rng, sizes.turns - 1, {question}):
            turns += [human(q + SUFFIX), {"from": "gpt", "value": a}]
        if rng.random() < 0.2:
            turns += [
                human("How many objects are in the picture?" + SUFFIX),
                {"from": "gpt", "value": str(len(scene.objects))},
            ]
        if i < sizes.descriptions:
            turns += [human(DESCRIBE), {"from": "gpt", "value": shapes.caption(scene)}]
        instructions.append({"id": f"gqa{i}", "image": f"gqa{i}.png", "conversations": turns})
    for i in range(sizes.textvqa_train):
        _, answer, signs, question, _ = text.sample_text_question(rng)
        text.render(signs, rng).save(folder / f"text{i}.png")
        labels[f"text{i}.png"] = patch_labels.text_labels(signs)
        turns = [human("<image>\n" + question + SUFFIX), {"from": "gpt", "value": answer}]
        for q, a in follow_ups(ask_signs, SIGNS_ANSWERS, signs, turn_rng, sizes.turns - 1, {question}):
            turns += [human(q + SUFFIX), {"from": "gpt", "value": a}]
        if i < sizes.descriptions:
            turns += [human(DESCRIBE), {"from": "gpt", "value": text.caption(signs)}]
        instructions.append({"id": f"text{i}", "image": f"text{i}.png", "conversations": turns})
    for i in range(sizes.text_only):
        a, b = rng.sample(range(10), 2)
        instructions.append(
            {
                "id": f"plain{i}",
                "conversations": [
                    human(f"Is {a} larger than {b}?" + SUFFIX),
                    {"from": "gpt", "value": "yes" if a > b else "no"},
                ],
            }
        )
    rng.shuffle(instructions)
    write_json_atomic(root / "train" / "captions.json", captions)
    write_json_atomic(root / "train" / "instructions.json", instructions)
    write_json_atomic(root / "train" / "patch_labels.json", labels)


def generate(out: str, sizes: SyntheticSizes = SyntheticSizes(), seed: int = 0) -> Path:
    """Write the whole benchmark under ``out`` (replacing an earlier one)."""
    root = Path(out)
    for part in ("gqa", "textvqa", "train"):
        shutil.rmtree(root / part, ignore_errors=True)
    write_gqa_test(root, sizes.gqa_test, seed)
    write_textvqa_test(root, sizes.textvqa_test, seed)
    write_training(root, sizes, seed)
    return root


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True)
    parser.add_argument("--seed", type=int, default=0)
    for field_name, value in vars(SyntheticSizes()).items():
        parser.add_argument(f"--{field_name.replace('_', '-')}", type=int, default=value)
    args = parser.parse_args()
    if args.turns <= 0:
        parser.error(f"--turns must be > 0, got {args.turns}")
    sizes = SyntheticSizes(**{k: getattr(args, k) for k in vars(SyntheticSizes())})
    print(f"wrote {generate(args.out, sizes, args.seed)}")


if __name__ == "__main__":
    main()
