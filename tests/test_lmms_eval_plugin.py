"""The lmms-eval model `sec_mllm` in-process: batched generation, log-likelihoods against a direct computation,
and the one-line refusals (no checkpoint, K outside 1..N, unreadable image)."""

from __future__ import annotations

import pytest
import torch
from conftest import require_extra
from PIL import Image
from transformers import AutoModelForCausalLM

from sec_mllm.tiny import tiny_llama_config

require_extra("lmms_eval")
from lmms_eval.api.instance import Instance  # noqa: E402

from sec_mllm.lmms_eval_plugin import MANIFEST, SecMllmLmms  # noqa: E402

TASK, SPLIT = "toy", "test"


@pytest.fixture
def checkpoint(make_model, tmp_path):
    model, processor = make_model("sec", {"num_tokens": 4})
    model.save_pretrained(tmp_path / "ckpt")
    processor.save_pretrained(tmp_path / "ckpt")
    return str(tmp_path / "ckpt")


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
