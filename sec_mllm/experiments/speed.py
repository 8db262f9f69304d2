"""Speed and memory of token compression, measured in one run as ratios to baselines from the same run.

    python -m sec_mllm.experiments.speed --out benchmarks/results/speed_cpu --batch 1 8     # CPU, scaled shapes
    python -m sec_mllm.experiments.speed --out DIR --quick                                   # a few minutes
    python -m sec_mllm.experiments.speed --out benchmarks/results/speed_h100 --device cuda --dtype bfloat16 \\
        --lm 7b --batch 1 8 [--compile]                                                    # 7B + CLIP-L on a GPU

(``python scripts/benchmark_speed.py ...`` in a checkout.) Writes DIR/speed.json (with the command and the
seed) and DIR/prefill.png and prints the tables.

a. projector time alone at N = 576, D = 1024, batch 1, for K in {144, 64, 36} (sec, sec_plain = the bare
   clustering without learned maps, kmeans with 10 iterations, tome, avgpool), with `sec` as the reference;
b. per batch size (``--batch``): the vision tower alone, and the projector's share of a whole forward pass
   (vision tower + projector + connector + LM prefill), the projector being the model's own (N x D_v);
c. prefill latency of the whole model against K (time to first token: logits of the last position only), with
   `identity` (576 tokens) as the baseline; beside each speedup, the bare language model's own speedup for
   the same sequence lengths (same run, no vision tower or projector) and the ideal token-count ratio
   (576 + T) / (K + T) for T text tokens;
d. KV-cache bytes (measured on the returned cache) and peak memory against K (CUDA: peak allocated;
   CPU: peak resident-set growth of the process, a coarse figure);
e. stage-2 training samples per second against K (forward, backward and AdamW step of connector +
   projector + LM, vision tower frozen; fused AdamW on CUDA, as DeepSpeed's), with the median time of each
   phase (forward, backward, optimizer step; the device is synchronised between phases).

What is measured, per ``--lm``: the vision tower always has CLIP ViT-L/14-336's token grid and width
(336 px, patch 14: N = 576 patches of width 1024, so the projector sees 576 x 1024 in every section);
``scaled`` (the CPU default) keeps 2 of CLIP-L's 24 layers and a Llama-shaped LM of width 1024 with 8 layers;
``7b`` uses all 24 tower layers and the Llama-2-7B shape (4096 wide, 32 layers), and, because a 7B LM's AdamW
state does not fit one 80 GB GPU, a 1.1B Llama shape (2048 wide, 22 layers) for section e; ``1b`` uses that
1.1B shape everywhere. Vocabulary 32k, random weights, T = 64 text tokens.

``--compile`` compiles every timed module first: the whole model through
``SecMllmForConditionalGeneration.compile_for_inference``, the bare LM, the tower and the projectors with
``torch.compile``, in mode ``reduce-overhead`` (CUDA graphs) on CUDA and inductor's default mode on CPU; the
forward has no host synchronisation and a fixed K gives static shapes, so each is one graph. Warm-up
rounds absorb the compilation. Training steps stay eager.

Every timing: warm-up, then the median of repeats. Projectors are timed one at a time on the same input
(an isolated operation, warm caches). Prefill is timed in interleaved rounds (the whole model and the bare
LM at every K, and the tower, in turn) so that a slow spell of the shared machine hits all of them alike;
the four prefill models share one vision tower and one language model (the same random weights, held once:
about 14 GB for the 7B shape in bf16). Training steps are timed per K.
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
from tqdm import tqdm
from transformers import CLIPVisionConfig, LlamaConfig

from ..configuration_sec_mllm import SecMllmConfig
from ..files import write_json_atomic
from ..modeling_sec_mllm import SecMllmForConditionalGeneration
from ..projectors import build_projector
from . import invocation

KS = (144, 64, 36)
N, D = 576, 1024
SEED = 0
LM_SHAPES = {"scaled": (1024, 8, 16), "1b": (2048, 22, 32), "7b": (4096, 32, 32)}  # width, layers, heads
CLIP_L_LAYERS = 24


@dataclass
class SpeedSettings:
    lm_width: int = 1024
    lm_layers: int = 8
    lm_heads: int = 16
    train_lm: tuple[int, int, int] | None = None  # (width, layers, heads) for section e; None: the LM above
    vision_width: int = D
    vision_layers: int = 2
    text_tokens: int = 64
    batches: tuple[int, ...] = (1,)
    train_batch: int = 4
    warmup: int = 2
    repeats: int = 5
    projector_repeats: int = 20  # projector calls take milliseconds: more rounds for a stable median
    device: str = "cpu"
    dtype: torch.dtype = torch.float32
    compile: bool = False

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

    @property
    def cuda(self) -> bool:
        return self.device.startswith("cuda")

    @property
    def compile_mode(self) -> str | None:
        """torch.compile mode of ``--compile``: CUDA graphs on CUDA, inductor's default elsewhere."""
        return "reduce-overhead" if self.cuda else None


