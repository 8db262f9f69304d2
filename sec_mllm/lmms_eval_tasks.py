"""lmms-eval tasks over GQA / TextVQA files on disk, and lmms-eval's answers as a LLaVA answers file.

    python -m sec_mllm.lmms_eval_tasks write --out tasks/ \
        --gqa-questions gqa/testdev_balanced_questions.json --gqa-images gqa/images \
        --textvqa-annotations textvqa/TextVQA_0.5.1_val.json --textvqa-images textvqa/train_images
    lmms-eval --model sec_mllm --model_args pretrained=CKPT --include_path tasks/ \
        --tasks gqa_local,textvqa_val_local --output_path logs/ --log_samples
    python -m sec_mllm.lmms_eval_tasks answers --samples logs/.../*_samples_gqa_local.jsonl \
        --task-data tasks/gqa_local.jsonl --out gqa_answers.jsonl
    python eval/gqa.py --answers-file gqa_answers.jsonl --questions gqa/testdev_balanced_questions.json

lmms-eval's own ``gqa`` and ``textvqa_val`` read their data from the Hugging Face hub. The tasks written here
``include`` lmms-eval's installed ``gqa.yaml`` and ``textvqa_val.yaml`` (prompt, generation settings,
post-processing and metric are lmms-eval's, unchanged) and replace only where the documents and images come
from: a JSONL beside the YAML (``dataset_path: json``) and ``utils.doc_to_visual``, which opens the image
file the row names. They are named ``gqa_local`` / ``textvqa_val_local`` because lmms-eval's built-in
task names win over tasks of the same name under ``--include_path``. Used on the synthetic Shapes-GQA /
Rendered-TextVQA (``sec_mllm.experiments.synthetic``) and on the real files alike.

Protocols differ (so the numbers are not interchangeable): lmms-eval scores GQA as exact match after
strip, lower case and deleting every ASCII punctuation character, over all documents given;
LLaVA / ``eval/gqa.py`` strips trailing periods, lower-cases and runs the official eval.py over the
balanced questions. lmms-eval's TextVQA uses the same EvalAI normalisation and VQA accuracy as
``eval/textvqa.py`` but its prompt is ``question.capitalize()`` without OCR tokens.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
from pathlib import Path
from typing import Any

from .files import iter_jsonl, read_json, require_keys, write_text_atomic

GQA_TASK = "gqa_local"
TEXTVQA_TASK = "textvqa_val_local"
UTILS = '''"""Images of the local lmms-eval tasks written by sec_mllm.lmms_eval_tasks: a row names its file."""

from PIL import Image


def doc_to_visual(doc):
    with Image.open(doc["image"]) as image:
        return [image.convert("RGB")]
'''


def lmms_eval_task_yaml(relative: str) -> Path:
    """A task YAML of the installed lmms-eval (``gqa/gqa.yaml``), located without importing lmms-eval."""
    spec = importlib.util.find_spec("lmms_eval")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit('lmms-eval is not installed: pip install -e ".[lmms]"')
    path = Path(next(iter(spec.submodule_search_locations))) / "tasks" / relative
    if not path.is_file():
        raise SystemExit(f"the installed lmms-eval has no {relative} (lmms-eval >= 0.7.3 ships it): {path}")
    return path


def _task_yaml(include: Path, task: str, split: str, data_file: str, extra: str = "") -> str:
    return (
        f"# Written by sec_mllm.lmms_eval_tasks: lmms-eval's own task, documents and images from local files.\n"
        f"include: {include}\n"
        f"task: {task}\n"
        f"dataset_path: json\n"
        f"dataset_kwargs:\n"
        f"  data_files:\n"
        f"    {split}: {data_file}\n"
        f"doc_to_visual: !function utils.doc_to_visual\n{extra}"
    )


def _jsonl(rows: list[dict[str, Any]]) -> str:
    return "".join(json.dumps(r) + "\n" for r in rows)


def gqa_rows(questions_file: str, image_folder: str) -> list[dict[str, Any]]:
    """Balanced questions of a GQA questions JSON as lmms-eval's GQA documents (plus the image path)."""
    questions = read_json(questions_file)
    if not isinstance(questions, dict):
        raise SystemExit(f"{questions_file}: expected a JSON object keyed by question id")
    rows = []
    for qid, q in questions.items():
        require_keys(q, ("question", "answer", "imageId"), f"{questions_file}: question {qid}")
        if not q.get("isBalanced", True):
            continue
        image = Path(image_folder) / f"{q['imageId']}.jpg"
        if not image.is_file():
            raise SystemExit(f"{questions_file}: question {qid}: image {image} does not exist")
        rows.append(
            {
                "question_id": str(qid),
                "question": q["question"],
                "answer": q["answer"],
                "imageId": q["imageId"],
                "image": str(image.resolve()),
            }
        )
    return rows


def textvqa_rows(annotation_file: str, image_folder: str) -> list[dict[str, Any]]:
    """A TextVQA annotation JSON as lmms-eval's TextVQA documents (plus the image path)."""
    data = read_json(annotation_file)
    if not isinstance(data, dict) or "data" not in data:
        raise SystemExit(f"{annotation_file}: expected TextVQA's {{'data': [...]}}")
    rows = []
    for i, q in enumerate(data["data"]):
        require_keys(q, ("question", "answers", "image_id", "question_id"), f"{annotation_file}: data[{i}]")
        matches = sorted(Path(image_folder).glob(f"{q['image_id']}.*"))
        if not matches:
            raise SystemExit(
                f"{annotation_file}: question {q['question_id']}: no image {q['image_id']}.* in {image_folder}"
            )
        rows.append(
            {
                "question_id": q["question_id"],
                "question": q["question"],
                "answers": list(q["answers"]),
                "image_id": q["image_id"],
                "image": str(matches[0].resolve()),
            }
        )
    return rows


