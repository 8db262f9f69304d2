"""Model behaviour: loss, generation with and without cache, batching, placeholders, saving and loading."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
import textwrap
import warnings

import pytest
import torch
from transformers import AutoModel, AutoModelForImageTextToText

from sec_mllm import SecMllmForConditionalGeneration, build_model
from sec_mllm.tiny import tiny_llama_config, tiny_open_clip_vision_config, tiny_siglip_vision_config

PROMPTS = ["USER: <image>\nWhat is shown? ASSISTANT:", "USER: <image>\nWhere is the red circle now? ASSISTANT:"]


def test_num_image_tokens_is_derived_not_stored(make_model):
    model, processor = make_model("sec", {"num_tokens": 4})
    assert model.config.num_image_tokens == model.num_image_tokens == processor.num_image_tokens == 4
    assert "num_image_tokens" not in model.config.to_dict()
    identity, _ = make_model("identity", {})
    assert identity.num_image_tokens == 16  # 32 px / 8 px patches, CLS dropped


def test_forward_loss_and_gradients(make_model, images):
    model, processor = make_model()
    model.train()
    inputs = processor(images=images[:2], text=PROMPTS)
    labels = inputs["input_ids"].masked_fill(inputs["input_ids"] == model.config.image_token_id, -100)
    out = model(**inputs, labels=labels)
    assert torch.isfinite(out.loss)
    out.loss.backward()
    for name, p in model.named_parameters():
        if name.startswith(("projector.", "connector.")):
            assert p.grad is not None and p.grad.abs().sum() > 0, name
    assert all(p.grad is None for p in model.vision_tower.parameters())  # frozen by default


def test_image_features_shape(make_model, images):
    model, processor = make_model("sec", {"num_tokens": 9})
    pixels = processor(images=images[:2], text=["<image>", "<image>"])["pixel_values"]
    feats = model.get_image_features(pixels)
    assert feats.shape == (2, 9, model.config.text_config.hidden_size)


@pytest.mark.parametrize("vision", ["clip", "siglip", "open_clip"])
def test_generate_with_and_without_cache_agree(make_model, images, tokenizer, vision):
    vision_config = {"clip": None, "siglip": tiny_siglip_vision_config(), "open_clip": tiny_open_clip_vision_config()}[
        vision
    ]
    model, processor = make_model(vision_config=vision_config)
    tokenizer.padding_side = "left"
    inputs = processor(images=images[:2], text=PROMPTS)
    with_cache = model.generate(**inputs, max_new_tokens=6, do_sample=False)
    without = model.generate(**inputs, max_new_tokens=6, do_sample=False, use_cache=False)
    assert with_cache.shape == (2, inputs["input_ids"].shape[1] + 6)
    assert torch.equal(with_cache, without)


def test_batched_left_padded_generation_matches_single(make_model, images, tokenizer):
    model, processor = make_model()
    tokenizer.padding_side = "left"
    batch = processor(images=images[:2], text=PROMPTS)
    batched = model.generate(**batch, max_new_tokens=5, do_sample=False)[:, -5:]
    for i in range(2):
        single = processor(images=images[i], text=PROMPTS[i])
        alone = model.generate(**single, max_new_tokens=5, do_sample=False)[:, -5:]
        assert torch.equal(alone[0], batched[i])


def test_text_only_inputs(make_model, tokenizer):
    model, processor = make_model()
    inputs = processor(text=["USER: hello there ASSISTANT:"])
    assert "pixel_values" not in inputs
    out = model.generate(**inputs, max_new_tokens=4, do_sample=False)
    assert out.shape[1] == inputs["input_ids"].shape[1] + 4


def test_placeholder_mismatch_raises_with_both_counts(make_model, images, tokenizer):
    model, processor = make_model("sec", {"num_tokens": 4})
    inputs = processor(images=images[0], text=PROMPTS[0])
    ids = inputs["input_ids"]
    first = int((ids[0] == model.config.image_token_id).nonzero()[0])
    ids = torch.cat([ids[:, :first], ids[:, first + 1 :]], dim=1)  # drop one placeholder: 3 tokens, 4 features
    with pytest.raises(ValueError, match=r"holds 3 image tokens.*1 image\(s\) x 4 tokens give 4 features"):
        model(input_ids=ids, pixel_values=inputs["pixel_values"])
    with pytest.raises(ValueError, match="4 image tokens but no pixel_values"):
        model(input_ids=inputs["input_ids"])
    with pytest.raises(ValueError, match=r"1 '<image>' placeholder\(s\) but 2 image\(s\)"):
        processor(images=images[:2], text=PROMPTS[0])


def test_wrong_pixel_shape_raises(make_model):
    model, _ = make_model()
    with pytest.raises(ValueError, match=r"\[batch, 3, 32, 32\].*\(1, 3, 28, 28\)"):
        model.get_image_features(torch.randn(1, 3, 28, 28))


def test_unknown_names_raise(tokenizer):
    from sec_mllm.tiny import tiny_clip_vision_config

    llm = tiny_llama_config(vocab_size=len(tokenizer))
    with pytest.raises(ValueError, match=r"unknown projector 'nope'; choose one of \['avgpool'"):
        build_model(tiny_clip_vision_config(), llm, "nope", {}, tokenizer=tokenizer)
    with pytest.raises(ValueError, match=r"unknown connector 'mlp_relu'; choose one of"):
        build_model(tiny_clip_vision_config(), llm, "identity", {}, "mlp_relu", tokenizer=tokenizer)
    with pytest.raises(ValueError, match="num_tokens=17 is larger than the number of input tokens N=16"):
        build_model(tiny_clip_vision_config(), llm, "tome", {"num_tokens": 17}, tokenizer=tokenizer)


@pytest.mark.parametrize("tie", [False, True])
def test_save_and_auto_load_round_trip(make_model, images, tmp_path, tie):
    model, processor = make_model(tie_word_embeddings=tie)
    model.save_pretrained(tmp_path)
    processor.save_pretrained(tmp_path)
    inputs = processor(images=images[0], text=PROMPTS[0])
    for auto in (AutoModel, AutoModelForImageTextToText):
        loaded = auto.from_pretrained(tmp_path).eval()
        assert isinstance(loaded, SecMllmForConditionalGeneration)
        torch.testing.assert_close(loaded(**inputs).logits, model(**inputs).logits)


def test_auto_load_in_a_process_that_cannot_import_sec_mllm(make_model, images, tmp_path):
    model, processor = make_model("sec", {"num_tokens": 4, "order": "position"})
    model.save_pretrained(tmp_path / "ckpt")
    processor.save_pretrained(tmp_path / "ckpt")
    config = json.loads((tmp_path / "ckpt" / "config.json").read_text())
    assert config["auto_map"]["AutoModel"] == "modeling_sec_mllm.SecMllmForConditionalGeneration"
    assert config["auto_map"]["AutoModelForImageTextToText"] == "modeling_sec_mllm.SecMllmForConditionalGeneration"
    images[0].save(tmp_path / "img.png")
    inputs = processor(images=images[0], text=PROMPTS[0])
    torch.save(model(**inputs).logits, tmp_path / "expected.pt")
    script = textwrap.dedent(
        f"""
        import sys
        sys.modules["sec_mllm"] = None  # any import of the package now fails
        import torch
        from PIL import Image
        from transformers import AutoModel, AutoProcessor
        ckpt = {str(tmp_path / "ckpt")!r}
        model = AutoModel.from_pretrained(ckpt, trust_remote_code=True).eval()
        processor = AutoProcessor.from_pretrained(ckpt, trust_remote_code=True)
        assert "sec_mllm" not in type(model).__module__.split(".")[0]
        inputs = processor(images=[Image.open({str(tmp_path / "img.png")!r})], text=[{PROMPTS[0]!r}])
        torch.testing.assert_close(model(**inputs).logits, torch.load({str(tmp_path / "expected.pt")!r}))
        out = model.generate(**inputs, max_new_tokens=3, do_sample=False)
        print("OK", processor.batch_decode(out[:, -3:])[0] is not None)
        """
    )
    env = {"HF_MODULES_CACHE": str(tmp_path / "modules"), "HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"}
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "OK True" in result.stdout


def test_forward_warns_about_no_cache_keyword_and_takes_both_spellings(make_model, images, tokenizer):
    """transformers >= 5.24 renamed past_key_values to cache; the model passes the LM the name it declares."""
    model, processor = make_model()
    tokenizer.padding_side = "left"
    inputs = processor(images=images[:2], text=PROMPTS)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any deprecation warning fails the test
        with torch.no_grad():
            prefill = model(**inputs, use_cache=True)
            model.generate(**inputs, max_new_tokens=3, do_sample=False)
            model.generate(**inputs, max_new_tokens=3, do_sample=False, use_cache=False)
    cache = prefill["cache"] if "cache" in prefill else prefill["past_key_values"]
    next_ids = prefill.logits[:, -1:].argmax(-1)  # [B, 1]
    mask = torch.cat([inputs["attention_mask"], torch.ones_like(next_ids)], dim=1)
    steps = {}
    for spelling in ("cache", "past_key_values"):
        cache_copy = copy.deepcopy(cache)
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("error")
            steps[spelling] = model(input_ids=next_ids, attention_mask=mask, **{spelling: cache_copy}).logits
        assert cache_copy.get_seq_length() == inputs["input_ids"].shape[1] + 1  # the step used (and grew) it
    torch.testing.assert_close(steps["cache"], steps["past_key_values"])
    with pytest.raises(ValueError, match="not both"):
        model(input_ids=next_ids, cache=copy.deepcopy(cache), past_key_values=copy.deepcopy(cache))


def test_projector_runs_in_its_own_dtype(make_model, images):
    """A float32 projector inside a bfloat16 model (e.g. kept in full precision) gets float32 features."""
    model, processor = make_model("sec", {"num_tokens": 4})
    model.to(torch.bfloat16)
    model.projector.float()
    inputs = processor(images=images[:1], text=PROMPTS[:1])
    with torch.no_grad():
        logits = model(**inputs).logits
    assert logits.dtype == torch.bfloat16 and torch.isfinite(logits).all()


def test_compiled_forward_is_one_graph_and_matches_eager(make_model, images, tokenizer):
    """No host synchronisation and no graph break: fullgraph=True traces the whole forward (dynamo's eager
    backend: tracing only, no kernel compilation); prefill, decode and generate match eager."""
    model, processor = make_model()
    tokenizer.padding_side = "left"
    inputs = processor(images=images[:2], text=PROMPTS)
    with torch.no_grad():
        expected = model(**inputs).logits
    expected_ids = model.generate(**inputs, max_new_tokens=4, do_sample=False)
    torch._dynamo.reset()
    model.compile_for_inference(fullgraph=True, backend="eager")
    with torch.no_grad():
        torch.testing.assert_close(model(**inputs).logits, expected)
    assert torch.equal(model.generate(**inputs, max_new_tokens=4, do_sample=False), expected_ids)
    assert model.generation_config.disable_compile and not model.training


@pytest.mark.slow
def test_inductor_compiled_forward_matches_eager(make_model, images):
    """One small case through inductor (C++ kernels on CPU: about a minute)."""
    model, processor = make_model()
    inputs = processor(images=images[:1], text=PROMPTS[:1])
    with torch.no_grad():
        expected = model(**inputs, logits_to_keep=1).logits
    torch._dynamo.reset()
    model.compile_for_inference(fullgraph=True)
    with torch.no_grad():
        torch.testing.assert_close(model(**inputs, logits_to_keep=1).logits, expected, atol=1e-5, rtol=1e-5)


def test_text_only_training_batch_still_runs_the_image_path(make_model, tokenizer):
    """Training on a batch without images runs a zero image through tower, projector and connector with a zero
    contribution: the loss is unchanged and every projector / connector weight gets an (all-zero) gradient, so
    ranks with and without images call the same modules (ZeRO-3 gathers, gradient reductions). Inference skips it."""
    model, processor = make_model()
    inputs = processor(text=["USER: hello there ASSISTANT: hi"])
    labels = inputs["input_ids"].clone()
    tower_calls = []
    model.vision_tower.register_forward_hook(lambda *args: tower_calls.append(1))
    with torch.no_grad():
        expected = model(**inputs, labels=labels).loss
    assert not tower_calls  # eval, no ZeRO-3: no placeholder image
    model.train()
    loss = model(**inputs, labels=labels).loss
    assert len(tower_calls) == 1
    torch.testing.assert_close(loss, expected)
    loss.backward()
    for name, p in model.named_parameters():
        if name.startswith(("projector.", "connector.")):
            assert p.grad is not None and not p.grad.any(), name
