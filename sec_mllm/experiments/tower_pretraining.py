"""Tower pretraining: teach a small CLIP to see, for settings with no pretrained vision tower.

No pretrained CLIP can be downloaded here. Real CLIP features carry local detail (colours, parts, and the words
of legible text: CLIP reads) learned from 400M image-text pairs; the synthetic benchmark stands in for that
pretraining with the scene ground truth, and then freezes the tower, as LLaVA freezes OpenAI's CLIP.

``pretrain_dense_tower`` (the recipe's tower): a transformers ``CLIPVisionModel`` learns dense per-patch
targets alone (patch_labels.py: colour, kind and size of the object, object centre, the sign's text and its
characters by place, and each patch's column and row), read by linear heads (``DenseHeads``, discarded
afterwards) from the patch tokens of the layer the multimodal model uses (``dense_layer``, -2 as LLaVA), on
freshly generated images (patch_labels.labelled_images, drawn as the benchmark draws them; not the training or
test images). Each attribute's loss counts only the patches that show it (``DenseHeads.loss``): averaged over
every patch, the rare sign patches carried too little of the loss for the tower to learn to read.

``pretrain_clip`` (the earlier recipe's tower): a tiny transformers ``CLIPModel`` trained with CLIP's symmetric
InfoNCE loss (``return_loss=True``) on the stage-1 captions. Captions are tokenized with the language model's
tokenizer and closed by the tokenizer's pad token, which is the CLIP text tower's end-of-text token (its pooled
position). With ``patch_labels_file`` the tower also learns the dense targets on the caption images, with
``dense_images`` on that many freshly generated images, a batch of them per step beside the caption batch. A
contrastive objective on 4,000 short captions does not teach shapes or words (measured: not decodable from its
patch features, even at the object level; the README's diagnosis). The saved model is a plain ``CLIPModel``.

Position: with ``positions="sincos"`` the tower's position embedding starts as a fixed-frequency 2-D sin-cos
table (as MAE's ViTs; still trained) instead of CLIP's small random one. Measured on the learned-position towers
(patch features at layer -2, 300 / 200 fresh images): a linear read-out of a patch's column reached R^2 0.14
and told left from right half for 70 % of patches (the position embedding's norm was 0.3 against 5.4 for
the patch embedding); a language model with rotary positions only gets absolute position from the features.
With the sin-cos start a random tower already gives R^2 0.89; in the quick start it did not by itself lift the
"on which side" questions from chance (the README's diagnosis), so ``learned`` stays the default.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm
from transformers import CLIPConfig, CLIPModel, CLIPTextConfig, CLIPVisionConfig, CLIPVisionModel

from ..builder import default_image_processor
from ..data.llava_dataset import load_records
from ..files import read_json
from .patch_labels import (
    CHARS,
    COLOR_CLASSES,
    GRID,
    KIND_CLASSES,
    SIZE_CLASSES,
    SLOTS,
    TEXT_CLASSES,
    label_tensors,
    labelled_images,
)

logger = logging.getLogger(__name__)
POS_WEIGHT = 10.0  # weight of a present centre in its binary loss
Batch = tuple[torch.Tensor, torch.Tensor, torch.Tensor, dict[str, torch.Tensor] | None]


class CaptionImages(Dataset):
    """Caption records with their images (and per-patch labels when a labels file is given)."""

    def __init__(
        self,
        captions_file: str,
        image_folder: str,
        tokenizer: Any,
        image_processor: Any,
        patch_labels_file: str | None = None,
        max_length: int = 64,
    ) -> None:
        self.records = load_records(captions_file)
        self.folder, self.tokenizer, self.processor = Path(image_folder), tokenizer, image_processor
        self.max_length = max_length
        self.labels = read_json(patch_labels_file) if patch_labels_file else None
        if self.labels is not None:
            missing = [r["image"] for r in self.records if r["image"] not in self.labels]
            if missing:
                raise ValueError(f"{patch_labels_file}: no labels for {len(missing)} image(s), e.g. {missing[:3]}")

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, list[int], dict[str, torch.Tensor] | None]:
        rec = self.records[i]
        with Image.open(self.folder / rec["image"]) as im:
            pixels = self.processor(im.convert("RGB"), return_tensors="pt")["pixel_values"][0]  # [3, H, W]
        caption = rec["conversations"][1]["value"]
        ids = self.tokenizer(caption, add_special_tokens=False)["input_ids"][: self.max_length - 1]
        labels = label_tensors(self.labels[rec["image"]]) if self.labels is not None else None
        return pixels, ids + [self.tokenizer.pad_token_id], labels


def _masked_ce(logits: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Cross-entropy over the positions where ``mask`` holds (logits ``[..., C]``, target and mask ``[...]``); zero,
    with a gradient path, when none does."""
    if not bool(mask.any()):
        return logits.sum() * 0.0
    return F.cross_entropy(logits[mask], target[mask])


