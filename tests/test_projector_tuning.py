"""Projector-only tuning from an existing LLaVA: convert, then stage 1 with --model_name_or_path the converted
folder (language model and tower frozen, projector + connector trained), through the real launcher."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file
from test_training import launch, losses
from transformers import AutoModel, AutoProcessor

from sec_mllm import llava_to_sec_mllm
from sec_mllm.tiny import write_tiny_llava_checkpoint, write_tiny_llava_data
from sec_mllm.train.arguments import parse_args
from sec_mllm.train.assemble import check_model_args, model_from_args


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    """A tiny LLaVA converted with a learned sec projector (K = 4 of N = 16), its training data."""
    root = tmp_path_factory.mktemp("tuning")
    llava = write_tiny_llava_checkpoint(str(root / "llava"))
    with pytest.warns(UserWarning, match="UNTRAINED"):
        model, processor = llava_to_sec_mllm(llava, "sec", {"num_tokens": 4})
    model.save_pretrained(root / "ckpt")
    processor.save_pretrained(root / "ckpt")
    captions, _, images = write_tiny_llava_data(str(root / "data"))
    return {"root": root, "ckpt": str(root / "ckpt"), "captions": captions, "images": images}


def tuning_args(converted, extra=()) -> list[str]:
    return [
        "--model_name_or_path",
        converted["ckpt"],
        "--version",
        "plain",
        "--data_path",
        converted["captions"],
        "--image_folder",
        converted["images"],
        "--tune_mm_mlp_adapter",
        "True",
        "--output_dir",
        str(converted["root"] / "out"),
        "--report_to",
        "none",
        *extra,
    ]


def test_a_checkpoint_keeps_its_projector_or_takes_the_flags(converted):
    model_args, _, _ = parse_args(tuning_args(converted))
    saved = AutoModel.from_pretrained(converted["ckpt"])
    same = model_from_args(model_args, tokenizer=None)
    assert same.config.projector_config == {"num_tokens": 4} and same.num_image_tokens == 4
    for name, tensor in saved.state_dict().items():
        assert torch.equal(same.state_dict()[name], tensor), name

    # another K keeps the learned projector weights (their shapes do not depend on K)
    model_args, _, _ = parse_args(tuning_args(converted, ["--num_visual_tokens", "2", "--sec_order", "position"]))
    fewer = model_from_args(model_args, tokenizer=None)
    assert fewer.config.projector_config == {"num_tokens": 2, "order": "position"} and fewer.num_image_tokens == 2
    assert torch.equal(fewer.projector.pos_embed.weight, saved.projector.pos_embed.weight)

    # another projector type replaces it; everything else is the checkpoint's
    model_args, _, _ = parse_args(tuning_args(converted, ["--projector_type", "avgpool", "--num_visual_tokens", "4"]))
    pooled = model_from_args(model_args, tokenizer=None)
    assert pooled.config.projector_type == "avgpool" and not list(pooled.projector.parameters())
    assert torch.equal(pooled.connector[0].weight, saved.connector[0].weight)


@pytest.mark.parametrize(
    "extra,match",
    [
        (["--vision_tower", "openai/clip-vit-large-patch14-336"], "holds its vision tower"),
        (["--mm_projector_type", "linear"], "--mm_projector_type linear: its connector is mlp2x_gelu"),
        (["--mm_vision_select_layer", "-1"], "--mm_vision_select_layer -1: it reads layer -2"),
    ],
)
def test_flags_that_contradict_the_checkpoint_are_refused(converted, extra, match):
    model_args, _, _ = parse_args(tuning_args(converted, extra))
    with pytest.raises(SystemExit, match=match):
        check_model_args(model_args)


def test_an_unconverted_llava_is_refused_with_the_conversion_command(converted):
    model_args, _, _ = parse_args(tuning_args(converted))
    model_args.model_name_or_path = str(converted["root"] / "llava")
    with pytest.raises(SystemExit, match="is a LLaVA checkpoint; convert it first"):
        check_model_args(model_args)


@pytest.mark.slow
def test_projector_only_tuning_from_a_converted_llava(converted):
    out = converted["root"] / "out"
    log = launch(
        "pretrain.py",
        1,
        tuning_args(
            converted,
            [
                "--mm_projector_type",
                "mlp2x_gelu",  # what LLaVA's script passes: accepted, it agrees with the checkpoint
                "--mm_vision_select_layer",
                "-2",
                "--deepspeed",
                "configs/deepspeed/zero2.json",  # fp32: a bf16 copy would change the frozen weights it saves
                "--per_device_train_batch_size",
                "4",
                "--max_steps",
                "20",
                "--learning_rate",
                "2e-2",
                "--logging_steps",
                "5",
                "--save_strategy",
                "no",
                "--dataloader_num_workers",
                "0",
            ],
        ),
    )
    assert "stage 1 trainable parameters" in log
    seen = losses(log)
    assert len(seen) >= 3 and seen[-1] < seen[0], seen

    before = AutoModel.from_pretrained(converted["ckpt"]).state_dict()
    tuned = AutoModel.from_pretrained(out).eval()  # a whole model, not only mm_projector.bin
    after = tuned.state_dict()
    assert sorted(after) == sorted(before)
    changed = {name for name in before if not torch.equal(before[name].float(), after[name].float())}
    assert changed, "nothing was trained"
    assert all(name.startswith(("projector.", "connector.")) for name in changed), sorted(changed)
    assert any(n.startswith("projector.") for n in changed) and any(n.startswith("connector.") for n in changed)
    assert set(load_file(out / "model.safetensors")) >= {"projector.pos_embed.weight", "connector.0.weight"}
    assert (out / "mm_projector.bin").is_file()

    processor = AutoProcessor.from_pretrained(out)
    assert processor.num_image_tokens == tuned.num_image_tokens == 4
