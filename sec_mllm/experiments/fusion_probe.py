"""The same features through a small classifier: can a question-conditioned model answer from a frozen tower's
patch tokens, and how many samples does it need per question family?

    python -m sec_mllm.experiments.fusion_probe --out benchmarks/results/fusion_probe [--steps 3000]

A linear probe (patch_probes.py) asks whether one patch's features hold a label; a question needs more: find
the patches the question names, then read their colour, count or side. This probe trains a small fusion
classifier for that: the frozen tower's 64 patch tokens (layer -2, as the multimodal model reads them) and the
question's words go through a 2-layer Transformer encoder (torch's, width 128, learned positions, no causal
mask), whose first token is classified into the benchmark's answers (every answer is one word). It is the
multimodal model's job without the generation, the language prior or the connector, on fresh questions from
the synthetic generators (Shapes-GQA and Rendered-TextVQA in the training data's 60 / 40 mix; a new image per
question), so a family it cannot learn here is not the LLaVA pipeline's fault. Feature sets: ``pixels`` (each
patch's raw pixels), ``none`` (all-zero features: the question-only floor, chance on these balanced families),
``random`` (a tower with random weights), ``contrastive``, ``dense``, ``fresh`` and ``recipe`` (patch_probes.py's
towers, reused from its work folder and built there when missing; ``fresh`` learned the dense targets on generated
images, ``recipe`` is the quick start's tower, trained on them alone), and ``labels``: each patch's ground truth
from the generator (patch_labels.one_hot: colour, kind, size, the sign's text, object centre, characters), the
features of a perfect tower, which bounds what the fusion can learn in the same number of samples. Accuracy per
family is recorded along training (samples seen), so plateaus show. ``--family position`` restricts training and
test to one family.

Writes DIR/fusion_probe.json (the command, the seed, every figure), DIR/fusion_probe.md (the final table) and
DIR/fusion_probe.png (accuracy per family against samples seen, one panel per feature set).
"""

from __future__ import annotations

import argparse
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm
from transformers import CLIPConfig, CLIPVisionConfig, CLIPVisionModel

from ..builder import default_image_processor
from ..files import write_json_atomic, write_text_atomic
from . import synthetic_shapes as shapes
from . import synthetic_text as text
from .invocation import command_line
from .patch_labels import PATCH, one_hot, shapes_labels, text_labels
from .patch_probes import CONTRASTIVE_STEPS, LAYER, load_tower, patch_features, patch_pixels, probe_tower
from .quickstart import QuickstartConfig
from .tower_pretraining import POSITIONS

FEATURE_SETS = ("none", "pixels", "random", "contrastive", "dense", "fresh", "recipe", "labels")
FAMILIES = (*shapes.FAMILIES, *text.TEXT_FAMILIES)
SHAPES_SHARE = 0.6  # the training data's mix: 6,000 Shapes-GQA and 4,000 Rendered-TextVQA questions
MAX_WORDS = 20
CANVAS = shapes.CANVAS


@dataclass
class Questions:
    pixels: torch.Tensor  # [M, 3, H, W], normalised for the tower
    labels: torch.Tensor  # [M, N, F], each patch's ground truth (patch_labels.one_hot); empty unless asked for
    words: list[list[str]]  # the question's words, lower case, "?" split off
    answers: list[str]
    families: list[str]


def words_of(question: str) -> list[str]:
    return question.lower().replace("?", " ?").split()


def sample_questions(
    count: int, seed: str, processor: Any, family: str | None, with_labels: bool = False
) -> Questions:
    """``count`` fresh questions, each on its own image; ``family`` restricts them to one family; ``with_labels``:
    also each patch's ground truth (else ``labels`` is empty)."""
    rng = random.Random(seed)
    pixels, labels, words, answers, families = [], [], [], [], []
    for _ in tqdm(range(count), desc=f"questions ({seed})", leave=False):
        on_shapes = family in shapes.FAMILIES if family else rng.random() < SHAPES_SHARE
        if on_shapes:
            fam, answer, scene, question, _, _ = shapes.sample_question(rng, family)
            image, truth = shapes.render(scene, rng), (shapes_labels(scene) if with_labels else None)
        else:
            while True:
                fam, answer, signs, question, _ = text.sample_text_question(rng)
                if family in (None, fam):
                    break
            image, truth = text.render(signs, rng), (text_labels(signs) if with_labels else None)
        pixels.append(processor(image, return_tensors="pt")["pixel_values"][0])
        if truth is not None:
            labels.append(one_hot(truth))
        words.append(words_of(question))
        answers.append(answer)
        families.append(fam)
    return Questions(torch.stack(pixels), torch.stack(labels) if labels else torch.empty(0), words, answers, families)


