"""The synthetic quick start: data, a tiny model that learns to see, both training stages through
`deepspeed`, evaluation with eval/, a results table and cluster pictures, on CPU in minutes.

    python -m sec_mllm.quickstart                     # the README's command (scripts/quickstart.py in a checkout)
    python -m sec_mllm.quickstart --reduced --out DIR # small sizes and a few steps (the test suite's run)

Only the installed package is needed (no checkout): training and evaluation run as the entry modules
sec_mllm.train.pretrain / finetune and sec_mllm.evaluation.run_gqa / run_textvqa, the DeepSpeed config
is the one shipped with the package.

Phases: (1) generate Shapes-GQA and Rendered-TextVQA (experiments.synthetic), each training image with up to 8
questions; (2) the tiny base: a byte-level BPE tokenizer (one token per digit) with a short chat template, a tiny
Llama pretrained on the corpus's text and a tiny CLIP vision tower taught to see by dense per-patch targets on
freshly generated images (no pretrained CLIP or LLM exists offline; the tower is then frozen, as LLaVA freezes
OpenAI's CLIP). The package ships this base for the default recipe (experiments.pretrained_base, as LLaVA
downloads Vicuna and CLIP); another recipe, or ``--build-base``, builds it here (about 32 minutes on 2 cores);
(3) for `sec` (K = N/4) and `identity` (all N tokens): stage 1 and stage 2 under DeepSpeed ZeRO-2 (two CPU
ranks; on a GPU machine one rank per GPU, one GPU: a single process on it), then GQA and TextVQA evaluation
(no OCR tokens); (4) the blind question-only baseline; (5) the report: runs/quickstart/results.json, a printed
table, and cluster pictures of the sec model.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from transformers import AutoModel, AutoModelForCausalLM, AutoProcessor, CLIPVisionConfig

from ..data.llava_dataset import load_records
from ..data.templates import VICUNA_SYSTEM
from ..evaluation.gqa import score_gqa
from ..evaluation.textvqa import score_textvqa
from ..files import read_json, write_json_atomic
from ..tiny import tiny_llama_config, train_tokenizer
from ..train.arguments import deepspeed_config_path
from ..visualize import cluster_pictures
from . import invocation
from .blind import write_blind_answers
from .lm_pretraining import corpus_texts, pretrain_lm
from .strata import gqa_by_stratum, textvqa_by_stratum
from .synthetic import SyntheticSizes, generate
from .tower_pretraining import POSITIONS, pretrain_clip, pretrain_dense_tower

CHAT_TEMPLATE = (
    "{% for m in messages %}{% if m['role'] == 'user' %}USER: {{ m['content'] }} ASSISTANT:"
    "{% else %} {{ m['content'] }}</s>{% endif %}{% endfor %}"
)


def default_ranks() -> int:
    """Ranks for the machine: one per GPU (one GPU: one rank on it), otherwise two CPU ranks."""
    return torch.cuda.device_count() or 2


def describe_device() -> str:
    """The device the runs use, for result files: GPU names, or the CPU's core count and the widest vector
    instructions torch uses on it (the same 2-core quick start took 9.4 minutes on one machine and 21 on an AVX2-only
    one)."""
    if torch.cuda.is_available():
        names = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
        return f"{len(names)} x {names[0]}" if len(set(names)) == 1 else ", ".join(names)
    return f"cpu ({os.cpu_count()} cores, {torch.backends.cpu.get_cpu_capability()})"


TOWERS = ("dense", "contrastive")


def recipe_sizes() -> SyntheticSizes:
    """The recipe's data: the benchmark's sizes, each training image with up to 8 questions."""
    return SyntheticSizes(turns=8)


@dataclass
class QuickstartConfig:
    out: str = "runs/quickstart"
    seed: int = 0
    sizes: SyntheticSizes = field(default_factory=recipe_sizes)
    vocab_size: int = 600
    split_digits: bool = True  # one token per digit, as LLaMA's tokenizer: numbers are read digit by digit
    lm_width: int = 128
    lm_layers: int = 4
    vision_width: int = 128
    vision_layers: int = 4
    # How the tower learns to see (tower_pretraining.py): "dense", per-patch ground truth on tower_images fresh
    # images alone (pretrain_dense_tower); "contrastive", CLIP's loss on the stage-1 captions (pretrain_clip),
    # optionally with dense targets from the caption images (dense_tower) or from fresh images (dense_images).
    tower: str = "dense"
    clip_steps: int = 4000  # tower pretraining steps
    tower_images: int = 30000  # "dense": the fresh labelled images it learns from
    dense_tower: bool = False  # "contrastive" only: dense targets on the caption images
    dense_images: int = 0  # "contrastive" only: dense targets from this many fresh images (0: none)
    tower_positions: str = "learned"  # the tower's position embedding at the start: learned or sincos
    lm_steps: int = 500  # text-only pretraining of the tiny LM on the corpus (lm_pretraining.py)
    group_by_modality: bool = True  # stage 2's --group_by_modality_length (LLaVA's setting)
    # Stage 1 and 2 steps of batch 16 on each of 2 ranks: within the quick start's 15 minutes (the accuracy
    # benchmark trains 600 and 400 steps of batch 32 in one process).
    stage1_steps: int = 300
    stage2_steps: int = 300
    batch_size: int = 16
    ranks: int = field(default_factory=default_ranks)
    learning_rate: float = 2e-3
    # Both stages. Constant after the warm-up, not LLaVA's cosine: within the benchmark's 400 stage-2 steps the
    # cosine decay stops the learning of the look-up by colour halfway (README, "Why the tiny model barely looks").
    lr_scheduler: str = "constant_with_warmup"
    sec_tokens: int = 16  # N / 4 for the 8 x 8 patch grid
    command: str = "python -m sec_mllm.quickstart"  # the command line that made this run (stored in results.json)

    @classmethod
    def reduced(cls, out: str) -> "QuickstartConfig":
        sizes = SyntheticSizes(
            gqa_test=40, textvqa_test=30, gqa_train=200, textvqa_train=120, captions=120, text_only=10
        )
        return cls(
            out=out,
            sizes=sizes,
            vocab_size=400,
            lm_layers=2,
            vision_width=32,
            vision_layers=2,
            clip_steps=20,
            tower_images=64,
            lm_steps=0,
            stage1_steps=4,
            stage2_steps=12,
            batch_size=8,
        )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run(cmd: list[str], log: Path) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1", "TOKENIZERS_PARALLELISM": "false"}
    with log.open("w") as f:
        result = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, env=env)
    if result.returncode != 0:
        raise SystemExit(
            f"command failed ({result.returncode}); see {log}:\n  {' '.join(cmd)}\n" + log.read_text()[-3000:]
        )


# What the base (tokenizer, LM, tower) is made from: a config with these fields equal builds the same base.
BASE_FIELDS = (
    "seed",
    "sizes",
    "vocab_size",
    "split_digits",
    "lm_width",
    "lm_layers",
    "lm_steps",
    "vision_width",
    "vision_layers",
    "tower",
    "clip_steps",
    "tower_images",
    "dense_tower",
    "dense_images",
    "tower_positions",
)
SHIPPED_BASE = Path(__file__).resolve().parents[1] / "base_assets"  # built by experiments.pretrained_base


def base_recipe(cfg: QuickstartConfig) -> dict[str, Any]:
    """The fields of ``cfg`` the base is made from (BASE_FIELDS), as JSON values."""
    values = asdict(cfg)
    return {name: values[name] for name in BASE_FIELDS}


def base_label(base: Path) -> str:
    """How a results file names a base: the shipped one by its place in the package (sec_mllm/base_assets), not by
    this machine's path to it; any other by its folder."""
    return base.relative_to(SHIPPED_BASE.parents[1]).as_posix() if base == SHIPPED_BASE else str(base)


