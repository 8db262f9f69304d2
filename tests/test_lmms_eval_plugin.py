"""The lmms-eval model `sec_mllm` in-process: batched generation, log-likelihoods against a direct computation,
and the one-line refusals (no checkpoint, K outside 1..N, unreadable image)."""

from __future__ import annotations

import json
import os
import shutil
import string
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import require_extra
from PIL import Image
from transformers import AutoModelForCausalLM

from sec_mllm.tiny import tiny_llama_config

require_extra("lmms_eval")
from lmms_eval.api.instance import Instance  # noqa: E402

from sec_mllm.demo import DEMO_CHECKPOINT  # noqa: E402
from sec_mllm.lmms_eval_plugin import MANIFEST, SecMllmLmms  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
TASK, SPLIT = "toy", "test"


@pytest.fixture
def checkpoint(saved_sec):
    return str(saved_sec[2])


def plugin(checkpoint, images, batch_size="1", **kwargs) -> SecMllmLmms:
    lm = SecMllmLmms(pretrained=checkpoint, batch_size=batch_size, conv_template="plain", **kwargs)
    lm.task_dict = {TASK: {SPLIT: [{"image": im, "question": f"q{i}"} for i, im in enumerate(images)]}}
    return lm


def doc_to_visual(doc):
    return [doc["image"]]


def gen_request(doc_id: int, context: str, **gen_kwargs) -> Instance:
    args = (context, {"max_new_tokens": 6, "temperature": 0, **gen_kwargs}, doc_to_visual, doc_id, TASK, SPLIT)
    return Instance("generate_until", args, idx=0, metadata={"task": TASK, "doc_id": doc_id, "repeats": 1})


def ll_request(doc_id: int, context: str, continuation: str) -> Instance:
    args = (context, continuation, doc_to_visual, doc_id, TASK, SPLIT)
    return Instance("loglikelihood", args, idx=0, metadata={"task": TASK, "doc_id": doc_id, "repeats": 1})


def test_manifest_names_the_class():
    assert MANIFEST.model_id == "sec_mllm" and MANIFEST.simple_class_path == "sec_mllm.lmms_eval_plugin.SecMllmLmms"


def test_generate_until_batched_equals_one_at_a_time_and_stops_at_until(checkpoint, images):
    requests = [gen_request(i, ctx) for i, ctx in enumerate(["What is it?", "Colour?", "Is it a long question here?"])]
    one = plugin(checkpoint, images).generate_until(requests)
    batched = plugin(checkpoint, images, batch_size="3").generate_until(requests)
    assert batched == one and all(isinstance(t, str) for t in one)
    text = one[0]
    assert len(text) > 2, one
    stop = text[1:3]
    cut = plugin(checkpoint, images, batch_size="2").generate_until([gen_request(0, "What is it?", until=[stop])])
    assert cut == [text.split(stop)[0]]


@torch.no_grad()
def direct_nll(lm: SecMllmLmms, image: Image.Image, context: str, continuation: str) -> float:
    prompt = lm._prompt(context, 1)
    whole = lm.processor(images=[image], text=[prompt + continuation], return_tensors="pt")
    n_ctx = len(lm.tokenizer(lm.processor.expand_placeholders(prompt))["input_ids"])
    logprobs = torch.log_softmax(lm.model(**whole).logits[0].float(), -1)
    targets = whole["input_ids"][0, n_ctx:]
    return -float(logprobs[n_ctx - 1 : -1].gather(-1, targets[:, None]).sum())


def test_loglikelihood_is_the_summed_nll_batched_or_not_and_flags_greedy(checkpoint, images):
    lm = plugin(checkpoint, images)
    prompt = lm._prompt("What is it?", 1)
    inputs = lm.processor(images=[images[0]], text=[prompt], return_tensors="pt")
    with torch.no_grad():
        logits = lm.model(**inputs).logits[0, -1]
    best, worst = int(logits.argmax()), int(logits.argmin())
    greedy_text, other_text = lm.tokenizer.decode([best]), lm.tokenizer.decode([worst])
    requests = [
        ll_request(0, "What is it?", greedy_text),
        ll_request(0, "What is it?", other_text),
        ll_request(1, "Colour?", " red square"),
    ]
    one = lm.loglikelihood(requests)
    batched = plugin(checkpoint, images, batch_size="3").loglikelihood(requests)
    for (a, ga), (b, gb) in zip(one, batched):
        assert a == pytest.approx(b, rel=1e-4, abs=1e-4) and ga == gb
    assert one[0][1] is True and one[1][1] is False
    assert one[0][0] < one[1][0]  # lmms-eval picks the argmin: the likelier continuation has the smaller value
    assert one[2][0] == pytest.approx(direct_nll(lm, images[1], "Colour?", " red square"), rel=1e-4)


