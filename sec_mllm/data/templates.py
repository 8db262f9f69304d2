"""Chat templates and label masking for LLaVA-format conversations.

A conversation is rendered to one string plus the character spans the model is trained on (the
assistant replies and the separator that ends each of them). The string is tokenized once, with offsets;
a token is a target when its character span overlaps a target span. Labels therefore come from the
very tokenization that produces ``input_ids``: LLaVA's "tokenization mismatch" (a whole sample silently
masked when two tokenizations disagree) cannot happen. Each ``<image>`` token is then expanded into K
image tokens with label -100.

Templates:
* ``plain`` (stage 1, LLaVA's ``plain``): ``<image>`` + caption + ``\\n``; trains on caption + ``\\n``.
* ``v1`` (Vicuna v1.1, LLaVA's ``v1``): ``SYSTEM USER: q ASSISTANT: a</s>USER: ...``; trains on each
  ``a</s>``.
* ``chat_template``: the tokenizer's own template (Llama 3, Qwen2, ...); trains on what the template
  adds for each assistant message (reply and end-of-turn tokens).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

IGNORE_INDEX = -100
VICUNA_SYSTEM = (
    "A chat between a curious user and an artificial intelligence assistant. "
    "The assistant gives helpful, detailed, and polite answers to the user's questions."
)
TEMPLATES = ("plain", "v1", "chat_template")
TEMPLATE_ALIASES = {"vicuna_v1": "v1", "llava_v1": "v1"}


class BadSample(ValueError):
    """A sample that cannot be trained on; the message says why."""


@dataclass(frozen=True)
class Rendered:
    text: str
    target_spans: tuple[tuple[int, int], ...]
    add_special_tokens: bool


def resolve_template(name: str) -> str:
    name = TEMPLATE_ALIASES.get(name, name)
    if name not in TEMPLATES:
        raise ValueError(f"unknown conversation template {name!r}; choose one of {list(TEMPLATES)}")
    return name


def render(turns: list[tuple[str, str]], template: str, tokenizer, image_token: str = "<image>") -> Rendered:
    """``turns``: alternating ``("human", text)`` / ``("gpt", text)``, starting with a human turn."""
    template = resolve_template(template)
    if template == "plain":
        if len(turns) != 2:
            raise BadSample(f"the plain template needs one human and one gpt turn, got {len(turns)} turns")
        text = image_token if image_token in turns[0][1] else ""
        start = len(text)
        text += turns[1][1] + "\n"
        return Rendered(text, ((start, len(text)),), True)
    if template == "v1":
        text, spans = VICUNA_SYSTEM + " ", []
        for role, value in turns:
            if role == "human":
                text += "USER: " + value + " "
            else:
                text += "ASSISTANT: "
                start = len(text)
                text += value + tokenizer.eos_token
                spans.append((start, len(text)))
        return Rendered(text, tuple(spans), True)
    if tokenizer.chat_template is None:
        raise ValueError("template 'chat_template' needs a tokenizer with a chat_template")
    messages = [{"role": "user" if role == "human" else "assistant", "content": value} for role, value in turns]
    spans, text = [], ""
    for i, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        prefix = tokenizer.apply_chat_template(messages[:i], tokenize=False, add_generation_prompt=True)
        full = tokenizer.apply_chat_template(messages[: i + 1], tokenize=False)
        if not full.startswith(prefix):
            raise ValueError("the tokenizer's chat template is not prefix-consistent; cannot locate assistant replies")
        spans.append((len(prefix), len(full)))
        text = full
    return Rendered(text, tuple(spans), False)


def tokenize_conversation(
    turns: list[tuple[str, str]],
    tokenizer,
    template: str,
    image_token_id: int,
    num_image_tokens: int,
    max_length: int | None = None,
    image_token: str = "<image>",
) -> tuple[torch.Tensor, torch.Tensor]:
    """``input_ids`` and ``labels`` (``[T]`` each) with every ``<image>`` expanded to K image tokens.

    Truncation to ``max_length`` never cuts an image block: a sample whose image tokens do not fit, or
    whose labels end up fully masked, raises :class:`BadSample`.
    """
    if not getattr(tokenizer, "is_fast", False):
        raise ValueError("label masking needs a fast tokenizer (character offsets)")
    rendered = render(turns, template, tokenizer, image_token)
    enc = tokenizer(rendered.text, return_offsets_mapping=True, add_special_tokens=rendered.add_special_tokens)
    ids, labels = [], []
    for token_id, (start, end) in zip(enc["input_ids"], enc["offset_mapping"]):
        if token_id == image_token_id:
            ids += [image_token_id] * num_image_tokens
            labels += [IGNORE_INDEX] * num_image_tokens
            continue
        target = end > start and any(start < e and end > s for s, e in rendered.target_spans)
        ids.append(token_id)
        labels.append(token_id if target else IGNORE_INDEX)
    if max_length is not None and len(ids) > max_length:
        image_positions = [i for i, t in enumerate(ids) if t == image_token_id]
        if image_positions and image_positions[-1] >= max_length:
            raise BadSample(
                f"{len(ids)} tokens exceed model_max_length={max_length} and truncation would cut the image tokens"
            )
        ids, labels = ids[:max_length], labels[:max_length]
    if all(label == IGNORE_INDEX for label in labels):
        raise BadSample("no assistant token is left to train on (all labels masked)")
    return torch.tensor(ids, dtype=torch.long), torch.tensor(labels, dtype=torch.long)
