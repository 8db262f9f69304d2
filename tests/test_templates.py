"""Golden label masks: only assistant tokens are targets, for every template; truncation rules."""

from __future__ import annotations

import pytest

from sec_mllm.data.templates import IGNORE_INDEX, VICUNA_SYSTEM, BadSample, render, tokenize_conversation

K = 3


def targets(tokenizer, ids, labels):
    return tokenizer.decode([i for i, label in zip(ids.tolist(), labels.tolist()) if label != IGNORE_INDEX])


def image_id(tokenizer):
    return tokenizer.convert_tokens_to_ids("<image>")


def test_plain_trains_on_caption_and_newline(tokenizer):
    turns = [("human", "<image>\nDescribe."), ("gpt", "a red circle")]
    ids, labels = tokenize_conversation(turns, tokenizer, "plain", image_id(tokenizer), K)
    assert tokenizer.decode(ids) == "<image>" * K + "a red circle\n"
    assert targets(tokenizer, ids, labels) == "a red circle\n"
    assert (ids == image_id(tokenizer)).sum() == K and (labels[ids == image_id(tokenizer)] == IGNORE_INDEX).all()


def test_v1_multi_turn_trains_on_replies_and_eos(tokenizer):
    turns = [("human", "<image>\nWhat color?"), ("gpt", "red"), ("human", "And the shape?"), ("gpt", "a circle")]
    ids, labels = tokenize_conversation(turns, tokenizer, "v1", image_id(tokenizer), K)
    expected = (
        VICUNA_SYSTEM
        + " USER: "
        + "<image>" * K
        + "\nWhat color? ASSISTANT: red</s>USER: And the shape? ASSISTANT: a circle</s>"
    )
    assert tokenizer.decode(ids) == expected
    assert targets(tokenizer, ids, labels).replace(" ", "") == "red</s>acircle</s>"
    assert "USER" not in targets(tokenizer, ids, labels)


def test_v1_text_only_sample(tokenizer):
    ids, labels = tokenize_conversation(
        [("human", "Say yes."), ("gpt", "yes")], tokenizer, "v1", image_id(tokenizer), K
    )
    assert (ids != image_id(tokenizer)).all()
    assert targets(tokenizer, ids, labels).strip() == "yes</s>"


def test_tokenizer_chat_template(tokenizer):
    template = (
        "{% for m in messages %}<s>{{ m['role'] }}\n{{ m['content'] }}</s>{% endfor %}"
        "{% if add_generation_prompt %}<s>assistant\n{% endif %}"
    )
    saved, tokenizer.chat_template = tokenizer.chat_template, template
    try:
        turns = [("human", "<image>\nHi"), ("gpt", "hello"), ("human", "More"), ("gpt", "yes no")]
        ids, labels = tokenize_conversation(turns, tokenizer, "chat_template", image_id(tokenizer), K)
        assert targets(tokenizer, ids, labels) == "hello</s>yes no</s>"
        assert render(turns, "chat_template", tokenizer).text.count("<s>assistant\n") == 2
    finally:
        tokenizer.chat_template = saved


def test_truncation_keeps_image_blocks_whole(tokenizer):
    turns = [("human", "<image>\nWhat color is the square in the middle?"), ("gpt", "red " * 20)]
    ids, labels = tokenize_conversation(turns, tokenizer, "plain", image_id(tokenizer), K, max_length=K + 4)
    assert len(ids) == K + 4 and (ids[:K] == image_id(tokenizer)).all()
    with pytest.raises(BadSample, match="truncation would cut the image tokens"):
        tokenize_conversation(turns, tokenizer, "v1", image_id(tokenizer), K, max_length=10)
    full, _ = tokenize_conversation(turns, tokenizer, "v1", image_id(tokenizer), K)
    image_end = int((full == image_id(tokenizer)).nonzero().max()) + 1
    with pytest.raises(BadSample, match="all labels masked"):  # fits the image, not a single reply token
        tokenize_conversation(turns, tokenizer, "v1", image_id(tokenizer), K, max_length=image_end + 2)


def test_unknown_template(tokenizer):
    with pytest.raises(
        ValueError, match=r"unknown conversation template 'llama_9'; choose one of \['plain', 'v1', 'chat_template'\]"
    ):
        tokenize_conversation([("human", "a"), ("gpt", "b")], tokenizer, "llama_9", image_id(tokenizer), K)