def test_bad_checkpoint_k_and_image_stop_with_one_line(checkpoint, images, tmp_path, tokenizer):
    AutoModelForCausalLM.from_config(tiny_llama_config(vocab_size=len(tokenizer))).save_pretrained(tmp_path / "lm")
    with pytest.raises(SystemExit, match="sec_mllm: .*model_type 'llama'.*multi_modal_projector"):
        SecMllmLmms(pretrained=str(tmp_path / "lm"))
    with pytest.raises(SystemExit, match="sec_mllm: .*num_tokens=99 is larger than the number of input tokens N=16"):
        SecMllmLmms(pretrained=checkpoint, num_tokens=99)
    with pytest.raises(SystemExit, match="unknown model_args \\['temperature'\\]"):
        SecMllmLmms(pretrained=checkpoint, temperature=1)
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n not really")
    lm = plugin(checkpoint, images)
    lm.task_dict[TASK][SPLIT][1] = {"path": str(broken)}

    def open_image(doc):
        return [Image.open(doc["path"])] if "path" in doc else [doc["image"]]

    args = ("Hi?", {"max_new_tokens": 2}, open_image, 1, TASK, SPLIT)
    request = Instance("generate_until", args, idx=0, metadata={"task": TASK, "doc_id": 1, "repeats": 1})
    with pytest.raises(SystemExit, match=f"task '{TASK}', split '{SPLIT}', doc 1: cannot read its image"):
        lm.generate_until([request])


# -- through lmms-eval's own command line, on local tasks over the synthetic benchmark ---------------------------


def lmms_eval_cli(args: list[str], home: Path) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "HF_HOME": str(home),  # the json builder's cache, kept out of the user's
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "OMP_NUM_THREADS": "1",
        "WANDB_MODE": "disabled",
    }
    command = [str(Path(sys.executable).with_name("lmms-eval")), *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=900, env=env, cwd=home)


@pytest.fixture(scope="module")
def local_tasks(tmp_path_factory):
    from sec_mllm.experiments.synthetic import write_gqa_test, write_textvqa_test
    from sec_mllm.lmms_eval_tasks import write_tasks

    root = tmp_path_factory.mktemp("lmms")
    write_gqa_test(root, 24, seed=1)
    write_textvqa_test(root, 16, seed=1)
    gqa = (str(root / "gqa" / "data" / "testdev_balanced_questions.json"), str(root / "gqa" / "data" / "images"))
    textvqa = (str(root / "textvqa" / "TextVQA_0.5.1_val.json"), str(root / "textvqa" / "train_images"))
    assert write_tasks(str(root / "tasks"), gqa, textvqa) == ["gqa_local", "textvqa_val_local"]
    shutil.copytree(DEMO_CHECKPOINT, root / "models" / "quickstart")
    return root


def lmms_gqa_match(prediction: str, target: str) -> bool:
    """lmms-eval's GQA protocol: exact_match with ignore_case and ignore_punctuation, after strip()."""
    table = str.maketrans("", "", string.punctuation)
    return prediction.strip().lower().translate(table) == target.lower().translate(table)


def llava_gqa_match(prediction: str, target: str) -> bool:
    """LLaVA's GQA protocol (scripts/convert_gqa_for_eval.py + eval.py): rstrip('.'), lower, ==."""
    return prediction.rstrip(".").lower() == target