def shipped_base(cfg: QuickstartConfig, folder: Path = SHIPPED_BASE) -> Path | None:
    """The base shipped in the package when it was built with ``cfg``'s base recipe, else None (build one)."""
    record = folder / "recipe.json"
    if not record.exists():
        return None
    return folder if read_json(record)["recipe"] == base_recipe(cfg) else None


def build_base(cfg: QuickstartConfig, data: Path, base: Path) -> dict[str, Any]:
    """Tokenizer, tiny Llama (optionally pretrained on the corpus's text) and tiny CLIP vision tower (``cfg.tower``:
    dense per-patch targets on fresh images, or contrastive on the captions)."""
    if cfg.tower not in TOWERS:
        raise ValueError(f"tower must be one of {', '.join(TOWERS)}, got {cfg.tower!r}")
    files = [str(data / "train" / name) for name in ("captions.json", "instructions.json")]
    texts = [VICUNA_SYSTEM] + [t["value"] for f in files for r in load_records(f) for t in r["conversations"]]
    draft = train_tokenizer(texts, vocab_size=cfg.vocab_size, split_digits=cfg.split_digits)
    draft.chat_template = CHAT_TEMPLATE
    chats = corpus_texts(files, draft)  # the conversations as the model reads them: the template's words merge too
    tokenizer = train_tokenizer(texts + chats, vocab_size=cfg.vocab_size, split_digits=cfg.split_digits)
    tokenizer.chat_template = CHAT_TEMPLATE
    tokenizer.save_pretrained(base / "lm")
    torch.manual_seed(cfg.seed)
    # std 1/sqrt(width), not the 0.02 tuned for wide LMs: at width 128, 0.02 leaves attention nearly
    # uniform and the model sat at the question-only plateau (measured: color-question loss 0.66 vs 0.30
    # after 300 steps).
    lm = AutoModelForCausalLM.from_config(
        tiny_llama_config(len(tokenizer), cfg.lm_width, cfg.lm_layers, initializer_range=cfg.lm_width**-0.5)
    )
    lm_losses = (
        pretrain_lm(lm, tokenizer, corpus_texts(files, tokenizer), cfg.lm_steps, seed=cfg.seed) if cfg.lm_steps else []
    )
    lm.save_pretrained(base / "lm")
    vision = CLIPVisionConfig(
        image_size=64,
        patch_size=8,
        hidden_size=cfg.vision_width,
        intermediate_size=2 * cfg.vision_width,
        num_hidden_layers=cfg.vision_layers,
        num_attention_heads=4,
    )
    if cfg.tower == "dense":
        if cfg.dense_tower or cfg.dense_images:
            raise ValueError("dense_tower / dense_images are for the contrastive tower; the dense one has them")
        tower, curves = pretrain_dense_tower(
            vision, cfg.tower_images, cfg.clip_steps, seed=cfg.seed, positions=cfg.tower_positions
        )
        curves["contrastive"] = []
        vision_model = tower
    else:
        tower, curves = pretrain_clip(
            str(data / "train" / "captions.json"),
            str(data / "train" / "images"),
            tokenizer,
            vision,
            steps=cfg.clip_steps,
            batch_size=min(64, cfg.sizes.captions),
            seed=cfg.seed,
            patch_labels_file=str(data / "train" / "patch_labels.json") if cfg.dense_tower else None,
            positions=cfg.tower_positions,
            dense_images=cfg.dense_images,
        )
        vision_model = tower.vision_model
    tower.save_pretrained(base / "clip")
    return {
        "clip_loss_first": curves["contrastive"][0] if curves["contrastive"] else None,
        "clip_loss_last": curves["contrastive"][-1] if curves["contrastive"] else None,
        "dense_loss_first": curves["dense"][0] if curves["dense"] else None,
        "dense_loss_last": curves["dense"][-1] if curves["dense"] else None,
        "lm_loss_first": lm_losses[0] if lm_losses else None,
        "lm_loss_last": lm_losses[-1] if lm_losses else None,
        "lm_parameters": sum(p.numel() for p in lm.parameters()),
        "vision_parameters": sum(p.numel() for p in vision_model.parameters()),
    }


