"""Modality-length grouping (``--group_by_modality_length``): batches hold only image samples or only
text-only samples, and samples of similar length, so little compute goes to padding.

Lengths follow LLaVA's sign convention (positive: with image, negative: text-only). Each modality is
shuffled, cut into megabatches of ``batch_size * world_size * 4`` sorted by length, then split into
global batches; full global batches of both modalities are shuffled together and the two incomplete
remainders go last (the only batch that may mix modalities). Deterministic per epoch seed.
"""

from __future__ import annotations

from typing import Iterator

import torch
from torch.utils.data import Sampler


class ModalityLengthGroupedSampler(Sampler[int]):
    def __init__(self, lengths: list[int], batch_size: int, world_size: int = 1, seed: int = 0) -> None:
        self.lengths, self.batch = lengths, batch_size * world_size
        self.seed, self.epoch = seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.lengths)

    def __iter__(self) -> Iterator[int]:
        gen = torch.Generator().manual_seed(self.seed + self.epoch)
        batches: list[list[int]] = []
        remainder: list[int] = []
        for keep in (lambda n: n > 0, lambda n: n <= 0):
            idx = [i for i, n in enumerate(self.lengths) if keep(n)]
            idx = [idx[j] for j in torch.randperm(len(idx), generator=gen).tolist()]
            mega = self.batch * 4
            full = len(idx) - len(idx) % self.batch
            remainder += idx[full:]
            for start in range(0, full, mega):
                chunk = sorted(idx[start : min(start + mega, full)], key=lambda i: -abs(self.lengths[i]))
                batches += [chunk[k : k + self.batch] for k in range(0, len(chunk), self.batch)]
        order = torch.randperm(len(batches), generator=gen).tolist()
        return iter([i for b in order for i in batches[b]] + remainder)
