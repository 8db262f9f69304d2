"""A LLaVA-1.5 mix665k-shaped training file: the real mix's sample counts per source and image folder,
plausible turn counts and lengths, images referenced but not stored (for the data-loading benchmark).

    python -m sec_mllm.experiments.llava_mix --out runs/data_loading/mix665k.json --seed 0 [--scale 0.01]

What is taken from the real llava_v1_5_mix665k.json (665,298 samples, about 1.03 GB): the counts per
source and per image folder (coco 364,100 = LLaVA-Instruct 157,712 + VQAv2 82,783 + OKVQA 8,998 +
A-OKVQA 66,160 + RefCOCO 48,447; vg 86,417; gqa 72,140; ocr_vqa 80,000; textvqa 21,953 (TextCaps);
40,688 text-only ShareGPT samples without an ``image`` key), the image path shapes
(``coco/train2017/000000123456.jpg``, ``gqa/images/2354786.jpg``, ``ocr_vqa/images/<ASIN>.jpg``,
``textvqa/train_images/<16 hex>.jpg``, ``vg/VG_100K[_2]/<n>.jpg``; coco images are shared by several
samples, drawn from COCO train2017's 118,287), the prompt shapes (VQA suffix, A-OKVQA options, region
boxes, OCR tokens) and the file size (the per-source lengths below were tuned to reach it).

Assumptions (no per-turn statistics of the mix are published): rounds per sample and words per turn
are drawn per source as in SOURCES below, for example LLaVA-Instruct conversations 2-6 rounds of a
10-word question and a 60-word answer, detailed descriptions and complex reasoning one round of 100-130
words, ShareGPT 1-12 rounds (geometric, mean about 3.5) of a log-normal question (median 33 words) and
a 470-word answer, VQAv2 about 5 and GQA about 10 short questions per image, VG 3-14 region captions,
RefCOCO 1-8 grounding turns, OCR-VQA 3-7 short questions, TextCaps one caption. Words are pseudo-words
(ASCII, lengths 1-10, Zipf-distributed over a 30,000-word vocabulary); real ShareGPT text has non-ASCII
characters, which only make Python strings (the list-based path) larger. The file is written compactly,
one sample per line. Deterministic per seed.
"""

from __future__ import annotations

import argparse
import json
import os
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
from tqdm import tqdm

VQA_SUFFIX = "\nAnswer the question using a single word or phrase."
MC_SUFFIX = "\nAnswer with the option's letter from the given choices directly."
COCO_IMAGES = 118_287
VERSION = 2  # of the shape below: a stored file of another version is generated again


class Words:
    """Pseudo-word text: Zipf-distributed over a fixed vocabulary, drawn from one long pre-made stream."""

    def __init__(self, seed: int, vocab_size: int = 30_000, stream: int = 1 << 23) -> None:
        rng = np.random.default_rng(seed)
        letters = np.array(list("etaoinshrdlcumwfgypbvkjxqz"))
        lengths = np.clip(rng.poisson(4.2, vocab_size) + 1, 1, 10)
        self.vocab = np.array(["".join(rng.choice(letters, n)) for n in lengths])
        ranks = np.minimum(rng.zipf(1.3, stream), vocab_size) - 1
        self.stream = self.vocab[ranks]
        self.rng = random.Random(seed)

    def __call__(self, n: int) -> str:
        n = max(1, n)
        start = self.rng.randrange(len(self.stream) - n)
        return " ".join(self.stream[start : start + n].tolist())


@dataclass(frozen=True)
class Source:
    name: str
    count: int
    folder: str | None  # image folder kind (see image_path); None: text-only
    turns: Callable[[random.Random, Words], list[tuple[str, str]]]


def _n(rng: random.Random, mean: float, sd: float, lo: int = 1) -> int:
    return max(lo, int(rng.gauss(mean, sd)))


def _box(rng: random.Random) -> str:
    x, y = rng.random() * 0.6, rng.random() * 0.6
    return f"[{x:.2f}, {y:.2f}, {x + rng.random() * 0.4:.2f}, {y + rng.random() * 0.4:.2f}]"


def _qa(rounds: int, ask: Callable[[], str], answer: Callable[[], str]) -> list[tuple[str, str]]:
    return [(ask(), answer()) for _ in range(rounds)]


def _llava_instruct(rng: random.Random, w: Words) -> list[tuple[str, str]]:
    kind = rng.random()
    if kind < 0.36:  # conversation (58K of 158K)
        return _qa(rng.randint(2, 6), lambda: w(_n(rng, 10, 4)) + "?", lambda: w(_n(rng, 60, 30)) + ".")
    if kind < 0.51:  # detailed description (23K)
        return [(w(_n(rng, 8, 2)) + ".", w(_n(rng, 105, 30)) + ".")]
    return [(w(_n(rng, 16, 5)) + "?", w(_n(rng, 125, 40)) + ".")]  # complex reasoning (77K)


def _sharegpt(rng: random.Random, w: Words) -> list[tuple[str, str]]:
    rounds = min(12, 1 + int(rng.expovariate(1 / 2.6)))
    return _qa(rounds, lambda: w(int(rng.lognormvariate(3.5, 1.1))), lambda: w(_n(rng, 470, 280, 5)))


def _short_vqa(mean_rounds: float, q_words: float) -> Callable[[random.Random, Words], list[tuple[str, str]]]:
    def turns(rng: random.Random, w: Words) -> list[tuple[str, str]]:
        rounds = max(1, int(rng.gauss(mean_rounds, mean_rounds / 2)))
        return _qa(rounds, lambda: w(_n(rng, q_words, 2)) + "?" + VQA_SUFFIX, lambda: w(rng.choice((1, 1, 1, 2))))

    return turns


