"""Speed and memory of token compression, measured in one run as ratios to baselines from the same run.

    python -m sec_mllm.experiments.speed --out benchmarks/results/speed_cpu         # scaled Llama on CPU
    python -m sec_mllm.experiments.speed --out DIR --quick                           # a few minutes
    python -m sec_mllm.experiments.speed --out DIR --device cuda --dtype bfloat16 --lm 7b   # the 7B shape on a GPU

(``python scripts/benchmark_speed.py ...`` in a checkout.) Writes DIR/speed.json and DIR/prefill.png and
prints the tables.

a. projector time alone at N = 576, D = 1024 for K in {144, 64, 36} (sec, sec_plain = the bare
   clustering without learned maps, kmeans with 10 iterations, tome, avgpool), with `sec` as the reference;
b. the projector's share of a whole forward pass (vision tower + projector + connector + LM prefill);
c. prefill latency of the whole model against K, computed as generate does it (logits of the last
   position only), with `identity` (576 tokens) as the baseline; beside each speedup, the bare language
   model's own speedup for the same sequence lengths (same run, no vision tower or projector) and the
   ideal token-count ratio (576 + T) / (K + T) for T text tokens;
d. KV-cache bytes (measured on the returned cache) and peak memory against K (CUDA: peak allocated;
   CPU: peak resident-set growth of the process, a coarse figure);
e. stage-2 training samples per second against K (forward, backward and AdamW step of connector +
   projector + LM, vision tower frozen).

Every timing: warm-up, then the median of repeats. Projectors are timed one at a time on the same input
(an isolated operation, warm caches). Prefill is timed in interleaved rounds (the whole model and the bare
LM at every K in turn) so that a slow spell of the shared machine hits all of them alike, which holds the
four prefill models at once (about 54 GB for the 7B shape in bf16); training steps are timed per K.
Shapes: a CLIP ViT-L/14-336-shaped vision feature grid (576 x 1024) feeds the projectors; the
whole-model runs use a scaled-down CLIP tower producing that grid and a Llama-shaped LM whose size is
set by the caller (the 7B shape on a GPU).
"""

from __future__ import annotations

import argparse
import gc
import resource
import statistics
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable

import torch
from transformers import CLIPVisionConfig, LlamaConfig

from ..configuration_sec_mllm import SecMllmConfig
from ..files import write_json_atomic
from ..modeling_sec_mllm import SecMllmForConditionalGeneration
from ..projectors import build_projector

KS = (144, 64, 36)
N, D = 576, 1024


@dataclass
class SpeedSettings:
    lm_width: int = 1024
    lm_layers: int = 8
    lm_heads: int = 16
    vision_width: int = 256
    vision_layers: int = 2
    text_tokens: int = 64
    batch: int = 1
    train_batch: int = 4
    warmup: int = 2
    repeats: int = 5
    projector_repeats: int = 20  # projector calls take milliseconds: more rounds for a stable median
    device: str = "cpu"
    dtype: torch.dtype = torch.float32

    @classmethod
    def quick(cls) -> "SpeedSettings":
        return cls(
            lm_width=512,
            lm_layers=4,
            lm_heads=8,
            vision_layers=1,
            repeats=3,
            warmup=1,
            train_batch=2,
            projector_repeats=5,
        )


def interleaved(fns: dict[str, Callable[[], Any]], settings: SpeedSettings) -> dict[str, float]:
    """Median wall time (ms) of each function, timed in rounds that call every function once in turn.

    Interleaving spreads a slow spell of a shared machine over all candidates instead of letting it land
    on whichever one was being timed in a block, so ratios between them stay meaningful.
    """
    sync = torch.cuda.synchronize if settings.device.startswith("cuda") else (lambda: None)
    times: dict[str, list[float]] = {name: [] for name in fns}
    for round_ in range(settings.warmup + settings.repeats):
        for name, fn in fns.items():
            sync()
            start = time.perf_counter()
            fn()
            sync()
            if round_ >= settings.warmup:
                times[name].append((time.perf_counter() - start) * 1000)
    return {name: statistics.median(t) for name, t in times.items()}


def timed(fn: Callable[[], Any], settings: SpeedSettings) -> float:
    """Median wall time of ``fn`` in milliseconds (warm-up, then ``settings.repeats`` calls)."""
    return interleaved({"fn": fn}, settings)["fn"]


def projector_configs(k: int) -> dict[str, dict[str, Any]]:
    """``sec`` is the default module (learned W_k, W_q, position embedding); ``sec_plain`` is the bare
    one-pass clustering (raw features, mean reduction): the part that k-means' iterations replace."""
    plain = {"num_tokens": k, "key_projection": False, "reduction": "mean", "position_embedding": False}
    return {
        "sec": {"num_tokens": k},
        "sec_plain": plain,
        "kmeans": {"num_tokens": k, "iterations": 10},
        "tome": {"num_tokens": k},
        "avgpool": {"num_tokens": k},
    }


