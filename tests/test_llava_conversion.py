"""Starting from a transformers-format LLaVA: identity projector reproduces LLaVA's logits."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from transformers import LlavaConfig, LlavaForConditionalGeneration, LlavaProcessor

from sec_mllm import from_llava_pretrained, llava_to_sec_mllm
from sec_mllm.builder import default_image_processor
from sec_mllm.tiny import tiny_clip_vision_config, tiny_llama_config

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def llava_dir(tmp_path, tokenizer):
    torch.manual_seed(0)
    vision = tiny_clip_vision_config()
    config = LlavaConfig(
        vision_config=vision,
        text_config=tiny_llama_config(vocab_size=len(tokenizer)),
        image_token_index=tokenizer.convert_tokens_to_ids("<image>"),
        image_seq_length=16,
        vision_feature_layer=-2,
    )
    LlavaForConditionalGeneration(config).save_pretrained(tmp_path / "llava")
    processor = LlavaProcessor(
        image_processor=default_image_processor(vision),
        tokenizer=tokenizer,
        patch_size=vision.patch_size,
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,  # CLIP's CLS, as llava-hf checkpoints set it
    )
    processor.save_pretrained(tmp_path / "llava")
    return tmp_path / "llava"


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
