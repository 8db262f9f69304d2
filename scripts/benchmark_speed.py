"""Speed and memory of SEC against the other projectors and against all 576 tokens, in one run.

    python scripts/benchmark_speed.py --out benchmarks/results/speed            # scaled Llama on CPU
    python scripts/benchmark_speed.py --out DIR --quick                          # a few minutes
    python scripts/benchmark_speed.py --out DIR --device cuda --dtype bfloat16 --lm 7b   # the 7B shape on a GPU

Writes DIR/speed.json (projector_ms, prefill, train_samples_per_s, ...) and DIR/prefill.png, and prints
the tables. Every number is a median over repeats after warm-up; ratios use baselines from the same run.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from sec_mllm.benchmark.speed import KS, N, SpeedSettings, run_speed  # noqa: E402
from sec_mllm.files import write_json_atomic  # noqa: E402


def plot(result: dict, path: Path) -> None:
    rows = result["prefill"]
    ks = sorted((int(k) for k in rows), reverse=True)
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(ks, [rows[str(k)]["ms"] for k in ks], "o-", label="whole model (vision + projector + LM)")
    ax.plot(ks, [rows[str(k)]["lm_only_ms"] for k in ks], "s--", label="language model alone")
    ax.set_xlabel("visual tokens K (576 = identity)")
    ax.set_ylabel("prefill latency (ms, median)")
    ax.set_title(f"prefill vs K ({result['device']})")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def print_tables(result: dict) -> None:
    print("\nprojector time at N=576, D=1024 (ms; x = time / sec's time)")
    print(f"  {'projector':<10}" + "".join(f"{'K=' + str(k):>18}" for k in KS))
    for name, row in result["projector_ms"].items():
        ratio = result["projector_speedup_vs_sec"][name]
        print(f"  {name:<10}" + "".join(f"{row[str(k)]:>10.2f} ({ratio[str(k)]:>5.1f}x)" for k in KS))
    print("  k-means (10 iterations) time / bare SEC clustering (sec_plain) time: "
          + ", ".join(f"K={k}: {v:.1f}x" for k, v in result["kmeans_over_sec_plain"].items()))
    print("\nprefill (whole model, logits of the last position)")
    print(f"  {'K':>5}{'ms':>10}{'speedup':>10}{'LM-only':>10}{'ideal':>10}{'of LM':>9}{'of ideal':>10}{'KV MiB':>9}{'proj share':>12}")
    for k, row in sorted(result["prefill"].items(), key=lambda kv: -int(kv[0])):
        share = result["projector_share_of_forward"][k]
        print(f"  {k:>5}{row['ms']:>10.1f}{row['speedup']:>10.2f}{row['lm_only_speedup']:>10.2f}{row['ideal_speedup']:>10.2f}"
              f"{row['fraction_of_lm_speedup']:>9.0%}{row['fraction_of_ideal']:>10.0%}{row['kv_cache_bytes'] / 2**20:>9.2f}{share:>12.2%}")
    print("\nstage-2 training throughput (samples/s)")
    base = result["train_samples_per_s"][str(N)]
    for k, v in sorted(result["train_samples_per_s"].items(), key=lambda kv: -int(kv[0])):
        print(f"  K={k:>4}: {v:8.2f}  ({v / base:.2f}x identity)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    parser.add_argument("--lm", default="scaled", choices=["scaled", "7b"], help="7b: Llama-2-7B shape (GPU)")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    settings = SpeedSettings.quick() if args.quick else SpeedSettings()
    settings.device, settings.dtype = args.device, getattr(torch, args.dtype)
    if args.lm == "7b":
        settings.lm_width, settings.lm_layers, settings.lm_heads, settings.vision_width, settings.vision_layers = 4096, 32, 32, 1024, 24
    result = run_speed(settings)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out / "speed.json", result)
    plot(result, out / "prefill.png")
    print_tables(result)
    print(f"\nwrote {out / 'speed.json'} and {out / 'prefill.png'}")


if __name__ == "__main__":
    main()
