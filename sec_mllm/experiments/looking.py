"""Does a trained model look at the image? Per question family of the synthetic benchmarks, at the answer position
(the last prompt token, where the first answer token is predicted):

- ``attention_on_image``: the share of each LM layer's attention (mean over heads) that goes to the image tokens;
- ``kl_swapped``: KL(p_real || p_swapped) in nats between the next-token distributions with the question's own
  image and with another question's image (the next question's, so the pairing is fixed);
- ``nll_real`` / ``nll_swapped``: -log p of the reference answer's first token with each image.

A model that answers from the question alone attends to the image without being moved by it: attention is high
and the KL and the NLL gap are near 0. Needs the eager attention (the only one that returns attention weights).

    python -m sec_mllm.experiments.looking --model-path runs/quickstart/identity/stage2 \\
        --data runs/quickstart/data --out benchmarks/results/looking/identity

Writes DIR/looking.json (the command and every figure) and DIR/looking.md (the table).
"""

from __future__ import annotations

import argparse
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from tqdm import tqdm

from ..evaluation.runner import build_prompt, load_questions
from ..evaluation.textvqa import find_annotation, index_annotations, normalize_answer
from ..files import read_json, write_json_atomic, write_text_atomic
from ..inference import load_pretrained
from .invocation import command_line

BENCHMARKS = {
    "shapes_gqa": ("gqa/llava_gqa_testdev_balanced.jsonl", "gqa/data/images"),
    "rendered_textvqa": ("textvqa/llava_textvqa_val_v051_noocr.jsonl", "textvqa/train_images"),
}


def benchmark_questions(data: Path, benchmark: str) -> list[dict[str, Any]]:
    """``{"prompt", "image", "family", "answer"}`` per question of one synthetic benchmark, in file order."""
    question_file, image_folder = BENCHMARKS[benchmark]
    questions = load_questions(str(data / question_file))
    if benchmark == "shapes_gqa":
        meta = read_json(str(data / "gqa" / "data" / "testdev_balanced_questions.json"))
        items = [meta[str(q["question_id"])] for q in questions]
        answers = [item["answer"] for item in items]
    else:
        annotation_file = data / "textvqa" / "TextVQA_0.5.1_val.json"
        by_id, by_key = index_annotations(read_json(str(annotation_file))["data"])
        items = [find_annotation(q, by_id, by_key, f"{question_file}: {q['question_id']}") for q in questions]
        # the annotators' most common answer after the metric's own normalisation
        answers = [Counter(map(normalize_answer, item["answers"])).most_common(1)[0][0] for item in items]
    return [
        {
            "prompt": q["text"],
            "image": str(data / image_folder / q["image"]),
            "family": item["stratum"]["family"],
            "answer": answer,
        }
        for q, item, answer in zip(questions, items, answers)
    ]


@torch.no_grad()
def answer_position(model: Any, processor: Any, prompt: str, image: Image.Image) -> tuple[torch.Tensor, torch.Tensor]:
    """(log-probabilities of the next token [V], attention share on image tokens per layer [L]) at the last
    prompt token."""
    inputs = processor(text=prompt, images=image, return_tensors="pt")
    out = model(**inputs, output_attentions=True)
    image_mask = (inputs["input_ids"][0] == model.config.image_token_id).float()  # [T]
    shares = torch.stack([layer[0, :, -1].mean(0) @ image_mask for layer in out.attentions])  # [L]
    return out.logits[0, -1].float().log_softmax(-1), shares


def first_answer_token(tokenizer: Any, prompt: str, answer: str) -> int:
    """The token the model must produce first: the answer as the chat template continues the prompt."""
    prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    full_ids = tokenizer(prompt + " " + answer, add_special_tokens=False)["input_ids"]
    if full_ids[: len(prompt_ids)] != prompt_ids:
        raise ValueError(f"the answer {answer!r} changes the prompt's tokens; cannot score its first token")
    return full_ids[len(prompt_ids)]


def measure(model_path: str, data: Path, limit: int | None = None) -> dict[str, Any]:
    model, processor = load_pretrained(model_path)
    model.set_attn_implementation("eager")
    tokenizer = processor.tokenizer
    result: dict[str, Any] = {}
    for benchmark in BENCHMARKS:
        rows = benchmark_questions(data, benchmark)[:limit]
        sums: dict[str, defaultdict[str, Any]] = defaultdict(lambda: defaultdict(float))
        images = [Image.open(row["image"]).convert("RGB") for row in rows]
        for i, row in enumerate(tqdm(rows, desc=benchmark)):
            prompt = build_prompt(tokenizer, None, processor.image_token + "\n" + row["prompt"])  # as eval/ asks
            real, shares = answer_position(model, processor, prompt, images[i])
            swapped, _ = answer_position(model, processor, prompt, images[(i + 1) % len(rows)])
            token = first_answer_token(tokenizer, prompt, row["answer"])
            entry = sums[row["family"]]
            entry["count"] += 1
            entry["kl_swapped"] += float((real.exp() * (real - swapped)).sum())
            entry["nll_real"] += float(-real[token])
            entry["nll_swapped"] += float(-swapped[token])
            entry["attention_on_image"] += shares  # [L]
        result[benchmark] = {
            family: {
                "count": int(v["count"]),
                "attention_on_image": [round(float(s) / v["count"], 4) for s in v["attention_on_image"]],
                **{k: v[k] / v["count"] for k in ("kl_swapped", "nll_real", "nll_swapped")},
            }
            for family, v in sorted(sums.items())
        }
    return result


def table(result: dict[str, Any]) -> str:
    lines = [
        f"Does {result['model_path']} look? At the answer position, per family: attention share on the image per LM "
        "layer, KL(real || swapped image) in nats and -log p of the answer's first token with the real / swapped "
        "image.",
        "",
        "| benchmark | family | n | attention on image by layer | KL swapped | NLL real | NLL swapped |",
        "|---|---|---:|---|---:|---:|---:|",
    ]
    for benchmark in BENCHMARKS:
        for family, v in result["families"][benchmark].items():
            attention = " / ".join(f"{a:.2f}" for a in v["attention_on_image"])
            lines.append(
                f"| {benchmark} | {family} | {v['count']} | {attention} | {v['kl_swapped']:.3f} | "
                f"{v['nll_real']:.2f} | {v['nll_swapped']:.2f} |"
            )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-path", required=True, help="a trained SEC-MLLM checkpoint")
    parser.add_argument("--data", required=True, help="the synthetic benchmark folder (experiments.synthetic)")
    parser.add_argument("--out", required=True, help="folder for looking.json and looking.md")
    parser.add_argument("--limit", type=int, default=None, help="the first N questions of each benchmark")
    args = parser.parse_args(argv)
    missing = [p for p, _ in BENCHMARKS.values() if not (Path(args.data) / p).exists()]
    if missing:
        parser.error(f"{args.data} is not a synthetic benchmark folder: missing {', '.join(missing)}")
    command = command_line("sec_mllm.experiments.looking", argv)
    result = {
        "command": command,
        "model_path": args.model_path,
        "families": measure(args.model_path, Path(args.data), args.limit),
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out / "looking.json", result)
    write_text_atomic(out / "looking.md", table(result))
    print(table(result))


if __name__ == "__main__":
    main()