def _sync(settings: SpeedSettings) -> None:
    if settings.cuda:
        torch.cuda.synchronize()


def interleaved(
    fns: dict[str, Callable[[], Any]], settings: SpeedSettings, desc: str | None = None
) -> dict[str, float]:
    """Median wall time (ms) of each function, timed in rounds that call every function once in turn.

    Interleaving spreads a slow spell of a shared machine over all candidates instead of letting it land
    on whichever one was being timed in a block, so ratios between them stay meaningful. ``desc``: show a
    progress bar over the rounds.
    """
    times: dict[str, list[float]] = {name: [] for name in fns}
    rounds = range(settings.warmup + settings.repeats)
    for round_ in tqdm(rounds, desc=desc, leave=False, disable=desc is None):
        for name, fn in fns.items():
            _sync(settings)
            start = time.perf_counter()
            fn()
            _sync(settings)
            if round_ >= settings.warmup:
                times[name].append((time.perf_counter() - start) * 1000)
    return {name: statistics.median(t) for name, t in times.items()}


def timed(fn: Callable[[], Any], settings: SpeedSettings) -> float:
    """Median wall time of ``fn`` in milliseconds (warm-up, then ``settings.repeats`` calls)."""
    return interleaved({"fn": fn}, settings)["fn"]


def stepped(fn: Callable[..., Any], settings: SpeedSettings) -> Callable[..., Any]:
    """``fn``, preceded under ``--compile`` on CUDA by ``cudagraph_mark_step_begin`` (each call is a new step of
    CUDA-graph trees, so outputs of earlier calls, which nothing here keeps, may be overwritten)."""
    if not (settings.compile and settings.cuda):
        return fn

    def call(*args: Any, **kwargs: Any) -> Any:
        torch.compiler.cudagraph_mark_step_begin()
        return fn(*args, **kwargs)

    return call


def compiled(fn: Callable[..., Any], settings: SpeedSettings) -> Callable[..., Any]:
    """``fn`` itself, or under ``--compile`` its ``torch.compile`` (settings' mode, static shapes)."""
    if not settings.compile:
        return fn
    return stepped(torch.compile(fn, mode=settings.compile_mode, dynamic=False), settings)


def projector_configs(k: int) -> dict[str, dict[str, Any]]:
    """``sec`` is the default module (mean reduction on the raw features, position embedding; until the accuracy
    benchmark's three seeds it was attention reduction with learned W_k, W_q); ``sec_plain`` is the bare one-pass
    clustering (raw features, mean reduction, no position embedding): the part that k-means' iterations replace."""
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
    """Section a: every projector alone on one image's 576 x 1024 grid."""
    x = torch.randn(1, N, D, device=settings.device, dtype=settings.dtype)  # [1, N, D]
    out: dict[str, dict[str, float]] = {}
    for k in KS:
        for name, cfg in projector_configs(k).items():
            proj = build_projector(name.replace("_plain", ""), cfg, D).to(settings.device, settings.dtype).eval()
            fn = compiled(proj.forward, settings)
            out.setdefault(name, {})[str(k)] = timed(
                lambda fn=fn: fn(x), replace(settings, repeats=settings.projector_repeats)
            )
    return out


