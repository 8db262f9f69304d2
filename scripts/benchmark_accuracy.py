"""Every token compressor at K = N/4 and N/16 (identity once) on the synthetic benchmark, over seeds.

    python scripts/benchmark_accuracy.py --out benchmarks/results/accuracy            # the committed table
    python scripts/benchmark_accuracy.py --out DIR --reduced --variants identity sec --seeds 0   # about a minute (the test)
    python scripts/benchmark_accuracy.py --out DIR --variants sec avgpool --seeds 0 1 2

Writes DIR/accuracy.json (every run, and mean / std per configuration, overall and per stratum),
DIR/accuracy.md (the tables) and DIR/accuracy.png (accuracy against visual tokens, one line per
projector). Runs are resumable: finished runs under --work are reused. See sec_mllm/benchmark/accuracy.py.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from sec_mllm.benchmark.accuracy import BENCHMARK_TITLES, AccuracyConfig, find_variants, ordered, run_accuracy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="where accuracy.{json,md,png} go")
    parser.add_argument("--work", default="runs/benchmark_accuracy", help="data, base model and per-run outputs")
    parser.add_argument("--reduced", action="store_true", help="small sizes, a few steps, 2 seeds (the whole grid: about 9 minutes on 2 cores)")
    parser.add_argument("--seeds", type=int, nargs="+", default=None, help="training seeds (default 0 1 2)")
    parser.add_argument("--jobs", type=int, default=2, help="runs at a time (one CPU thread each)")
    parser.add_argument("--stage2-steps", type=int, default=None)
    parser.add_argument("--variants", nargs="+", default=None, help="subset of the variants (default: all)")
    args = parser.parse_args()
    cfg = AccuracyConfig.reduced(args.work) if args.reduced else AccuracyConfig(out=args.work)
    cfg.out, cfg.jobs, cfg.model.out = args.work, args.jobs, args.work
    if args.seeds:
        cfg.seeds = tuple(args.seeds)
    if args.stage2_steps:
        cfg.model.stage2_steps = args.stage2_steps
    try:
        cfg.variants = find_variants(args.variants)
    except ValueError as error:
        parser.error(str(error))
    command = "python " + shlex.join(["scripts/benchmark_accuracy.py", *sys.argv[1:]])
    report = run_accuracy(cfg, command, Path(args.out))
    print(f"\n{'variant':<22}{'K':>4}" + "".join(f"{BENCHMARK_TITLES[b]:>22}" for b in ("gqa", "textvqa")))
    for e in ordered(report["table"]):
        cells = "".join(f"{e[b]['accuracy']['mean']:>14.1f} ± {e[b]['accuracy']['std']:<5.1f}" for b in ("gqa", "textvqa"))
        print(f"{e['variant']:<22}{e['tokens']:>4}{cells}")
    print(f"{'blind':<22}{'':>4}" + "".join(f"{report['blind'][b]:>14.1f}{'':8}" for b in ("gqa", "textvqa")))
    print("\n" + "\n".join(report["sec_vs_baselines"]))
    print(f"\nwrote {Path(args.out) / 'accuracy.json'}, accuracy.md and accuracy.png ({report['wall_s_this_invocation'] / 60:.1f} min; "
          f"the runs took {report['run_s_total'] / 60:.0f} min of single-thread process time, {cfg.jobs} at a time)")


if __name__ == "__main__":
    main()