def train_and_eval(
    cfg: QuickstartConfig,
    name: str,
    projector_args: list[str],
    data: Path,
    base: Path,
    run: Path,
    seed: int | None = None,
) -> dict[str, float]:
    """Stage 1, stage 2 and both evaluations for one projector; returns wall time per phase.

    ``projector_args``: the projector's training flags (``--projector_type sec --num_visual_tokens 16 ...``).
    With ``cfg.ranks > 1`` training goes through the deepspeed launcher (ZeRO-2 on CPU ranks, or one rank per GPU);
    with one rank it
    runs the same scripts as a single process with transformers' Trainer (no process group, no launcher).
    """
    times: dict[str, float] = {}
    seed = cfg.seed if seed is None else seed
    common = [
        "--model_name_or_path",
        str(base / "lm"),
        "--vision_tower",
        str(base / "clip"),
        "--mm_projector_type",
        "mlp2x_gelu",
        *projector_args,
        "--per_device_train_batch_size",
        str(cfg.batch_size),
        "--report_to",
        "none",
        "--dataloader_num_workers",
        "0",
        "--logging_steps",
        "20",
        "--save_strategy",
        "no",
        "--seed",
        str(seed),
        "--lr_scheduler_type",
        cfg.lr_scheduler,
        "--warmup_ratio",
        "0.03",
        "--image_folder",
        str(data / "train" / "images"),
    ]
    if cfg.ranks > 1:
        common += ["--deepspeed", deepspeed_config_path("zero2")]

    def launch(module: str) -> list[str]:
        if cfg.ranks == 1:
            return [sys.executable, "-m", module]
        return [
            sys.executable,
            "-m",
            "deepspeed.launcher.runner",
            "--num_gpus",
            str(cfg.ranks),
            "--master_port",
            str(_free_port()),
            "--module",
            module,
        ]

    out = run / name
    out.mkdir(parents=True, exist_ok=True)
    t = time.time()
    _run(
        launch("sec_mllm.train.pretrain")
        + [
            *common,
            "--version",
            "plain",
            "--data_path",
            str(data / "train" / "captions.json"),
            "--tune_mm_mlp_adapter",
            "True",
            "--max_steps",
            str(cfg.stage1_steps),
            "--learning_rate",
            str(cfg.learning_rate),
            "--output_dir",
            str(out / "stage1"),
        ],
        out / "stage1.log",
    )
    times["stage1_s"] = time.time() - t
    t = time.time()
    _run(
        launch("sec_mllm.train.finetune")
        + [
            *common,
            "--version",
            "chat_template",
            "--data_path",
            str(data / "train" / "instructions.json"),
            "--group_by_modality_length",
            str(cfg.group_by_modality),
            "--pretrain_mm_mlp_adapter",
            str(out / "stage1" / "mm_projector.bin"),
            "--max_steps",
            str(cfg.stage2_steps),
            "--learning_rate",
            str(cfg.learning_rate),
            "--output_dir",
            str(out / "stage2"),
        ],
        out / "stage2.log",
    )
    times["stage2_s"] = time.time() - t
    t = time.time()
    evaluate = [
        "--model-path",
        str(out / "stage2"),
        "--conv-mode",
        "chat_template",
        "--batch-size",
        "32",
        "--max-new-tokens",
        "6",
        "--num-workers",
        "0",
        "--overwrite",  # the model was just (re)trained: answers of an earlier run are never resumed
    ]
    _run(
        [
            sys.executable,
            "-m",
            "sec_mllm.evaluation.run_gqa",
            *evaluate,
            "--question-file",
            str(data / "gqa" / "llava_gqa_testdev_balanced.jsonl"),
            "--image-folder",
            str(data / "gqa" / "data" / "images"),
            "--questions",
            str(data / "gqa" / "data" / "testdev_balanced_questions.json"),
            "--choices",
            str(data / "gqa" / "data" / "testdev_balanced_choices.json"),
            "--answers-file",
            str(out / "gqa.jsonl"),
        ],
        out / "eval_gqa.log",
    )
    _run(
        [
            sys.executable,
            "-m",
            "sec_mllm.evaluation.run_textvqa",
            *evaluate,
            "--question-file",
            str(data / "textvqa" / "llava_textvqa_val_v051_noocr.jsonl"),
            "--image-folder",
            str(data / "textvqa" / "train_images"),
            "--annotation-file",
            str(data / "textvqa" / "TextVQA_0.5.1_val.json"),
            "--answers-file",
            str(out / "textvqa.jsonl"),
        ],
        out / "eval_textvqa.log",
    )
    times["eval_s"] = time.time() - t
    return times


