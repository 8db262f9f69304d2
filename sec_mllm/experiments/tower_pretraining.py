"""Tower pretraining: contrastive image-text training of a small CLIP, for settings with no pretrained tower.

No pretrained CLIP can be downloaded here, so the synthetic quick start first teaches a tiny
transformers ``CLIPModel`` to see with the symmetric InfoNCE loss of CLIP (``return_loss=True``) on the
stage-1 captions; its vision half is then used frozen, as LLaVA uses OpenAI's CLIP. Captions are
tokenized with the language model's tokenizer and closed by the tokenizer's pad token, which is the
CLIP text tower's end-of-text token (its pooled position).
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm
from transformers import CLIPConfig, CLIPModel, CLIPTextConfig, CLIPVisionConfig

from ..builder import default_image_processor
from ..data.llava_dataset import load_records

logger = logging.getLogger(__name__)


class CaptionImages(Dataset):
    def __init__(
        self, captions_file: str, image_folder: str, tokenizer, image_processor, max_length: int = 64
    ) -> None:
        self.records = load_records(captions_file)
        self.folder, self.tokenizer, self.processor, self.max_length = (
            Path(image_folder),
            tokenizer,
            image_processor,
            max_length,
        )

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, list[int]]:
        rec = self.records[i]
        with Image.open(self.folder / rec["image"]) as im:
            pixels = self.processor(im.convert("RGB"), return_tensors="pt")["pixel_values"][0]
        ids = self.tokenizer(rec["conversations"][1]["value"], add_special_tokens=False)["input_ids"][
            : self.max_length - 1
        ]
        return pixels, ids + [self.tokenizer.pad_token_id]


def pretrain_clip(
    captions_file: str,
    image_folder: str,
    tokenizer,
    vision_config: CLIPVisionConfig,
    text_width: int = 64,
    steps: int = 300,
    batch_size: int = 64,
    lr: float = 2e-3,
    seed: int = 0,
) -> tuple[CLIPModel, list[float]]:
    """Train a CLIP whose vision tower follows ``vision_config``; returns the model and the loss curve."""
    torch.manual_seed(seed)
    text_config = CLIPTextConfig(
        vocab_size=len(tokenizer),
        hidden_size=text_width,
        intermediate_size=2 * text_width,
        num_hidden_layers=2,
        num_attention_heads=4,
        max_position_embeddings=64,
        eos_token_id=tokenizer.pad_token_id,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
    )
    model = CLIPModel(
        CLIPConfig(
            text_config=text_config.to_dict(),
            vision_config=vision_config.to_dict(),
            projection_dim=vision_config.hidden_size,
        )
    )
    data = CaptionImages(captions_file, image_folder, tokenizer, default_image_processor(vision_config))

    def collate(batch):
        pixels = torch.stack([b[0] for b in batch])
        width = max(len(b[1]) for b in batch)
        ids = torch.full((len(batch), width), tokenizer.pad_token_id)
        mask = torch.zeros(len(batch), width, dtype=torch.long)
        for j, (_, seq) in enumerate(batch):
            ids[j, : len(seq)], mask[j, : len(seq)] = torch.tensor(seq), 1
        return pixels, ids, mask

    loader = DataLoader(
        data,
        batch_size=batch_size,
        shuffle=True,
        collate_fn=collate,
        drop_last=True,
        generator=torch.Generator().manual_seed(seed),
    )
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.05)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=steps, pct_start=0.1)
    losses, step = [], 0
    model.train()
    with tqdm(total=steps, desc="contrastive pretraining") as bar:
        while step < steps:
            for pixels, ids, mask in loader:
                loss = model(input_ids=ids, attention_mask=mask, pixel_values=pixels, return_loss=True).loss
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                schedule.step()
                losses.append(loss.item())
                step += 1
                bar.update(1)
                bar.set_postfix(loss=f"{loss.item():.3f}")
                if step == steps:
                    break
    return model.eval(), losses
