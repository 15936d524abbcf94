"""Cached encoder latents for training a denoiser: the frozen encoder runs once per crop window,
never inside a training step.

A denoiser trains on ``z = encoder(tokens)`` with the encoder frozen, so ``z`` of a given crop
window never changes: :class:`CachedLatentLoader` wraps the corpus loader of
:func:`lsdkit.train.corpus_loaders` and yields the same batches (same order, same crops, same
``tokens``/``mask``/``ids``) plus ``"latents"``: the encoder's latents ``[B, L, d_z]`` (float32,
un-standardised, zero at padding), read from a memory-mapped store on disk.
:meth:`lsdkit.models.diffusion.LatentDiffusion.loss` uses them instead of running the encoder.

**What is cached.** Exactly what the on-the-fly path encodes: the window of each item that the
dataset's crop gives (:meth:`~lsdkit.data.batching.SequenceDataset.crop_start`), keyed by
``(item, crop start)``. Training crops are random per (seed, epoch, item) for sequences longer
than ``max_len``, so such a sequence gets a new entry in each epoch that shows it a new window;
every other sequence is encoded once and reused by every epoch (*ours*: per-epoch windows rather
than full sequences cropped after encoding, whose latents would differ - the encoder attends over
the window it is given).

**When.** Lazily, in chunks, outside the training step: when the loader reaches a batch with an
item not in the store, it encodes the missing items of that batch and of the next
``chunk_batches - 1`` batches (at most up to ``max_batches`` batches into the run: what the run will
consume), packed longest-first into token-budget batches (:func:`~lsdkit.data.batching.pack_sorted`,
the loader's own budget), under ``torch.no_grad`` with the run's precision (bf16 autocast where
the device supports it: the same arithmetic as the encoder inside a bf16 training step). A run
therefore encodes each window it uses once, a rerun or later epoch reuses them, and nothing beyond
the run's step budget is encoded (a 80-step run on Swiss-Prot encodes 80 batches, not 516k
sequences).

**On disk** (``root/<encoder hash>-<key>/``, the key a sha256 of the encoder's kind, config and
weights (:func:`~lsdkit.models.diffusion.weights_hash`), the precision, and the dataset: tokens,
offsets, items, ids, ``max_len``, crop mode and seed): ``spec.json`` and one directory per chunk,
``shard_<sha>/`` holding ``latents.npy`` (all residues of its windows, ``[N_res, d_z]``; float16 when
encoded in bf16 - its rounding, 2⁻¹¹ relative, is 8x finer than bf16's own - else float32: 64 or
128 bytes per cached residue at d_z = 32) and ``keys.npy`` (``[n, 3]``:
item, crop start, length, in storage order). Each shard is written atomically
(:func:`lsdkit.io.atomic_directory`) and read memory-mapped; shards are named by their content, so
concurrent writers (DDP ranks) never clash. A different encoder, precision or corpus is a different
directory; delete ``root`` to reclaim the space.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
from collections import Counter
from pathlib import Path

import numpy as np
import torch

from lsdkit.data.batching import EpochLoader, SequenceDataset, collate, pack_sorted
from lsdkit.device import autocast, resolve_device, resolve_precision
from lsdkit.io import atomic_directory, atomic_write_text
from lsdkit.models.diffusion import weights_hash

CACHE_VERSION = 1
LATENTS = "latents"          # the batch key of the cached latents
FLOAT16_MAX = 65504.0


def dataset_hash(ds: SequenceDataset) -> str:
    """sha256 of everything that decides a dataset's crop windows and their residues."""
    h = hashlib.sha256()
    h.update(json.dumps({"max_len": ds.max_len, "crop": ds.crop, "seed": ds.seed}).encode())
    for arr in (np.ascontiguousarray(ds.tokens, dtype=np.uint8), np.ascontiguousarray(ds.offsets),
                np.ascontiguousarray(ds.index)):
        h.update(memoryview(arr).cast("B"))
    h.update("\x1f".join(map(str, ds.record_ids)).encode())
    return h.hexdigest()


def cache_spec(model, ds: SequenceDataset, precision: str) -> dict:
    """What a store's latents depend on (its key is a hash of this)."""
    from lsdkit.checkpoint import config_to_dict
    return {"version": CACHE_VERSION, "encoder_kind": model.config.encoder_kind,
            "encoder_config": config_to_dict(model.encoder.config), "encoder_hash": weights_hash(model.encoder),
            "precision": precision, "data": dataset_hash(ds), "items": len(ds), "max_len": ds.max_len,
            "crop": ds.crop, "seed": ds.seed}