def summarize(answers_dir: Path, data: Path) -> dict[str, dict[str, Any]]:
    questions = str(data / "gqa" / "data" / "testdev_balanced_questions.json")
    annotations = str(data / "textvqa" / "TextVQA_0.5.1_val.json")
    gqa = score_gqa(
        str(answers_dir / "gqa.jsonl"),
        questions,
        choices_file=str(data / "gqa" / "data" / "testdev_balanced_choices.json"),
    )
    tv = score_textvqa(str(answers_dir / "textvqa.jsonl"), annotations)
    return {
        "gqa": {
            "accuracy": gqa["accuracy"],
            "binary": gqa["binary"],
            "open": gqa["open"],
            "validity": gqa["validity"],
            "per_stratum": gqa_by_stratum(str(answers_dir / "gqa.jsonl"), questions),
        },
        "textvqa": {
            "accuracy": tv["accuracy"],
            "per_stratum": textvqa_by_stratum(str(answers_dir / "textvqa.jsonl"), annotations),
        },
    }


def blind_baseline(data: Path, out: Path) -> dict[str, dict[str, Any]]:
    """Answer both test sets with the training-majority answer per question (no image) and score them."""
    train = str(data / "train" / "instructions.json")
    write_blind_answers(train, str(data / "gqa" / "llava_gqa_testdev_balanced.jsonl"), str(out / "gqa.jsonl"))
    write_blind_answers(
        train, str(data / "textvqa" / "llava_textvqa_val_v051_noocr.jsonl"), str(out / "textvqa.jsonl")
    )
    return summarize(out, data)