def build_model(
    settings: SpeedSettings,
    projector: str,
    k: int | None,
    lm: tuple[int, int, int] | None = None,
    share: SecMllmForConditionalGeneration | None = None,
) -> SecMllmForConditionalGeneration:
    """A random model of the settings' shapes; with ``share``, its vision tower and language model are
    ``share``'s own modules (the same weights, held once), only projector and connector are new."""
    width, layers, heads = lm or (settings.lm_width, settings.lm_layers, settings.lm_heads)
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
        hidden_size=width,
        intermediate_size=int(2.6875 * width),
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=heads,
        max_position_embeddings=4096,
    )
    config = SecMllmConfig(
        vision_config=vision,
        text_config=text,
        projector_type=projector,
        projector_config={} if k is None else {"num_tokens": k},
        image_token_id=32000,
    )
    torch.manual_seed(SEED)
    if share is None:
        model = SecMllmForConditionalGeneration(config)
    else:
        model = SecMllmForConditionalGeneration(config, share.language_model, share.vision_tower.model)
    return model.to(settings.device, settings.dtype).eval()


def _inputs(model: SecMllmForConditionalGeneration, settings: SpeedSettings, batch: int) -> dict[str, torch.Tensor]:
    k = model.num_image_tokens
    text = torch.randint(5, 31000, (batch, settings.text_tokens), device=settings.device)
    image = torch.full((batch, k), model.config.image_token_id, device=settings.device)
    pixels = torch.randn(batch, 3, 336, 336, device=settings.device, dtype=settings.dtype)
    return {"input_ids": torch.cat([text[:, :4], image, text[:, 4:]], dim=1), "pixel_values": pixels}


def returned_cache(output: Any) -> Any:
    """The KV cache of a model output under either transformers spelling (``cache`` from 5.24 on)."""
    return output["cache"] if "cache" in output else output["past_key_values"]