def _aokvqa(rng: random.Random, w: Words) -> list[tuple[str, str]]:
    options = "\n".join(f"{letter}. {w(rng.randint(1, 3))}" for letter in "ABCD")
    return [(w(_n(rng, 10, 3)) + "?\n" + options + MC_SUFFIX, rng.choice("ABCD"))]


def _refcoco(rng: random.Random, w: Words) -> list[tuple[str, str]]:
    def one() -> tuple[str, str]:
        phrase = w(rng.randint(2, 6))
        if rng.random() < 0.5:
            return (
                f"Please provide the bounding box coordinate of the region this sentence describes: {phrase}.",
                _box(rng),
            )
        return f"Please provide a short description for this region: {_box(rng)}", phrase

    return [one() for _ in range(rng.randint(1, 8))]


def _vg(rng: random.Random, w: Words) -> list[tuple[str, str]]:
    return [
        (f"Please provide a short description for this region: {_box(rng)}", w(rng.randint(2, 7)))
        for _ in range(rng.randint(3, 14))
    ]


def _ocrvqa(rng: random.Random, w: Words) -> list[tuple[str, str]]:
    return _qa(rng.randint(3, 7), lambda: w(rng.randint(4, 7)) + "?", lambda: w(rng.choice((1, 1, 2, 3, 6))))


def _textcaps(rng: random.Random, w: Words) -> list[tuple[str, str]]:
    ocr = ", ".join(w(1) for _ in range(rng.randint(0, 10)))
    prompt = "Provide a one-sentence caption for the provided image." + (
        f"\nReference OCR token: {ocr}" if ocr else ""
    )
    return [(prompt, w(_n(rng, 11, 3)) + ".")]


SOURCES = (
    Source("llava_instruct", 157_712, "coco", _llava_instruct),
    Source("sharegpt", 40_688, None, _sharegpt),
    Source("vqav2", 82_783, "coco", _short_vqa(5.4, 6)),
    Source("okvqa", 8_998, "coco", _short_vqa(1, 8)),
    Source("aokvqa", 66_160, "coco", _aokvqa),
    Source("refcoco", 48_447, "coco", _refcoco),
    Source("vg", 86_417, "vg", _vg),
    Source("gqa", 72_140, "gqa", _short_vqa(10, 8)),
    Source("ocr_vqa", 80_000, "ocr_vqa", _ocrvqa),
    Source("textcaps", 21_953, "textvqa", _textcaps),
)


def image_path(folder: str, rng: random.Random, i: int, coco: list[int]) -> str:
    """The ``i``-th image of a source in ``folder``; coco images are shared, drawn from ``coco``'s ids."""
    if folder == "coco":
        return f"coco/train2017/{coco[rng.randrange(len(coco))]:012d}.jpg"
    if folder == "vg":
        return f"vg/VG_100K{rng.choice(('', '_2'))}/{1_000_000 + i}.jpg"
    if folder == "gqa":
        return f"gqa/images/{2_300_000 + i}.jpg"
    if folder == "ocr_vqa":
        return f"ocr_vqa/images/{1_400_000_000 + i * 7}.jpg"
    return f"textvqa/train_images/{rng.getrandbits(64):016x}.jpg"


def generate_mix(out: str | os.PathLike, seed: int = 0, scale: float = 1.0) -> dict[str, object]:
    """Write the mix to ``out`` (atomically) and return its description (counts, size, image list file)."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    rng, words = random.Random(seed), Words(seed)
    coco = rng.sample(range(1, 581_930), COCO_IMAGES)  # COCO train2017 ids lie below 581,930
    counts = {s.name: max(1, round(s.count * scale)) for s in SOURCES}
    order = [s for s in SOURCES for _ in range(counts[s.name])]
    rng.shuffle(order)
    per_source = {s.name: 0 for s in SOURCES}
    images: set[str] = set()
    turns_total = 0
    tmp = out.with_name(f".{out.name}.tmp")
    with tmp.open("w", encoding="utf-8") as f:
        f.write("[\n")
        for n, source in enumerate(tqdm(order, desc="mix665k-shaped file", unit=" samples")):
            i = per_source[source.name]
            per_source[source.name] += 1
            image = image_path(source.folder, rng, i, coco) if source.folder else None
            pairs = source.turns(rng, words)
            conversations = []
            for k, (ask, answer) in enumerate(pairs):
                if k == 0 and image is not None:
                    ask = "<image>\n" + ask if rng.random() < 0.7 else ask + "\n<image>"
                conversations += [{"from": "human", "value": ask}, {"from": "gpt", "value": answer}]
            turns_total += len(conversations)
            record = {"id": f"{source.name}_{i}"} | ({"image": image} if image else {})
            record["conversations"] = conversations
            if image:
                images.add(image)
            f.write(("" if n == 0 else ",\n") + json.dumps(record))
        f.write("\n]\n")
    os.replace(tmp, out)
    image_list = out.with_name(out.name + ".images.txt")
    image_list.write_text("".join(sorted(i + "\n" for i in images)))
    return {
        "file": str(out),
        "bytes": out.stat().st_size,
        "samples": len(order),
        "turns": turns_total,
        "unique_images": len(images),
        "per_source": counts,
        "seed": seed,
        "scale": scale,
        "version": VERSION,
        "image_list": str(image_list),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--scale", type=float, default=1.0, help="fraction of every source's count")
    args = parser.parse_args()
    print(json.dumps(generate_mix(args.out, args.seed, args.scale), indent=2))


if __name__ == "__main__":
    main()
