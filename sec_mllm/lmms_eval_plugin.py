"""lmms-eval model ``sec_mllm``: score a SEC-MLLM (or a LLaVA-1.5, compressed training-free) with the standard harness.

    pip install -e ".[lmms]"      # lmms-eval >= 0.7.3; registers this model through its entry point
    lmms-eval --model sec_mllm --model_args pretrained=CKPT --tasks gqa,textvqa_val --batch_size 8
    lmms-eval --model sec_mllm --model_args pretrained=llava-hf/llava-1.5-7b-hf,num_tokens=144 --tasks gqa

Registration: lmms-eval reads the entry-point group ``lmms_eval.models`` (pyproject.toml points it at
:data:`MANIFEST`); its ``@register_model`` decorator would only register inside lmms-eval's own package.
This module imports lmms-eval at the top and is never imported by the library, so ``import sec_mllm``
works without the extra.

``model_args``: ``pretrained`` (a SEC-MLLM folder, or a transformers-format LLaVA-1.5, which is converted on
the fly with the training-free SEC preset), ``num_tokens`` (K; default the checkpoint's, or all N for a
LLaVA), ``conv_template`` (``vicuna_v1``, LLaVA-1.5's evaluation prompt; ``plain``; ``chat_template``, the
tokenizer's), ``dtype``, ``device``. The prompt is ``"<image>\\n" + context`` inside the template, as
LLaVA's evaluation builds it; lmms-eval's GQA and TextVQA contexts already end with "Answer the question
using a single word or phrase.".

* ``generate_until``: batched (``--batch_size``, requests grouped by generation settings and sorted by
  length), greedy unless the task asks for a temperature, cut at the first ``until`` string.
* ``loglikelihood``: batched; returns (negative log-likelihood of the continuation summed over its tokens,
  whether greedy decoding would produce it). The sign follows lmms-eval's convention, not the base class
  docstring: its multiple-choice scoring picks ``argmin`` ("we return the actual loss"). Context and
  continuation are tokenized together and split at the context's length, as lm-eval does.
* Bad input (a checkpoint that is neither SEC-MLLM nor LLaVA, K outside 1..N, an image that cannot be
  read) stops the run with one line naming the value, the task and document: ``SystemExit``, which
  lmms-eval's CLI does not catch and print as a traceback, before any result file is written.
"""

from __future__ import annotations

import os
from typing import Any

import torch
from lmms_eval.api.instance import Instance
from lmms_eval.api.model import lmms
from lmms_eval.models.registry_v2 import ModelManifest
from lmms_eval.utils import Collator
from PIL import Image
from tqdm import tqdm

from .evaluation.runner import PROMPT_TEMPLATES, build_prompt
from .inference import load_pretrained

MANIFEST = ModelManifest(model_id="sec_mllm", simple_class_path="sec_mllm.lmms_eval_plugin.SecMllmLmms")
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def _stop(message: str) -> SystemExit:
    return SystemExit(f"sec_mllm: {message}")


