"""Tiny, random, offline models: a byte-level BPE tokenizer trained in a fraction of a second, vision /
language configs small enough for CPU, and tiny saved checkpoints and LLaVA-format data built from them.
Used by the tests and by the experiments (synthetic quick start, benchmarks). Nothing here downloads
anything; default sizes are the tests' (image 32 px, patch 8, width 32-64, 2 layers, small vocabulary).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable

import torch
from PIL import Image
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import (
    AutoModelForCausalLM,
    CLIPVisionConfig,
    CLIPVisionModel,
    LlamaConfig,
    LlavaConfig,
    LlavaForConditionalGeneration,
    LlavaProcessor,
    PreTrainedTokenizerFast,
    SiglipVisionConfig,
)

from .builder import default_image_processor
from .vision import OpenClipVisionConfig

SPECIAL_TOKENS = ("<unk>", "<s>", "</s>", "<pad>", "<image>")
DEFAULT_CORPUS = (
    "USER: What is shown in the picture? ASSISTANT: A red circle and a blue square.",
    "A chat between a curious user and an artificial intelligence assistant.",
    "Answer the question using a single word or phrase. yes no left right 0 1 2 3 4 5 6 7 8 9",
)


def train_tokenizer(
    texts: Iterable[str] = DEFAULT_CORPUS, vocab_size: int = 256, split_digits: bool = False
) -> PreTrainedTokenizerFast:
    """Byte-level BPE with ``<unk> <s> </s> <pad> <image>`` as special tokens, wrapped for transformers.
    ``split_digits``: every digit is its own token, as in LLaMA's tokenizer (a number is read digit by digit)."""
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    byte_level = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.pre_tokenizer = (
        pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True), byte_level])
        if split_digits
        else byte_level
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(list(texts), trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        unk_token="<unk>",
        bos_token="<s>",
        eos_token="</s>",
        pad_token="<pad>",
        additional_special_tokens=["<image>"],
    )


def _tiny_vision_kwargs(image_size: int, patch_size: int, hidden_size: int, layers: int) -> dict:
    return dict(
        image_size=image_size,
        patch_size=patch_size,
        hidden_size=hidden_size,
        intermediate_size=2 * hidden_size,
        num_hidden_layers=layers,
        num_attention_heads=2,
    )


def tiny_clip_vision_config(
    image_size: int = 32, patch_size: int = 8, hidden_size: int = 32, layers: int = 2
) -> CLIPVisionConfig:
    return CLIPVisionConfig(
        projection_dim=hidden_size, **_tiny_vision_kwargs(image_size, patch_size, hidden_size, layers)
    )


def tiny_siglip_vision_config(
    image_size: int = 32, patch_size: int = 8, hidden_size: int = 32, layers: int = 2
) -> SiglipVisionConfig:
    return SiglipVisionConfig(**_tiny_vision_kwargs(image_size, patch_size, hidden_size, layers))


def tiny_open_clip_vision_config(
    image_size: int = 32, patch_size: int = 8, width: int = 32, layers: int = 2
) -> OpenClipVisionConfig:
    model_cfg = {
        "embed_dim": width,
        "vision_cfg": {
            "image_size": image_size,
            "patch_size": patch_size,
            "width": width,
            "layers": layers,
            "head_width": width // 2,
        },
        "text_cfg": {"context_length": 16, "vocab_size": 256, "width": width, "heads": 2, "layers": layers},
    }
    return OpenClipVisionConfig(model_name="tiny", model_cfg=model_cfg)


def tiny_llama_config(
    vocab_size: int = 256,
    hidden_size: int = 64,
    layers: int = 2,
    tie_word_embeddings: bool = False,
    initializer_range: float = 0.02,
) -> LlamaConfig:
    return LlamaConfig(
        initializer_range=initializer_range,
        vocab_size=vocab_size,
        hidden_size=hidden_size,
        intermediate_size=2 * hidden_size,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=3,
        tie_word_embeddings=tie_word_embeddings,
    )


