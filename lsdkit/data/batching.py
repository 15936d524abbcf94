"""Cropped sequence datasets, length-bucketed token-budget batches, collation and loaders.

The pieces the corpus (:mod:`lsdkit.data.corpus`, which re-exports them) and any other token
source share:

* :class:`SequenceDataset` - ``ds[i] -> (id, int64 tokens)`` over a compact store (one uint8
  token buffer plus offsets, so ``DataLoader`` workers fork cheaply and nothing holds a file
  handle). Sequences longer than ``max_len`` are cropped: ``"random"`` draws the window from
  (seed, epoch, index) - never from global RNG state - ``"fixed"`` from (seed, index) only (same
  every epoch; for validation), ``"first"`` keeps the N-terminal ``max_len`` residues.
* :class:`TokenBudgetBatchSampler` - shuffles, sorts by length inside windows of ``window``
  batches' worth of sequences, packs batches with ``B * L_max <= max_tokens``, shuffles batch
  order per epoch, then shards the batch list over ``num_replicas`` ranks (equal counts).
* :func:`collate` - the batch dict every model consumes:
  ``{"tokens": LongTensor[B, L] (PAD right-padded), "mask": BoolTensor[B, L], "ids": list[str]}``.
* :func:`make_loader` - a ``DataLoader`` with ``set_epoch(epoch, skip=0)`` that reaches both the
  sampler and the dataset, so an interrupted run resumes at the same batch.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from lsdkit.alphabet import ALPHABET, PAD, Alphabet

CROPS = ("random", "fixed", "first")


class SequenceDataset(Dataset):
    """Token sequences ``tokens[offsets[j]:offsets[j+1]]`` for ``j in index``, cropped to ``max_len``."""

    def __init__(self, tokens: np.ndarray, offsets: np.ndarray, ids: np.ndarray, *,
                 index: np.ndarray | None = None, max_len: int = 512, crop: str = "random", seed: int = 0):
        if crop not in CROPS:
            raise ValueError(f"crop must be one of {CROPS}, got {crop!r}")
        if max_len < 1:
            raise ValueError(f"max_len must be >= 1, got {max_len}")
        self.tokens, self.offsets, self.ids = tokens, np.asarray(offsets, np.int64), ids
        self.index = np.arange(len(ids), dtype=np.int64) if index is None else np.asarray(index, np.int64)
        self.max_len, self.crop, self.seed, self.epoch = int(max_len), crop, int(seed), 0
        full = self.offsets[self.index + 1] - self.offsets[self.index]
        self.full_lengths = full
        self.lengths = np.minimum(full, self.max_len)   # what a batch will hold; feeds the sampler

    @property
    def record_ids(self) -> np.ndarray:
        """The record id of every item, in dataset order."""
        return self.ids[self.index]

    @classmethod
    def from_sequences(cls, ids: Sequence[str], seqs: Sequence[str], *, alphabet: Alphabet = ALPHABET,
                       **kwargs) -> SequenceDataset:
        """Encode residue strings (errors name the record) into a dataset."""
        if len(ids) != len(seqs):
            raise ValueError(f"{len(ids)} ids but {len(seqs)} sequences")
        enc = [alphabet.encode(s, record=r) for r, s in zip(ids, seqs)]
        offsets = np.zeros(len(enc) + 1, np.int64)
        offsets[1:] = np.cumsum([len(e) for e in enc])
        tokens = np.concatenate(enc).astype(np.uint8) if enc else np.zeros(0, np.uint8)
        return cls(tokens, offsets, np.array(list(ids), dtype=str), **kwargs)

    def set_epoch(self, epoch: int) -> None:
        """Select the random crops of ``epoch`` (only ``crop="random"`` depends on it)."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.index)

    def crop_start(self, i: int) -> int:
        """First residue of item ``i``'s window: a pure function of (crop, seed, epoch, i)."""
        excess = int(self.full_lengths[i]) - self.max_len
        if excess <= 0 or self.crop == "first":
            return 0
        key = [self.seed, self.epoch, i] if self.crop == "random" else [self.seed, i]
        return int(np.random.default_rng(key).integers(0, excess + 1))

    def __getitem__(self, i: int) -> tuple[str, np.ndarray]:
        i = int(i)
        if not -len(self) <= i < len(self):
            raise IndexError(f"index {i} out of range for a dataset of {len(self)} sequences")
        i %= len(self)
        j = int(self.index[i])
        a = int(self.offsets[j]) + self.crop_start(i)
        return str(self.ids[j]), np.asarray(self.tokens[a:a + int(self.lengths[i])], dtype=np.int64)