@torch.no_grad()
def projector_times(settings: SpeedSettings) -> dict[str, dict[str, float]]:
    x = torch.randn(settings.batch, N, D, device=settings.device, dtype=settings.dtype)  # [B, N, D]
    out: dict[str, dict[str, float]] = {}
    for k in KS:
        for name, cfg in projector_configs(k).items():
            proj = build_projector(name.replace("_plain", ""), cfg, D).to(settings.device, settings.dtype).eval()
            out.setdefault(name, {})[str(k)] = timed(
                lambda proj=proj: proj(x), replace(settings, repeats=settings.projector_repeats)
            )
    return out


def build_model(settings: SpeedSettings, projector: str, k: int | None) -> SecMllmForConditionalGeneration:
    vision = CLIPVisionConfig(
        image_size=336,
        patch_size=14,
        hidden_size=settings.vision_width,
        intermediate_size=4 * settings.vision_width,
        num_hidden_layers=settings.vision_layers,
        num_attention_heads=max(1, settings.vision_width // 64),
    )
    text = LlamaConfig(
        vocab_size=32064,
        hidden_size=settings.lm_width,
        intermediate_size=int(2.6875 * settings.lm_width),
        num_hidden_layers=settings.lm_layers,
        num_attention_heads=settings.lm_heads,
        num_key_value_heads=settings.lm_heads,
        max_position_embeddings=4096,
    )
    config = SecMllmConfig(
        vision_config=vision,
        text_config=text,
        projector_type=projector,
        projector_config={} if k is None else {"num_tokens": k},
        image_token_id=32000,
    )
    torch.manual_seed(0)
    return SecMllmForConditionalGeneration(config).to(settings.device, settings.dtype).eval()


def _inputs(model: SecMllmForConditionalGeneration, settings: SpeedSettings, batch: int) -> dict[str, torch.Tensor]:
    k = model.num_image_tokens
    text = torch.randint(5, 31000, (batch, settings.text_tokens), device=settings.device)
    image = torch.full((batch, k), model.config.image_token_id, device=settings.device)
    pixels = torch.randn(batch, 3, 336, 336, device=settings.device, dtype=settings.dtype)
    return {"input_ids": torch.cat([text[:, :4], image, text[:, 4:]], dim=1), "pixel_values": pixels}


def _peak_memory_mb(fn: Callable[[], Any], settings: SpeedSettings) -> float:
    gc.collect()
    if settings.device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        fn()
        return (torch.cuda.max_memory_allocated() - base) / 2**20
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    fn()
    return (
        max(0, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    )  # KiB -> MiB; 0 if below the old peak


@torch.no_grad()
def prefill(settings: SpeedSettings) -> tuple[dict[str, dict[str, float]], dict[str, float]]:
    """Whole-model and LM-only prefill per K (identity = 576 tokens first), plus the projector's share.

    All models are built first and timed in interleaved rounds (whole model and bare LM for every K).
    """
    results: dict[str, dict[str, float]] = {}
    fns: dict[str, Callable[[], Any]] = {}
    proj_ms: dict[str, float] = {}
    for projector, k in [("identity", None)] + [("sec", k) for k in KS]:
        model = build_model(settings, projector, k)
        inputs = _inputs(model, settings, settings.batch)
        embeds = torch.randn(
            settings.batch,
            inputs["input_ids"].shape[1],
            settings.lm_width,
            device=settings.device,
            dtype=settings.dtype,
        )
        key = str(model.num_image_tokens)
        fns[f"whole/{key}"] = lambda model=model, inputs=inputs: model(**inputs, logits_to_keep=1, use_cache=True)
        fns[f"lm/{key}"] = lambda model=model, embeds=embeds: model.language_model(
            inputs_embeds=embeds, logits_to_keep=1, use_cache=True
        )
        feats = model.vision_tower(
            inputs["pixel_values"], model.config.vision_feature_layer, model.config.vision_feature_select_strategy
        )
        proj_ms[key] = timed(lambda model=model, feats=feats: model.projector(feats), settings)
        cache = model(**inputs, logits_to_keep=1, use_cache=True).past_key_values
        kv_bytes = sum(t.numel() * t.element_size() for layer in cache.layers for t in (layer.keys, layer.values))
        peak = _peak_memory_mb(fns[f"whole/{key}"], settings)
        results[key] = {
            "kv_cache_bytes": kv_bytes,
            "peak_memory_mb": peak,
            "sequence_length": inputs["input_ids"].shape[1],
        }
    ms = interleaved(fns, settings)
    share: dict[str, float] = {}
    for key, row in results.items():
        row["ms"], row["lm_only_ms"] = ms[f"whole/{key}"], ms[f"lm/{key}"]
        share[key] = proj_ms[key] / row["ms"]
    base = results[str(N)]
    for key, row in results.items():
        t = settings.text_tokens
        row["speedup"] = base["ms"] / row["ms"]
        row["lm_only_speedup"] = base["lm_only_ms"] / row["lm_only_ms"]
        row["ideal_speedup"] = (N + t) / (int(key) + t)
        row["fraction_of_lm_speedup"] = row["speedup"] / row["lm_only_speedup"]
        row["fraction_of_ideal"] = row["speedup"] / row["ideal_speedup"]
    return results, share


def train_throughput(settings: SpeedSettings) -> dict[str, float]:
    """Samples per second of a stage-2 step (LM, connector and projector train; vision frozen)."""
    out = {}
    for projector, k in [("identity", None)] + [("sec", k) for k in KS]:
        model = build_model(settings, projector, k).train()
        model.vision_tower.requires_grad_(False)
        optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5)
        inputs = _inputs(model, settings, settings.train_batch)
        labels = inputs["input_ids"].masked_fill(inputs["input_ids"] == model.config.image_token_id, -100)

        def step() -> None:
            loss = model(**inputs, labels=labels).loss
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)

        out[str(model.num_image_tokens)] = settings.train_batch / (timed(step, settings) / 1000)
        gc.collect()
    return out


