"""Linear probes of a frozen vision tower's patch features: does the tower keep what the questions ask about?

    python -m sec_mllm.experiments.patch_probes --out benchmarks/results/probes [--clip-steps 300]
        [--dense-steps 600] [--fresh-steps 3000] [--recipe-steps 4000]

Builds the towers (``quickstart.build_base``, see ``probe_config``): the contrastive tiny CLIP the quick start
froze before the dense tower, and, with ``--dense-steps``, the same tower trained with the dense per-patch targets
as well (tower_pretraining.py), with ``--fresh-steps`` one whose dense targets come from 20,000 freshly generated
images instead of the 4,000 caption images; with ``--recipe-steps`` the quick start's own tower, trained on dense
targets alone (the package's shipped one when it is that tower); a tower with random weights of the first
tower's shape is the floor. Each tower's
patch tokens at the layer the multimodal model reads (-2, as LLaVA) are computed for fresh images of both
benchmarks (not the training images), and one linear head per ground-truth label of patch_labels.py is fitted on
1,500 images and scored on 600 others: colour, kind of object, size, object centre, the sign's word or number, and
the characters present. A probe of each patch's own raw pixels (what a patch embedding sees before any
layer mixes patches) is the reference for what is there to be read. Multi-class labels report accuracy,
accuracy on the patches that show something (label not 0: for ``text``, the patches of a sign) and macro-F1
over the classes present (the majority class, background, makes accuracy look high). Centre and characters
are rare (about 1 patch in 27 holds a centre, a given character is in about 1 patch in 300), so their heads
are trained with each column's positives weighted by its negative / positive ratio (unweighted, a linear
head predicts "absent" everywhere and F1 reads 0 whatever the features hold) and report F1 at that head's
threshold and average precision, which needs no threshold (a featureless predictor scores the prevalence,
also reported).

Writes DIR/probes.json (the command, the seed, every figure) and DIR/probes.md (the table). Steps whose
output exists (data, towers) are reused, so a rerun with more towers does not redo the others.
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from tqdm import tqdm
from transformers import AutoConfig, CLIPModel, CLIPVisionModel

from ..builder import default_image_processor
from ..files import write_json_atomic, write_text_atomic
from . import patch_labels
from .invocation import command_line
from .quickstart import QuickstartConfig, build_base, shipped_base
from .synthetic import SyntheticSizes, generate
from .tower_pretraining import POSITIONS

CLASS_LABELS = {
    "color": len(patch_labels.COLOR_CLASSES),
    "kind": len(patch_labels.KIND_CLASSES),
    "size": len(patch_labels.SIZE_CLASSES),
    "text": len(patch_labels.TEXT_CLASSES),
}
BINARY_LABELS = {"centre": 1, "chars": len(patch_labels.CHARS)}
PROBE_STEPS = 300
FRESH_IMAGES = 20000  # the ``fresh`` tower's labelled images for the dense targets
LAYER = -2


@torch.no_grad()
def patch_features(tower: CLIPVisionModel, pixels: torch.Tensor, batch: int = 100) -> torch.Tensor:
    """Patch tokens of layer -2, CLS dropped: [M, N, D]."""
    tower.eval()
    chunks = [
        tower(pixel_values=pixels[i : i + batch], output_hidden_states=True).hidden_states[LAYER][:, 1:]
        for i in range(0, len(pixels), batch)
    ]
    return torch.cat(chunks)


def patch_pixels(pixels: torch.Tensor, patch: int) -> torch.Tensor:
    """Each patch's own normalised pixels as its feature, raster order as the tower's tokens: [M, N, 3 * p * p].
    The floor of what a patch embedding can keep without looking at its neighbours."""
    return F.unfold(pixels, kernel_size=patch, stride=patch).transpose(1, 2)  # [M, 3, H, W] -> [M, N, 3 p p]


def f1_of(pred: torch.Tensor, target: torch.Tensor) -> float:
    tp = int((pred & target).sum())
    return 2 * tp / max(1, 2 * tp + int((pred & ~target).sum()) + int((~pred & target).sum()))


def average_precision(scores: torch.Tensor, target: torch.Tensor) -> float:
    """Mean over label columns (with a positive) of the area under the precision-recall curve; scores / target
    ``[..., C]``, the columns are the labels."""
    scores, target = scores.reshape(-1, scores.shape[-1]), target.reshape(-1, target.shape[-1]) > 0.5
    values = []
    for column in range(scores.shape[1]):
        positives = target[:, column]
        if not bool(positives.any()):
            continue
        ranked = positives[scores[:, column].argsort(descending=True)].float()  # [P]
        precision_at_hits = ranked.cumsum(0) / torch.arange(1, len(ranked) + 1)
        values.append(float((precision_at_hits * ranked).sum() / ranked.sum()))
    return sum(values) / len(values)


def linear_probe(
    train: torch.Tensor,
    test: torch.Tensor,
    y_train: dict[str, torch.Tensor],
    y_test: dict[str, torch.Tensor],
    steps: int = PROBE_STEPS,
    seed: int = 0,
) -> dict[str, dict[str, float]]:
    """One linear head per label on standardised features (Adam, full batch); test metrics per label. Each head
    starts from ``seed``, so a probe's figures do not depend on which probes ran before it."""
    mean, std = train.mean((0, 1)), train.std((0, 1)) + 1e-6
    a, b = (train - mean) / std, (test - mean) / std  # [M, N, D]
    results = {}
    for key, classes in {**CLASS_LABELS, **BINARY_LABELS}.items():
        torch.manual_seed(seed)
        head = torch.nn.Linear(a.shape[-1], classes)
        optimizer = torch.optim.Adam(head.parameters(), lr=1e-2)
        target = y_train[key] if key in CLASS_LABELS else y_train[key].reshape(*a.shape[:2], classes)  # [M, N(, C)]
        if key in BINARY_LABELS:
            positives = target.flatten(0, 1).sum(0)  # [C]
            pos_weight = ((len(target.flatten(0, 1)) - positives) / positives.clamp(min=1)).clamp(min=1)
        for _ in range(steps):
            logits = head(a)
            if key in CLASS_LABELS:
                loss = F.cross_entropy(logits.flatten(0, 1), target.flatten())
            else:
                loss = F.binary_cross_entropy_with_logits(logits, target, pos_weight=pos_weight)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        with torch.no_grad():
            logits = head(b)
        if key in CLASS_LABELS:
            pred, y = logits.argmax(-1), y_test[key]
            present = [c for c in range(classes) if bool((y == c).any())]
            macro = sum(f1_of(pred == c, y == c) for c in present) / len(present)
            shown = y != 0
            results[key] = {
                "accuracy": float((pred == y).float().mean()),
                "accuracy_shown": float((pred[shown] == y[shown]).float().mean()) if bool(shown.any()) else 0.0,
                "macro_f1": macro,
            }
        else:
            y = y_test[key].reshape(logits.shape)
            results[key] = {
                "f1": f1_of(logits > 0, y > 0.5),
                "average_precision": average_precision(logits, y),
                "prevalence": float(y.mean()),
            }
    return results