def pack_batches(order: np.ndarray, lengths: np.ndarray, max_tokens: int) -> list[np.ndarray]:
    """Greedily cut ``order`` into consecutive batches with ``len(batch) * max_length <= max_tokens``."""
    batches, cur, lmax = [], [], 0
    lens = lengths.tolist()
    for i in order.tolist():
        m = max(lmax, lens[i])
        if cur and m * (len(cur) + 1) > max_tokens:
            batches.append(np.array(cur, np.int64))
            cur, m = [], lens[i]
        cur.append(i)
        lmax = m
    if cur:
        batches.append(np.array(cur, np.int64))
    return batches


def pack_sorted(order: np.ndarray, lengths: np.ndarray, max_tokens: int) -> list[np.ndarray]:
    """:func:`pack_batches` for ``order`` sorted longest first: each batch's first item sets
    ``L_max``, so a batch is just the next ``max_tokens // L_max`` items (one step per batch)."""
    lens, batches, s = lengths[order], [], 0
    while s < len(order):
        k = max(1, max_tokens // int(lens[s]))
        batches.append(order[s:s + k])
        s += k
    return batches


def padding_fraction_of(batches: Sequence[np.ndarray], lengths: np.ndarray) -> float:
    """Padded slots / total slots when each batch is right-padded to its longest sequence."""
    real = sum(int(lengths[b].sum()) for b in batches)
    slots = sum(len(b) * int(lengths[b].max()) for b in batches)
    return 1.0 - real / slots if slots else 0.0


class TokenBudgetBatchSampler(Sampler[list[int]]):
    """Length-bucketed batches under a token budget, deterministic given (seed, epoch).

    ``shuffle=True``: permute all indices with ``default_rng([seed, epoch])``, sort each window of
    about ``window`` batches' worth of sequences by length (longest first), pack, and shuffle the
    batch order. ``shuffle=False``: one global length sort, batches longest-first (validation).
    With ``num_replicas > 1`` the batch list is cut to a multiple of ``num_replicas`` (``drop_last``)
    or padded by repeating batches from its start, and rank ``r`` takes batches ``r, r+R, ...``.
    """

    def __init__(self, lengths, max_tokens: int, shuffle: bool = True, seed: int = 0,
                 num_replicas: int = 1, rank: int = 0, drop_last: bool = False, *, window: int = 100):
        self.lengths = np.asarray(lengths, dtype=np.int64)
        if self.lengths.ndim != 1 or (self.lengths.size and self.lengths.min() < 1):
            raise ValueError("lengths must be a 1-D array of positive sequence lengths")
        if self.lengths.size and self.lengths.max() > max_tokens:
            i = int(self.lengths.argmax())
            raise ValueError(f"max_tokens={max_tokens} is smaller than sequence {i} of length "
                             f"{self.lengths[i]}: raise max_tokens or lower max_len")
        if not 0 <= rank < num_replicas:
            raise ValueError(f"rank {rank} is not in [0, num_replicas={num_replicas})")
        self.max_tokens, self.shuffle, self.seed = int(max_tokens), bool(shuffle), int(seed)
        self.num_replicas, self.rank, self.drop_last = int(num_replicas), int(rank), bool(drop_last)
        self.window, self.epoch, self.skip = int(window), 0, 0
        self._cache: tuple[int, list[np.ndarray]] | None = None

    def set_epoch(self, epoch: int, skip: int = 0) -> None:
        """Use epoch ``epoch``'s batches; ``skip`` drops this rank's first batches (to resume mid-epoch)."""
        self.epoch, self.skip = int(epoch), int(skip)

    def epoch_batches(self) -> list[np.ndarray]:
        """All batches of the current epoch, before sharding over replicas (cached per epoch)."""
        if self._cache is not None and self._cache[0] == self.epoch:
            return self._cache[1]
        n = len(self.lengths)
        if not self.shuffle:
            batches = pack_sorted(np.argsort(-self.lengths, kind="stable"), self.lengths, self.max_tokens)
        else:
            rng = np.random.default_rng([self.seed, self.epoch])
            perm = rng.permutation(n)
            mean_len = float(self.lengths.mean()) if n else 1.0
            size = max(1, int(self.window * self.max_tokens / mean_len))   # sequences per window
            batches = []
            for start in range(0, n, size):
                chunk = perm[start:start + size]
                chunk = chunk[np.argsort(-self.lengths[chunk], kind="stable")]
                batches += pack_sorted(chunk, self.lengths, self.max_tokens)
            batches = [batches[k] for k in rng.permutation(len(batches))]
        self._cache = (self.epoch, batches)
        return batches

    def _shard(self) -> list[np.ndarray]:
        batches, R = self.epoch_batches(), self.num_replicas
        if R > 1 and len(batches) % R:
            if self.drop_last:
                batches = batches[: len(batches) - len(batches) % R]
            else:
                total = len(batches) + R - len(batches) % R
                batches = [batches[k % len(batches)] for k in range(total)]
        return batches[self.rank::R][self.skip:]

    def __iter__(self):
        for b in self._shard():
            yield b.tolist()

    def __len__(self) -> int:
        return len(self._shard())

    def padding_fraction(self) -> float:
        """Padded / total token slots over all of the current epoch's batches (all ranks)."""
        return padding_fraction_of(self.epoch_batches(), self.lengths)


def collate(items: Sequence[tuple[str, np.ndarray]]) -> dict:
    """``[(id, tokens), ...]`` -> ``{"tokens": LongTensor[B, L], "mask": BoolTensor[B, L], "ids": [...]}``."""
    if not items:
        raise ValueError("collate got an empty batch")
    L = max(len(t) for _, t in items)
    tokens = np.full((len(items), L), PAD, dtype=np.int64)
    for b, (_, t) in enumerate(items):
        tokens[b, : len(t)] = t
    tokens = torch.from_numpy(tokens)
    return {"tokens": tokens, "mask": tokens != PAD, "ids": [rid for rid, _ in items]}


class EpochLoader(DataLoader):
    """A ``DataLoader`` whose :meth:`set_epoch` reaches its batch sampler and its dataset."""

    def set_epoch(self, epoch: int, skip: int = 0) -> None:
        """Select epoch ``epoch`` (batch order and random crops); ``skip`` this rank's first batches."""
        self.batch_sampler.set_epoch(epoch, skip)
        if hasattr(self.dataset, "set_epoch"):
            self.dataset.set_epoch(epoch)


def make_loader(dataset: SequenceDataset, max_tokens: int, *, shuffle: bool, seed: int = 0,
                num_workers: int = 0, num_replicas: int = 1, rank: int = 0,
                drop_last: bool = False) -> EpochLoader:
    """Token-budget ``DataLoader`` over ``dataset`` yielding :func:`collate` batches.

    Call ``loader.set_epoch(e)`` before each epoch. Workers are started per epoch (not
    persistent) so they see the dataset's current epoch.
    """
    sampler = TokenBudgetBatchSampler(dataset.lengths, max_tokens, shuffle=shuffle, seed=seed,
                                      num_replicas=num_replicas, rank=rank, drop_last=drop_last)
    return EpochLoader(dataset, batch_sampler=sampler, collate_fn=collate, num_workers=num_workers,
                       pin_memory=torch.cuda.is_available())
