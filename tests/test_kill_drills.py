"""Kill drills: a training run and an evaluation run are killed with SIGKILL at chosen points, observed from outside
(a checkpoint folder appearing, a checkpoint or the final output being written, answer rows reaching a count);
the state left behind must hold only complete files and folders, and a rerun must resume from the last complete
state and end with the result of an uninterrupted run (same weights and losses; same answer rows and score).
Also: resuming with ``True`` skips a torn checkpoint (as older versions, writing in place, left them)."""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

import pytest
import torch
from safetensors.torch import load_file

from sec_mllm.tiny import write_tiny_checkpoints, write_tiny_llava_data
from sec_mllm.train.checkpoints import checkpoint_problem, list_checkpoints

ROOT = Path(__file__).resolve().parents[1]
SUFFIX = "\nAnswer the question using a single word or phrase."


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("drills")
    lm, clip = write_tiny_checkpoints(str(root))
    _, instructions, images = write_tiny_llava_data(str(root / "data"))
    return {"root": root, "lm": lm, "clip": clip, "instructions": instructions, "images": images}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def train_argv(tiny, out: Path, steps: int = 8) -> list[str]:
    """Stage 2, plain Trainer (one process), a checkpoint every 2 steps."""
    flags = {
        "model_name_or_path": tiny["lm"],
        "vision_tower": tiny["clip"],
        "version": "v1",
        "data_path": tiny["instructions"],
        "image_folder": tiny["images"],
        "mm_projector_type": "mlp2x_gelu",
        "projector_type": "sec",
        "num_visual_tokens": 4,
        "output_dir": out,
        "per_device_train_batch_size": 2,
        "report_to": "none",
        "dataloader_num_workers": 0,
        "max_steps": steps,
        "save_strategy": "steps",
        "save_steps": 2,
        "logging_steps": 1,
        "learning_rate": 1e-3,
        "seed": 0,
    }
    return [x for k, v in flags.items() for x in (f"--{k}", str(v))]


def train_in_process(argv: list[str]) -> None:
    from sec_mllm.train.run import main

    main(2, argv)


