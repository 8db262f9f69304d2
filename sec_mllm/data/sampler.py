"""Modality-length grouping (``--group_by_modality_length``): batches hold only image samples or only
text-only samples, and samples of similar length, so little compute goes to padding.

Lengths follow LLaVA's sign convention (positive: with image, negative: text-only). Each modality is
shuffled, cut into megabatches of ``batch_size * world_size * 4`` sorted by length, then split into
global batches; full global batches of both modalities are shuffled together and the two incomplete
remainders go last (the only batch that may mix modalities). Deterministic per epoch seed.

The lengths are held as one integer array (not a Python list) and the grouping is vectorised: for the
665K-sample mix that is 2.6 MB per rank instead of about 24 MB of Python ints.
"""

from __future__ import annotations

from typing import Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import Sampler


class ModalityLengthGroupedSampler(Sampler[int]):
    def __init__(self, lengths: Sequence[int], batch_size: int, world_size: int = 1, seed: int = 0) -> None:
        self.lengths, self.batch = np.asarray(lengths), batch_size * world_size  # [num_samples]
        self.seed, self.epoch = seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.lengths)

    def __iter__(self) -> Iterator[int]:
        gen = torch.Generator().manual_seed(self.seed + self.epoch)
        batches: list[np.ndarray] = []
        remainder: list[np.ndarray] = []
        magnitude = np.abs(self.lengths.astype(np.int64))
        for keep in (self.lengths > 0, self.lengths <= 0):
            idx = np.flatnonzero(keep)
            idx = idx[torch.randperm(len(idx), generator=gen).numpy()]
            mega = self.batch * 4
            full = len(idx) - len(idx) % self.batch
            remainder.append(idx[full:])
            for start in range(0, full, mega):
                chunk = idx[start : min(start + mega, full)]
                chunk = chunk[np.argsort(-magnitude[chunk], kind="stable")]  # longest first, ties in shuffled order
                batches += [chunk[k : k + self.batch] for k in range(0, len(chunk), self.batch)]
        order = torch.randperm(len(batches), generator=gen).tolist()
        return iter(np.concatenate([batches[b] for b in order] + remainder).tolist())
