"""Both training stages through the real `deepspeed` launcher on tiny models (CPU ranks, gloo)."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image
from transformers import AutoModel, AutoProcessor

from sec_mllm.data.templates import VICUNA_SYSTEM
from sec_mllm.tiny import write_tiny_checkpoints, write_tiny_llava_data

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("train")
    lm, clip = write_tiny_checkpoints(str(root))
    captions, instructions, images = write_tiny_llava_data(str(root / "data"))
    return {"root": root, "lm": lm, "clip": clip, "captions": captions, "instructions": instructions, "images": images}


def launch(script: str, ranks: int, args: list[str], timeout: float = 600) -> str:
    """Run ``script`` under the deepspeed launcher; a run past ``timeout`` (a hang) fails the test and its whole
    process group (launcher and ranks) is killed. A finished launch leaves no shared-memory buffers."""
    port = free_port()
    cmd = [
        sys.executable,
        "-m",
        "deepspeed.launcher.runner",
        "--num_gpus",
        str(ranks),
        "--master_port",
        str(port),
        str(ROOT / "scripts" / script),
        *args,
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT, env=env, start_new_session=True
    )
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        pytest.fail(f"{script} did not finish within {timeout:.0f} s (a hang); last output:\n{out[-3000:]}")
    assert proc.returncode == 0, out[-4000:]
    assert not list(Path("/dev/shm").glob(f"deepspeed_allreduce_buffer_*_{port}_*"))  # DeepSpeed never unlinks them
    return out


def losses(log: str) -> list[float]:
    return [float(x) for x in re.findall(r"'loss': '([\d.]+)'", log)]


def common(tiny, output_dir, data, version) -> list[str]:
    """Flags every launch here shares. SEC with attention reduction (not the default mean): its learned W_k and W_q,
    W_k reached only through the attention logits, are the hardest case for ZeRO-3's partitioned weights."""
    return [
        "--model_name_or_path",
        tiny["lm"],
        "--vision_tower",
        tiny["clip"],
        "--version",
        version,
        "--data_path",
        data,
        "--image_folder",
        tiny["images"],
        "--mm_projector_type",
        "mlp2x_gelu",
        "--projector_type",
        "sec",
        "--num_visual_tokens",
        "4",
        "--sec_reduction",
        "attn",
        "--output_dir",
        str(output_dir),
        "--per_device_train_batch_size",
        "2",
        "--report_to",
        "none",
        "--dataloader_num_workers",
        "0",
        "--evaluation_strategy",
        "no",
        "--lazy_preprocess",
        "True",
    ]


@pytest.fixture(scope="module")
def stage1(tiny):
    out = tiny["root"] / "stage1"
    log = launch(
        "pretrain.py",
        2,
        common(tiny, out, tiny["captions"], "plain")
        + [
            "--deepspeed",
            "configs/deepspeed/zero2.json",
            "--tune_mm_mlp_adapter",
            "True",
            "--bf16",
            "True",
            "--max_steps",
            "30",
            "--learning_rate",
            "2e-2",
            "--logging_steps",
            "5",
            "--save_strategy",
            "no",
        ],
    )
    return out, log


def test_stage1_zero2_two_ranks(stage1):
    out, log = stage1
    values = losses(log)
    assert len(values) >= 4 and values[-1] < values[0], values
    weights = torch.load(out / "mm_projector.bin", weights_only=True)
    assert {k.split(".")[0] for k in weights} == {"projector", "connector"}
    config = json.loads((out / "config.json").read_text())
    assert "learning_rate" not in json.dumps(config) and config["projector_config"] == {
        "num_tokens": 4,
        "reduction": "attn",
    }
    run_config = json.loads((out / "run_config.json").read_text())
    assert run_config["training"]["learning_rate"] == 0.02 and run_config["model"]["projector_type"] == "sec"
    assert "stage 1 trainable parameters" in log


def test_stage2_zero3_starts_from_stage1_weights(tiny, stage1):
    out = tiny["root"] / "handoff"
    launch(
        "finetune.py",
        2,
        common(tiny, out, tiny["instructions"], "v1")
        + [
            "--deepspeed",
            "configs/deepspeed/zero3.json",
            "--pretrain_mm_mlp_adapter",
            str(stage1[0] / "mm_projector.bin"),
            "--bf16",
            "True",
            "--max_steps",
            "2",
            "--learning_rate",
            "0",
            "--save_strategy",
            "no",
        ],
    )
    stage1_weights = torch.load(stage1[0] / "mm_projector.bin", weights_only=True)
    model = AutoModel.from_pretrained(out)
    saved = {k: v for k, v in model.state_dict().items() if k.startswith(("projector.", "connector."))}
    assert saved.keys() == stage1_weights.keys()
    for key, value in stage1_weights.items():
        assert torch.equal(saved[key].float(), value.float()), key