class DenseHeads(nn.Module):
    """Linear read-outs of per-patch ground truth, and of the patch's place in the grid, from patch tokens
    ``[B, N, D]``."""

    def __init__(self, width: int, grid: int = GRID) -> None:
        super().__init__()
        self.grid = grid
        self.color = nn.Linear(width, len(COLOR_CLASSES))
        self.kind = nn.Linear(width, len(KIND_CLASSES))
        self.size = nn.Linear(width, len(SIZE_CLASSES))
        self.text = nn.Linear(width, len(TEXT_CLASSES))
        self.slots = nn.Linear(width, SLOTS * (1 + len(CHARS)))
        self.centre = nn.Linear(width, 1)
        self.column = nn.Linear(width, grid)
        self.row = nn.Linear(width, grid)

    def loss(self, patches: torch.Tensor, labels: dict[str, torch.Tensor]) -> torch.Tensor:
        """Sum of the losses. Each attribute is learned where it exists: kind and size on the patches of an object
        or sign, the sign's text and its characters by place (``slots``) on sign patches; colour, and kind at a
        fifth of the weight, everywhere (so "nothing here" is learned too). Averaged over all patches, most of
        which show background, the rare sign patches carried too little of the loss for the words to be learned
        (measured: 8 % of sign patches read after 1,000 steps, 81 % when only sign patches count). Centres: binary
        cross-entropy with the rare positives up-weighted. Column and row: every patch's own, so a patch's place
        stays readable from its features (a language model with rotary positions gets it from nowhere else)."""
        batch, num = patches.shape[:2]
        obj, sign = labels["kind"] > 0, labels["text"] > 0  # [B, N]
        color = F.cross_entropy(self.color(patches).flatten(0, 1), labels["color"].flatten())
        kind_logits = self.kind(patches)  # [B, N, C]
        kind = _masked_ce(kind_logits, labels["kind"], obj)
        kind = kind + 0.2 * F.cross_entropy(kind_logits.flatten(0, 1), labels["kind"].flatten())
        size = _masked_ce(self.size(patches), labels["size"], obj)
        written = _masked_ce(self.text(patches), labels["text"], sign)
        slots = self.slots(patches).view(batch, num, SLOTS, 1 + len(CHARS))  # [B, N, SLOTS, 1 + chars]
        spelled = _masked_ce(slots, labels["slots"], sign[..., None].expand(-1, -1, SLOTS))
        centre = F.binary_cross_entropy_with_logits(
            self.centre(patches).squeeze(-1), labels["centre"], pos_weight=patches.new_tensor(POS_WEIGHT)
        )
        index = torch.arange(num, device=patches.device)  # raster order
        place = F.cross_entropy(self.column(patches).flatten(0, 1), (index % self.grid).repeat(batch))
        place = place + F.cross_entropy(self.row(patches).flatten(0, 1), (index // self.grid).repeat(batch))
        return color + kind + size + written + spelled + centre + place


POSITIONS = ("learned", "sincos")


def sincos_positions(width: int, grid: int) -> torch.Tensor:
    """2-D sin-cos position table for a ``grid`` x ``grid`` patch grid in raster order: [grid * grid, width];
    half the channels encode the row, half the column, each as sines and cosines of width / 4 frequencies."""
    if width % 4:
        raise ValueError(f"sin-cos positions need a width divisible by 4, got {width}")
    rows, cols = torch.meshgrid(torch.arange(grid), torch.arange(grid), indexing="ij")
    freqs = 1.0 / 10000 ** (torch.arange(width // 4) / (width // 4))  # [width / 4]
    parts = []
    for coord in (rows.flatten(), cols.flatten()):
        angles = coord[:, None].float() * freqs[None]  # [grid^2, width / 4]
        parts += [angles.sin(), angles.cos()]
    return torch.cat(parts, 1)


def start_positions(embeddings: nn.Module, config: CLIPVisionConfig, positions: str) -> None:
    """Set a CLIP vision embedding's position table as ``positions`` asks (``learned``: leave CLIP's init)."""
    if positions not in POSITIONS:
        raise ValueError(f"positions must be one of {', '.join(POSITIONS)}, got {positions!r}")
    if positions == "sincos":
        table = embeddings.position_embedding.weight  # [1 + grid^2, D], row 0: CLS
        with torch.no_grad():
            table.zero_()
            table[1:] = sincos_positions(config.hidden_size, config.image_size // config.patch_size)


class Updater:
    """Both towers' optimisation: AdamW (weight decay 0.05) with a one-cycle schedule peaking at ``lr`` after the
    first tenth of ``steps``; calling it with a loss takes one step."""

    def __init__(self, params: list[nn.Parameter], lr: float, steps: int) -> None:
        self.optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=0.05)
        self.schedule = torch.optim.lr_scheduler.OneCycleLR(
            self.optimizer, max_lr=lr, total_steps=steps, pct_start=0.1
        )

    def __call__(self, loss: torch.Tensor) -> None:
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        self.schedule.step()


def pretrain_clip(
    captions_file: str,
    image_folder: str,
    tokenizer: Any,
    vision_config: CLIPVisionConfig,
    text_width: int = 64,
    steps: int = 300,
    batch_size: int = 64,
    lr: float = 2e-3,
    seed: int = 0,
    patch_labels_file: str | None = None,
    dense_layer: int = -2,
    positions: str = "learned",
    dense_images: int = 0,
) -> tuple[CLIPModel, dict[str, list[float]]]:
    """Train a CLIP whose vision tower follows ``vision_config``; returns the model and the loss curves
    (``contrastive`` and, with ``patch_labels_file`` or ``dense_images``, ``dense``). ``positions``: how the
    tower's position embedding starts, ``learned`` (CLIP's random init) or ``sincos`` (see the module docstring).
    ``dense_images``: the number of fresh labelled images the dense targets are drawn from (0: none)."""
    if dense_images < 0:
        raise ValueError(f"dense_images must be >= 0 (0: no fresh images), got {dense_images}")
    if dense_images and patch_labels_file:
        raise ValueError(
            f"dense targets come from patch_labels_file or from dense_images fresh images, not both; got "
            f"patch_labels_file={patch_labels_file!r}, dense_images={dense_images}"
        )
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
    start_positions(model.vision_model.embeddings, vision_config, positions)
    heads = DenseHeads(vision_config.hidden_size) if patch_labels_file or dense_images else None
    processor = default_image_processor(vision_config)
    data = CaptionImages(captions_file, image_folder, tokenizer, processor, patch_labels_file)
    fresh = None
    if dense_images:
        pixels, labels = labelled_images(dense_images, f"tower-dense-{seed}", processor)
        fresh = pixels.half(), labels  # [M, 3, H, W] kept in half precision: 24 KB per image
    draw = torch.Generator().manual_seed(seed)

    def collate(batch: list[tuple[torch.Tensor, list[int], dict | None]]) -> Batch:
        pixels = torch.stack([b[0] for b in batch])  # [B, 3, H, W]
        width = max(len(b[1]) for b in batch)
        ids = torch.full((len(batch), width), tokenizer.pad_token_id)
        mask = torch.zeros(len(batch), width, dtype=torch.long)
        for j, (_, seq, _) in enumerate(batch):
            ids[j, : len(seq)], mask[j, : len(seq)] = torch.tensor(seq), 1
        labels = None if batch[0][2] is None else {k: torch.stack([b[2][k] for b in batch]) for k in batch[0][2]}
        return pixels, ids, mask, labels

    loader = DataLoader(
        data,
        batch_size=batch_size,
        shuffle=True,
        collate_fn=collate,
        drop_last=True,
        generator=torch.Generator().manual_seed(seed),
    )
    params = list(model.parameters()) + (list(heads.parameters()) if heads is not None else [])
    update = Updater(params, lr, steps)
    curves: dict[str, list[float]] = {"contrastive": [], "dense": []}
    step = 0
    model.train()
    with tqdm(total=steps, desc="tower pretraining") as bar:
        while step < steps:
            for pixels, ids, mask, labels in loader:
                out = model(
                    input_ids=ids,
                    attention_mask=mask,
                    pixel_values=pixels,
                    return_loss=True,
                    output_hidden_states=heads is not None and fresh is None,
                )
                loss = out.loss
                curves["contrastive"].append(out.loss.item())
                if heads is not None:
                    hidden = out.vision_model_output
                    if fresh is not None:  # the dense targets' own batch of generated images
                        index = torch.randint(0, len(fresh[0]), (batch_size,), generator=draw)
                        hidden = model.vision_model(pixel_values=fresh[0][index].float(), output_hidden_states=True)
                        labels = {k: v[index] for k, v in fresh[1].items()}
                    patches = hidden.hidden_states[dense_layer][:, 1:]  # [B, N, D], CLS dropped
                    dense = heads.loss(patches, labels)
                    curves["dense"].append(dense.item())
                    loss = loss + dense
                update(loss)
                step += 1
                bar.update(1)
                bar.set_postfix(loss=f"{loss.item():.3f}")
                if step == steps:
                    break
    return model.eval(), curves


def pretrain_dense_tower(
    vision_config: CLIPVisionConfig,
    images: int,
    steps: int,
    batch_size: int = 64,
    lr: float = 2e-3,
    seed: int = 0,
    dense_layer: int = -2,
    positions: str = "learned",
) -> tuple[CLIPVisionModel, dict[str, list[float]]]:
    """Train a CLIP vision tower on dense targets alone: ``images`` freshly generated labelled images
    (patch_labels.labelled_images), a random batch of them per step, ``DenseHeads`` reading the patch tokens of
    ``dense_layer`` (layer -2, as the multimodal model reads them; the layers above it get no gradient and stay
    as initialised). No captions and no text tower: every step goes to what the questions need. Returns the
    tower and its loss curve (``dense``)."""
    if images <= 0:
        raise ValueError(f"images must be > 0, got {images}")
    torch.manual_seed(seed)
    model = CLIPVisionModel(vision_config)
    start_positions(model.embeddings, vision_config, positions)
    heads = DenseHeads(vision_config.hidden_size, vision_config.image_size // vision_config.patch_size)
    pixels, labels = labelled_images(images, f"tower-dense-{seed}", default_image_processor(vision_config))
    pixels = pixels.half()  # [M, 3, H, W], 24 KB per image
    draw = torch.Generator().manual_seed(seed)
    update = Updater(list(model.parameters()) + list(heads.parameters()), lr, steps)
    curve: list[float] = []
    model.train()
    for _ in tqdm(range(steps), desc="tower pretraining (dense)"):
        index = torch.randint(0, len(pixels), (batch_size,), generator=draw)
        hidden = model(pixel_values=pixels[index].float(), output_hidden_states=True).hidden_states
        loss = heads.loss(hidden[dense_layer][:, 1:], {k: v[index] for k, v in labels.items()})  # CLS dropped
        update(loss)
        curve.append(loss.item())
    return model.eval(), {"dense": curve}
