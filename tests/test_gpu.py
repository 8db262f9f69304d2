"""GPU-only checks (marked ``gpu``; skipped without CUDA): compiled against eager inference in bfloat16 and
float32, the speed suite's compiled path, and evaluation with ``--compile``. The GPU training launches (ZeRO-3
stage 2 on one GPU, bf16 generate with and without cache on its output) live in test_training.py."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from sec_mllm.experiments.speed import SpeedSettings, run_speed

ROOT = Path(__file__).resolve().parents[1]
PROMPTS = ["USER: <image>\nWhat is shown? ASSISTANT:", "USER: <image>\nWhere is the red circle now? ASSISTANT:"]
pytestmark = pytest.mark.gpu


def test_reduce_overhead_prefill_matches_eager_in_bfloat16(make_model, images):
    """CUDA graphs on the whole forward at a fixed shape (the speed suite's setting), batch 1 and 2."""
    model, processor = make_model()
    model.to("cuda", torch.bfloat16)
    batches = [processor(images=images[:n], text=PROMPTS[:n]).to("cuda") for n in (1, 2)]
    with torch.no_grad():
        expected = [model(**inputs, logits_to_keep=1).logits for inputs in batches]
    torch._dynamo.reset()
    model.compile_for_inference(mode="reduce-overhead", fullgraph=True)
    for inputs, eager in zip(batches, expected):
        for _ in range(3):  # warm-up, recording, replay
            torch.compiler.cudagraph_mark_step_begin()
            with torch.no_grad():
                got = model(**inputs, logits_to_keep=1).logits.clone()
        scale = eager.float().abs().max()
        torch.testing.assert_close(got.float(), eager.float(), atol=0.02 * float(scale), rtol=0.02)


def test_compiled_generate_matches_eager(make_model, images, tokenizer):
    """Inductor's default mode (what eval --compile uses) over two prompt lengths: the same greedy ids."""
    model, processor = make_model()
    model.to("cuda")
    tokenizer.padding_side = "left"
    batches = [processor(images=images[:n], text=PROMPTS[:n]).to("cuda") for n in (2, 1)]
    expected = [model.generate(**b, max_new_tokens=6, do_sample=False) for b in batches]
    torch._dynamo.reset()
    model.compile_for_inference()
    for b, ids in zip(batches, expected):
        assert torch.equal(model.generate(**b, max_new_tokens=6, do_sample=False), ids)


def test_speed_suite_compiled_on_gpu():
    settings = SpeedSettings(
        lm_width=64,
        lm_layers=2,
        lm_heads=2,
        vision_layers=1,
        text_tokens=8,
        train_batch=1,
        warmup=2,
        repeats=2,
        projector_repeats=2,
        batches=(1, 2),
        device="cuda",
        dtype=torch.bfloat16,
        compile=True,
    )
    result = run_speed(settings)
    assert set(result["prefill"]) == {"1", "2"} and all(ms > 0 for ms in result["tower_ms"].values())


def test_eval_with_compile_gives_the_eager_answers(make_model, images, tmp_path):
    model, processor = make_model("sec", {"num_tokens": 4})
    model.save_pretrained(tmp_path / "ckpt")
    processor.save_pretrained(tmp_path / "ckpt")
    (tmp_path / "images").mkdir()
    rows = []
    for i in range(4):
        images[i % 3].save(tmp_path / "images" / f"n{i}.png")
        rows.append({"question_id": str(i), "image": f"n{i}.png", "text": f"Is there a circle number {i}?" * (i + 1)})
    questions = tmp_path / "q.jsonl"
    questions.write_text("".join(json.dumps(r) + "\n" for r in rows))
    gqa = {
        r["question_id"]: {
            "question": r["text"],
            "answer": "yes",
            "imageId": r["image"][:-4],
            "isBalanced": True,
            "types": {"structural": "verify", "semantic": "obj", "detailed": "exist"},
            "groups": {"global": None, "local": "x"},
            "entailed": [],
            "equivalent": [r["question_id"]],
            "semantic": [],
            "annotations": {"question": {}, "answer": {}, "fullAnswer": {}},
        }
        for r in rows
    }
    (tmp_path / "questions.json").write_text(json.dumps(gqa))
    answers = {}
    for name, extra in (("eager", []), ("compiled", ["--compile"])):
        out = tmp_path / f"{name}.jsonl"
        cmd = [sys.executable, str(ROOT / "eval" / "gqa.py"), "--model-path", str(tmp_path / "ckpt")]
        cmd += ["--question-file", str(questions), "--image-folder", str(tmp_path / "images")]
        cmd += ["--questions", str(tmp_path / "questions.json")]
        cmd += ["--answers-file", str(out), "--batch-size", "2", "--max-new-tokens", "4", "--num-workers", "0"]
        result = subprocess.run(cmd + extra, capture_output=True, text=True, timeout=900, cwd=ROOT)
        assert result.returncode == 0, result.stderr[-3000:]
        answers[name] = [json.loads(line)["text"] for line in out.read_text().splitlines()]
    assert answers["compiled"] == answers["eager"]