def test_stage2_zero3_learns_and_loads_with_automodel(tiny, stage1):
    out = tiny["root"] / "stage2"
    log = launch(
        "finetune.py",
        2,
        common(tiny, out, tiny["instructions"], "v1")
        + [
            "--deepspeed",
            "configs/deepspeed/zero3.json",
            "--pretrain_mm_mlp_adapter",
            str(stage1[0] / "mm_projector.bin"),
            "--image_aspect_ratio",
            "pad",
            "--group_by_modality_length",
            "True",
            "--gradient_checkpointing",
            "True",
            "--bf16",
            "True",
            "--max_steps",
            "30",
            "--learning_rate",
            "5e-3",
            "--logging_steps",
            "10",
            "--save_strategy",
            "no",
        ],
    )
    values = losses(log)
    assert values[-1] < 0.7 * values[0], values
    model = AutoModel.from_pretrained(out).eval()
    processor = AutoProcessor.from_pretrained(out)
    inputs = processor(
        images=Image.open(Path(tiny["images"]) / "0.png"),
        text=VICUNA_SYSTEM + " USER: <image>\nWhat color is the square? ASSISTANT:",
    )
    generated = model.generate(**inputs, max_new_tokens=3, do_sample=False)
    assert generated.shape[1] > inputs["input_ids"].shape[1]


def test_lora_resume_and_merge(tiny, stage1):
    out = tiny["root"] / "lora"
    args = common(tiny, out, tiny["instructions"], "v1") + [
        "--deepspeed",
        "configs/deepspeed/zero2.json",
        "--pretrain_mm_mlp_adapter",
        str(stage1[0] / "mm_projector.bin"),
        "--lora_enable",
        "True",
        "--lora_r",
        "8",
        "--lora_alpha",
        "16",
        "--mm_projector_lr",
        "1e-3",
        "--max_steps",
        "8",
        "--learning_rate",
        "1e-2",
        "--logging_steps",
        "1",
        "--save_strategy",
        "steps",
        "--save_steps",
        "4",
    ]
    first = launch("finetune.py", 1, args)
    assert (out / "checkpoint-4").is_dir() and (out / "adapter_model.safetensors").is_file()
    resumed = launch("finetune.py", 1, args + ["--resume_from_checkpoint", str(out / "checkpoint-4")])
    assert len(losses(resumed)) == 4  # steps 5..8 only
    assert losses(resumed) == pytest.approx(losses(first)[4:], rel=1e-3)

    from peft import PeftModel

    from sec_mllm.train.arguments import ModelArguments
    from sec_mllm.train.assemble import model_from_args
    from sec_mllm.train.checkpoints import load_mm_projector

    processor = AutoProcessor.from_pretrained(out)
    run = json.loads((out / "run_config.json").read_text())["model"]
    base = model_from_args(ModelArguments(**run), processor.tokenizer)
    load_mm_projector(base, str(out / "non_lora_trainables.bin"))
    unmerged = PeftModel.from_pretrained(base, out).eval()
    inputs = processor(images=Image.open(Path(tiny["images"]) / "1.png"), text="USER: <image>\nWhat color? ASSISTANT:")
    with torch.no_grad():
        expected = unmerged(**inputs).logits
    merged_dir = tiny["root"] / "merged"
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts" / "merge_lora.py"),
            "--model-path",
            str(out),
            "--save-model-path",
            str(merged_dir),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    merged = AutoModel.from_pretrained(merged_dir).eval()
    with torch.no_grad():
        torch.testing.assert_close(merged(**inputs).logits, expected, atol=1e-4, rtol=1e-4)
    assert not any("lora_" in k for k in merged.state_dict())


ZERO3_HOOK_WARNING = "unknown inputs or outputs type"


def stage2_args(tiny, out, data, stage1_dir, zero: str, steps: int, extra: list[str]) -> list[str]:
    return common(tiny, out, data, "v1") + [
        "--deepspeed",
        f"configs/deepspeed/{zero}.json",
        "--pretrain_mm_mlp_adapter",
        str(stage1_dir / "mm_projector.bin"),
        "--max_steps",
        str(steps),
        "--save_strategy",
        "no",
        *extra,
    ]


def projector_weights(folder: Path) -> dict[str, torch.Tensor]:
    model = AutoModel.from_pretrained(folder)
    return {k: v.float() for k, v in model.state_dict().items() if k.startswith("projector.")}