class LatentStore:
    """Per-window latents on disk: ``shard_*/latents.npy`` + ``keys.npy``, read memory-mapped.
    ``half``: store new shards as float16 (when every value fits), else float32."""

    def __init__(self, path: str | os.PathLike, spec: dict | None = None, half: bool = False):
        self.path, self.half = Path(path), half
        self.path.mkdir(parents=True, exist_ok=True)
        if spec is not None and not (self.path / "spec.json").exists():
            atomic_write_text(self.path / "spec.json", json.dumps(spec, indent=1, sort_keys=True) + "\n")
        self._index: dict[tuple[int, int], tuple[int, int, int]] = {}   # (item, start) -> (shard, offset, length)
        self._shards: list[np.ndarray] = []
        self._seen: set[str] = set()
        self.refresh()

    def __len__(self) -> int:
        return len(self._index)

    def __contains__(self, key) -> bool:
        return key in self._index

    def refresh(self) -> None:
        """Pick up shards written since (by this or another process)."""
        for d in sorted(self.path.glob("shard_*")):
            if d.name in self._seen or not (d / "keys.npy").is_file():
                continue
            keys = np.load(d / "keys.npy")
            values = np.load(d / "latents.npy", mmap_mode="r")
            shard = len(self._shards)
            self._shards.append(values)
            self._seen.add(d.name)
            offset = 0
            for item, start, length in keys.tolist():
                self._index[(item, start)] = (shard, offset, length)
                offset += length

    def get(self, key: tuple[int, int]) -> np.ndarray:
        """Latents ``[length, d_z]`` of window ``key = (item, crop start)`` (a read-only view)."""
        shard, offset, length = self._index[key]
        return self._shards[shard][offset:offset + length]

    def add(self, keys: list[tuple[int, int, int]], latents: list[np.ndarray]) -> None:
        """Store windows ``(item, start, length)`` with their latents ``[length, d_z]`` as one shard."""
        key_arr = np.asarray(keys, dtype=np.int64).reshape(-1, 3)
        values = np.concatenate(latents).astype(np.float32)
        if np.abs(values).max(initial=0.0) < FLOAT16_MAX and self.half:
            values = values.astype(np.float16)
        name = "shard_" + hashlib.sha256(key_arr.tobytes()).hexdigest()[:20]
        with atomic_directory(self.path / name) as stage:
            np.save(stage / "latents.npy", values)
            np.save(stage / "keys.npy", key_arr)
        self.refresh()