def write_tiny_checkpoints(folder: str, seed: int = 0) -> tuple[str, str]:
    """Save a tiny Llama (with the offline tokenizer) and a tiny CLIP vision model; return their paths."""
    root = Path(folder)
    torch.manual_seed(seed)
    tokenizer = train_tokenizer(list(DEFAULT_CORPUS) + [f"a {c} {s}" for c in COLORS for s in ("square", "image")])
    lm = AutoModelForCausalLM.from_config(tiny_llama_config(vocab_size=len(tokenizer)))
    lm.save_pretrained(root / "lm")
    tokenizer.save_pretrained(root / "lm")
    CLIPVisionModel(tiny_clip_vision_config()).save_pretrained(root / "clip")
    return str(root / "lm"), str(root / "clip")


def write_tiny_llava_checkpoint(folder: str, tokenizer: PreTrainedTokenizerFast | None = None, seed: int = 0) -> str:
    """A random transformers-format LLaVA-1.5 (``LlavaForConditionalGeneration`` + ``LlavaProcessor``) with a
    tiny CLIP tower (32 px, patch 8: N = 16 patches) and a tiny Llama, saved as llava-hf checkpoints are."""
    tokenizer = tokenizer or train_tokenizer()
    torch.manual_seed(seed)
    vision = tiny_clip_vision_config()
    config = LlavaConfig(
        vision_config=vision,
        text_config=tiny_llama_config(vocab_size=len(tokenizer)),
        image_token_index=tokenizer.convert_tokens_to_ids("<image>"),
        image_seq_length=(vision.image_size // vision.patch_size) ** 2,
        vision_feature_layer=-2,
    )
    LlavaForConditionalGeneration(config).save_pretrained(folder)
    processor = LlavaProcessor(
        image_processor=default_image_processor(vision),  # OpenAI CLIP's statistics, as llava-hf's
        tokenizer=tokenizer,
        patch_size=vision.patch_size,
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,  # CLIP's CLS, as llava-hf checkpoints set it
    )
    processor.save_pretrained(folder)
    return folder


COLORS = ("red", "green", "blue", "yellow")


def write_tiny_llava_data(folder: str, num_samples: int = 8) -> tuple[str, str, str]:
    """Solid-colour squares on a grey canvas with captions (stage-1 JSON) and questions (stage-2 JSON,
    with one multi-turn and one text-only sample). Returns (caption file, instruction file, image folder)."""
    root = Path(folder)
    (root / "images").mkdir(parents=True, exist_ok=True)
    captions, instructions = [], []
    for i in range(num_samples):
        color = COLORS[i % len(COLORS)]
        rgb = {"red": (220, 30, 30), "green": (30, 200, 30), "blue": (30, 30, 220), "yellow": (230, 220, 20)}[color]
        image = Image.new("RGB", (40, 32), (128, 128, 128))
        image.paste(rgb, (4 + i, 4, 28 + i, 28))
        image.save(root / "images" / f"{i}.png")
        captions.append(
            {
                "id": f"cap{i}",
                "image": f"{i}.png",
                "conversations": [
                    {"from": "human", "value": "<image>\nDescribe the image briefly."},
                    {"from": "gpt", "value": f"a {color} square"},
                ],
            }
        )
        turns = [{"from": "human", "value": "What color is the square?\n<image>"}, {"from": "gpt", "value": color}]
        if i == 0:
            turns += [{"from": "human", "value": "What shape is it?"}, {"from": "gpt", "value": "square"}]
        instructions.append({"id": f"ins{i}", "image": f"{i}.png", "conversations": turns})
    instructions.append(
        {"id": "text0", "conversations": [{"from": "human", "value": "Say yes."}, {"from": "gpt", "value": "yes"}]}
    )
    (root / "captions.json").write_text(json.dumps(captions))
    (root / "instructions.json").write_text(json.dumps(instructions))
    return str(root / "captions.json"), str(root / "instructions.json"), str(root / "images")