def test_zero3_gives_the_sec_projector_the_same_updates_as_zero2(tiny, stage1):
    """Same data, order and start (stage-1 weights), float32, plain SGD, language model frozen: after 4 steps on
    2 ranks the SEC projector's learned maps (W_k, W_q, position embedding) must have moved the same way under
    ZeRO-3 as under ZeRO-2, and DeepSpeed must see into the projector's output (no "unknown inputs or outputs
    type" warning).

    SGD makes each update proportional to the gradient, so the float32 rounding of the two stages' different
    reductions (all-reduce vs reduce-scatter, whole vs partitioned weights) stays at its own size, a few units
    in the last place of a weight of about 0.3 (3e-8 each); Adam would divide it by the gradient's magnitude
    and amplify it on near-zero entries. The frozen LM lets a large learning rate move even W_k (whose gradient
    comes only through the attention logits) by more than 1e-4, so the tolerance, 1e-6 absolute (about 30
    units in the last place) plus 1e-3 relative, sits two orders below the smallest update and well above the
    rounding."""
    start = {k: v.float() for k, v in torch.load(stage1[0] / "mm_projector.bin").items() if k.startswith("projector.")}
    runs, logs = {}, {}
    for zero in ("zero2", "zero3"):
        out = tiny["root"] / f"same_updates_{zero}"
        logs[zero] = launch(
            "finetune.py",
            2,
            stage2_args(
                tiny,
                out,
                tiny["instructions"],
                stage1[0],
                zero,
                4,
                ["--optim", "sgd", "--learning_rate", "100", "--freeze_backbone", "True", "--logging_steps", "1"],
            ),
        )
        runs[zero] = projector_weights(out)
    assert ZERO3_HOOK_WARNING not in logs["zero3"], logs["zero3"][-3000:]
    assert runs["zero2"].keys() == runs["zero3"].keys() == start.keys()
    assert {k.split(".")[1] for k in start} == {"key", "query", "pos_embed"}
    for name, initial in start.items():
        moved2, moved3 = runs["zero2"][name] - initial, runs["zero3"][name] - initial
        assert moved2.abs().max() > 1e-4, f"{name} barely trained: {moved2.abs().max():.2e}"
        torch.testing.assert_close(moved3, moved2, atol=1e-6, rtol=1e-3, msg=f"{name}: ZeRO-3 update differs")


def test_zero3_with_images_on_one_rank_and_none_on_the_other_does_not_hang(tiny, stage1):
    """One image sample and one text-only sample, batch 1 on each of 2 ranks, modality grouping: the sampler puts
    the two modality remainders last, here in the only batch, so every step gives rank 0 an image and rank 1
    only text. Under ZeRO-3 each module's forward gathers its partitioned weights with a collective; a rank
    that skips the vision tower, projector and connector issues different collectives than the other: gloo
    aborts on the size mismatch (the run fails), NCCL waits forever (the timeout fails the test). The
    placeholder image keeps the ranks in step. (The mismatch must come in the first step: later, ZeRO-3's
    trace-based prefetching of the previous step's modules can happen to pair the collectives up.)"""
    _, data, _ = write_tiny_llava_data(str(tiny["root"] / "mixed_data"), num_samples=1)
    out = tiny["root"] / "mixed_zero3"
    extra = ["--group_by_modality_length", "True", "--learning_rate", "1e-3", "--logging_steps", "1"]
    log = launch("finetune.py", 2, stage2_args(tiny, out, data, stage1[0], "zero3", 2, extra), timeout=300)
    assert len(losses(log)) == 2, log[-3000:]
    assert (out / "config.json").is_file()


@pytest.fixture(scope="module")
def gpu_stage2(tiny):
    """Stage 1 (ZeRO-2) and stage 2 (ZeRO-3, bf16, gradient checkpointing, modality grouping) on one GPU."""
    stage1_dir = tiny["root"] / "gpu_stage1"
    launch(
        "pretrain.py",
        1,
        common(tiny, stage1_dir, tiny["captions"], "plain")
        + ["--deepspeed", "configs/deepspeed/zero2.json", "--tune_mm_mlp_adapter", "True", "--bf16", "True"]
        + ["--max_steps", "30", "--learning_rate", "2e-2", "--save_strategy", "no"],
    )
    out = tiny["root"] / "gpu_stage2"
    extra = ["--image_aspect_ratio", "pad", "--group_by_modality_length", "True", "--gradient_checkpointing", "True"]
    extra += ["--bf16", "True", "--learning_rate", "5e-3", "--logging_steps", "10"]
    log = launch("finetune.py", 1, stage2_args(tiny, out, tiny["instructions"], stage1_dir, "zero3", 30, extra))
    return out, log


@pytest.mark.gpu
def test_zero3_stage2_on_one_gpu(gpu_stage2):
    out, log = gpu_stage2
    assert ZERO3_HOOK_WARNING not in log, log[-3000:]
    values = losses(log)
    assert values[-1] < 0.7 * values[0], values
    assert (out / "config.json").is_file()


@pytest.mark.gpu
def test_bf16_generate_with_and_without_cache_agree_on_gpu(tiny, gpu_stage2):
    model = AutoModel.from_pretrained(gpu_stage2[0], dtype=torch.bfloat16).to("cuda").eval()
    processor = AutoProcessor.from_pretrained(gpu_stage2[0])
    processor.tokenizer.padding_side = "left"
    prompts = [
        VICUNA_SYSTEM + " USER: <image>\nWhat color is the square? ASSISTANT:",
        VICUNA_SYSTEM + " USER: <image>\nWhat shape is it? ASSISTANT:",
    ]
    images = [Image.open(Path(tiny["images"]) / f"{i}.png") for i in (0, 1)]
    inputs = processor(images=images, text=prompts).to("cuda")
    with_cache = model.generate(**inputs, max_new_tokens=6, do_sample=False)
    without = model.generate(**inputs, max_new_tokens=6, do_sample=False, use_cache=False)
    assert with_cache.shape[1] == inputs["input_ids"].shape[1] + 6
    assert torch.equal(with_cache, without)