def format_table(results: dict[str, Any]) -> str:
    lines = []
    for bench in ("gqa", "textvqa"):
        models = list(results[bench])
        lines.append(f"\n{bench}: accuracy (%)")
        lines.append(f"  {'stratum':<28}" + "".join(f"{m:>10}" for m in models))
        lines.append(f"  {'overall':<28}" + "".join(f"{results[bench][m]['accuracy']:>10.1f}" for m in models))
        for key in ("family", "size", "position"):
            for value in results[bench][models[0]]["per_stratum"][key]:
                cells = [
                    results[bench][m]["per_stratum"][key].get(value, {"accuracy": float("nan")})["accuracy"]
                    for m in models
                ]
                lines.append(f"  {key + '=' + value:<28}" + "".join(f"{c:>10.1f}" for c in cells))
    return "\n".join(lines)


def run_quickstart(cfg: QuickstartConfig, build: bool = False, identity: bool = True) -> dict[str, Any]:
    """The whole quick start. The base is the one shipped in the package when the recipe's base fields are its
    own (as LLaVA starts from a downloaded Vicuna and CLIP), else (or with ``build``) built into ``out/base``.
    ``identity``: also train identity (all N tokens), what the compression costs, at twice the training time. It is
    an argument, not a config field: the config is the recipe the accuracy benchmark records for its work folders,
    and which models the quick start trains is no part of it."""
    run = Path(cfg.out)
    run.mkdir(parents=True, exist_ok=True)
    data = run / "data"
    timings: dict[str, Any] = {}
    t = time.time()
    generate(str(data), cfg.sizes, cfg.seed)
    timings["data_s"] = time.time() - t
    t = time.time()
    base = None if build else shipped_base(cfg)
    if base is not None:
        base_info = {"shipped": base_label(base), **read_json(base / "recipe.json")["info"]}
    else:
        base = run / "base"
        base_info = {"shipped": None, **build_base(cfg, data, base)}
    timings["base_s"] = time.time() - t
    results: dict[str, Any] = {"gqa": {}, "textvqa": {}}
    projectors = {"sec": ["--projector_type", "sec", "--num_visual_tokens", str(cfg.sec_tokens)]}
    if identity:
        projectors["identity"] = ["--projector_type", "identity"]
    for name, projector_args in projectors.items():
        timings[name] = train_and_eval(cfg, name, projector_args, data, base, run)
        summary = summarize(run / name, data)
        results["gqa"][name], results["textvqa"][name] = summary["gqa"], summary["textvqa"]
    t = time.time()
    summary = blind_baseline(data, run / "blind")
    results["gqa"]["blind"], results["textvqa"]["blind"] = summary["gqa"], summary["textvqa"]
    timings["blind_s"] = time.time() - t
    t = time.time()
    pictures = draw_pictures(run / "sec" / "stage2", data, run / "clusters")
    timings["pictures_s"] = time.time() - t
    results["timings"] = timings
    results["command"] = cfg.command
    results["config"] = asdict(cfg)
    results["device"] = describe_device()
    results["base"] = base_info
    results["cluster_pictures"] = [str(p) for p in pictures]
    write_json_atomic(run / "results.json", results)
    return results