class FusionClassifier(nn.Module):
    """[CLS] + projected patch tokens + word embeddings -> Transformer encoder -> answer logits."""

    def __init__(self, feature_dim: int, vocab: int, answers: int, patches: int, width: int = 128) -> None:
        super().__init__()
        self.patch_in = nn.Linear(feature_dim, width)
        self.word_in = nn.Embedding(vocab, width, padding_idx=0)
        self.cls = nn.Parameter(torch.zeros(1, 1, width))
        self.positions = nn.Parameter(torch.randn(1, 1 + patches + MAX_WORDS, width) * 0.02)
        layer = nn.TransformerEncoderLayer(width, 4, 4 * width, dropout=0.0, batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
        self.head = nn.Linear(width, answers)

    def forward(self, features: torch.Tensor, words: torch.Tensor) -> torch.Tensor:
        # features [B, N, D], words [B, W] (0 = padding) -> logits [B, A]
        batch, patches = features.shape[:2]
        tokens = torch.cat([self.cls.expand(batch, -1, -1), self.patch_in(features), self.word_in(words)], 1)
        padding = torch.cat([torch.zeros(batch, 1 + patches, dtype=torch.bool), words == 0], 1)
        hidden = self.encoder(tokens + self.positions[:, : tokens.shape[1]], src_key_padding_mask=padding)
        return self.head(hidden[:, 0])


def word_ids(words: list[list[str]], vocab: dict[str, int]) -> torch.Tensor:
    ids = torch.zeros(len(words), MAX_WORDS, dtype=torch.long)
    for i, w in enumerate(words):
        row = [vocab[x] for x in w][:MAX_WORDS]
        ids[i, : len(row)] = torch.tensor(row)
    return ids


@torch.no_grad()
def accuracy_by_family(
    model: FusionClassifier, features: torch.Tensor, words: torch.Tensor, target: torch.Tensor, families: list[str]
) -> dict[str, float]:
    model.eval()
    predicted = torch.cat(
        [model(features[i : i + 500], words[i : i + 500]).argmax(-1) for i in range(0, len(words), 500)]
    )
    model.train()
    right = (predicted == target).tolist()
    out = {}
    for fam in sorted(set(families)):
        hits = [r for r, f in zip(right, families) if f == fam]
        out[fam] = 100 * sum(hits) / len(hits)
    for name, members in (("shapes_gqa", shapes.FAMILIES), ("rendered_textvqa", text.TEXT_FAMILIES)):
        hits = [r for r, f in zip(right, families) if f in members]
        if hits:
            out[name] = 100 * sum(hits) / len(hits)
    return out


def train_fusion(
    train: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
    test: tuple[torch.Tensor, torch.Tensor, torch.Tensor, list[str]],
    vocab: int,
    answers: int,
    steps: int,
    seed: int,
    evaluations: int = 6,
    batch: int = 64,
    lr: float = 1e-3,
) -> list[dict[str, Any]]:
    """Train one classifier; returns the test accuracy per family at ``evaluations`` points of training."""
    features, words, target = train
    torch.manual_seed(seed)
    model = FusionClassifier(features.shape[-1], vocab, answers, features.shape[1])
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, lr, total_steps=steps, pct_start=0.05)
    order = torch.Generator().manual_seed(seed)
    marks = {round(steps * (i + 1) / evaluations) for i in range(evaluations)}
    curve = []
    for step in tqdm(range(1, steps + 1), desc="fusion classifier", leave=False):
        index = torch.randint(0, len(words), (batch,), generator=order)
        loss = F.cross_entropy(model(features[index], words[index]), target[index])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
        if step in marks:
            curve.append({"step": step, "samples": step * batch, "accuracy": accuracy_by_family(model, *test)})
    return curve