def table(result: dict[str, Any]) -> str:
    towers = list(result["towers"])
    lines = [
        f"Linear probes of layer {LAYER} patch features (`{result['command']}`, seed {result['seed']}).",
        "Multi-class: macro-F1 (accuracy on the patches that show something, label not 0); centre and chars: F1",
        "of the present class (average precision; a featureless predictor's is the prevalence, in the last column).",
        "",
        "| label | " + " | ".join(towers) + " | prevalence |",
        "|---|" + "---:|" * (len(towers) + 1),
    ]
    for key in (*CLASS_LABELS, *BINARY_LABELS):
        cells, prevalence = [], ""
        for tower in towers:
            m = result["towers"][tower]["probe"][key]
            if "macro_f1" in m:
                cells.append(f"{m['macro_f1']:.2f} ({m['accuracy_shown']:.2f})")
            else:
                cells.append(f"{m['f1']:.2f} ({m['average_precision']:.2f})")
                prevalence = f"{m['prevalence']:.3f}"
        lines.append(f"| {key} | " + " | ".join(cells) + f" | {prevalence} |")
    return "\n".join(lines) + "\n"


CONTRASTIVE_STEPS = 300  # the contrastive tower's pretraining, as the quick start had it before the dense tower


def probe_config(name: str, steps: int, seed: int, positions: str = "learned") -> QuickstartConfig:
    """The recipe a probed tower is built with. ``recipe``: the quick start's own (the dense tower on fresh images);
    ``contrastive`` / ``dense`` / ``fresh``: the earlier recipe's tower (width 64, CLIP's loss on the captions, with
    dense targets on the caption images or on FRESH_IMAGES generated images), whose data and tokenizer it keeps."""
    if name == "recipe":
        return replace(QuickstartConfig(), clip_steps=steps, seed=seed, tower_positions=positions)
    return replace(
        QuickstartConfig(),
        sizes=SyntheticSizes(),
        split_digits=False,
        lm_steps=0,
        vision_width=64,
        tower="contrastive",
        clip_steps=steps,
        dense_tower=name == "dense",
        dense_images=FRESH_IMAGES if name == "fresh" else 0,
        seed=seed,
        tower_positions=positions,
    )