def draw_pictures(checkpoint: Path, data: Path, out: Path) -> list[Path]:
    model = AutoModel.from_pretrained(checkpoint, trust_remote_code=True).eval()
    processor = AutoProcessor.from_pretrained(checkpoint, trust_remote_code=True)
    paths = (
        sorted((data / "gqa" / "data" / "images").glob("*.jpg"))[:3]
        + sorted((data / "textvqa" / "train_images").glob("*.png"))[:2]
    )
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for path, picture in zip(paths, cluster_pictures(model, processor, [Image.open(p) for p in paths])):
        written.append(out / f"{path.stem}_clusters.png")
        picture.save(written[-1])
    return written


def command_line(argv: list[str] | None) -> str:
    """The quick start's command as a user types it, for results.json."""
    return invocation.command_line("sec_mllm.quickstart", argv)


STEP_FLAGS = ("clip_steps", "lm_steps", "stage1_steps", "stage2_steps")
LR_SCHEDULERS = ("constant_with_warmup", "cosine", "linear")


def add_recipe_arguments(parser: argparse.ArgumentParser) -> None:
    """The recipe's flags (tower pretraining, training data, step counts), shared by the quick start and the
    accuracy benchmark; ``apply_recipe`` sets them on a config."""
    parser.add_argument(
        "--tower",
        choices=TOWERS,
        default=None,
        help="how the tower learns to see: per-patch ground truth on fresh images (dense, the default) or CLIP's "
        "contrastive loss on the captions",
    )
    parser.add_argument(
        "--tower-images", type=int, default=None, help="the dense tower's freshly generated labelled images"
    )
    parser.add_argument(
        "--dense-tower",
        action="store_true",
        help="--tower contrastive: add per-patch ground-truth targets on the caption images",
    )
    parser.add_argument(
        "--turns",
        type=int,
        default=None,
        help="questions per training image: the benchmark's one, then follow-ups about the same picture",
    )
    parser.add_argument(
        "--dense-images",
        type=int,
        default=None,
        help="--tower contrastive: dense targets from this many freshly generated labelled images (a batch per step "
        "beside the captions)",
    )
    parser.add_argument(
        "--tower-positions",
        choices=POSITIONS,
        default=None,
        help="how the tower's position embedding starts: CLIP's random init or a 2-D sin-cos table",
    )
    parser.add_argument(
        "--lr-scheduler",
        choices=LR_SCHEDULERS,
        default=None,
        help="both stages' --lr_scheduler_type (default constant_with_warmup; LLaVA's is cosine)",
    )
    steps = parser.add_argument_group("step counts (default: the recipe's; the results file stores the command)")
    for name in STEP_FLAGS:
        steps.add_argument("--" + name.replace("_", "-"), type=int, default=None)