def _peak_memory_mb(fn: Callable[[], Any], settings: SpeedSettings) -> float:
    gc.collect()
    if settings.cuda:
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
def prefill(settings: SpeedSettings) -> dict[str, Any]:
    """Sections b-d for every batch size: whole-model and LM-only prefill per K (identity = 576 tokens first),
    the tower alone, the projector alone on the model's own features, KV-cache bytes and peak memory.

    All models are built first; KV cache and memory come from an eager call; then (under ``--compile``) every
    timed callable is compiled (the whole model through ``compile_for_inference``) and, per batch size, all
    are timed in interleaved rounds.
    """
    first = build_model(settings, "identity", None)
    models = {str(N): first} | {str(k): build_model(settings, "sec", k, share=first) for k in KS}
    layer, strategy = first.config.vision_feature_layer, first.config.vision_feature_select_strategy
    rows: dict[str, dict[str, dict[str, float]]] = {}
    for batch in settings.batches:
        rows[str(batch)] = {}
        for key, model in models.items():
            inputs = _inputs(model, settings, batch)
            cache = returned_cache(model(**inputs, logits_to_keep=1, use_cache=True))
            kv_bytes = sum(t.numel() * t.element_size() for lay in cache.layers for t in (lay.keys, lay.values))
            del cache
            rows[str(batch)][key] = {
                "kv_cache_bytes": kv_bytes,
                "peak_memory_mb": _peak_memory_mb(lambda m=model, i=inputs: m(**i, logits_to_keep=1), settings),
                "sequence_length": inputs["input_ids"].shape[1],
            }
    lm = {key: compiled(model.language_model.forward, settings) for key, model in models.items()}
    projector = {key: compiled(model.projector.forward, settings) for key, model in models.items()}
    tower = compiled(first.vision_tower.forward, settings)
    if settings.compile:
        for model in models.values():
            model.compile_for_inference(mode=settings.compile_mode, dynamic=False)
    whole = {key: stepped(model, settings) for key, model in models.items()}

    result: dict[str, Any] = {"prefill": {}, "tower_ms": {}, "projector_ms_in_model": {}, "projector_share": {}}
    for batch in settings.batches:
        fns: dict[str, Callable[[], Any]] = {}
        feats: dict[str, torch.Tensor] = {}
        for key, model in models.items():
            inputs = _inputs(model, settings, batch)
            width = model.config.text_config.hidden_size
            embeds = torch.randn(
                batch, inputs["input_ids"].shape[1], width, device=settings.device, dtype=settings.dtype
            )  # [B, T, D_lm]
            fns[f"whole/{key}"] = lambda f=whole[key], i=inputs: f(**i, logits_to_keep=1, use_cache=True)
            fns[f"lm/{key}"] = lambda f=lm[key], e=embeds: f(inputs_embeds=e, logits_to_keep=1, use_cache=True)
            feats[key] = model.vision_tower(inputs["pixel_values"], layer, strategy)  # [B, N, D_v]
        pixels = torch.randn(batch, 3, 336, 336, device=settings.device, dtype=settings.dtype)
        fns["tower"] = lambda: tower(pixels, layer, strategy)
        ms = interleaved(fns, settings, desc=f"prefill, batch {batch}")
        proj_ms = {key: timed(lambda f=projector[key], x=feats[key]: f(x), settings) for key in models}
        batch_rows = rows[str(batch)]
        base, t = batch_rows[str(N)], settings.text_tokens
        for key, row in batch_rows.items():
            row["ms"], row["lm_only_ms"] = ms[f"whole/{key}"], ms[f"lm/{key}"]
        for key, row in batch_rows.items():
            row["speedup"] = base["ms"] / row["ms"]
            row["lm_only_speedup"] = base["lm_only_ms"] / row["lm_only_ms"]
            row["ideal_speedup"] = (N + t) / (int(key) + t)
            row["fraction_of_lm_speedup"] = row["speedup"] / row["lm_only_speedup"]
            row["fraction_of_ideal"] = row["speedup"] / row["ideal_speedup"]
        result["prefill"][str(batch)] = batch_rows
        result["tower_ms"][str(batch)] = ms["tower"]
        result["projector_ms_in_model"][str(batch)] = proj_ms
        result["projector_share"][str(batch)] = {key: proj_ms[key] / batch_rows[key]["ms"] for key in models}
    return result


def _train_setup(settings: SpeedSettings, projector: str, k: int | None, lm: tuple[int, int, int] | None, batch: int):
    model = build_model(settings, projector, k, lm).train()
    model.vision_tower.requires_grad_(False)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-5, fused=True if settings.cuda else None)
    inputs = _inputs(model, settings, batch)
    labels = inputs["input_ids"].masked_fill(inputs["input_ids"] == model.config.image_token_id, -100)
    return model, optimizer, inputs, labels


def train_throughput(settings: SpeedSettings) -> tuple[dict[str, float], dict[str, dict[str, float]]]:
    """Section e: samples per second of a stage-2 step (LM, connector and projector train; vision frozen), and
    the median milliseconds of its phases (forward, backward, optimizer step with zero_grad, whole step)."""
    samples, phases = {}, {}
    for projector, k in [("identity", None)] + [("sec", k) for k in KS]:
        model, optimizer, inputs, labels = _train_setup(
            settings, projector, k, settings.train_lm, settings.train_batch
        )
        times: dict[str, list[float]] = {"forward": [], "backward": [], "optimizer": [], "step": []}
        rounds = range(settings.warmup + settings.repeats)
        for round_ in tqdm(rounds, desc=f"training, K={model.num_image_tokens}", leave=False):
            _sync(settings)
            marks = [time.perf_counter()]
            loss = model(**inputs, labels=labels).loss
            _sync(settings)
            marks.append(time.perf_counter())
            loss.backward()
            _sync(settings)
            marks.append(time.perf_counter())
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            _sync(settings)
            marks.append(time.perf_counter())
            if round_ >= settings.warmup:
                for name, start, end in zip(("forward", "backward", "optimizer"), marks, marks[1:]):
                    times[name].append((end - start) * 1000)
                times["step"].append((marks[-1] - marks[0]) * 1000)
        key = str(model.num_image_tokens)
        phases[key] = {name: statistics.median(t) for name, t in times.items()}
        samples[key] = settings.train_batch / (phases[key]["step"] / 1000)
        del model, optimizer
        gc.collect()
        if settings.cuda:
            torch.cuda.empty_cache()
    return samples, phases


