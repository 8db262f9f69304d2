"""Accuracy of every token compressor at the same budget, on the synthetic benchmark, over several seeds.

    python -m sec_mllm.experiments.accuracy --out benchmarks/results/accuracy     # the committed table
    python -m sec_mllm.experiments.accuracy --out DIR --reduced --variants identity sec --seeds 0   # about a minute
    python -m sec_mllm.experiments.accuracy --out DIR --variants sec avgpool --seeds 0 1 2
    python -m sec_mllm.experiments.accuracy --out DIR --work W --turns 8 --lm-steps 1000   # recipe flags

(``python scripts/benchmark_accuracy.py ...`` in a checkout.) Writes DIR/accuracy.json (every run, and
mean / std per configuration, overall and per stratum), DIR/accuracy.md (the tables) and DIR/accuracy.png
(accuracy against visual tokens, one line per projector).

The grid: ``identity`` once (all N = 64 patch tokens of the tiny tower's 8 x 8 grid) and every other
registered projector at K = N/4 and K = N/16, including the SEC variants (one option changed at a time
from the default: attention reduction with learned keys, the earlier default; interleaved grouping; position
order; no position embedding; 2-D RoPE keys). Each (variant, K, seed) is the quick start's pipeline: stage 1
(sec_mllm.train.pretrain), stage 2 (sec_mllm.train.finetune), then sec_mllm.evaluation.run_gqa / run_textvqa,
scored with the official metrics.

What the seeds vary: the training seed (initialisation of projector + connector, data order). The data and
the base (tokenizer, pretrained tiny LM, pretrained tiny CLIP tower) are shared, as a real comparison shares
Vicuna and OpenAI's CLIP: the base is the one the package ships when the recipe is the default
(experiments.pretrained_base), else built once in the work folder (``--build-base`` always builds).
Every finished run writes ``runs/<variant>@<K>_s<seed>/result.json``
atomically; a rerun skips finished runs (an unfinished run directory is cleared and started over), so
an interrupted benchmark resumes where it stopped.
"""

from __future__ import annotations

import argparse
import shlex
import shutil
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import transformers
from tqdm import tqdm

from ..files import read_json, write_json_atomic, write_text_atomic
from ..projector_sec import SecConfig
from ..projectors import build_projector
from ..train.arguments import ModelArguments
from ..train.assemble import projector_config
from .quickstart import (
    QuickstartConfig,
    add_recipe_arguments,
    apply_recipe,
    base_label,
    blind_baseline,
    build_base,
    describe_device,
    shipped_base,
    summarize,
    train_and_eval,
)
from .synthetic import generate