def apply_recipe(cfg: QuickstartConfig, args: argparse.Namespace) -> None:
    """Set the flags of ``add_recipe_arguments`` that were given on ``cfg``; bad values stop with the flag's name."""
    if args.turns is not None:
        if args.turns <= 0:
            raise SystemExit(f"--turns must be > 0, got {args.turns}")
        cfg.sizes = replace(cfg.sizes, turns=args.turns)
    cfg.tower = args.tower or cfg.tower
    if args.tower_images is not None:
        if args.tower_images <= 0:
            raise SystemExit(f"--tower-images must be > 0, got {args.tower_images}")
        if cfg.tower != "dense":
            raise SystemExit("--tower-images is the dense tower's; the contrastive one takes --dense-images")
        cfg.tower_images = args.tower_images
    if args.dense_images is not None and args.dense_images <= 0:
        raise SystemExit(f"--dense-images must be > 0, got {args.dense_images}")
    if cfg.tower == "dense" and (args.dense_tower or args.dense_images is not None):
        raise SystemExit("--dense-tower / --dense-images are for --tower contrastive; the dense tower has them")
    cfg.dense_tower = cfg.dense_tower or args.dense_tower
    if args.dense_images is not None:
        if cfg.dense_tower:
            raise SystemExit("--dense-images replaces --dense-tower's caption images: give one of the two")
        cfg.dense_images = args.dense_images
    cfg.tower_positions = args.tower_positions or cfg.tower_positions
    cfg.lr_scheduler = args.lr_scheduler or cfg.lr_scheduler
    for name in STEP_FLAGS:
        value = getattr(args, name)
        if value is None:
            continue
        if value < 0 or (value == 0 and name != "lm_steps"):
            raise SystemExit(
                f"--{name.replace('_', '-')} must be {'>= 0' if name == 'lm_steps' else '> 0'}, got {value}"
            )
        setattr(cfg, name, value)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="runs/quickstart")
    parser.add_argument("--reduced", action="store_true", help="small sizes and a few steps (minutes; for tests)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--build-base",
        action="store_true",
        help="build the tokenizer, LM and tower here even when the package ships them for this recipe",
    )
    parser.add_argument(
        "--identity",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also train identity (all N tokens) to show what the compression costs (default: on; doubles the time)",
    )
    add_recipe_arguments(parser)
    return parser


def config_from_args(args: argparse.Namespace, command: str) -> QuickstartConfig:
    """The run's config: the recipe (or the reduced one), the seed, step counts given on the command line."""
    cfg = QuickstartConfig.reduced(args.out) if args.reduced else QuickstartConfig(out=args.out)
    cfg.seed, cfg.command = args.seed, command
    apply_recipe(cfg, args)
    return cfg


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    cfg = config_from_args(args, command_line(argv))
    start = time.time()
    results = run_quickstart(cfg, build=args.build_base, identity=args.identity)
    print(format_table(results))
    timings = results["timings"]
    shipped = results["base"]["shipped"]
    print(
        "\nwall time (s): data {:.0f}, base (tokenizer, LM, tower) {:.0f}{}".format(
            timings["data_s"], timings["base_s"], f" (shipped: {shipped})" if shipped else ""
        )
    )
    for name in [n for n in ("sec", "identity") if n in timings]:
        t = timings[name]
        print(f"  {name}: stage 1 {t['stage1_s']:.0f}, stage 2 {t['stage2_s']:.0f}, eval {t['eval_s']:.0f}")
    print(f"  total {time.time() - start:.0f}")
    print(f"\nresults: {Path(cfg.out) / 'results.json'}\ncluster pictures: {Path(cfg.out) / 'clusters'}")


if __name__ == "__main__":
    main()
