"""End to end: a tiny saved model answers GQA- and TextVQA-format files through eval/, resumably."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from sec_mllm.evaluation.runner import InferenceSettings, generate_answers, load_questions, read_done

ROOT = Path(__file__).resolve().parents[1]
SUFFIX = "\nAnswer the question using a single word or phrase."


@pytest.fixture
def gqa_files(tmp_path, images):
    folder = tmp_path / "images"
    folder.mkdir()
    questions, rows = {}, []
    for i in range(5):
        images[i % 3].save(folder / f"n{i}.jpg", quality=95)
        qid = str(201307251 + i)
        questions[qid] = {
            "question": f"Is there a circle number {i}?",
            "answer": "yes",
            "imageId": f"n{i}",
            "isBalanced": True,
            "types": {"structural": "verify", "semantic": "obj", "detailed": "exist"},
            "groups": {"global": None, "local": "x"},
            "entailed": [],
            "equivalent": [qid],
            "semantic": [{"operation": "exist", "argument": "?", "dependencies": []}],
            "annotations": {"question": {}, "answer": {}, "fullAnswer": {}},
        }
        rows.append(
            {
                "question_id": qid,
                "image": f"n{i}.jpg",
                "text": questions[qid]["question"] + SUFFIX,
                "category": "default",
            }
        )
    qfile = tmp_path / "llava_gqa_testdev_balanced.jsonl"
    qfile.write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tmp_path / "testdev_balanced_questions.json").write_text(json.dumps(questions))
    return qfile, folder, tmp_path / "testdev_balanced_questions.json"


def test_gqa_cli_end_to_end(saved_sec, gqa_files, tmp_path):
    qfile, _, _ = gqa_files
    answers = tmp_path / "answers" / "gqa.jsonl"
    cmd = [sys.executable, str(ROOT / "eval" / "gqa.py"), *gqa_args(saved_sec[2], gqa_files, answers)]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-3000:]
    rows = [json.loads(line) for line in answers.read_text().splitlines()]
    assert [r["question_id"] for r in rows] == [
        json.loads(line)["question_id"] for line in qfile.read_text().splitlines()
    ]
    assert set(rows[0]) >= {"question_id", "prompt", "text", "answer_id", "model_id", "metadata"}
    scores = json.loads(Path(f"{answers}.scores.json").read_text())
    assert scores["num_questions"] == 5 and 0.0 <= scores["accuracy"] <= 100.0
    assert json.loads(result.stdout[result.stdout.index("{") :]) == scores


class Interrupt(Exception):
    pass


class FailingProcessor:
    """Delegates to the real processor and raises on the N-th call (a simulated crash)."""

    def __init__(self, processor, fail_on_call):
        self.processor, self.fail_on_call, self.calls = processor, fail_on_call, 0
        self.tokenizer = processor.tokenizer

    def __call__(self, *args, **kwargs):
        self.calls += 1
        if self.calls == self.fail_on_call:
            raise Interrupt
        return self.processor(*args, **kwargs)


def test_interrupted_run_resumes_without_duplicates(saved_sec, gqa_files, tmp_path):
    model, processor, _ = saved_sec
    qfile, folder, _ = gqa_files
    rows = load_questions(str(qfile))
    answers = tmp_path / "resume.jsonl"
    settings = InferenceSettings(batch_size=2, max_new_tokens=2)
    with pytest.raises(Interrupt):
        generate_answers(model, FailingProcessor(processor, fail_on_call=2), rows, str(folder), str(answers), settings)
    shard = answers.with_name(answers.name + ".shard0of1")
    assert len(shard.read_text().splitlines()) == 2 and not answers.exists()
    with shard.open("a") as f:
        f.write('{"question_id": "torn')  # a crash in the middle of a write
    counting = FailingProcessor(processor, fail_on_call=-1)
    generate_answers(model, counting, rows, str(folder), str(answers), settings)
    assert counting.calls == 2  # only the 3 unanswered questions, in batches of 2
    ids = [json.loads(line)["question_id"] for line in answers.read_text().splitlines()]
    assert ids == [r["question_id"] for r in rows]
    assert not shard.exists()
    generate_answers(model, counting, rows, str(folder), str(answers), settings)  # nothing left to do
    assert counting.calls == 2 and len(read_done(answers)) == 5


def test_textvqa_cli_no_ocr(saved_sec, tmp_path, images):
    folder = tmp_path / "train_images"
    folder.mkdir()
    data, rows = [], []
    for i in range(3):
        image_id = f"{i:016x}"
        images[i].save(folder / f"{image_id}.png")
        question = f"what does sign {i} say?"
        data.append(
            {
                "question_id": 100 + i,
                "image_id": image_id,
                "question": question,
                "answers": ["stop"] * 10,
                "set_name": "val",
            }
        )
        rows.append(
            {
                "question_id": image_id,
                "image": f"{image_id}.png",
                "category": "default",
                "text": f"{question.capitalize()}\nReference OCR token: STOP{SUFFIX}",
            }
        )
    ann = tmp_path / "TextVQA_0.5.1_val.json"
    ann.write_text(
        json.dumps({"dataset_type": "val", "dataset_name": "textvqa", "dataset_version": "0.5.1", "data": data})
    )
    qfile = tmp_path / "llava_textvqa_val_v051_ocr.jsonl"
    qfile.write_text("".join(json.dumps(r) + "\n" for r in rows))
    answers = tmp_path / "textvqa.jsonl"
    cmd = [
        sys.executable,
        str(ROOT / "eval" / "textvqa.py"),
        "--model-path",
        str(saved_sec[2]),
        "--question-file",
        str(qfile),
        "--image-folder",
        str(folder),
        "--annotation-file",
        str(ann),
        "--answers-file",
        str(answers),
        "--no-ocr",
        "--batch-size",
        "3",
        "--max-new-tokens",
        "2",
        "--num-workers",
        "0",
    ]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-3000:]
    prompts = [json.loads(line)["prompt"] for line in answers.read_text().splitlines()]
    assert all("Reference OCR token" not in p and len(p.split("\n")) == 2 for p in prompts)
    assert json.loads(Path(f"{answers}.scores.json").read_text())["num_questions"] == 3


@pytest.mark.slow
def test_torchrun_two_shards_merge_in_question_order(saved_sec, gqa_files, tmp_path):
    qfile, folder, questions = gqa_files
    answers = tmp_path / "sharded.jsonl"
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "--master_port",
        "29731",
        str(ROOT / "eval" / "gqa.py"),
        "--model-path",
        str(saved_sec[2]),
        "--question-file",
        str(qfile),
        "--image-folder",
        str(folder),
        "--questions",
        str(questions),
        "--answers-file",
        str(answers),
        "--batch-size",
        "2",
        "--max-new-tokens",
        "2",
        "--num-workers",
        "0",
    ]
    env = {**__import__("os").environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=ROOT, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    ids = [json.loads(line)["question_id"] for line in answers.read_text().splitlines()]
    assert ids == [json.loads(line)["question_id"] for line in qfile.read_text().splitlines()]
    assert not list(tmp_path.glob("sharded.jsonl.shard*"))


def gqa_args(model_path, gqa_files, answers, *extra):
    qfile, folder, questions = gqa_files
    return [
        "--model-path",
        str(model_path),
        "--question-file",
        str(qfile),
        "--image-folder",
        str(folder),
        "--questions",
        str(questions),
        "--answers-file",
        str(answers),
        "--batch-size",
        "2",
        "--max-new-tokens",
        "3",
        "--num-workers",
        "0",
        *extra,
    ]


def test_rerun_resumes_only_the_same_model_and_overwrite_starts_fresh(saved_sec, make_model, gqa_files, tmp_path):
    from sec_mllm.evaluation.run_gqa import main

    other, processor = make_model("sec", {"num_tokens": 4}, seed=1)
    other.save_pretrained(tmp_path / "other")
    processor.save_pretrained(tmp_path / "other")
    answers = tmp_path / "answers" / "gqa.jsonl"
    main(gqa_args(saved_sec[2], gqa_files, answers))
    first = answers.read_text()
    meta = json.loads(Path(f"{answers}.meta.json").read_text())
    assert meta["model_path"] == str(saved_sec[2].resolve()) and meta["model_fingerprint"].startswith("sha256:")
    assert meta["settings"] == {"conv_mode": "vicuna_v1", "max_new_tokens": 3, "dtype": "float32"}

    main(gqa_args(saved_sec[2], gqa_files, answers, "--batch-size", "3"))  # same model and settings: nothing to redo
    assert answers.read_text() == first

    with pytest.raises(SystemExit, match="model_fingerprint"):
        main(gqa_args(tmp_path / "other", gqa_files, answers))
    assert answers.read_text() == first

    main(gqa_args(tmp_path / "other", gqa_files, answers, "--overwrite"))
    ids = [json.loads(line)["answer_id"] for line in answers.read_text().splitlines()]
    assert len(ids) == 5 and not set(ids) & {json.loads(line)["answer_id"] for line in first.splitlines()}
    assert json.loads(Path(f"{answers}.meta.json").read_text())["model_path"] == str((tmp_path / "other").resolve())


def test_fingerprint_sees_weights_not_location_and_reads_little(make_model, tmp_path):
    from sec_mllm.evaluation import provenance

    for name, seed in (("a", 0), ("b", 1)):
        model, processor = make_model("sec", {"num_tokens": 4}, seed=seed)
        model.save_pretrained(tmp_path / name)
        processor.save_pretrained(tmp_path / name)
    shutil.copytree(tmp_path / "a", tmp_path / "a_copy")
    fingerprint = provenance.folder_fingerprint
    assert fingerprint(tmp_path / "a") == fingerprint(tmp_path / "a_copy") != fingerprint(tmp_path / "b")
    # a large weight file is sampled: a change inside one sampled chunk is seen, the read stays bounded
    big = tmp_path / "big"
    big.mkdir()
    data = bytearray(os.urandom(64 * 1024 * 1024))
    (big / "model.safetensors").write_bytes(data)
    before = fingerprint(big)
    data[-1] ^= 1
    (big / "model.safetensors").write_bytes(data)
    assert fingerprint(big) != before
    assert provenance.SAMPLES * provenance.SAMPLE_BYTES <= 4 * 1024 * 1024
