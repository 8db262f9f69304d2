"""Language-model pretraining: give the tiny LM the language of the synthetic corpus before LLaVA's two stages.

LLaVA starts from Vicuna, a language model that already knows the words of captions and questions; stage 1
then aligns image features to that model. The synthetic benchmark's LM is random, which leaves stage 1
without a meaningful target (measured: aligning to a random frozen LM, the connector's output grew from
norm ~1 to ~25 in 60 steps while text embeddings stay at ~1) and spends stage 2 on learning the language
itself. So the tiny LM is first trained as an ordinary causal LM on the corpus's text alone: the captions,
and the training conversations rendered with the chat template, image placeholders removed. It never sees
an image here, so it can learn the answers' priors but not the answers: on the balanced benchmarks that is
chance (the blind baseline's level).
"""

from __future__ import annotations

import torch
from torch.nn.utils.rnn import pad_sequence
from tqdm import tqdm
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from ..data.llava_dataset import load_records


def corpus_texts(files: list[str], tokenizer: PreTrainedTokenizerBase, image_token: str = "<image>") -> list[str]:
    """Every conversation of the LLaVA-format ``files`` rendered with the tokenizer's chat template, without
    image placeholders."""
    roles = {"human": "user", "gpt": "assistant"}
    texts = []
    for path in files:
        for record in load_records(path):
            messages = [
                {"role": roles[turn["from"]], "content": turn["value"].replace(image_token, "").strip()}
                for turn in record["conversations"]
            ]
            texts.append(tokenizer.apply_chat_template(messages, tokenize=False))
    return texts


def pretrain_lm(
    lm: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    texts: list[str],
    steps: int,
    batch_size: int = 64,
    lr: float = 2e-3,
    seed: int = 0,
) -> list[float]:
    """Causal-LM training on ``texts`` (every token a target, padding ignored); returns the loss curve."""
    gen = torch.Generator().manual_seed(seed)
    encoded = [torch.tensor(ids) for ids in tokenizer(texts, add_special_tokens=False)["input_ids"]]
    optimizer = torch.optim.AdamW(lm.parameters(), lr=lr, weight_decay=0.0)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=steps, pct_start=0.05)
    losses = []
    lm.train()
    for _ in tqdm(range(steps), desc="LM pretraining"):
        picks = torch.randint(len(encoded), (batch_size,), generator=gen).tolist()
        input_ids = pad_sequence([encoded[i] for i in picks], batch_first=True, padding_value=tokenizer.pad_token_id)
        lengths = torch.tensor([len(encoded[i]) for i in picks])
        mask = (torch.arange(input_ids.shape[1])[None, :] < lengths[:, None]).long()  # [B, T]
        labels = input_ids.masked_fill(mask == 0, -100)
        loss = lm(input_ids=input_ids, attention_mask=mask, labels=labels).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
        losses.append(loss.item())
    lm.eval()
    return losses