def run_until_killed(cmd: list[str], kill_when: Callable[[], bool], log: Path, timeout: float = 400) -> None:
    """Start ``cmd`` in its own process group; SIGKILL the whole group as soon as ``kill_when()`` holds."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(ROOT)}
    with log.open("w") as out:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + timeout
    try:
        while not kill_when():
            if proc.poll() is not None:
                raise AssertionError(f"ended (rc {proc.returncode}) before the kill point:\n{log.read_text()[-3000:]}")
            if time.monotonic() > deadline:
                raise AssertionError(f"kill point not reached in {timeout} s:\n{log.read_text()[-3000:]}")
            time.sleep(0.002)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL


def log_losses(checkpoint: Path) -> list[tuple[int, float]]:
    history = json.loads((checkpoint / "trainer_state.json").read_text())["log_history"]
    return [(entry["step"], entry["loss"]) for entry in history if "loss" in entry]


def assert_killed_state_is_whole(out: Path) -> None:
    """Every checkpoint-N is complete; a final output exists only whole (run_config.json is moved in last)."""
    for checkpoint in list_checkpoints(out):
        assert checkpoint_problem(checkpoint) is None, (checkpoint, checkpoint_problem(checkpoint))
    if (out / "run_config.json").exists():
        assert (out / "config.json").is_file() and (out / "model.safetensors").is_file()
        load_file(str(out / "model.safetensors"))


def assert_same_weights(a: Path, b: Path) -> None:
    wa, wb = load_file(str(a / "model.safetensors")), load_file(str(b / "model.safetensors"))
    assert wa.keys() == wb.keys()
    for key in wa:
        torch.testing.assert_close(wa[key], wb[key], rtol=1e-5, atol=1e-6, msg=key)


@pytest.fixture(scope="module")
def reference(tiny):
    """The uninterrupted run (in-process: same code and seed as the killed subprocess runs)."""
    out = tiny["root"] / "reference"
    train_in_process(train_argv(tiny, out))
    return out


KILL_POINTS = {  # -> (kill when, staged folder the kill must have caught half-written or None)
    "after checkpoint-4": (lambda out: (out / "checkpoint-4").is_dir(), None),
    "checkpoint-6 half-written": (
        lambda out: (out / ".checkpoint-in-progress" / "checkpoint-6" / "model.safetensors").exists(),
        ".checkpoint-in-progress/checkpoint-6",
    ),
    "final output half-written": (
        lambda out: (out / ".output-in-progress" / "model.safetensors").exists(),
        ".output-in-progress",
    ),
}


@pytest.mark.slow
@pytest.mark.parametrize("point", list(KILL_POINTS))
def test_training_killed_resumes_to_the_uninterrupted_result(point, tiny, reference, tmp_path, caplog):
    out = tmp_path / "run"
    cmd = [sys.executable, str(ROOT / "scripts" / "finetune.py"), *train_argv(tiny, out)]
    kill_when, staged = KILL_POINTS[point]
    run_until_killed(cmd, lambda: kill_when(out), tmp_path / "killed.log")
    if staged is not None:  # the kill landed inside the save: weights written, the rest not yet
        assert (out / staged / "model.safetensors").is_file()
        assert not (out / staged / "trainer_state.json").exists() and not (out / staged / "run_config.json").exists()
    assert_killed_state_is_whole(out)
    assert not (out / "run_config.json").exists()
    newest = next(c for c in list_checkpoints(out) if checkpoint_problem(c) is None)

    with caplog.at_level(logging.INFO):
        train_in_process(train_argv(tiny, out) + ["--resume_from_checkpoint", "True"])
    assert f"resuming from {newest}" in caplog.text
    assert_same_weights(out, reference)
    assert dict(log_losses(out / "checkpoint-8")) == pytest.approx(
        dict(log_losses(reference / "checkpoint-8")), rel=1e-5
    )
    assert not (out / ".checkpoint-in-progress").exists() and not (out / ".output-in-progress").exists()


def test_resume_true_skips_a_torn_checkpoint(tiny, tmp_path, caplog):
    """checkpoint-4 as an in-place save killed midway left it: only the .py files and the config."""
    first, out = tmp_path / "first", tmp_path / "run"
    train_in_process(train_argv(tiny, first, steps=4))
    train_in_process(train_argv(tiny, out, steps=4))
    torn = out / "checkpoint-4"
    for path in torn.iterdir():
        if path.suffix != ".py" and path.name != "config.json":
            path.unlink()
    (out / "run_config.json").unlink()
    with caplog.at_level(logging.INFO):
        train_in_process(train_argv(tiny, out, steps=4) + ["--resume_from_checkpoint", "True"])
    assert f"skipping incomplete checkpoint {torn}: no trainer_state.json" in caplog.text
    assert f"resuming from {out / 'checkpoint-2'}" in caplog.text
    assert checkpoint_problem(torn) is None  # written again, whole
    assert_same_weights(out, first)


def test_staged_checkpoints_keep_save_total_limit(tiny, tmp_path):
    out = tmp_path / "run"
    train_in_process(train_argv(tiny, out) + ["--save_total_limit", "2"])
    assert [c.name for c in list_checkpoints(out)] == ["checkpoint-8", "checkpoint-6"]
    assert not (out / ".checkpoint-in-progress").exists() and not (out / ".output-in-progress").exists()
    assert all(checkpoint_problem(c) is None for c in list_checkpoints(out))


# --------------------------------------------------------------------------------------------- DeepSpeed ZeRO-3


@pytest.mark.slow
def test_zero3_two_ranks_killed_while_saving_resumes_on_the_same_trajectory(tiny, tmp_path):
    """Two CPU ranks each write their ZeRO-3 shards into the checkpoint; killed while checkpoint-4 is written,
    the rerun resumes from checkpoint-2 and repeats steps 3-4 with the losses the killed run logged."""
    out = tmp_path / "zero3"
    argv = train_argv(tiny, out, steps=6) + ["--deepspeed", "zero3", "--bf16", "True"]
    launcher = [sys.executable, "-m", "deepspeed.launcher.runner", "--num_gpus", "2"]
    script = str(ROOT / "scripts" / "finetune.py")
    staging = out / ".checkpoint-in-progress" / "checkpoint-4"
    killed_log = tmp_path / "killed.log"
    run_until_killed(
        [*launcher, "--master_port", str(free_port()), script, *argv],
        lambda: staging.is_dir() and any(p.name.startswith("global_step") for p in staging.iterdir()),
        killed_log,
        timeout=500,
    )
    assert_killed_state_is_whole(out)
    assert [c.name for c in list_checkpoints(out)] == ["checkpoint-2"]
    assert (out / "checkpoint-2" / "latest").is_file()  # DeepSpeed's own state, from both ranks
    assert len(list((out / "checkpoint-2").glob("global_step2/*optim_states.pt"))) == 2

    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(ROOT)}
    resumed = subprocess.run(
        [*launcher, "--master_port", str(free_port()), script, *argv, "--resume_from_checkpoint", "True"],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
        env=env,
    )
    log = resumed.stdout + resumed.stderr
    assert resumed.returncode == 0, log[-4000:]
    assert f"resuming from {out / 'checkpoint-2'}" in log
    killed_losses = dict(log_losses_from_text(killed_log.read_text()))
    resumed_losses = dict(log_losses(out / "checkpoint-6"))
    assert {3, 4} <= killed_losses.keys()
    for step in (3, 4):
        assert resumed_losses[step] == pytest.approx(killed_losses[step], rel=1e-3), (step, log[-3000:])
    assert [c.name for c in list_checkpoints(out)] == ["checkpoint-6", "checkpoint-4", "checkpoint-2"]
    assert (out / "run_config.json").is_file() and (out / "model.safetensors").is_file()


def log_losses_from_text(log: str) -> list[tuple[int, float]]:
    """``(step, loss)`` from the Trainer's printed log dicts (one per step with --logging_steps 1)."""
    import re

    values = [float(x) for x in re.findall(r"'loss': '([\d.]+)'", log)]
    return list(enumerate(values, start=1))