PROFILE_REGIONS = ("vision_tower", "projector+connector", "lm_forward", "backward", "optimizer")
# leaf operators that only make tensor metadata or allocate (no kernel on a GPU)
METADATA_OPS = frozenset(
    "aten::" + name
    for name in (
        "view as_strided empty empty_strided empty_like resize_ _unsafe_view resolve_conj resolve_neg result_type "
        "expand t transpose reshape detach alias unsqueeze squeeze select slice permute lift_fresh _reshape_alias "
        "set_ is_nonzero item _local_scalar_dense size stride numel"
    ).split()
)


def _labelled_train_step(
    model: SecMllmForConditionalGeneration,
    optimizer: torch.optim.Optimizer,
    inputs: dict[str, torch.Tensor],
    labels: torch.Tensor,
) -> None:
    """The model's training step written out with its public parts, each phase under a profiler label."""
    from torch.autograd.profiler import record_function

    config = model.config
    with record_function("vision_tower"):
        feats = model.vision_tower(
            inputs["pixel_values"], config.vision_feature_layer, config.vision_feature_select_strategy
        )  # [B, N, D_v]
    with record_function("projector+connector"):
        features = model.connector(model.projector(feats).tokens)  # [B, K, D_lm]
        ids = inputs["input_ids"]
        embeds = model.get_input_embeddings()(ids.masked_fill(ids == config.image_token_id, 0))  # [B, T, D_lm]
        embeds = model.merge_image_features(ids, embeds, features)
    with record_function("lm_forward"):
        loss = model.language_model(inputs_embeds=embeds, labels=labels).loss
    with record_function("backward"):
        loss.backward()
    with record_function("optimizer"):
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)


def train_profile(
    settings: SpeedSettings, lm: tuple[int, int, int], batch: int, ks: tuple[int, ...] = (N, 144)
) -> dict[str, dict[str, dict[str, float]]]:
    """One stage-2 step under ``torch.profiler``, split into the model's phases: host (CPU) milliseconds and the
    number of leaf operator calls per phase that do work (views and allocations excluded), each of which is
    about one kernel launch on a GPU.

    The step is the model's own forward written out with its public parts (``encode_images``,
    ``merge_image_features``, the LM on the merged embeddings) so that each phase can be labelled; one warm-up
    step precedes the profiled one. Operator counts depend on the layer count and batch, not on the width.
    """
    from torch.profiler import ProfilerActivity, profile

    out: dict[str, dict[str, dict[str, float]]] = {}
    for k in ks:
        model, optimizer, inputs, labels = _train_setup(
            settings, "identity" if k == N else "sec", None if k == N else k, lm, batch
        )

        _labelled_train_step(model, optimizer, inputs, labels)  # warm-up
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            _labelled_train_step(model, optimizer, inputs, labels)
        events = prof.events()
        regions = {ev.name: ev for ev in events if ev.name in PROFILE_REGIONS}
        ops = dict.fromkeys(PROFILE_REGIONS, 0)
        for ev in events:
            if not ev.name.startswith("aten::") or ev.name in METADATA_OPS:
                continue
            if any(c.name.startswith("aten::") and c.name not in METADATA_OPS for c in ev.cpu_children):
                continue  # not a leaf: its children are counted
            parent = ev.cpu_parent
            while parent is not None and parent.name not in PROFILE_REGIONS:
                parent = parent.cpu_parent
            if parent is not None:
                ops[parent.name] += 1
        out[str(k)] = {
            name: {"cpu_ms": regions[name].cpu_time_total / 1000, "leaf_ops": ops[name]} for name in PROFILE_REGIONS
        }
        del model, optimizer
        gc.collect()
    return out


