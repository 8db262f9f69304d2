"""Training data at LLaVA scale: per-rank memory and start-up time of the list-based path (LLaVA's: the
parsed JSON in every rank) against the Arrow path (one memory-mapped copy made with ``datasets``), with
ranks started together as a launcher starts them.

    python -m sec_mllm.experiments.data_loading --out benchmarks/results/data_loading --work runs/data_loading

(``python scripts/benchmark_data_loading.py ...`` in a checkout.) Steps, each kept when already done with
the same settings, so a rerun only measures again (``--force`` redoes the measurements):

1. a mix665k-shaped file (llava_mix.py: 665K samples, about 1 GB, images referenced) in ``--work``, and an
   image folder in which every referenced image is a hard link to one small JPEG: both paths check that
   every image exists (list: at every start; Arrow: at conversion) and the first item decodes one;
2. phases, each launching ``--ranks`` processes together (``RANK`` / ``LOCAL_RANK`` / ``WORLD_SIZE`` set):
   ``list`` (``--data_storage list``), ``arrow_first`` (the Arrow cache removed first: one rank converts,
   the others wait for it) and ``arrow_cached``; ``list`` and ``arrow_cached`` are repeated ``--repeats``
   times (median per rank). Every rank builds the dataset as the training driver does
   (``LlavaDataset(..., "v1", image_folder)``), then takes ``len``, ``modality_lengths`` and item 0;
3. ``DIR/data_loading.json`` (every figure, the command, the seed, the file's shape) and
   ``DIR/data_loading.md`` (the table).

Per rank: start-up = seconds from just before ``LlavaDataset(...)`` until the length, the modality lengths
and the first item are in hand (imports and the processor are built before and not counted; both paths
normally run with a warm page cache: the file was just written or read; the 1-minute load average before
and after is stored, as the machine may be shared). Memory for the data = growth from just
before the dataset is built, of: the resident set (VmRSS) at the end; its peak (VmHWM, the high-water
mark, which includes the parse); anonymous memory (RssAnon: the process's own heap); and from
``/proc/self/smaps_rollup`` the proportional set (Pss: shared pages divided among the processes mapping
them) and the unique set (USS = Private_Clean + Private_Dirty). Memory-mapped Arrow pages are file-backed
and shared by the ranks of a node: they appear in RSS and Pss but not in RssAnon or USS.
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from PIL import Image
from tqdm import tqdm

from ..files import read_json, write_json_atomic, write_text_atomic
from .llava_mix import VERSION, generate_mix

PHASES = ("list", "arrow_first", "arrow_cached")


def memory_kib() -> dict[str, int]:
    """This process's memory figures (KiB) from /proc (Linux)."""
    status = dict(
        line.split(":", 1)
        for line in Path("/proc/self/status").read_text().splitlines()
        if line.startswith(("Vm", "Rss"))
    )
    rollup = dict(
        line.split(":", 1) for line in Path("/proc/self/smaps_rollup").read_text().splitlines()[1:] if ":" in line
    )

    def kib(table: dict[str, str], key: str) -> int:
        return int(table[key].split()[0])

    return {
        "rss": kib(status, "VmRSS"),
        "peak_rss": kib(status, "VmHWM"),
        "rss_anon": kib(status, "RssAnon"),
        "rss_file": kib(status, "RssFile"),
        "pss": kib(rollup, "Pss"),
        "uss": kib(rollup, "Private_Clean") + kib(rollup, "Private_Dirty"),
    }


def run_rank(data: str, images: str, storage: str, result: str) -> None:
    """One rank: build the processor, then the dataset as train/run.py does; write the figures to ``result``."""
    import torch

    from ..builder import build_model, build_processor
    from ..data import LlavaDataset
    from ..tiny import tiny_clip_vision_config, tiny_llama_config, train_tokenizer

    torch.set_num_threads(1)
    tokenizer = train_tokenizer()
    model = build_model(
        tiny_clip_vision_config(),
        tiny_llama_config(vocab_size=len(tokenizer)),
        "sec",
        {"num_tokens": 4},
        tokenizer=tokenizer,
    )
    processor = build_processor(model.config, tokenizer)
    before = memory_kib()
    load_before = os.getloadavg()[0]
    start = time.perf_counter()
    dataset = LlavaDataset(data, processor, "v1", images, max_length=2048, storage=storage)
    built = time.perf_counter()
    length = len(dataset)
    lengths = dataset.modality_lengths
    lengths_done = time.perf_counter()
    item = dataset[0]
    end = time.perf_counter()
    after = memory_kib()
    write_json_atomic(
        result,
        {
            "rank": int(os.environ.get("RANK", 0)),
            "storage": storage,
            "samples": length,
            "image_samples": int((lengths > 0).sum()),
            "first_item_tokens": int(item["input_ids"].numel()),
            "converted": bool(getattr(dataset.samples, "converted", False)),
            "load_average": [load_before, os.getloadavg()[0]],  # 1-minute, before and after: the machine is shared
            "seconds": {
                "startup": end - start,
                "build": built - start,
                "modality_lengths": lengths_done - built,
                "first_item": end - lengths_done,
            },
            "before_kib": before,
            "after_kib": after,
            "growth_mib": {
                "rss": (after["rss"] - before["rss"]) / 1024,
                "peak_rss": (after["peak_rss"] - before["rss"]) / 1024,
                "rss_anon": (after["rss_anon"] - before["rss_anon"]) / 1024,
                "rss_file": (after["rss_file"] - before["rss_file"]) / 1024,
                "pss": (after["pss"] - before["pss"]) / 1024,
                "uss": (after["uss"] - before["uss"]) / 1024,
            },
        },
    )