# --------------------------------------------------------------------------------------------- evaluation


@pytest.fixture(scope="module")
def eval_world(tiny):
    """A trained-from-nothing SEC-MLLM checkpoint and five GQA questions (batch size 1: a flush per row)."""
    from transformers import AutoTokenizer

    from sec_mllm import build_model, build_processor

    root = tiny["root"] / "eval"
    tokenizer = AutoTokenizer.from_pretrained(tiny["lm"])
    torch.manual_seed(0)
    model = build_model(tiny["clip"], tiny["lm"], "sec", {"num_tokens": 4}, tokenizer=tokenizer)
    model.save_pretrained(root / "ckpt")
    build_processor(model.config, tokenizer).save_pretrained(root / "ckpt")
    questions, rows = {}, []
    for i in range(5):
        qid = str(300 + i)
        questions[qid] = {
            "question": f"Is the square number {i} red?",
            "answer": "yes" if i % 2 else "no",
            "imageId": str(i),
            "isBalanced": True,
            "types": {"structural": "verify", "semantic": "attr", "detailed": "color"},
            "groups": {"global": None, "local": "c"},
            "entailed": [],
            "equivalent": [qid],
            "semantic": [{"operation": "verify", "argument": "red", "dependencies": []}],
            "annotations": {"question": {}, "answer": {}, "fullAnswer": {}},
        }
        rows.append({"question_id": qid, "image": f"{i}.png", "text": questions[qid]["question"] + SUFFIX})
    (root / "questions.json").write_text(json.dumps(questions))
    (root / "q.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return root


def eval_argv(tiny, eval_world, answers: Path) -> list[str]:
    return [
        "--model-path",
        str(eval_world / "ckpt"),
        "--question-file",
        str(eval_world / "q.jsonl"),
        "--image-folder",
        tiny["images"],
        "--questions",
        str(eval_world / "questions.json"),
        "--answers-file",
        str(answers),
        "--batch-size",
        "1",
        "--max-new-tokens",
        "4",
        "--num-workers",
        "0",
    ]


def rows_without_ids(answers: Path) -> list[dict]:
    return [
        {k: v for k, v in json.loads(line).items() if k != "answer_id"} for line in answers.read_text().splitlines()
    ]


def shard_rows(answers: Path) -> int:
    shard = answers.with_name(answers.name + ".shard0of1")
    return len(shard.read_text().splitlines()) if shard.exists() else 0


@pytest.mark.slow
@pytest.mark.parametrize("rows_before_kill", [1, 3, 5])
def test_evaluation_killed_resumes_to_the_same_rows_and_score(rows_before_kill, tiny, eval_world, tmp_path):
    from sec_mllm.evaluation.run_gqa import main

    reference = tmp_path / "reference.jsonl"
    main(eval_argv(tiny, eval_world, reference))
    answers = tmp_path / "answers.jsonl"
    cmd = [sys.executable, str(ROOT / "eval" / "gqa.py"), *eval_argv(tiny, eval_world, answers)]
    # the last kill point may land after the merge (the shard is gone then, the answers file whole)
    run_until_killed(cmd, lambda: shard_rows(answers) >= rows_before_kill or answers.exists(), tmp_path / "killed.log")
    shard = answers.with_name(answers.name + ".shard0of1")
    kept = shard.read_text() if shard.exists() else answers.read_text()
    assert kept.endswith("\n") and all(json.loads(line) for line in kept.splitlines())
    if shard.exists():
        # killed before the merge, so before scoring (after the last row the kill may land after scoring too:
        # five rows, then merge and score within milliseconds; the rerun below must agree either way)
        assert not Path(f"{answers}.scores.json").exists()

    main(eval_argv(tiny, eval_world, answers))
    assert rows_without_ids(answers) == rows_without_ids(reference)
    kept_ids = {json.loads(line)["answer_id"] for line in kept.splitlines()}
    assert kept_ids <= {json.loads(line)["answer_id"] for line in answers.read_text().splitlines()}  # not redone
    assert json.loads(Path(f"{answers}.scores.json").read_text()) == json.loads(
        Path(f"{reference}.scores.json").read_text()
    )