def run_speed(settings: SpeedSettings) -> dict[str, Any]:
    torch.manual_seed(0)
    projector_ms = projector_times(settings)
    prefill_rows, share = prefill(settings)
    return {
        "settings": {k: str(v) for k, v in vars(settings).items()},
        "device": torch.cuda.get_device_name() if settings.device.startswith("cuda") else "cpu",
        "threads": torch.get_num_threads(),
        "projector_ms": projector_ms,
        "projector_speedup_vs_sec": {
            name: {k: v / projector_ms["sec"][k] for k, v in row.items()} for name, row in projector_ms.items()
        },
        # the clustering itself: how many times the bare one-pass SEC is faster than 10-iteration k-means
        "kmeans_over_sec_plain": {k: projector_ms["kmeans"][k] / v for k, v in projector_ms["sec_plain"].items()},
        "projector_share_of_forward": share,
        "prefill": prefill_rows,
        "train_samples_per_s": train_throughput(settings),
    }


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

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
    print(
        "  k-means (10 iterations) time / bare SEC clustering (sec_plain) time: "
        + ", ".join(f"K={k}: {v:.1f}x" for k, v in result["kmeans_over_sec_plain"].items())
    )
    print("\nprefill (whole model, logits of the last position)")
    print(
        f"  {'K':>5}{'ms':>10}{'speedup':>10}{'LM-only':>10}{'ideal':>10}{'of LM':>9}{'of ideal':>10}"
        f"{'KV MiB':>9}{'proj share':>12}"
    )
    for k, row in sorted(result["prefill"].items(), key=lambda kv: -int(kv[0])):
        share = result["projector_share_of_forward"][k]
        print(
            f"  {k:>5}{row['ms']:>10.1f}{row['speedup']:>10.2f}{row['lm_only_speedup']:>10.2f}"
            f"{row['ideal_speedup']:>10.2f}{row['fraction_of_lm_speedup']:>9.0%}{row['fraction_of_ideal']:>10.0%}"
            f"{row['kv_cache_bytes'] / 2**20:>9.2f}{share:>12.2%}"
        )
    print("\nstage-2 training throughput (samples/s)")
    base = result["train_samples_per_s"][str(N)]
    for k, v in sorted(result["train_samples_per_s"].items(), key=lambda kv: -int(kv[0])):
        print(f"  K={k:>4}: {v:8.2f}  ({v / base:.2f}x identity)")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    parser.add_argument("--lm", default="scaled", choices=["scaled", "7b"], help="7b: Llama-2-7B shape (GPU)")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    settings = SpeedSettings.quick() if args.quick else SpeedSettings()
    settings.device, settings.dtype = args.device, getattr(torch, args.dtype)
    if args.lm == "7b":
        settings.lm_width, settings.lm_layers, settings.lm_heads, settings.vision_width, settings.vision_layers = (
            4096,
            32,
            32,
            1024,
            24,
        )
    result = run_speed(settings)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out / "speed.json", result)
    plot(result, out / "prefill.png")
    print_tables(result)
    print(f"\nwrote {out / 'speed.json'} and {out / 'prefill.png'}")


if __name__ == "__main__":
    main()