class CachedLatentLoader:
    """A corpus loader's batches plus ``"latents"`` from a :class:`LatentStore` (see the module doc).

    ``loader``: an :class:`~lsdkit.data.batching.EpochLoader` over a
    :class:`~lsdkit.data.batching.SequenceDataset` (what :func:`lsdkit.train.corpus_loaders` makes).
    ``model``: the :class:`~lsdkit.models.diffusion.LatentDiffusion` whose frozen encoder fills the
    store (on the device its weights are on when a chunk is encoded). ``max_batches``: batches the
    run will consume (counted over epochs from epoch 0); ``chunk_batches``: batches encoded ahead.
    ``counters``: ``encoded_windows`` and ``encoder_batches`` (encoding work), ``served_windows``.
    """

    def __init__(self, loader: EpochLoader, model, root: str | os.PathLike, precision: str = "fp32",
                 max_batches: int | None = None, chunk_batches: int = 64):
        if not isinstance(getattr(loader, "dataset", None), SequenceDataset):
            raise TypeError("CachedLatentLoader needs a loader over a SequenceDataset (lsdkit.data.corpus.make_loader)")
        if precision not in ("bf16", "fp32"):
            raise ValueError(f"precision must be resolved to 'bf16' or 'fp32', got {precision!r}")
        self.loader, self.model, self.precision = loader, model, precision
        self.dataset: SequenceDataset = loader.dataset
        self.sampler = loader.batch_sampler
        self.max_batches, self.chunk_batches = max_batches, max(1, int(chunk_batches))
        spec = cache_spec(model, self.dataset, precision)
        key = hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()
        self.store = LatentStore(Path(root) / f"{spec['encoder_hash'][:12]}-{key[:16]}", spec,
                                 half=precision == "bf16")
        self.epoch, self.skip = 0, 0
        self._epoch_lengths: dict[int, int] = {}
        self.counters: Counter = Counter()

    @property
    def path(self) -> Path:
        return self.store.path

    def set_epoch(self, epoch: int, skip: int = 0) -> None:
        """Select epoch ``epoch`` (batch order, crops); ``skip`` this rank's first batches."""
        self.epoch, self.skip = int(epoch), int(skip)
        self.loader.set_epoch(epoch, skip)

    def __len__(self) -> int:
        return len(self.sampler)

    # -- positions in the run ------------------------------------------------------------------------
    def _epoch_length(self, epoch: int) -> int:
        if epoch not in self._epoch_lengths:
            s = copy.copy(self.sampler)
            s._cache = None
            s.set_epoch(epoch, 0)
            self._epoch_lengths[epoch] = len(s)
        return self._epoch_lengths[epoch]

    def _budget_left(self, position: int) -> int | None:
        """Batches the run still consumes from ``position`` of the current epoch on (None: no limit)."""
        if self.max_batches is None:
            return None
        done = sum(self._epoch_length(e) for e in range(self.epoch)) + position
        return self.max_batches - done

    # -- the batches ---------------------------------------------------------------------------------
    def _keys(self, idx) -> list[tuple[int, int]]:
        return [(int(i), self.dataset.crop_start(int(i))) for i in idx]

    def __iter__(self):
        # a DataLoader draws its workers' base seed from the torch RNG when its iterator is made;
        # drawing the same here keeps the training RNG stream, so a run's noise draws (and, in
        # fp32, its loss curve) are the uncached run's
        torch.empty((), dtype=torch.int64).random_(generator=self.loader.generator)
        return self._batches(list(self.sampler))     # this rank's batches of the epoch, after `skip`

    def _batches(self, batches):
        for k, idx in enumerate(batches):
            keys = self._keys(idx)
            if any(key not in self.store for key in keys):
                left = self._budget_left(self.skip + k)
                n = self.chunk_batches if left is None else max(1, min(self.chunk_batches, left))
                self.fill([self._keys(b) for b in batches[k:k + n]])
            self.counters["served_windows"] += len(keys)
            yield self._batch(idx, keys)

    def _batch(self, idx, keys) -> dict:
        batch = collate([self.dataset[int(i)] for i in idx])
        B, L = batch["tokens"].shape
        z = np.zeros((B, L, self.model.config.d_z), dtype=np.float32)
        for b, key in enumerate(keys):
            v = self.store.get(key)
            z[b, :len(v)] = v
        batch[LATENTS] = torch.from_numpy(z)
        return batch

    @torch.no_grad()
    def fill(self, key_batches: list[list[tuple[int, int]]]) -> int:
        """Encode the windows of ``key_batches`` not yet stored (one shard); returns how many."""
        self.store.refresh()                     # another process may have written them meanwhile
        missing = list(dict.fromkeys(k for keys in key_batches for k in keys if k not in self.store))
        if not missing:
            return 0
        ds = self.dataset
        lengths = np.array([int(ds.lengths[i]) for i, _ in missing], dtype=np.int64)
        order = np.argsort(-lengths, kind="stable")
        dev = next(self.model.encoder.parameters()).device
        enc_keys, latents = [], []
        for group in pack_sorted(order, lengths, max(self.sampler.max_tokens, int(lengths.max()))):
            items = []
            for g in group.tolist():
                i, start = missing[g]
                a = int(ds.offsets[ds.index[i]]) + start
                items.append(("", np.asarray(ds.tokens[a:a + lengths[g]], dtype=np.int64)))
            b = collate(items)
            mask = b["mask"].to(dev)
            with autocast(dev, self.precision):
                z = self.model.encoder_latents(b["tokens"].to(dev), mask)
            z = z.float().cpu().numpy()
            for row, g in enumerate(group.tolist()):
                enc_keys.append((*missing[g], int(lengths[g])))
                latents.append(z[row, :lengths[g]])
            self.counters["encoder_batches"] += 1
        self.store.add(enc_keys, latents)
        self.counters["encoded_windows"] += len(enc_keys)
        return len(enc_keys)


def cached_loaders(model, train, valid, root: str | os.PathLike, config) -> tuple:
    """``(train, valid)`` corpus loaders wrapped in :class:`CachedLatentLoader` s under ``root``.

    ``config`` (a :class:`~lsdkit.train.TrainConfig`) gives the precision (resolved on its device)
    and the budgets: the training loader encodes at most ``max_steps`` batches ahead, the
    validation loader ``eval_batches``. A loader that is not over a ``SequenceDataset`` (e.g. a
    list of batch dicts) is returned unchanged: its batches are encoded in the step, as before.
    """
    precision = resolve_precision(config.precision, resolve_device(config.device))

    def wrap(loader, max_batches):
        if loader is None or not isinstance(getattr(loader, "dataset", None), SequenceDataset) \
                or not hasattr(loader, "batch_sampler"):
            return loader
        return CachedLatentLoader(loader, model, root, precision, max_batches=max_batches)

    return wrap(train, config.max_steps), wrap(valid, config.eval_batches)


__all__ = ["CachedLatentLoader", "LatentStore", "cached_loaders", "cache_spec", "dataset_hash", "LATENTS"]
