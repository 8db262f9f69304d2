"""Starting from a transformers-format LLaVA: identity projector and training-free SEC at K = N reproduce LLaVA's
logits; K < N shortens the sequence; untrained projectors are announced; non-LLaVA folders are refused."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from transformers import LlavaForConditionalGeneration, LlavaProcessor

from sec_mllm import from_llava_pretrained, llava_to_sec_mllm
from sec_mllm.convert_llava import UntrainedProjectorWarning
from sec_mllm.tiny import tiny_llama_config, write_tiny_llava_checkpoint

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def llava_dir(tmp_path, tokenizer):
    return Path(write_tiny_llava_checkpoint(str(tmp_path / "llava"), tokenizer))


def test_identity_reproduces_llava_logits(llava_dir, images):
    llava = LlavaForConditionalGeneration.from_pretrained(llava_dir).eval()
    llava_processor = LlavaProcessor.from_pretrained(llava_dir)
    inputs = llava_processor(images=images[0], text="USER: <image>\nWhat is this? ASSISTANT:", return_tensors="pt")
    expected = llava(**inputs).logits

    model = from_llava_pretrained(str(llava_dir), projector_type="identity").eval()
    assert model.config.image_token_id == llava.config.image_token_id
    torch.testing.assert_close(
        model(input_ids=inputs["input_ids"], pixel_values=inputs["pixel_values"]).logits, expected
    )

    _, processor = llava_to_sec_mllm(str(llava_dir), image_aspect_ratio="original")
    ours = processor(images=images[0], text="USER: <image>\nWhat is this? ASSISTANT:")
    assert torch.equal(ours["input_ids"], inputs["input_ids"])
    torch.testing.assert_close(ours["pixel_values"], inputs["pixel_values"])


def test_convert_script_writes_a_loadable_sec_checkpoint(llava_dir, tmp_path, images):
    out = tmp_path / "converted"
    cmd = [
        sys.executable,
        str(ROOT / "scripts" / "convert_llava.py"),
        "--llava",
        str(llava_dir),
        "--out",
        str(out),
        "--projector-type",
        "sec",
        "--projector-config",
        '{"num_tokens": 4}',
    ]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-3000:]
    from transformers import AutoModel, AutoProcessor

    model = AutoModel.from_pretrained(out).eval()
    processor = AutoProcessor.from_pretrained(out)
    assert model.num_image_tokens == processor.num_image_tokens == 4
    llava = LlavaForConditionalGeneration.from_pretrained(llava_dir)
    torch.testing.assert_close(model.connector[0].weight, llava.model.multi_modal_projector.linear_1.weight)
    inputs = processor(images=images[1], text="USER: <image>\nHi ASSISTANT:")
    assert torch.isfinite(model(**inputs).logits).all()
    assert "UNTRAINED" in result.stdout and "stage 1" in result.stdout, result.stdout


TRAINING_FREE = {"preset": "training_free"}
PROMPT = "USER: <image>\nWhat is this? ASSISTANT:"


def test_training_free_sec_at_k_equal_n_reproduces_llava_logits_exactly(llava_dir, images, recwarn):
    llava = LlavaForConditionalGeneration.from_pretrained(llava_dir).eval()
    inputs = LlavaProcessor.from_pretrained(llava_dir)(images=images[0], text=PROMPT, return_tensors="pt")
    n = llava.config.image_seq_length
    model = from_llava_pretrained(str(llava_dir), "sec", {"num_tokens": n, **TRAINING_FREE}).eval()
    assert not list(model.projector.parameters())
    assert not [w for w in recwarn if issubclass(w.category, UntrainedProjectorWarning)]
    with torch.no_grad():
        ours = model(input_ids=inputs["input_ids"], pixel_values=inputs["pixel_values"]).logits
        assert torch.equal(ours, llava(**inputs).logits)
        # each cluster is one patch, in raster order
        assignment = model.encode_images(inputs["pixel_values"]).aux["assignment"]
    assert torch.equal(assignment[0], torch.arange(n))


def test_training_free_sec_below_n_generates_with_n_minus_k_fewer_tokens(llava_dir, images, tmp_path):
    llava_processor = LlavaProcessor.from_pretrained(llava_dir)
    n, k = 16, 4
    model, processor = llava_to_sec_mllm(
        str(llava_dir), "sec", {"num_tokens": k, **TRAINING_FREE}, image_aspect_ratio="original"
    )
    llava_ids = llava_processor(images=images[0], text=PROMPT, return_tensors="pt")["input_ids"]
    inputs = processor(images=images[0], text=PROMPT)
    assert llava_ids.shape[1] - inputs["input_ids"].shape[1] == n - k
    out = model.eval().generate(**inputs, max_new_tokens=5, do_sample=False)
    assert out.shape[1] > inputs["input_ids"].shape[1]

    # the preset is stored by name and resolves the same way on reload
    model.save_pretrained(tmp_path / "ckpt")
    processor.save_pretrained(tmp_path / "ckpt")
    from transformers import AutoModel, AutoProcessor

    again = AutoModel.from_pretrained(tmp_path / "ckpt").eval()
    assert again.config.projector_config == {"num_tokens": k, **TRAINING_FREE}
    assert again.projector.config == model.projector.config and again.projector.config.reduction == "mean"
    assert AutoProcessor.from_pretrained(tmp_path / "ckpt").num_image_tokens == k
    torch.testing.assert_close(again(**inputs).logits, model(**inputs).logits, rtol=0, atol=0)


def test_a_learned_projector_is_announced_as_untrained(llava_dir):
    with pytest.warns(UntrainedProjectorWarning, match="UNTRAINED"):
        from_llava_pretrained(str(llava_dir), "sec", {"num_tokens": 4})


def test_a_folder_that_is_not_llava_is_refused_naming_what_is_missing(tmp_path, tokenizer):
    from transformers import AutoModelForCausalLM

    AutoModelForCausalLM.from_config(tiny_llama_config(vocab_size=len(tokenizer))).save_pretrained(tmp_path / "lm")
    with pytest.raises(ValueError, match="model_type 'llama'.*multi_modal_projector"):
        from_llava_pretrained(str(tmp_path / "lm"), "sec", {"num_tokens": 4, **TRAINING_FREE})
    with pytest.raises(ValueError, match="no readable config.json"):
        from_llava_pretrained(str(tmp_path / "nothing-here"))