class SecMllmLmms(lmms):
    """The lmms-eval face of a SEC-MLLM: batched generation and log-likelihoods with images."""

    is_simple = True

    def __init__(
        self,
        pretrained: str,
        num_tokens: int | None = None,
        conv_template: str = "vicuna_v1",
        dtype: str = "float32",
        device: str | None = None,
        batch_size: int | str = 1,
        max_batch_size: int | str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__()
        if kwargs:
            raise _stop(f"unknown model_args {sorted(kwargs)}; accepted: pretrained, num_tokens, conv_template, dtype")
        if conv_template not in PROMPT_TEMPLATES:
            raise _stop(f"conv_template={conv_template!r} is not one of {sorted(PROMPT_TEMPLATES)}")
        if dtype not in DTYPES:
            raise _stop(f"dtype={dtype!r} is not one of {sorted(DTYPES)}")
        try:
            self.batch_size_per_gpu = int(batch_size)
        except ValueError:
            raise _stop(f"--batch_size {batch_size!r}: give a number of requests per batch") from None
        if device is None or device == "cuda":
            local = int(os.environ.get("LOCAL_RANK", 0))
            device = f"cuda:{local}" if torch.cuda.is_available() else "cpu"
        self._device = torch.device(device)
        try:
            self.model, self.processor = load_pretrained(pretrained, num_tokens, DTYPES[dtype], self._device)
        except ValueError as err:  # not a checkpoint we can read, or K outside 1..N
            raise _stop(str(err)) from None
        self.processor.tokenizer.padding_side = "left"
        self.template = PROMPT_TEMPLATES[conv_template]
        self.pretrained = pretrained
        self.chat_template = None

    @property
    def device(self) -> torch.device:
        return self._device

    @property
    def batch_size(self) -> int:
        return self.batch_size_per_gpu

    @property
    def tokenizer(self):
        return self.processor.tokenizer

    # -- inputs ---------------------------------------------------------------------------------------------------

    def _visuals(self, doc_to_visual, doc_id: int, task: str, split: str) -> list[Image.Image]:
        """The document's images, each checked to decode; one line naming the document otherwise."""
        where = f"task {task!r}, split {split!r}, doc {doc_id}"
        try:
            visuals = doc_to_visual(self.task_dict[task][split][doc_id]) if doc_to_visual else []
            visuals = [v for v in (visuals or []) if v is not None]
            for image in visuals:
                if not isinstance(image, Image.Image):
                    raise ValueError(f"expected PIL images, got {type(image).__name__} (videos are not supported)")
                image.load()
        except (OSError, ValueError, SyntaxError) as err:
            raise _stop(f"{where}: cannot read its image: {err}") from None
        return visuals

    def _prompt(self, context: str, num_images: int) -> str:
        image_token = self.processor.image_token
        if num_images and image_token not in context:
            context = f"{image_token}\n" * num_images + context
        return build_prompt(self.tokenizer, self.template, context)

    def _encode(self, texts: list[str], images: list[Image.Image]) -> dict[str, torch.Tensor]:
        try:
            inputs = self.processor(images=images or None, text=texts, return_tensors="pt")
        except (OSError, ValueError) as err:
            raise _stop(f"the processor cannot read the inputs of this batch: {err}") from None
        inputs = inputs.to(self.device)
        if "pixel_values" in inputs:
            inputs["pixel_values"] = inputs["pixel_values"].to(self.model.dtype)
        return inputs

    # -- requests -------------------------------------------------------------------------------------------------

    @torch.no_grad()
    def generate_until(self, requests: list[Instance]) -> list[str]:
        collator = Collator(
            [r.args for r in requests], lambda args: (-len(args[0]), args[0]), grouping=True
        )  # longest first, one generation setting per batch
        bar = tqdm(total=len(requests), disable=self.rank != 0, desc="sec_mllm generate_until")
        results = []
        for chunk in collator.get_batched(n=self.batch_size, batch_fn=None):
            contexts, all_kwargs, doc_to_visuals, doc_ids, tasks, splits = zip(*chunk)
            kwargs = dict(all_kwargs[0])
            until = kwargs.pop("until", None) or []
            until = [until] if isinstance(until, str) else list(until)
            images, prompts = [], []
            for context, d2v, doc_id, task, split in zip(contexts, doc_to_visuals, doc_ids, tasks, splits):
                visuals = self._visuals(d2v, doc_id, task, split)
                images += visuals
                prompts.append(self._prompt(context, len(visuals)))
            inputs = self._encode(prompts, images)
            temperature = float(kwargs.get("temperature") or 0)
            sampling = {"do_sample": True, "temperature": temperature, "top_p": kwargs.get("top_p")}
            ids = self.model.generate(
                **inputs,
                max_new_tokens=int(kwargs.get("max_new_tokens", 128)),
                num_beams=int(kwargs.get("num_beams") or 1),
                pad_token_id=self.tokenizer.pad_token_id,
                **(sampling if temperature > 0 else {"do_sample": False}),
            )
            texts = self.tokenizer.batch_decode(ids[:, inputs["input_ids"].shape[1] :], skip_special_tokens=True)
            for text in texts:
                for stop in until:
                    if stop:
                        text = text.split(stop)[0]
                results.append(text)
            bar.update(len(chunk))
        bar.close()
        return collator.get_original(results)

    @torch.no_grad()
    def loglikelihood(self, requests: list[Instance]) -> list[tuple[float, bool]]:
        items = []
        for request in requests:
            args = request.args
            if len(args) == 2:  # unconditional (acc_mutual_info): no document, no image
                context, continuation, visuals = args[0], args[1], []
            else:
                context, target, d2v, doc_id, task, split = args
                doc = self.task_dict[task][split][doc_id]
                continuation = target if isinstance(target, str) else target(doc)
                continuation = continuation if isinstance(continuation, str) else str(continuation)
                visuals = self._visuals(d2v, doc_id, task, split)
            prompt = self._prompt(context, len(visuals))
            items.append((prompt, continuation, visuals))

        results: list[tuple[float, bool]] = []
        bar = tqdm(total=len(items), disable=self.rank != 0, desc="sec_mllm loglikelihood")
        self.tokenizer.padding_side = "right"
        try:
            for start in range(0, len(items), self.batch_size):
                results += self._loglikelihood_batch(items[start : start + self.batch_size])
                bar.update(min(self.batch_size, len(items) - start))
        finally:
            self.tokenizer.padding_side = "left"
            bar.close()
        return results

    def _loglikelihood_batch(self, batch: list[tuple[str, str, list[Image.Image]]]) -> list[tuple[float, bool]]:
        images = [im for _, _, visuals in batch for im in visuals]
        whole = self._encode([p + c for p, c, _ in batch], images)  # right-padded
        context_lengths = [
            int(self.processor(text=[p], images=v or None, return_tensors="pt")["attention_mask"].sum())
            for p, _, v in batch
        ]
        logits = self.model(**whole).logits.float()  # [B, T, V]
        logprobs = torch.log_softmax(logits, dim=-1)
        out = []
        for row, start in enumerate(context_lengths):
            end = int(whole["attention_mask"][row].sum())
            if end <= start:
                raise _stop(f"the continuation {batch[row][1]!r} adds no token to its context")
            targets = whole["input_ids"][row, start:end]  # [C]
            predicted = logprobs[row, start - 1 : end - 1]  # [C, V]: position t predicts token t + 1
            nll = -predicted.gather(-1, targets[:, None]).sum()
            greedy = bool((predicted.argmax(-1) == targets).all())
            out.append((float(nll), greedy))
        return out

    def generate_until_multi_round(self, requests: list[Instance]) -> list[str]:
        raise NotImplementedError("sec_mllm: multi-round generation is not implemented")