def tower_of(name: str, work: Path, seed: int, steps_of: dict[str, int], positions: str) -> CLIPVisionModel:
    """patch_probes.py's towers (a random one has the contrastive tower's shape), built or reused in ``work``;
    ``steps_of``: pretraining steps per tower name."""
    if name == "random":
        config = CLIPConfig.from_pretrained(probe_tower(work, "contrastive", steps_of["contrastive"], seed, positions))
        torch.manual_seed(seed)
        return CLIPVisionModel(config.vision_config)
    return load_tower(probe_tower(work, name, steps_of[name], seed, positions))


def run(
    out: Path,
    work: Path,
    feature_sets: list[str],
    steps: int,
    train_size: int,
    test_size: int,
    seed: int,
    family: str | None,
    command: str,
    clip_steps: int = CONTRASTIVE_STEPS,
    dense_steps: int = 600,
    positions: str = "learned",
    fresh_steps: int = 3000,
    recipe_steps: int = QuickstartConfig.clip_steps,
) -> dict[str, Any]:
    steps_of = {"contrastive": clip_steps, "dense": dense_steps, "fresh": fresh_steps, "recipe": recipe_steps}
    towers = {
        name: tower_of(name, work, seed, steps_of, positions)
        for name in feature_sets
        if name not in ("none", "pixels", "labels")
    }
    # The towers' input geometry; raw pixels need only the image and patch size of the benchmark.
    config = next(iter(towers.values())).config if towers else CLIPVisionConfig(image_size=CANVAS, patch_size=PATCH)
    processor = default_image_processor(config)
    with_labels = "labels" in feature_sets
    train = sample_questions(train_size, f"fusion-train-{seed}", processor, family, with_labels)
    test = sample_questions(test_size, f"fusion-test-{seed}", processor, family, with_labels)
    vocab = {w: i + 1 for i, w in enumerate(sorted({w for q in train.words + test.words for w in q}))}
    answer_ids = {a: i for i, a in enumerate(sorted(set(train.answers + test.answers)))}
    train_words, test_words = word_ids(train.words, vocab), word_ids(test.words, vocab)
    train_target = torch.tensor([answer_ids[a] for a in train.answers])
    test_target = torch.tensor([answer_ids[a] for a in test.answers])
    result: dict[str, Any] = {
        "command": command,
        "seed": seed,
        "layer": LAYER,
        "family": family,
        "tower_positions": positions,
        "tower_steps": {name: steps_of[name] for name in towers if name in steps_of},
        "train_questions": train_size,
        "test_questions": test_size,
        "steps": steps,
        "feature_sets": {},
    }
    for name in tqdm(feature_sets, desc="feature sets"):
        if name in ("none", "pixels"):
            train_x = patch_pixels(train.pixels, config.patch_size)  # [M, N, 3 p p]
            test_x = patch_pixels(test.pixels, config.patch_size)
            if name == "none":
                train_x, test_x = torch.zeros_like(train_x), torch.zeros_like(test_x)
        elif name == "labels":
            train_x, test_x = train.labels, test.labels
        else:
            train_x, test_x = patch_features(towers[name], train.pixels), patch_features(towers[name], test.pixels)
        curve = train_fusion(
            (train_x, train_words, train_target),
            (test_x, test_words, test_target, test.families),
            len(vocab) + 1,
            len(answer_ids),
            steps,
            seed,
        )
        result["feature_sets"][name] = {"curve": curve, "final": curve[-1]["accuracy"]}
    out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out / "fusion_probe.json", result)
    write_text_atomic(out / "fusion_probe.md", table(result))
    plot(result, out / "fusion_probe.png")
    return result


