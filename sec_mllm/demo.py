"""Demo page: ask a SEC-MLLM about an image, pick K, see the answer, the clusters and the time to first token.

    pip install -e ".[demo]"
    python -m sec_mllm.demo                                       # the embedded quick-start checkpoint
    python -m sec_mllm.demo --model-path CKPT                     # a SEC-MLLM folder
    python -m sec_mllm.demo --model-path llava-hf/llava-1.5-7b-hf --num-tokens 144   # LLaVA, training-free SEC

A person uploads an image, types a question and picks K (1..N). The page shows the answer with K visual
tokens, the clusters drawn over the image (``sec_mllm.visualize``: each patch tinted with the output token
that gathers it), and, side by side for K and for all N tokens (the same model with the ``identity``
projector, i.e. no compression), the number of visual tokens, the time to first token and the answer.
Time to first token = preprocessing + vision tower + projector + prefill + the first generated token
(``generate`` with ``max_new_tokens=1``), the median of 5 runs, K and N interleaved.

K is changed on the one loaded model (``inference.set_num_tokens`` / ``projector_swapped``: the projector's
learned weights do not depend on K), so the language model is held once. A projector without K
(``identity``) pins the slider at N. Bad input (an unreadable image, K outside 1..N, an empty question)
shows a message on the page (``gradio.Error``), never a traceback, and changes nothing; a checkpoint that
is neither SEC-MLLM nor LLaVA stops the command with one line naming what it lacks.

Without ``--model-path`` the page runs the checkpoint embedded in the package (``DEMO_CHECKPOINT``): the
``sec`` model of a quick start, with an example image and question from its synthetic test set. The
assets are refreshed from any quick-start output in one command (``provenance.json`` records it):

    python -m sec_mllm.quickstart --reduced --out /tmp/qs && python -m sec_mllm.demo --make-assets /tmp/qs

Gradio is imported only when the page is built, with its analytics off, and the page loads no web fonts.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import statistics
import time
from pathlib import Path
from typing import Any

import torch
from PIL import Image, UnidentifiedImageError

from .evaluation.runner import build_prompt
from .files import read_json, write_json_atomic
from .inference import has_num_tokens, load_pretrained, projector_swapped
from .visualize import cluster_pictures

DEMO_ASSETS = Path(__file__).resolve().parent / "demo_assets"
DEMO_CHECKPOINT = DEMO_ASSETS / "checkpoint"
DEMO_EXAMPLE = DEMO_ASSETS / "example.json"  # {"image": file name in DEMO_ASSETS, "question", "answer"}
CHECKPOINT_FILES = (  # what a quick-start model folder needs to load with the installed package
    "config.json",
    "generation_config.json",
    "model.safetensors",
    "processor_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "chat_template.jinja",
)
TIMING_RUNS = 5


class DemoInputError(ValueError):
    """Input the page refuses; the message is shown to the person."""


def read_image(path: str | None) -> Image.Image:
    """The uploaded file as an RGB image; a DemoInputError naming the file when it is not one."""
    if not path:
        raise DemoInputError("upload an image first")
    try:
        with Image.open(path) as image:
            return image.convert("RGB")  # decodes every pixel: a truncated file fails here, not later
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as err:
        name = Path(path).name  # the server-side path of an upload means nothing to the person
        raise DemoInputError(f"cannot read {name} as an image: {str(err).replace(str(path), name)}") from None


class DemoSession:
    """One loaded model and the work behind the page; no gradio in here, so it is tested directly."""

    def __init__(self, model: Any, processor: Any, prompt_template: str | None = None) -> None:
        self.model, self.processor = model, processor
        self.processor.tokenizer.padding_side = "left"
        self.n = model.config.num_vision_patches
        self.default_k = model.num_image_tokens
        self.fixed_k = not has_num_tokens(model.config.projector_type)
        self.prompt_template = prompt_template

    def prompt(self, question: str) -> str:
        """The tokenizer's chat template unless a template is given; LLaVA's plain turn when it has none."""
        tokenizer = self.processor.tokenizer
        use_chat = self.prompt_template is None and tokenizer.chat_template is not None
        template = None if use_chat else (self.prompt_template or "USER: {question} ASSISTANT:")
        return build_prompt(tokenizer, template, f"{self.processor.image_token}\n{question}")

    def check_k(self, k: Any) -> int:
        try:
            k_int = int(k)
        except (TypeError, ValueError):
            raise DemoInputError(f"K must be a whole number, got {k!r}") from None
        if k_int != k or not 1 <= k_int <= self.n:
            raise DemoInputError(f"K={k} is outside 1..N: this model's vision tower gives N={self.n} tokens")
        if self.fixed_k and k_int != self.n:
            raise DemoInputError(
                f"this checkpoint's projector (identity) keeps all N={self.n} tokens; K must be {self.n}"
            )
        return k_int

    @torch.no_grad()
    def _generate(self, image: Image.Image, question: str, max_new_tokens: int) -> tuple[str, float]:
        start = time.perf_counter()
        inputs = self.processor(images=[image], text=[self.prompt(question)], return_tensors="pt").to(
            self.model.device
        )
        ids = self.model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False)
        seconds = time.perf_counter() - start
        text = self.processor.tokenizer.decode(ids[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True)
        return text.strip(), seconds

    def ask(self, image_path: str | None, question: str, k: Any, max_new_tokens: int = 32) -> dict[str, Any]:
        """Answer with K and with all N tokens, time both, draw the clusters; the model is left as it was."""
        image = read_image(image_path)
        question = (question or "").strip()
        if not question:
            raise DemoInputError("type a question")
        k = self.check_k(k)
        config = self.model.config
        with_k = (config.projector_type, {**config.projector_config, "num_tokens": k}) if not self.fixed_k else None
        all_n = ("identity", {})

        def swapped(projector):
            return projector_swapped(self.model, self.processor, *projector) if projector else contextlib.nullcontext()

        timings: dict[str, list[float]] = {"k": [], "n": []}
        for _ in range(TIMING_RUNS):  # interleaved, so that a slow moment hits both
            with swapped(with_k):
                timings["k"].append(self._generate(image, question, 1)[1])
            with swapped(all_n):
                timings["n"].append(self._generate(image, question, 1)[1])
        with swapped(with_k):
            answer_k = self._generate(image, question, max_new_tokens)[0]
            picture = cluster_pictures(self.model, self.processor, [image])[0]
        with swapped(all_n):
            answer_n = self._generate(image, question, max_new_tokens)[0]
        rows = [
            (f"K = {k} ({config.projector_type})", k, timings["k"], answer_k),
            (f"all N = {self.n} (identity)", self.n, timings["n"], answer_n),
        ]
        return {
            "answer": answer_k,
            "picture": picture,
            "rows": [
                {"setting": name, "tokens": t, "ttft_ms": 1000 * statistics.median(times), "answer": a}
                for name, t, times, a in rows
            ],
        }


def table_markdown(rows: list[dict[str, Any]]) -> str:
    lines = ["| | visual tokens | time to first token | answer |", "|---|---:|---:|---|"]
    for r in rows:
        answer = r["answer"].replace("|", "\\|") or "(empty)"
        lines.append(f"| {r['setting']} | {r['tokens']} | {r['ttft_ms']:.1f} ms | {answer} |")
    return "\n".join(lines)


def build_page(session: DemoSession, example: dict[str, str] | None = None):
    """The gradio Blocks of the page (gradio imported here, analytics off).

    The image arrives as a file (``gr.File``) and is decoded by :func:`read_image`, not by gradio's image
    component, so that an unreadable file gets this page's one-line message; a preview shows what was read.
    Each question first clears the previous outputs, so an error never leaves an older answer on display.
    """
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    import gradio as gr

    def refuse(err: DemoInputError):
        return gr.Error(str(err), print_exception=False)

    def on_upload(image_path):
        if not image_path:
            return None
        try:
            return read_image(image_path)
        except DemoInputError as err:
            raise refuse(err) from None

    def on_ask(image_path, question, k):
        try:
            result = session.ask(image_path, question, k)
        except DemoInputError as err:
            raise refuse(err) from None
        return result["answer"], result["picture"], table_markdown(result["rows"])

    with gr.Blocks(analytics_enabled=False, title="SEC-MLLM demo") as page:
        gr.Markdown(
            f"## SEC-MLLM: ask about an image with K of N = {session.n} visual tokens\n"
            f"Projector `{session.model.config.projector_type}`; the picture shows which patches each of the K "
            "tokens gathers. The table compares K with all N tokens (no compression)."
        )
        with gr.Row():
            with gr.Column():
                image = gr.File(label="Image file", file_types=["image"], type="filepath", elem_id="image")
                preview = gr.Image(label="Image", interactive=False, type="pil", elem_id="preview", height=240)
                question = gr.Textbox(label="Question", elem_id="question")
                k = gr.Slider(
                    1,
                    session.n,
                    value=session.default_k,
                    step=1,
                    label="K (visual tokens)",
                    interactive=not session.fixed_k,
                    elem_id="k",
                )
                ask = gr.Button("Ask", variant="primary", elem_id="ask")
            with gr.Column():
                answer = gr.Textbox(label="Answer (K tokens)", elem_id="answer", interactive=False)
                picture = gr.Image(
                    label="Clusters (left: input, right: one colour per visual token)",
                    elem_id="clusters",
                    interactive=False,
                    type="pil",
                )
                table = gr.Markdown(elem_id="table")
        if example:
            gr.Examples(
                [[example["image"], example["question"], session.default_k]],
                [image, question, k],
                label="Example",
                elem_id="example",
            )
        image.change(on_upload, image, preview)
        outputs = [answer, picture, table]
        ask.click(lambda: (None, None, ""), None, outputs).then(on_ask, [image, question, k], outputs)
    return page


def load_example() -> dict[str, str] | None:
    if not DEMO_EXAMPLE.is_file():
        return None
    example = read_json(DEMO_EXAMPLE)
    return {**example, "image": str(DEMO_ASSETS / example["image"])}


def _without_name_or_path(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_name_or_path(v) for k, v in value.items() if k != "_name_or_path"}
    return [_without_name_or_path(v) for v in value] if isinstance(value, list) else value


def make_assets(quickstart_out: str) -> None:
    """Copy the ``sec`` model and one Shapes-GQA test question of a quick-start output into DEMO_ASSETS."""
    run = Path(quickstart_out)
    source = run / "sec" / "stage2"
    results = read_json(run / "results.json")
    missing = [f for f in CHECKPOINT_FILES if not (source / f).is_file()]
    if missing:
        raise SystemExit(f"{source} lacks {missing}: is {run} a finished quick-start output?")
    questions = read_json(run / "data" / "gqa" / "data" / "testdev_balanced_questions.json")
    colour = [(i, q) for i, q in questions.items() if q["question"].startswith("What color")]
    qid, q = (colour or list(questions.items()))[0]
    staging = DEMO_ASSETS.with_name(".demo_assets.tmp")
    shutil.rmtree(staging, ignore_errors=True)
    (staging / "checkpoint").mkdir(parents=True)
    for name in CHECKPOINT_FILES:
        shutil.copy2(source / name, staging / "checkpoint" / name)
    # the folders the quick start built from are paths of that machine: not worth shipping
    config = read_json(source / "config.json")
    write_json_atomic(staging / "checkpoint" / "config.json", _without_name_or_path(config))
    image = f"example_{q['imageId']}.jpg"
    shutil.copy2(run / "data" / "gqa" / "data" / "images" / f"{q['imageId']}.jpg", staging / image)
    write_json_atomic(
        staging / "example.json",
        {"image": image, "question": q["question"], "answer": q["answer"], "question_id": qid},
    )
    run_config = {k: v for k, v in (results.get("config") or {}).items() if k != "out"}  # no machine path
    write_json_atomic(
        staging / "provenance.json",
        {
            "made_by": "python -m sec_mllm.quickstart [--reduced] --out QS; python -m sec_mllm.demo --make-assets QS",
            "quickstart_config": run_config,
            "quickstart_accuracy": {b: {m: s["accuracy"] for m, s in results[b].items()} for b in ("gqa", "textvqa")},
        },
    )
    shutil.rmtree(DEMO_ASSETS, ignore_errors=True)
    staging.rename(DEMO_ASSETS)
    print(f"demo assets written to {DEMO_ASSETS} from {run}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-path", default=None, help="SEC-MLLM folder or LLaVA-1.5 (default: embedded)")
    parser.add_argument("--num-tokens", type=int, default=None, help="K to start with (default: the checkpoint's)")
    parser.add_argument(
        "--conv-template",
        default=None,
        help="prompt format string with {question}; default: "
        "the tokenizer's chat template, else LLaVA's 'USER: {question} ASSISTANT:'",
    )
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=7860)
    parser.add_argument("--make-assets", metavar="QUICKSTART_OUT", help="refresh the embedded checkpoint and exit")
    args = parser.parse_args(argv)
    if args.make_assets:
        make_assets(args.make_assets)
        return
    path = args.model_path or str(DEMO_CHECKPOINT)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        model, processor = load_pretrained(path, args.num_tokens, getattr(torch, args.dtype), device)
    except ValueError as err:
        raise SystemExit(f"sec_mllm.demo: {err}") from None
    session = DemoSession(model, processor, args.conv_template)
    page = build_page(session, load_example() if args.model_path is None else None)
    import gradio as gr

    page.launch(
        server_name=args.host,
        server_port=args.port,
        share=False,
        show_error=True,
        allowed_paths=[str(DEMO_ASSETS)],
        theme=gr.themes.Default(
            font=["ui-sans-serif", "system-ui", "sans-serif"], font_mono=["ui-monospace", "monospace"]
        ),
    )


if __name__ == "__main__":
    main()
