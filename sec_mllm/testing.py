"""Tiny, random, offline building blocks: a byte-level BPE tokenizer trained in a fraction of a second and
vision / language configs small enough for CPU tests and the synthetic quick start.

Nothing here downloads anything; sizes follow DESIGN.md section 7 (image 32 px, patch 8, width 32-64,
2 layers, small vocabulary) unless the caller asks otherwise.
"""

from __future__ import annotations

from typing import Iterable

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import CLIPVisionConfig, LlamaConfig, PreTrainedTokenizerFast, SiglipVisionConfig

from .configuration_sec_mllm import OpenClipVisionConfig

SPECIAL_TOKENS = ("<unk>", "<s>", "</s>", "<pad>", "<image>")
DEFAULT_CORPUS = (
    "USER: What is shown in the picture? ASSISTANT: A red circle and a blue square.",
    "A chat between a curious user and an artificial intelligence assistant.",
    "Answer the question using a single word or phrase. yes no left right 0 1 2 3 4 5 6 7 8 9",
)


def train_tokenizer(texts: Iterable[str] = DEFAULT_CORPUS, vocab_size: int = 256) -> PreTrainedTokenizerFast:
    """Byte-level BPE with ``<unk> <s> </s> <pad> <image>`` as special tokens, wrapped for transformers."""
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
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


def tiny_clip_vision_config(image_size: int = 32, patch_size: int = 8, hidden_size: int = 32, layers: int = 2) -> CLIPVisionConfig:
    return CLIPVisionConfig(
        image_size=image_size,
        patch_size=patch_size,
        hidden_size=hidden_size,
        intermediate_size=2 * hidden_size,
        num_hidden_layers=layers,
        num_attention_heads=2,
        projection_dim=hidden_size,
    )


def tiny_siglip_vision_config(image_size: int = 32, patch_size: int = 8, hidden_size: int = 32, layers: int = 2) -> SiglipVisionConfig:
    return SiglipVisionConfig(
        image_size=image_size,
        patch_size=patch_size,
        hidden_size=hidden_size,
        intermediate_size=2 * hidden_size,
        num_hidden_layers=layers,
        num_attention_heads=2,
    )


def tiny_open_clip_vision_config(image_size: int = 32, patch_size: int = 8, width: int = 32, layers: int = 2) -> OpenClipVisionConfig:
    model_cfg = {
        "embed_dim": width,
        "vision_cfg": {"image_size": image_size, "patch_size": patch_size, "width": width, "layers": layers, "head_width": width // 2},
        "text_cfg": {"context_length": 16, "vocab_size": 256, "width": width, "heads": 2, "layers": layers},
    }
    return OpenClipVisionConfig(model_name="tiny", model_cfg=model_cfg)


def tiny_llama_config(vocab_size: int = 256, hidden_size: int = 64, layers: int = 2, tie_word_embeddings: bool = False) -> LlamaConfig:
    return LlamaConfig(
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