BENCHMARKS = ("gqa", "textvqa")
BENCHMARK_TITLES = {"gqa": "Shapes-GQA", "textvqa": "Rendered-TextVQA"}
NUM_PATCHES = 64  # the tiny CLIP tower: 64 x 64 pixels, 8 x 8 patches
BUDGETS = (NUM_PATCHES // 4, NUM_PATCHES // 16)


@dataclass(frozen=True)
class Variant:
    """One row family of the table: a projector and the flags that set its options."""

    name: str
    projector: str
    flags: tuple[str, ...] = ()

    @property
    def compresses(self) -> bool:
        return self.projector != "identity"

    def token_counts(self, budgets: tuple[int, ...] = BUDGETS) -> tuple[int, ...]:
        """The K values this variant runs at: every budget, or all N patches for identity."""
        return tuple(budgets) if self.compresses else (NUM_PATCHES,)

    def training_flags(self, tokens: int) -> list[str]:
        flags = ["--projector_type", self.projector, *self.flags]
        return flags + ["--num_visual_tokens", str(tokens)] if self.compresses else flags


DEFAULT_SEC = "sec"
# The grid: identity, the default SEC (mean reduction on the tower's own features; chosen by recommend_sec_variant
# over three seeds), its variants with one option changed, the baselines.
VARIANTS = (
    Variant("identity", "identity"),
    Variant(DEFAULT_SEC, "sec"),
    # the earlier default: attention reduction with learned W_k and W_q (key_projection follows the reduction)
    Variant("sec/attn", "sec", ("--sec_reduction", "attn")),
    Variant("sec/interleave", "sec", ("--sec_grouping", "interleave")),
    Variant("sec/position-order", "sec", ("--sec_order", "position")),
    Variant("sec/no-pos-emb", "sec", ("--sec_position_embedding", "False")),
    # the official SecViT rotates its keys by a 2-D RoPE before the cosine, so position shapes the ordering
    Variant("sec/key-rope", "sec", ("--sec_key_rope", "True")),
    Variant("avgpool", "avgpool"),
    Variant("tome", "tome"),
    Variant("kmeans", "kmeans"),
)
# Accepted by --variants, not in the grid:
# - sec/mean, the default's options spelled out (the row that won the rule while the default was attention
#   reduction; it is the default now, so the grid would run it twice);
# - sec/moments and sec/halves, the two options aimed at "which side is the X" (README): no run at the grid's 400
#   stage-2 steps learns those questions, so they are measured at 3,200 steps (sec/moments lost 5.1 / 3.2 points
#   to the default at K = 4; sec/halves answers them as avgpool does) and join the grid with that budget.
NAMED_VARIANTS = VARIANTS + (
    Variant("sec/mean", "sec", ("--sec_reduction", "mean", "--sec_key_projection", "False")),
    Variant("sec/moments", "sec", ("--sec_spatial_moments", "True")),
    Variant("sec/halves", "sec", ("--sec_regions", "2")),
)


def find_variants(names: list[str] | None) -> tuple[Variant, ...]:
    if not names:
        return VARIANTS
    known = {v.name: v for v in NAMED_VARIANTS}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ValueError(f"unknown variant(s) {unknown}; choices: {list(known)}")
    return tuple(known[n] for n in names)


def check_grid(variants: tuple[Variant, ...], budgets: tuple[int, ...]) -> None:
    """Refuse, before any run starts, a (variant, K) the projector cannot build: each variant's flags go through
    the training argument parser and the flags-to-model mapping, and the projector checks K against N."""
    parser = transformers.HfArgumentParser(ModelArguments)
    for variant in variants:
        for tokens in variant.token_counts(budgets):
            flags = ["--model_name_or_path", "-", *variant.training_flags(tokens)]
            (model_args,) = parser.parse_args_into_dataclasses(args=flags)
            try:
                with torch.device("meta"):
                    build_projector(variant.projector, projector_config(model_args), 8).num_output_tokens(NUM_PATCHES)
            except ValueError as error:
                raise ValueError(f"variant {variant.name!r} at K={tokens} (N={NUM_PATCHES}): {error}") from error


@dataclass
class AccuracyConfig:
    out: str = "runs/benchmark_accuracy"
    seeds: tuple[int, ...] = (0, 1, 2)
    jobs: int = 2  # runs at a time, one CPU thread and one process each
    variants: tuple[Variant, ...] = VARIANTS
    budgets: tuple[int, ...] = BUDGETS  # K for every compressing variant (identity runs once, at N)
    # The quick start's model and data; one rank per run (batch 32 = the quick start's 2 x 16).
    model: QuickstartConfig = field(
        default_factory=lambda: QuickstartConfig(ranks=1, batch_size=32, stage1_steps=600, stage2_steps=400)
    )

    @classmethod
    def reduced(cls, out: str) -> AccuracyConfig:
        model = QuickstartConfig.reduced(out)
        model.ranks, model.batch_size = 1, 8
        return cls(out=out, seeds=(0, 1), model=model)


@dataclass(frozen=True)
class RunKey:
    variant: Variant
    tokens: int
    seed: int

    @property
    def name(self) -> str:
        return f"{self.variant.name.replace('/', '-')}@{self.tokens}_s{self.seed}"


def grid(cfg: AccuracyConfig) -> list[RunKey]:
    """Seed-major, so an interrupted benchmark has every configuration at the same number of seeds."""
    return [RunKey(v, k, s) for s in cfg.seeds for v in cfg.variants for k in v.token_counts(cfg.budgets)]


def recipe_record(model: QuickstartConfig) -> dict[str, Any]:
    """What the shared data and base model are made from (the model config without its paths and command)."""
    return {k: v for k, v in asdict(model).items() if k not in ("out", "command")}


def check_recipe(work: Path, recipe: dict[str, Any]) -> None:
    """Refuse to reuse a work folder whose data and base were built by another recipe."""
    path = work / "recipe.json"
    found = read_json(path) if path.exists() else None
    if found != recipe:
        changed = sorted(k for k in recipe if found is None or found.get(k) != recipe[k])
        raise SystemExit(
            f"{work}: its data and base model were built with "
            + (f"another recipe (differs in {changed})" if found else f"an unrecorded recipe (no {path.name})")
            + ": use another --work or delete it"
        )


def run_one(cfg: AccuracyConfig, key: RunKey, data: Path, base: Path, runs: Path) -> dict[str, Any]:
    """Train, evaluate and score one (variant, K, seed); reuse its result.json when it exists."""
    done = runs / key.name / "result.json"
    if done.exists():
        result = read_json(done)
        expected = {"flags": key.variant.training_flags(key.tokens), "stage2_steps": cfg.model.stage2_steps}
        found = {"flags": result.get("flags"), "stage2_steps": result.get("stage2_steps")}
        if found != expected:
            raise SystemExit(
                f"{done} was made with {found}, this benchmark asks for {expected}: use another --out or delete it"
            )
        return result
    shutil.rmtree(runs / key.name, ignore_errors=True)  # an unfinished run starts over: never resume stale answers
    timings = train_and_eval(
        cfg.model, key.name, key.variant.training_flags(key.tokens), data, base, runs, seed=key.seed
    )
    result = {
        "variant": key.variant.name,
        "projector": key.variant.projector,
        "tokens": key.tokens,
        "seed": key.seed,
        "flags": key.variant.training_flags(key.tokens),
        "stage2_steps": cfg.model.stage2_steps,
        "timings": timings,
        **summarize(runs / key.name, data),
    }
    for stage in ("stage1", "stage2"):  # the trained weights are not needed once scored; logs and answers stay
        shutil.rmtree(runs / key.name / stage, ignore_errors=True)
    write_json_atomic(done, result)
    return result


def spread(values: list[float]) -> dict[str, Any]:
    return {
        "mean": statistics.fmean(values),
        "std": statistics.stdev(values) if len(values) > 1 else 0.0,
        "min": min(values),
        "max": max(values),
        "values": values,
    }


def aggregate(results: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per ``variant@K``: mean / std / min / max over seeds, overall and per stratum."""
    rows: dict[str, list[dict[str, Any]]] = {}
    for r in sorted(results, key=lambda r: r["seed"]):
        rows.setdefault(f"{r['variant']}@{r['tokens']}", []).append(r)
    table: dict[str, dict[str, Any]] = {}
    for row, runs in rows.items():
        entry: dict[str, Any] = {
            "variant": runs[0]["variant"],
            "projector": runs[0]["projector"],
            "tokens": runs[0]["tokens"],
            "seeds": [r["seed"] for r in runs],
        }
        for bench in BENCHMARKS:
            strata: dict[str, dict[str, Any]] = {}
            for key, values in runs[0][bench]["per_stratum"].items():
                strata[key] = {v: spread([r[bench]["per_stratum"][key][v]["accuracy"] for r in runs]) for v in values}
            entry[bench] = {"accuracy": spread([r[bench]["accuracy"] for r in runs]), "per_stratum": strata}
        table[row] = entry
    return table


def _verdict(mine: dict[str, Any], theirs: dict[str, Any]) -> str:
    gap = mine["mean"] - theirs["mean"]
    noise = max(mine["std"], theirs["std"])
    within = f", within one seed-std ({noise:.1f})" if abs(gap) <= noise else ""
    return f"{'SEC LOWER' if gap < 0 else 'sec higher or equal'}{within}"


def sec_against_baselines(table: dict[str, dict[str, Any]]) -> list[str]:
    """Sentences comparing default SEC with identity and each baseline at the same K (mean over seeds)."""
    lines = []
    identity = next((e for e in table.values() if e["projector"] == "identity"), None)
    for entry in ordered(table):
        if entry["variant"] != DEFAULT_SEC:
            continue
        for bench in BENCHMARKS:
            sec = entry[bench]["accuracy"]
            others = ([identity] if identity is not None else []) + [
                e
                for e in ordered(table)
                if e["tokens"] == entry["tokens"] and e["projector"] not in ("sec", "identity")
            ]
            for other in others:
                theirs = other[bench]["accuracy"]
                lines.append(
                    f"{BENCHMARK_TITLES[bench]}, K={entry['tokens']}: sec {sec['mean']:.1f} vs "
                    f"{other['variant']}@{other['tokens']} "
                    f"{theirs['mean']:.1f} ({sec['mean'] - theirs['mean']:+.1f}): {_verdict(sec, theirs)}"
                )
    return lines


def default_sec_names() -> set[str]:
    """Names of the variants whose flags build the default SEC: ``sec`` and its options spelled out (``sec/mean``)."""
    parser = transformers.HfArgumentParser(ModelArguments)

    def resolved(variant: Variant) -> SecConfig:
        (model_args,) = parser.parse_args_into_dataclasses(
            args=["--model_name_or_path", "-", *variant.training_flags(BUDGETS[-1])]
        )
        return SecConfig(**projector_config(model_args))

    default = resolved(next(v for v in NAMED_VARIANTS if v.name == DEFAULT_SEC))
    return {v.name for v in NAMED_VARIANTS if v.projector == "sec" and resolved(v) == default}


def recommend_sec_variant(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The rule that picks the default SEC variant, fixed before the results were seen.

    Score of a variant = the mean over seeds of its per-seed average over both benchmarks and both K.
    The best-scoring variant replaces the current default only when it beats it by more than the larger
    of the two seed-to-seed standard deviations of that score; otherwise the default stays. With fewer than two
    seeds for either score there is no spread to beat, so the default stays too (``decided`` is False). A variant
    that builds the default under another name (``sec/mean``) stands for it when ``sec`` itself did not run.
    """
    per_seed: dict[str, dict[int, list[float]]] = {}
    for r in runs:
        if r["projector"] == "sec":
            per_seed.setdefault(r["variant"], {}).setdefault(r["seed"], []).extend(r[b] for b in BENCHMARKS)
    scores = {v: spread([statistics.fmean(cells) for cells in seeds.values()]) for v, seeds in per_seed.items()}
    if not scores:  # a grid without SEC runs has nothing to choose from
        return {"scores": {}, "best": None, "recommended": DEFAULT_SEC, "decided": False}
    best = max(scores, key=lambda v: scores[v]["mean"])
    standing_in = sorted(default_sec_names() & scores.keys())
    default = DEFAULT_SEC if DEFAULT_SEC in scores else (standing_in[0] if standing_in else None)
    current = scores.get(default) if default else None
    decided = current is None or min(len(per_seed[best]), len(per_seed[default])) >= 2
    margin = (
        best != default
        and current is not None
        and decided
        and scores[best]["mean"] - current["mean"] > max(scores[best]["std"], current["std"])
    )
    return {
        "scores": {v: {"mean": s["mean"], "std": s["std"], "seeds": len(per_seed[v])} for v, s in scores.items()},
        "best": best,
        "recommended": best if margin or current is None else DEFAULT_SEC,
        "decided": decided,
    }


def ordered(table: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows by K (largest first), then in the order of VARIANTS (identity, sec, its variants, baselines)."""
    rank = {v.name: i for i, v in enumerate(NAMED_VARIANTS)}
    return sorted(table.values(), key=lambda e: (-e["tokens"], rank.get(e["variant"], len(rank)), e["variant"]))


def _cell(s: dict[str, Any]) -> str:
    return f"{s['mean']:.1f} ± {s['std']:.1f}"


def markdown(report: dict[str, Any]) -> str:
    table, blind = report["table"], report["blind"]
    seeds = sorted({s for e in table.values() for s in e["seeds"]})
    out = [
        f"# Compressor accuracy on the synthetic benchmark (N = {NUM_PATCHES} patch tokens)",
        "",
        f"Command: `{report['command']}`",
        "",
        (
            f"Mean ± sample standard deviation over training seeds {seeds}; accuracy in %. Blind (question-only "
            f"majority answer): Shapes-GQA {blind['gqa']:.1f}, Rendered-TextVQA {blind['textvqa']:.1f}."
        ),
        "",
        "| variant | K | Shapes-GQA | Rendered-TextVQA | GQA binary | GQA open | seeds |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for e in ordered(table):
        runs = [r for r in report["runs"] if (r["variant"], r["tokens"]) == (e["variant"], e["tokens"])]
        binary, open_ = spread([r["gqa_binary"] for r in runs]), spread([r["gqa_open"] for r in runs])
        out.append(
            f"| {e['variant']} | {e['tokens']} | {_cell(e['gqa']['accuracy'])} | {_cell(e['textvqa']['accuracy'])} | "
            f"{_cell(binary)} | {_cell(open_)} | {len(e['seeds'])} |"
        )
    out += ["", "## Default SEC against identity and the baselines (same K)", ""]
    out += [f"- {line}" for line in report["sec_vs_baselines"]]
    choice = report["sec_default"]
    out += [
        "",
        "## Choosing the default SEC variant",
        "",
        "Score = mean over seeds of the per-seed average over both benchmarks and both K; the best variant replaces "
        f"the default `{DEFAULT_SEC}` only if it leads by more than the larger seed-std of the two scores.",
        "",
        "| variant | score |",
        "|---|---:|",
    ]
    out += [f"| {v} | {_cell(s)} |" for v, s in sorted(choice["scores"].items(), key=lambda kv: -kv[1]["mean"])]
    out += ["", f"Best: `{choice['best']}`; recommended default: `{choice['recommended']}`."]
    if not choice["decided"]:
        out[-1] += " One seed gives no spread to compare a lead with, so the rule keeps the default."
    for bench in BENCHMARKS:
        first = next(iter(table.values()))[bench]["per_stratum"]
        for key, values in first.items():
            out += [
                "",
                f"## {BENCHMARK_TITLES[bench]} by {key}",
                "",
                "| variant | K | " + " | ".join(values) + " |",
                "|---|---:|" + "---:|" * len(values),
            ]
            for e in ordered(table):
                cells = [
                    _cell(e[bench]["per_stratum"][key][v]) if v in e[bench]["per_stratum"][key] else "-"
                    for v in values
                ]
                out.append(f"| {e['variant']} | {e['tokens']} | " + " | ".join(cells) + " |")
    return "\n".join(out) + "\n"


def plot(report: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    table = report["table"]
    fig, axes = plt.subplots(1, len(BENCHMARKS), figsize=(12, 4.5))
    for ax, bench in zip(axes, BENCHMARKS):
        for variant in dict.fromkeys(e["variant"] for e in ordered(table)):
            entries = sorted((e for e in table.values() if e["variant"] == variant), key=lambda e: e["tokens"])
            xs = [e["tokens"] for e in entries]
            means = [e[bench]["accuracy"]["mean"] for e in entries]
            stds = [e[bench]["accuracy"]["std"] for e in entries]
            if variant == "identity":
                ax.errorbar(
                    xs,
                    means,
                    yerr=stds,
                    capsize=3,
                    marker="*",
                    markersize=14,
                    color="black",
                    label=f"identity ({xs[0]} tokens)",
                )
                ax.axhline(means[0], color="black", linestyle="--", linewidth=0.8)
                continue
            style = {
                "linewidth": 2.5 if variant == DEFAULT_SEC else 1.2,
                "linestyle": "--" if variant.startswith("sec/") else "-",
            }
            ax.errorbar(xs, means, yerr=stds, capsize=3, marker="o", label=variant, **style)
        ax.axhline(report["blind"][bench], color="gray", linestyle=":", label="blind (no image)")
        ax.set_xscale("log", base=2)
        ticks = sorted({e["tokens"] for e in table.values()})
        ax.set_xticks(ticks, [str(t) for t in ticks])
        ax.set_xlabel("visual tokens K")
        ax.set_ylabel("accuracy (%), mean ± std over seeds")
        ax.set_title(BENCHMARK_TITLES[bench])
        ax.grid(alpha=0.3)
    axes[-1].legend(fontsize=8, loc="best")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def run_accuracy(cfg: AccuracyConfig, command: str, results_dir: Path, build: bool = False) -> dict[str, Any]:
    """Build the shared base (or take the one the package ships for this recipe, unless ``build``), run the grid
    ``cfg.jobs`` at a time, and write accuracy.{json,md,png}."""
    check_grid(cfg.variants, cfg.budgets)
    work = Path(cfg.out)
    data, base, runs = work / "data", work / "base", work / "runs"
    recipe = recipe_record(cfg.model)
    if not (work / "recipe.json").exists() and not base.exists():  # a new work folder
        generate(str(data), cfg.model.sizes, cfg.model.seed)
        if build or shipped_base(cfg.model) is None:
            build_base(cfg.model, data, base)
        write_json_atomic(work / "recipe.json", recipe)
    check_recipe(work, recipe)
    if not base.exists():  # the recipe's base is the package's (quickstart.shipped_base)
        base = shipped_base(cfg.model)
        if base is None:
            raise ValueError(f"{work}: no base/ and the package ships no base for its recipe; use a new --work")
    blind = blind_baseline(data, work / "blind")
    keys = grid(cfg)
    results, failures = [], []
    start = time.time()
    with (
        ThreadPoolExecutor(max_workers=cfg.jobs) as pool,
        tqdm(total=len(keys), desc="accuracy runs", unit="run") as bar,
    ):
        futures = {pool.submit(run_one, cfg, key, data, base, runs): key for key in keys}
        for future in as_completed(futures):
            try:
                results.append(future.result())
            except (Exception, SystemExit) as error:  # keep the finished runs; report every failure at the end
                failures.append(f"{futures[future].name}: {error}")
            bar.update(1)
    results.sort(key=lambda r: (r["variant"], r["tokens"], r["seed"]))  # completion order varies; the files must not
    for r in results:
        r["gqa_binary"], r["gqa_open"] = r["gqa"]["binary"], r["gqa"]["open"]
    table = aggregate(results)
    report = {
        "command": command,
        "config": {**asdict(cfg), "variants": [asdict(v) for v in cfg.variants]},
        "num_patches": NUM_PATCHES,
        "device": describe_device(),
        "base": base_label(base),
        "blind": {b: blind[b]["accuracy"] for b in BENCHMARKS},
        "table": table,
        "sec_vs_baselines": sec_against_baselines(table),
        "wall_s_this_invocation": time.time() - start,
        "run_s_total": sum(sum(r["timings"].values()) for r in results),
        "runs": [
            {k: r[k] for k in ("variant", "projector", "tokens", "seed", "timings", "gqa_binary", "gqa_open")}
            | {b: r[b]["accuracy"] for b in BENCHMARKS}
            for r in results
        ],
    }
    report["sec_default"] = recommend_sec_variant(report["runs"])
    results_dir.mkdir(parents=True, exist_ok=True)
    write_json_atomic(results_dir / "accuracy.json", report)
    write_text_atomic(results_dir / "accuracy.md", markdown(report))
    plot(report, results_dir / "accuracy.png")
    if failures:
        raise SystemExit(
            f"{len(failures)} run(s) failed (finished runs are kept; rerun to resume):\n  " + "\n  ".join(failures)
        )
    return report


def main(argv: list[str] | None = None, prog: str = "-m sec_mllm.experiments.accuracy") -> None:
    parser = argparse.ArgumentParser(
        prog=f"python {prog}", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", required=True, help="where accuracy.{json,md,png} go")
    parser.add_argument("--work", default="runs/benchmark_accuracy", help="data, base model and per-run outputs")
    parser.add_argument(
        "--reduced",
        action="store_true",
        help="small sizes, a few steps, 2 seeds (the whole grid: about 9 minutes on 2 cores)",
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=None, help="training seeds (default 0 1 2)")
    parser.add_argument("--jobs", type=int, default=2, help="runs at a time (one CPU thread each)")
    parser.add_argument("--variants", nargs="+", default=None, help="subset of the variants (default: all)")
    parser.add_argument(
        "--budgets",
        type=int,
        nargs="+",
        default=None,
        help=f"K for the compressors (default {' '.join(map(str, BUDGETS))})",
    )
    parser.add_argument(
        "--build-base", action="store_true", help="build the base in --work even when the package ships this recipe's"
    )
    add_recipe_arguments(parser)  # the model and data recipe: the quick start's flags (the default: its recipe)
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    cfg = AccuracyConfig.reduced(args.work) if args.reduced else AccuracyConfig(out=args.work)
    cfg.out, cfg.jobs, cfg.model.out = args.work, args.jobs, args.work
    if args.seeds:
        cfg.seeds = tuple(args.seeds)
    apply_recipe(cfg.model, args)
    if args.budgets:
        cfg.budgets = tuple(args.budgets)
    try:  # unknown variants and budgets the projectors cannot build stop here, before any run starts
        cfg.variants = find_variants(args.variants)
        check_grid(cfg.variants, cfg.budgets)
    except ValueError as error:
        parser.error(str(error))
    command = f"python {prog} {shlex.join(argv)}".strip()
    report = run_accuracy(cfg, command, Path(args.out), build=args.build_base)
    print(f"\n{'variant':<22}{'K':>4}" + "".join(f"{BENCHMARK_TITLES[b]:>22}" for b in ("gqa", "textvqa")))
    for e in ordered(report["table"]):
        cells = "".join(
            f"{e[b]['accuracy']['mean']:>14.1f} ± {e[b]['accuracy']['std']:<5.1f}" for b in ("gqa", "textvqa")
        )
        print(f"{e['variant']:<22}{e['tokens']:>4}{cells}")
    print(f"{'blind':<22}{'':>4}" + "".join(f"{report['blind'][b]:>14.1f}{'':8}" for b in ("gqa", "textvqa")))
    print("\n" + "\n".join(report["sec_vs_baselines"]))
    print(
        f"\nwrote {Path(args.out) / 'accuracy.json'}, accuracy.md and accuracy.png "
        f"({report['wall_s_this_invocation'] / 60:.1f} min; "
        f"the runs took {report['run_s_total'] / 60:.0f} min of single-thread process time, {cfg.jobs} at a time)"
    )


if __name__ == "__main__":
    main()