def run_speed(settings: SpeedSettings) -> dict[str, Any]:
    torch.manual_seed(SEED)
    limit = 64 if settings.compile else torch._dynamo.config.recompile_limit  # one static graph per shape
    with torch._dynamo.config.patch(recompile_limit=limit):
        projector_ms = projector_times(settings)
        torch._dynamo.reset()
        prefill_result = prefill(settings)
        torch._dynamo.reset()
    samples, phases = train_throughput(settings)
    return {
        "settings": {k: str(v) for k, v in vars(settings).items()},
        "seed": SEED,
        "device": torch.cuda.get_device_name() if settings.cuda else "cpu",
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "projector_ms": projector_ms,
        "projector_speedup_vs_sec": {
            name: {k: v / projector_ms["sec"][k] for k, v in row.items()} for name, row in projector_ms.items()
        },
        # the clustering itself: how many times the bare one-pass SEC is faster than 10-iteration k-means
        "kmeans_over_sec_plain": {k: projector_ms["kmeans"][k] / v for k, v in projector_ms["sec_plain"].items()},
        **prefill_result,
        "train_samples_per_s": samples,
        "train_phase_ms": phases,
    }


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    batches = list(result["prefill"])
    fig, axes = plt.subplots(1, len(batches), figsize=(6 * len(batches), 4), squeeze=False)
    for ax, batch in zip(axes[0], batches):
        rows = result["prefill"][batch]
        ks = sorted((int(k) for k in rows), reverse=True)
        ax.plot(ks, [rows[str(k)]["ms"] for k in ks], "o-", label="whole model (vision + projector + LM)")
        ax.plot(ks, [rows[str(k)]["lm_only_ms"] for k in ks], "s--", label="language model alone")
        ax.axhline(result["tower_ms"][batch], color="grey", lw=1, ls=":", label="vision tower alone")
        ax.set_xlabel("visual tokens K (576 = identity)")
        ax.set_ylabel("prefill latency (ms, median)")
        ax.set_title(f"batch {batch} ({result['device']}{', compiled' if result.get('compiled') else ''})")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def print_tables(result: dict) -> None:
    print("\nprojector time at N=576, D=1024, batch 1 (ms; x = time / sec's time)")
    print(f"  {'projector':<10}" + "".join(f"{'K=' + str(k):>18}" for k in KS))
    for name, row in result["projector_ms"].items():
        ratio = result["projector_speedup_vs_sec"][name]
        print(f"  {name:<10}" + "".join(f"{row[str(k)]:>10.2f} ({ratio[str(k)]:>5.1f}x)" for k in KS))
    print(
        "  k-means (10 iterations) time / bare SEC clustering (sec_plain) time: "
        + ", ".join(f"K={k}: {v:.1f}x" for k, v in result["kmeans_over_sec_plain"].items())
    )
    for batch, rows in result["prefill"].items():
        print(
            f"\nprefill, batch {batch} (whole model, logits of the last position); vision tower alone "
            f"{result['tower_ms'][batch]:.1f} ms"
        )
        print(
            f"  {'K':>5}{'ms':>10}{'speedup':>10}{'LM-only':>10}{'ideal':>10}{'of LM':>9}{'of ideal':>10}"
            f"{'KV MiB':>9}{'proj ms':>10}{'proj share':>12}"
        )
        for k, row in sorted(rows.items(), key=lambda kv: -int(kv[0])):
            print(
                f"  {k:>5}{row['ms']:>10.1f}{row['speedup']:>10.2f}{row['lm_only_speedup']:>10.2f}"
                f"{row['ideal_speedup']:>10.2f}{row['fraction_of_lm_speedup']:>9.0%}{row['fraction_of_ideal']:>10.0%}"
                f"{row['kv_cache_bytes'] / 2**20:>9.2f}{result['projector_ms_in_model'][batch][k]:>10.2f}"
                f"{result['projector_share'][batch][k]:>12.2%}"
            )
    print("\nstage-2 training throughput (samples/s) and median ms per phase")
    base = result["train_samples_per_s"][str(N)]
    for k, v in sorted(result["train_samples_per_s"].items(), key=lambda kv: -int(kv[0])):
        phase = result["train_phase_ms"][k]
        print(
            f"  K={k:>4}: {v:8.2f}  ({v / base:.2f}x identity)   forward {phase['forward']:.1f}, "
            f"backward {phase['backward']:.1f}, optimizer {phase['optimizer']:.1f}, step {phase['step']:.1f}"
        )