@pytest.mark.slow
def test_lmms_eval_cli_scores_local_gqa_and_textvqa_like_eval_scripts(local_tasks):
    root = local_tasks
    result = lmms_eval_cli(
        [
            "--model", "sec_mllm",
            "--model_args", f"pretrained={root / 'models' / 'quickstart'},conv_template=chat_template",
            "--tasks", "gqa_local,textvqa_val_local",
            "--include_path", str(root / "tasks"),
            "--batch_size", "8",
            "--output_path", str(root / "logs"),
            "--log_samples",
        ],
        root,
    )  # fmt: skip
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    assert "gqa_local" in result.stdout and "textvqa_val_local" in result.stdout
    (results_file,) = (root / "logs" / "models__quickstart").glob("*_results.json")
    scores = json.loads(results_file.read_text())["results"]

    # GQA: the same answers under both protocols
    (samples,) = (root / "logs" / "models__quickstart").glob("*_samples_gqa_local.jsonl")
    answers = root / "gqa_answers.jsonl"
    convert = [sys.executable, "-m", "sec_mllm.lmms_eval_tasks", "answers", "--samples", str(samples)]
    subprocess.run(
        convert + ["--task-data", str(root / "tasks" / "gqa_local.jsonl"), "--out", str(answers)], check=True
    )
    questions = root / "gqa" / "data" / "testdev_balanced_questions.json"
    subprocess.run(
        [sys.executable, str(ROOT / "eval" / "gqa.py"), "--answers-file", str(answers), "--questions", str(questions)],
        check=True,
        capture_output=True,
    )
    llava = json.loads(Path(f"{answers}.scores.json").read_text())["accuracy"]
    rows = [json.loads(line) for line in answers.read_text().splitlines()]
    truth = json.loads(questions.read_text())
    assert len(rows) == len(truth) == 24
    lmms_protocol = 100 * sum(lmms_gqa_match(r["text"], truth[r["question_id"]]["answer"]) for r in rows) / len(rows)
    llava_protocol = 100 * sum(llava_gqa_match(r["text"], truth[r["question_id"]]["answer"]) for r in rows) / len(rows)
    assert 100 * scores["gqa_local"]["exact_match,none"] == pytest.approx(lmms_protocol)  # lmms-eval's number
    assert llava == pytest.approx(llava_protocol)  # eval/gqa.py's number (all synthetic questions are balanced)

    # TextVQA: lmms-eval and eval/textvqa.py share the EvalAI normalisation and the VQA accuracy
    (samples,) = (root / "logs" / "models__quickstart").glob("*_samples_textvqa_val_local.jsonl")
    answers = root / "textvqa_answers.jsonl"
    subprocess.run(
        convert[:-1]
        + [str(samples), "--task-data", str(root / "tasks" / "textvqa_val_local.jsonl"), "--out", str(answers)],
        check=True,
    )
    annotations = root / "textvqa" / "TextVQA_0.5.1_val.json"
    subprocess.run(
        [
            sys.executable,
            str(ROOT / "eval" / "textvqa.py"),
            "--answers-file",
            str(answers),
            "--annotation-file",
            str(annotations),
        ],
        check=True,
        capture_output=True,
    )
    textvqa = json.loads(Path(f"{answers}.scores.json").read_text())
    assert textvqa["num_questions"] == 16 and textvqa["num_missing"] == 0
    assert 100 * scores["textvqa_val_local"]["exact_match,none"] == pytest.approx(textvqa["accuracy"])


@pytest.mark.slow
def test_lmms_eval_cli_stops_on_an_unreadable_image_with_one_line_and_no_results(local_tasks):
    root = local_tasks
    tasks = root / "tasks_broken"
    shutil.copytree(root / "tasks", tasks)
    rows = [json.loads(line) for line in (tasks / "gqa_local.jsonl").read_text().splitlines()]
    broken = root / "broken.jpg"
    broken.write_bytes(b"not a jpeg")
    rows[3]["image"] = str(broken)
    (tasks / "gqa_local.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    result = lmms_eval_cli(
        [
            "--model", "sec_mllm",
            "--model_args", f"pretrained={root / 'models' / 'quickstart'}",
            "--tasks", "gqa_local",
            "--include_path", str(tasks),
            "--output_path", str(root / "logs_broken"),
        ],
        root,
    )  # fmt: skip
    assert result.returncode != 0
    assert "sec_mllm: task 'gqa_local', split 'testdev', doc 3: cannot read its image" in result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    assert not list((root / "logs_broken").rglob("*_results.json"))