def write_tasks(
    out: str,
    gqa: tuple[str, str] | None = None,
    textvqa: tuple[str, str] | None = None,
) -> list[str]:
    """Write the local tasks (``gqa``: questions JSON + image folder; ``textvqa``: annotations + images) into
    ``out``; returns the task names. Every file is written atomically."""
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    names = []
    if gqa:
        rows = gqa_rows(*gqa)
        write_text_atomic(folder / f"{GQA_TASK}.jsonl", _jsonl(rows))
        yaml = _task_yaml(
            lmms_eval_task_yaml("gqa/gqa.yaml"),
            GQA_TASK,
            "testdev",
            f"{GQA_TASK}.jsonl",
            "dataset_name: null\nprocess_docs: null  # upstream joins images from the hub; ours name their file\n",
        )
        write_text_atomic(folder / f"{GQA_TASK}.yaml", yaml)
        names.append(GQA_TASK)
    if textvqa:
        rows = textvqa_rows(*textvqa)
        write_text_atomic(folder / f"{TEXTVQA_TASK}.jsonl", _jsonl(rows))
        yaml = _task_yaml(
            lmms_eval_task_yaml("textvqa/textvqa_val.yaml"), TEXTVQA_TASK, "validation", f"{TEXTVQA_TASK}.jsonl"
        )
        write_text_atomic(folder / f"{TEXTVQA_TASK}.yaml", yaml)
        names.append(TEXTVQA_TASK)
    if not names:
        raise SystemExit("nothing to write: give the GQA and/or the TextVQA files")
    write_text_atomic(folder / "utils.py", UTILS)
    return names


def samples_to_llava_answers(
    samples_file: str, task_data_file: str, answers_file: str, model_id: str = "sec_mllm"
) -> int:
    """lmms-eval's ``--log_samples`` JSONL of a local GQA / TextVQA task -> a LLaVA answers JSONL
    (``question_id``, ``prompt``, ``text``), so that eval/gqa.py and eval/textvqa.py score exactly the answers
    lmms-eval scored. A sample names its document by ``doc_id``, the row index in the task's JSONL
    (``task_data_file``); the answer is the filtered response, stripped as lmms-eval strips it before its
    metric. Returns the number of rows."""
    docs = [doc for _, doc in iter_jsonl(task_data_file)]
    rows = []
    for lineno, sample in iter_jsonl(samples_file):
        where = f"{samples_file}:{lineno}"
        require_keys(sample, ("doc_id", "filtered_resps"), where)
        if not 0 <= sample["doc_id"] < len(docs):
            raise SystemExit(f"{where}: doc_id {sample['doc_id']} is not a row of {task_data_file} ({len(docs)} rows)")
        doc = docs[sample["doc_id"]]
        response = sample["filtered_resps"]
        while isinstance(response, list):
            if len(response) != 1:
                raise SystemExit(f"{where}: expected one response, got {len(response)}")
            response = response[0]
        row = {"question_id": doc["question_id"], "prompt": doc["question"], "text": str(response).strip()}
        if "image_id" in doc:  # TextVQA: eval/textvqa.py matches by the TextVQA question id when a row carries it
            row["textvqa_question_id"] = doc["question_id"]
        rows.append({**row, "model_id": model_id, "metadata": {"source": "lmms-eval", "doc_id": sample["doc_id"]}})
    write_text_atomic(Path(answers_file), _jsonl(rows))
    return len(rows)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    write = commands.add_parser("write", help="write local lmms-eval tasks")
    write.add_argument("--out", required=True)
    write.add_argument("--gqa-questions", help="testdev_balanced_questions.json")
    write.add_argument("--gqa-images", help="folder of <imageId>.jpg")
    write.add_argument("--textvqa-annotations", help="TextVQA_0.5.1_val.json")
    write.add_argument("--textvqa-images", help="folder of <image_id>.*")
    answers = commands.add_parser("answers", help="lmms-eval samples JSONL -> LLaVA answers JSONL")
    answers.add_argument("--samples", required=True, help="<timestamp>_samples_<task>.jsonl of --log_samples")
    answers.add_argument("--task-data", required=True, help="the task's JSONL (tasks/gqa_local.jsonl)")
    answers.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    if args.command == "write":
        for flag, pair in (
            ("--gqa-", (args.gqa_questions, args.gqa_images)),
            ("--textvqa-", (args.textvqa_annotations, args.textvqa_images)),
        ):
            if bool(pair[0]) != bool(pair[1]):
                parser.error(f"{flag}* flags come in pairs (the questions / annotations and the image folder)")
        names = write_tasks(
            args.out,
            (args.gqa_questions, args.gqa_images) if args.gqa_questions else None,
            (args.textvqa_annotations, args.textvqa_images) if args.textvqa_annotations else None,
        )
        print(f"wrote tasks {', '.join(names)} to {args.out}: lmms-eval ... --include_path {args.out}")
    else:
        count = samples_to_llava_answers(args.samples, args.task_data, args.out)
        print(f"wrote {count} answers to {args.out}")


if __name__ == "__main__":
    main()