def print_profile(profile: dict) -> None:
    print("\none stage-2 step under torch.profiler: host ms / leaf operator calls (no views) per phase")
    print(f"  {'K':>5}" + "".join(f"{name:>24}" for name in PROFILE_REGIONS))
    for k, phases in profile.items():
        cells = "".join(f"{p['cpu_ms']:>14.1f} / {p['leaf_ops']:>6}" for p in phases.values())
        print(f"  {k:>5}{cells}")


def settings_from_args(args: argparse.Namespace) -> SpeedSettings:
    settings = SpeedSettings.quick() if args.quick else SpeedSettings()
    settings.device, settings.dtype = args.device, getattr(torch, args.dtype)
    settings.batches, settings.compile = tuple(args.batch), args.compile
    if args.repeats is not None:
        settings.repeats = args.repeats
    if args.train_batch is not None:
        settings.train_batch = args.train_batch
    if args.lm != "scaled":
        settings.lm_width, settings.lm_layers, settings.lm_heads = LM_SHAPES[args.lm]
        settings.vision_layers = CLIP_L_LAYERS
        settings.train_lm = LM_SHAPES["1b"]
    return settings


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    parser.add_argument(
        "--lm", default="scaled", choices=sorted(LM_SHAPES), help="1b / 7b: Llama shapes with all CLIP-L layers (GPU)"
    )
    parser.add_argument("--batch", type=int, nargs="+", default=[1], help="prefill batch sizes, e.g. 1 8")
    parser.add_argument("--compile", action="store_true", help="torch.compile every timed module first")
    parser.add_argument("--repeats", type=int, default=None, help="timed rounds (default 5; 3 with --quick)")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument(
        "--profile-train",
        action="store_true",
        help="only profile one stage-2 step (K = 576 and 144) with the training LM; writes train_profile.json",
    )
    parser.add_argument(
        "--profile-width",
        type=int,
        default=None,
        help="LM width for --profile-train (layers and heads kept): operator counts do not depend on it",
    )
    parser.add_argument("--train-batch", type=int, default=None, help="training batch (default 4; 2 with --quick)")
    return parser


def command_line(argv: list[str] | None) -> str:
    """The command stored beside the results (``argv`` None: this process's own arguments)."""
    return invocation.command_line("sec_mllm.experiments.speed", argv)


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    command = command_line(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    settings = settings_from_args(args)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.profile_train:
        lm = settings.train_lm or (settings.lm_width, settings.lm_layers, settings.lm_heads)
        lm = (args.profile_width or lm[0], lm[1], lm[2])
        profile = {
            "command": command,
            "seed": SEED,
            "device": torch.cuda.get_device_name() if settings.cuda else "cpu",
            "lm": {"width": lm[0], "layers": lm[1], "heads": lm[2]},
            "batch": settings.train_batch,
            "phases": train_profile(settings, lm, settings.train_batch),
        }
        write_json_atomic(out / "train_profile.json", profile)
        print_profile(profile["phases"])
        print(f"\nwrote {out / 'train_profile.json'}")
        return
    result = {"command": command, "compiled": settings.compile, **run_speed(settings)}
    write_json_atomic(out / "speed.json", result)
    plot(result, out / "prefill.png")
    print_tables(result)
    print(f"\nwrote {out / 'speed.json'} and {out / 'prefill.png'}")


if __name__ == "__main__":
    main()
