"""build_model from local checkpoint folders and open_clip weight files keeps the pretrained weights."""

from __future__ import annotations

import json

import open_clip
import torch
from transformers import AutoModelForCausalLM, CLIPConfig, CLIPModel

from sec_mllm import build_model, build_processor
from sec_mllm.tiny import tiny_clip_vision_config, tiny_llama_config


def test_build_from_local_checkpoints(tmp_path, tokenizer, images):
    torch.manual_seed(0)
    vision = tiny_clip_vision_config()
    clip = CLIPModel(
        CLIPConfig(
            vision_config=vision.to_dict(),
            text_config={
                "hidden_size": 32,
                "intermediate_size": 64,
                "num_hidden_layers": 1,
                "num_attention_heads": 2,
                "vocab_size": 99,
            },
            projection_dim=16,
        )
    )
    clip.save_pretrained(tmp_path / "clip")
    lm = AutoModelForCausalLM.from_config(tiny_llama_config(vocab_size=len(tokenizer) - 1))  # no room for <image> yet
    lm.save_pretrained(tmp_path / "lm")
    tokenizer.save_pretrained(tmp_path / "lm")

    model = build_model(str(tmp_path / "clip"), str(tmp_path / "lm"), "sec", {"num_tokens": 4})
    torch.testing.assert_close(
        model.vision_tower.model.embeddings.patch_embedding.weight,
        clip.vision_model.embeddings.patch_embedding.weight,
    )
    torch.testing.assert_close(
        model.language_model.model.layers[0].mlp.up_proj.weight, lm.model.layers[0].mlp.up_proj.weight
    )
    assert not any(p.requires_grad for p in model.vision_tower.parameters())
    processor = build_processor(model.config, str(tmp_path / "lm"))
    assert model.get_input_embeddings().num_embeddings >= len(processor.tokenizer)
    out = model(**processor(images=images[0], text="USER: <image>\nHi ASSISTANT:"))
    assert torch.isfinite(out.logits).all()


def test_open_clip_tower_with_a_local_weights_file(tmp_path, tokenizer):
    cfg = {
        "embed_dim": 32,
        "vision_cfg": {"image_size": 32, "patch_size": 8, "width": 32, "layers": 2, "head_width": 16},
        "text_cfg": {"context_length": 16, "vocab_size": 64, "width": 32, "heads": 2, "layers": 1},
    }
    (tmp_path / "cfgs").mkdir()
    (tmp_path / "cfgs" / "TinyTestViT.json").write_text(json.dumps(cfg))
    open_clip.add_model_config(tmp_path / "cfgs")
    torch.manual_seed(0)
    reference = open_clip.create_model("TinyTestViT")
    torch.save(reference.state_dict(), tmp_path / "tiny.pt")
    model = build_model(
        "open_clip:TinyTestViT",
        tiny_llama_config(vocab_size=len(tokenizer)),
        "identity",
        {},
        tokenizer=tokenizer,
        vision_tower_pretrained=str(tmp_path / "tiny.pt"),
    )
    torch.testing.assert_close(model.vision_tower.model.conv1.weight, reference.visual.conv1.weight)
    assert model.num_image_tokens == 16