def launch(ranks: int, data: Path, images: Path, storage: str, folder: Path) -> list[dict[str, Any]]:
    """Start ``ranks`` rank processes together and collect their figures."""
    folder.mkdir(parents=True, exist_ok=True)
    procs = []
    for rank in range(ranks):
        env = os.environ | {
            "RANK": str(rank),
            "LOCAL_RANK": str(rank),
            "WORLD_SIZE": str(ranks),
            "OMP_NUM_THREADS": "1",
            "TOKENIZERS_PARALLELISM": "false",
        }
        cmd = [
            sys.executable,
            "-m",
            "sec_mllm.experiments.data_loading",
            "--rank-result",
            str(folder / f"rank{rank}.json"),
        ]
        cmd += ["--data", str(data), "--images", str(images), "--storage", storage]
        procs.append(subprocess.Popen(cmd, env=env))
    codes = [p.wait() for p in procs]
    if any(codes):
        raise RuntimeError(f"rank processes of phase {folder.name} exited with {codes}")
    return [read_json(folder / f"rank{rank}.json") for rank in range(ranks)]


def image_folder(work: Path, image_list: Path) -> Path:
    """Every referenced image as a hard link to a 16x16 JPEG (one source file per 60,000 links, under the
    filesystem's link limit), kept when complete."""
    folder = work / "images"
    names = image_list.read_text().split()
    done = folder / ".complete"
    if done.exists() and done.read_text() == str(len(names)):
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    image = Image.new("RGB", (16, 16), (120, 80, 40))
    for k, name in enumerate(tqdm(names, desc="image links", unit=" links")):
        source = work / "sources" / f"{k // 60_000}.jpg"
        if not source.exists():
            source.parent.mkdir(parents=True, exist_ok=True)
            image.save(source, quality=90)
        target = folder / name
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            os.link(source, target)
    done.write_text(str(len(names)))
    return folder


def available_gib() -> float:
    info = dict(line.split(":", 1) for line in Path("/proc/meminfo").read_text().splitlines())
    return int(info["MemAvailable"].split()[0]) / 2**20