def probe_tower(work: Path, name: str, steps: int, seed: int, positions: str = "learned") -> Path:
    """The tower ``name`` (see ``probe_config``) after ``steps`` pretraining steps: the package's shipped one when
    it is that tower, else built in ``work`` (with the data it needs) or reused from there; returns its folder. The
    folder name holds everything that changes the tower, so a reused tower is always the one asked for."""
    cfg = probe_config(name, steps, seed, positions)
    shipped = shipped_base(cfg)
    if shipped is not None:
        return shipped / "clip"
    if name == "recipe":
        cfg.lm_steps = 0  # only the tower is probed
    data = work / ("data" if name != "recipe" else "data_recipe")
    base = work / (f"base_{name}_{steps}" + ("" if positions == "learned" else f"_{positions}"))
    if not (base / "clip" / "config.json").exists():
        if not (data / "train" / "patch_labels.json").exists():
            generate(str(data), cfg.sizes, seed)
        build_base(cfg, data, base)
    return base / "clip"


def load_tower(folder: Path) -> CLIPVisionModel:
    """A probed tower from its folder: a whole CLIP (its vision half) or a CLIP vision model."""
    if AutoConfig.from_pretrained(folder).model_type == "clip":
        return CLIPModel.from_pretrained(folder).vision_model
    return CLIPVisionModel.from_pretrained(folder)


def run(
    out: Path,
    work: Path,
    clip_steps: int,
    dense_steps: int,
    seed: int,
    command: str,
    positions: str = "learned",
    fresh_steps: int = 0,
    recipe_steps: int = 0,
) -> dict[str, Any]:
    steps_of = {
        "random": 0,
        "contrastive": clip_steps,
        "dense": dense_steps,
        "fresh": fresh_steps,
        "recipe": recipe_steps,
    }
    towers = {
        name: probe_tower(work, name, steps_of[name], seed, positions)
        for name in ("contrastive", "dense", "fresh", "recipe")
        if steps_of[name]
    }
    trained = {name: load_tower(path) for name, path in towers.items()}
    config = next(iter(trained.values())).config  # the random tower has the first trained one's shape
    torch.manual_seed(seed)
    random_tower = CLIPVisionModel(config)
    processor = default_image_processor(config)
    x_train, y_train = patch_labels.labelled_images(1500, f"probe-{seed + 101}", processor)
    x_test, y_test = patch_labels.labelled_images(600, f"probe-{seed + 202}", processor)
    result: dict[str, Any] = {
        "command": command,
        "seed": seed,
        "layer": LAYER,
        "tower_positions": positions,
        "towers": {},
    }
    patch = config.patch_size
    probe = linear_probe(patch_pixels(x_train, patch), patch_pixels(x_test, patch), y_train, y_test, seed=seed)
    result["towers"]["pixels"] = {"pretraining_steps": 0, "probe": probe}
    for name, tower in tqdm({"random": random_tower, **trained}.items(), desc="probing towers"):
        probe = linear_probe(patch_features(tower, x_train), patch_features(tower, x_test), y_train, y_test, seed=seed)
        result["towers"][name] = {"pretraining_steps": steps_of[name], "probe": probe}
    out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out / "probes.json", result)
    write_text_atomic(out / "probes.md", table(result))
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="folder for probes.json and probes.md")
    parser.add_argument("--work", default="runs/patch_probes", help="data and towers (reused when present)")
    parser.add_argument("--clip-steps", type=int, default=CONTRASTIVE_STEPS, help="contrastive tower")
    parser.add_argument("--dense-steps", type=int, default=0, help="tower with dense targets too (0: none)")
    parser.add_argument(
        "--fresh-steps", type=int, default=0, help="tower with dense targets on fresh generated images (0: none)"
    )
    parser.add_argument(
        "--recipe-steps",
        type=int,
        default=0,
        help=f"the quick start's dense tower (0: none; its default: {QuickstartConfig.clip_steps})",
    )
    parser.add_argument(
        "--tower-positions", choices=POSITIONS, default="learned", help="how the towers' position embedding starts"
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.clip_steps <= 0 or min(args.dense_steps, args.fresh_steps, args.recipe_steps) < 0:
        parser.error(
            f"--clip-steps must be > 0 and --dense-steps, --fresh-steps, --recipe-steps >= 0, got {args.clip_steps}, "
            f"{args.dense_steps}, {args.fresh_steps} and {args.recipe_steps}"
        )
    command = command_line("sec_mllm.experiments.patch_probes", argv)
    result = run(
        Path(args.out),
        Path(args.work),
        args.clip_steps,
        args.dense_steps,
        args.seed,
        command,
        args.tower_positions,
        args.fresh_steps,
        args.recipe_steps,
    )
    print(table(result))


if __name__ == "__main__":
    main()