def table(result: dict[str, Any]) -> str:
    sets = list(result["feature_sets"])
    samples = result["feature_sets"][sets[0]]["curve"][-1]["samples"]
    rows = sorted({k for v in result["feature_sets"].values() for k in v["final"]}, key=_row_order)
    lines = [
        f"Fusion classifier on frozen patch features: test accuracy (%) after {result['steps']} steps "
        f"({samples:,} samples seen), seed {result['seed']}",
        "",
        "| family | " + " | ".join(sets) + " |",
        "|---|" + "---:|" * len(sets),
    ]
    for row in rows:
        cells = [result["feature_sets"][s]["final"].get(row) for s in sets]
        lines.append(f"| {row} | " + " | ".join("" if c is None else f"{c:.1f}" for c in cells) + " |")
    return "\n".join(lines) + "\n"


def _row_order(name: str) -> tuple[int, str]:
    return (FAMILIES.index(name), name) if name in FAMILIES else (len(FAMILIES), name)


def plot(result: dict[str, Any], path: Path) -> None:
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sets = list(result["feature_sets"])
    fig, axes = plt.subplots(1, len(sets), figsize=(4 * len(sets), 3.6), sharey=True, squeeze=False)
    for ax, name in zip(axes[0], sets):
        curve = result["feature_sets"][name]["curve"]
        families = [f for f in sorted(curve[-1]["accuracy"], key=_row_order) if f in FAMILIES]
        for fam in families:
            style = {"color": plt.cm.tab20(FAMILIES.index(fam)), "linestyle": "-" if fam in shapes.FAMILIES else "--"}
            ax.plot([c["samples"] for c in curve], [c["accuracy"][fam] for c in curve], marker=".", label=fam, **style)
        ax.set_title(name)
        ax.set_xlabel("training samples seen")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("test accuracy (%)")
    axes[0][-1].legend(fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5))
    fig.tight_layout()
    tmp = path.with_name(path.name + ".tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    tmp.replace(path)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="folder for fusion_probe.json / .md / .png")
    parser.add_argument("--work", default="runs/patch_probes", help="patch_probes.py's data and towers (reused)")
    parser.add_argument("--features", nargs="+", default=list(FEATURE_SETS[:5]), help=f"of {', '.join(FEATURE_SETS)}")
    parser.add_argument("--steps", type=int, default=3000, help="training steps of batch 64")
    parser.add_argument("--train-size", type=int, default=30000, help="fresh training questions")
    parser.add_argument("--test-size", type=int, default=3000)
    parser.add_argument("--family", default=None, help=f"train and test on one family, of {', '.join(FAMILIES)}")
    parser.add_argument("--dense-steps", type=int, default=600, help="the dense tower's pretraining steps")
    parser.add_argument("--fresh-steps", type=int, default=3000, help="the fresh tower's pretraining steps")
    parser.add_argument(
        "--recipe-steps", type=int, default=QuickstartConfig.clip_steps, help="the recipe tower's pretraining steps"
    )
    parser.add_argument(
        "--tower-positions", choices=POSITIONS, default="learned", help="how the towers' position embedding starts"
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    unknown = [f for f in args.features if f not in FEATURE_SETS]
    if unknown:
        parser.error(f"unknown feature set(s) {', '.join(unknown)}; choose from {', '.join(FEATURE_SETS)}")
    if args.family is not None and args.family not in FAMILIES:
        parser.error(f"unknown family {args.family!r}; choose from {', '.join(FAMILIES)}")
    if min(args.steps, args.train_size, args.test_size, args.dense_steps, args.fresh_steps, args.recipe_steps) <= 0:
        parser.error("--steps, --train-size, --test-size, --dense-steps, --fresh-steps and --recipe-steps must be > 0")
    command = command_line("sec_mllm.experiments.fusion_probe", argv)
    result = run(
        Path(args.out),
        Path(args.work),
        args.features,
        args.steps,
        args.train_size,
        args.test_size,
        args.seed,
        args.family,
        command,
        dense_steps=args.dense_steps,
        positions=args.tower_positions,
        fresh_steps=args.fresh_steps,
        recipe_steps=args.recipe_steps,
    )
    print(table(result))


if __name__ == "__main__":
    main()