def summarize(runs: list[list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """Per rank: the median over repeats of every figure."""
    out = []
    for rank_runs in zip(*runs):
        out.append(
            {
                "rank": rank_runs[0]["rank"],
                "converted": any(r["converted"] for r in rank_runs),
                "startup_s": statistics.median(r["seconds"]["startup"] for r in rank_runs),
                "seconds": {k: statistics.median(r["seconds"][k] for r in rank_runs) for k in rank_runs[0]["seconds"]},
                "growth_mib": {
                    k: statistics.median(r["growth_mib"][k] for r in rank_runs) for k in rank_runs[0]["growth_mib"]
                },
                "samples": rank_runs[0]["samples"],
                "repeats": len(rank_runs),
                "load_average": [r["load_average"] for r in rank_runs],
            }
        )
    return out


def table(results: dict[str, Any]) -> str:
    rows = [
        "| phase | rank | start-up s | RSS growth MiB | peak RSS growth MiB | anonymous MiB | PSS MiB | USS MiB |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for phase in PHASES:
        for r in results["phases"][phase]:
            g = r["growth_mib"]
            note = " (converted)" if phase == "arrow_first" and r["converted"] else ""
            rows.append(
                f"| {phase}{note} | {r['rank']} | {r['startup_s']:.2f} | {g['rss']:.0f} | {g['peak_rss']:.0f} | "
                f"{g['rss_anon']:.0f} | {g['pss']:.0f} | {g['uss']:.0f} |"
            )
    ratio = results["ratios"]
    rows += [
        "",
        f"Arrow (cached) / list, worst rank: peak RSS growth {ratio['peak_rss']:.4f}, RSS growth "
        f"{ratio['rss']:.4f}, start-up {ratio['startup']:.4f}; first conversion / list start-up "
        f"{ratio['first_conversion_startup']:.2f}.",
    ]
    return "\n".join(rows) + "\n"


def run(args: argparse.Namespace) -> dict[str, Any]:
    work, out = Path(args.work), Path(args.out)
    work.mkdir(parents=True, exist_ok=True)
    data = work / "mix665k.json"
    shape_file = work / "mix665k.shape.json"
    settings = {"seed": args.seed, "scale": args.scale, "version": VERSION}
    shape = read_json(shape_file) if shape_file.exists() else None
    if shape is None or {k: shape[k] for k in settings} != settings or not data.exists():
        shape = generate_mix(data, args.seed, args.scale)
        write_json_atomic(shape_file, shape)
    images = image_folder(work, Path(shape["image_list"]))
    phases: dict[str, list[dict[str, Any]]] = {}
    for phase in PHASES:
        stored = work / "phases" / f"{phase}.json"
        if stored.exists() and not args.force:
            kept = read_json(stored)
            if kept["settings"] == settings | {"ranks": args.ranks, "repeats": args.repeats}:
                phases[phase] = kept["ranks"]
                continue
        storage = "list" if phase == "list" else "arrow"
        repeats = 1 if phase == "arrow_first" else args.repeats
        if phase == "list" and available_gib() < args.min_free_gib:
            raise SystemExit(
                f"only {available_gib():.1f} GiB available; the list phase needs about {args.min_free_gib} GiB "
                f"for {args.ranks} ranks (--min-free-gib)"
            )
        runs = []
        for repeat in range(repeats):
            if phase == "arrow_first":
                shutil.rmtree(work / f"{data.name}.arrow", ignore_errors=True)
            print(f"phase {phase}, run {repeat + 1} of {repeats}: {args.ranks} ranks", flush=True)
            ranks = launch(args.ranks, data, images, storage, work / "phases" / f"{phase}-{repeat}")
            if phase == "arrow_cached" and any(r["converted"] for r in ranks):  # no cache was left: now there is
                ranks = launch(args.ranks, data, images, storage, work / "phases" / f"{phase}-{repeat}")
            runs.append(ranks)
        phases[phase] = summarize(runs)
        write_json_atomic(
            stored, {"settings": settings | {"ranks": args.ranks, "repeats": args.repeats}, "ranks": phases[phase]}
        )

    def worst(phase: str, key: str) -> float:
        if key == "startup":
            return max(r["startup_s"] for r in phases[phase])
        return max(r["growth_mib"][key] for r in phases[phase])

    results = {
        "command": "python -m sec_mllm.experiments.data_loading " + shlex.join(getattr(args, "argv", sys.argv[1:])),
        "seed": args.seed,
        "ranks": args.ranks,
        "repeats": args.repeats,
        "machine": {
            "cpus": os.cpu_count(),
            "memory_gib": round(os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") / 2**30, 1),
        },
        "file": {k: v for k, v in shape.items() if k not in ("file", "image_list")},
        "phases": phases,
        "ratios": {
            "peak_rss": worst("arrow_cached", "peak_rss") / worst("list", "peak_rss"),
            "rss": worst("arrow_cached", "rss") / worst("list", "rss"),
            "startup": worst("arrow_cached", "startup") / worst("list", "startup"),
            "first_conversion_startup": worst("arrow_first", "startup") / worst("list", "startup"),
        },
    }
    results["goals_met"] = {
        "memory_at_most_10_percent": results["ratios"]["peak_rss"] <= 0.10,
        "startup_at_most_10_percent": results["ratios"]["startup"] <= 0.10,
    }
    write_json_atomic(out / "data_loading.json", results)
    write_text_atomic(out / "data_loading.md", table(results))
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", help="folder for data_loading.json and data_loading.md")
    parser.add_argument("--work", default="runs/data_loading", help="generated file, image links, per-phase runs")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--scale", type=float, default=1.0, help="fraction of the mix's 665K samples")
    parser.add_argument("--ranks", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--min-free-gib", type=float, default=9.0, help="refuse the list phase with less available")
    parser.add_argument("--force", action="store_true", help="measure every phase again")
    parser.add_argument("--rank-result", help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    parser.add_argument("--images", help=argparse.SUPPRESS)
    parser.add_argument("--storage", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.argv = sys.argv[1:] if argv is None else argv  # the command line stored with the results
    if args.rank_result:
        run_rank(args.data, args.images, args.storage, args.rank_result)
        return
    if not args.out:
        parser.error("--out is required")
    results = run(args)
    print(table(results))


if __name__ == "__main__":
    main()
