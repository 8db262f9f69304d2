"""Loading what a user has (a SEC-MLLM folder or a LLaVA-1.5) and changing K in place, with clear refusals."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForCausalLM

from sec_mllm.inference import load_pretrained, projector_swapped, set_num_tokens
from sec_mllm.tiny import tiny_llama_config, write_tiny_llava_checkpoint

PROMPT = "USER: <image>\nWhat is this? ASSISTANT:"


def test_a_sec_checkpoint_loads_with_another_k_and_keeps_its_weights(saved_sec, images):
    original, _, path = saved_sec
    model, processor = load_pretrained(str(path), num_tokens=8)
    assert (
        model.num_image_tokens == processor.num_image_tokens == 8 and model.config.projector_config["num_tokens"] == 8
    )
    for name, tensor in original.projector.state_dict().items():
        assert torch.equal(model.projector.state_dict()[name], tensor), name
    inputs = processor(images=images[0], text=PROMPT)
    assert (inputs["input_ids"] == model.config.image_token_id).sum() == 8
    assert torch.isfinite(model(**inputs).logits).all()


def test_a_checkpoint_saved_with_the_earlier_sec_default_is_refused_with_the_fix(make_model, tmp_path):
    """Attention-reduction weights under a config that names no reduction (the default is mean now): refused, and
    naming the reduction loads it as trained."""
    model, processor = make_model("sec", {"num_tokens": 4, "reduction": "attn"})
    model.config.projector_config = {"num_tokens": 4}  # what a checkpoint from before the change stored
    model.save_pretrained(tmp_path / "old")
    processor.save_pretrained(tmp_path / "old")
    with pytest.raises(
        ValueError,
        match=r"old: the SEC-MLLM checkpoint holds projector weights .*projector.key.weight.*"
        r'Add "reduction": "attn"',
    ):
        load_pretrained(str(tmp_path / "old"))
    config = tmp_path / "old" / "config.json"
    config.write_text(config.read_text().replace('"num_tokens": 4', '"num_tokens": 4, "reduction": "attn"'))
    loaded, _ = load_pretrained(str(tmp_path / "old"))
    assert torch.equal(loaded.projector.key.weight, model.projector.key.weight)


def test_k_outside_1_to_n_and_identity_are_refused_without_changing_the_model(saved_sec, make_model):
    model, processor = load_pretrained(str(saved_sec[2]))
    before = model.projector
    with pytest.raises(ValueError, match="num_tokens=17 is larger than the number of input tokens N=16"):
        set_num_tokens(model, processor, 17)
    with pytest.raises(ValueError, match="num_tokens must be >= 1, got 0"):
        set_num_tokens(model, processor, 0)
    assert model.projector is before and model.num_image_tokens == processor.num_image_tokens == 4
    identity, identity_processor = make_model("identity", {})
    with pytest.raises(ValueError, match="projector 'identity' keeps all N=16 tokens and has no K"):
        set_num_tokens(identity, identity_processor, 4)


def test_projector_swapped_restores_the_model(saved_sec, images):
    model, processor = load_pretrained(str(saved_sec[2]))
    inputs = processor(images=images[0], text=PROMPT)
    expected = model(**inputs).logits
    with projector_swapped(model, processor, "identity", {}):
        assert model.num_image_tokens == processor.num_image_tokens == 16
        wide = processor(images=images[0], text=PROMPT)
        assert torch.isfinite(model(**wide).logits).all()
    assert model.num_image_tokens == processor.num_image_tokens == 4 and model.config.projector_type == "sec"
    assert torch.equal(model(**inputs).logits, expected)


def test_a_llava_loads_as_itself_or_with_training_free_sec(tmp_path, tokenizer):
    llava = write_tiny_llava_checkpoint(str(tmp_path / "llava"), tokenizer)
    model, processor = load_pretrained(llava)
    assert model.config.projector_type == "identity" and model.num_image_tokens == 16
    model, processor = load_pretrained(llava, num_tokens=4)
    assert model.config.projector_config == {"num_tokens": 4, "preset": "training_free"}
    assert not list(model.projector.parameters()) and processor.num_image_tokens == 4
    with pytest.raises(ValueError, match="num_tokens=17 is outside 1..N: this LLaVA's vision tower gives N=16"):
        load_pretrained(llava, num_tokens=17)


def test_a_folder_that_is_neither_sec_nor_llava_is_refused(tmp_path, tokenizer):
    AutoModelForCausalLM.from_config(tiny_llama_config(vocab_size=len(tokenizer))).save_pretrained(tmp_path / "lm")
    with pytest.raises(ValueError, match="model_type 'llama'.*vision_config, text_config and multi_modal_projector"):
        load_pretrained(str(tmp_path / "lm"))
