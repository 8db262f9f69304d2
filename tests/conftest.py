"""Shared fixtures: one thread (the CI machine has two shared cores), a tiny offline tokenizer and model; tests
marked ``gpu`` are skipped without CUDA."""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest
import torch

torch.set_num_threads(1)

from sec_mllm import build_model, build_processor  # noqa: E402
from sec_mllm.tiny import tiny_clip_vision_config, tiny_llama_config, train_tokenizer  # noqa: E402


def pytest_collection_modifyitems(config, items):
    """Tests marked ``gpu`` need a CUDA device: skipped without one (CI has none)."""
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def tokenizer():
    return train_tokenizer()


@pytest.fixture
def make_model(tokenizer):
    """Factory: a tiny random SEC-MLLM (CLIP 32 px / patch 8 -> N = 16) and its processor."""

    def make(projector_type="sec", projector_config=None, vision_config=None, tie_word_embeddings=False, seed=0):
        torch.manual_seed(seed)
        model = build_model(
            vision_config or tiny_clip_vision_config(),
            tiny_llama_config(vocab_size=len(tokenizer), tie_word_embeddings=tie_word_embeddings),
            projector_type,
            {"num_tokens": 4} if projector_config is None else projector_config,
            tokenizer=tokenizer,
        ).eval()
        return model, build_processor(model.config, tokenizer)

    return make


@pytest.fixture
def saved_sec(make_model, tmp_path):
    """The default tiny SEC-MLLM (K = 4) saved with its processor: ``(model, processor, folder)``."""
    model, processor = make_model("sec", {"num_tokens": 4})
    model.save_pretrained(tmp_path / "ckpt")
    processor.save_pretrained(tmp_path / "ckpt")
    return model, processor, tmp_path / "ckpt"


@pytest.fixture
def images():
    gen = torch.Generator().manual_seed(0)
    from PIL import Image

    arrays = [
        (torch.rand(h, w, 3, generator=gen) * 255).to(torch.uint8).numpy() for h, w in ((40, 30), (32, 32), (20, 50))
    ]
    return [Image.fromarray(a) for a in arrays]


def require_extra(module: str):
    """Import an optional dependency of the integrations (extras lmms / demo / browser): skip without it, unless
    SEC_MLLM_REQUIRE_EXTRAS=1 (CI, after installing the extras), where a missing one fails instead."""
    if os.environ.get("SEC_MLLM_REQUIRE_EXTRAS") == "1":
        import importlib

        return importlib.import_module(module)
    return pytest.importorskip(module)
