"""Representations of sequences from any lsdkit checkpoint: latents and diffusion features at t.

One API for every model kind (:class:`Representer`):

* ``"latent"`` - the encoder's per-residue latent z (autoencoder latent, or the MLM's d_z
  embedding; for a diffusion checkpoint, its frozen encoder's latent), **mean-pooled over real
  residues only** (:func:`masked_mean`; padding never enters a pooled vector). A sequence longer
  than the model's window is covered by overlapping windows (:func:`windows`), each residue's
  features from the window where it is most central; its pooled vector is the mean over all its
  residues (``long="truncate"`` cuts it instead).
* ``"t{t}_layer{l}"`` (diffusion checkpoints) - the **representation at level t**: standardised
  latents z₀ are noised, z_t = α_t z₀ + σ_t ε, the denoiser runs at t and hidden layer ``l``
  (0 = input projection, i = output of block i; :class:`~lsdkit.models.diffusion.Denoiser`) is
  pooled. Optionally averaged over ``k`` noise draws.

**Noise is per sequence** (:func:`sequence_noise`): ε for a sequence comes from a generator seeded
by (seed, draw, residue string), so a sequence gets the same ε alone, in any batch, in any order,
on any device. *Ours*: the same ε is used at every t (common random numbers), so differences
along a timestep sweep come from the noise level, not from different draws.

**Sweeps** (:meth:`Representer.features` with several t): the encoder runs once per batch; the
K noised copies of the batch are stacked along the batch dimension (``t_stack`` at a time, all K
by default) and the denoiser runs once per stack, returning every (t, layer) of its copies at
once. Batches are packed with the corpus's length-bucketed :class:`TokenBudgetBatchSampler`
under ``max_tokens / t_stack`` slots, so each denoiser call holds about ``max_tokens`` slots;
the small, length-sorted batches also waste less padding than one big single-t batch.

**Cache** (``cache_dir``): one ``.npz`` per feature key, named by a hash of (model weights, ids +
sequences, key, pooling, k, seed, max_len); written atomically. A repeated call loads instead of
recomputing (``Representer.counters`` counts both).
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from lsdkit.alphabet import ALPHABET
from lsdkit.checkpoint import config_to_dict, load_model, resolve
from lsdkit.data.batching import TokenBudgetBatchSampler, collate
from lsdkit.device import autocast, resolve_device, resolve_precision
from lsdkit.errors import ArgumentError
from lsdkit.io import atomic_save_npz, atomic_save_ragged, load_ragged
from lsdkit.models.diffusion import standardise, weights_hash
from lsdkit.schedules import DEFAULT_TS, q_sample

LATENT = "latent"
LONG_MODES = ("window", "truncate")
KINDS = ("autoencoder", "mlm", "diffusion", "pretrained")   # pretrained: lsdkit.pretrained (NEAR, ESM-2)
CACHE_VERSION = 1


# --- the small pieces ------------------------------------------------------------------------------
def masked_mean(h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``h [B, L, D]`` over the real residues of each row: Σ_i m_i h_i / Σ_i m_i."""
    m = mask[..., None].to(h.dtype)
    return (h * m).sum(1) / m.sum(1).clamp(min=1.0)


def windows(length: int, width: int) -> list[tuple[int, int, int]]:
    """The windows covering a sequence of ``length`` residues: ``(start, a, b)`` with the window
    ``[start, start + width)`` owning its residues ``[a, b)`` (window coordinates). One window when
    ``length <= width``; else stride ``width // 2`` with the last window aligned to the end, and each
    residue owned by the window whose centre is nearest (the cut between two windows is the midpoint
    of their centres, which lies inside both), so every residue is owned exactly once."""
    if length <= width:
        return [(0, 0, length)]
    stride = max(1, width // 2)
    starts = list(range(0, length - width, stride)) + [length - width]
    cuts = [0] + [(s0 + s1 + width) // 2 for s0, s1 in zip(starts, starts[1:])] + [length]
    return [(s0, cuts[k] - s0, cuts[k + 1] - s0) for k, s0 in enumerate(starts)]


def feature_key(t: float | None, layer: int | None = None) -> str:
    """``"latent"`` for t=None, else ``"t{t:g}_layer{layer}"`` (e.g. ``t0.1_layer3``)."""
    return LATENT if t is None else f"t{float(t):g}_layer{int(layer)}"


def sequence_noise(seq: str, length: int, d_z: int, seed: int, draw: int = 0) -> torch.Tensor:
    """ε ~ N(0, I) [length, d_z] for one sequence, from a generator seeded by (seed, draw, seq)."""
    digest = hashlib.sha256(f"{seed}|{draw}|{seq}".encode()).digest()
    gen = torch.Generator().manual_seed(int.from_bytes(digest[:8], "little") & ((1 << 63) - 1))
    return torch.randn(length, d_z, generator=gen)


def data_hash(ids: Sequence[str], seqs: Sequence[str]) -> str:
    """sha256 of the (id, sequence) list, in order."""
    h = hashlib.sha256()
    for i, s in zip(ids, seqs):
        h.update(f"{i}\x1f{s}\x1e".encode())
    return h.hexdigest()


class KeyFeaturizer:
    """One feature key of a :class:`Representer` in the probes' featurizer protocol
    (``name``, ``__call__(seqs) -> [N, D]``, ``residues(seqs) -> list of [L_i, D]``)."""

    def __init__(self, rep: Representer, t: float | None, layer: int, name: str | None = None):
        self.rep, self.t, self.layer = rep, t, layer
        self.name = name or rep._one_key(t, layer)

    def __call__(self, seqs: Sequence[str], ids: Sequence[str] | None = None) -> np.ndarray:
        return self.rep.pooled(seqs, ids, self.t, self.layer)

    def residues(self, seqs: Sequence[str], ids: Sequence[str] | None = None) -> list[np.ndarray]:
        return self.rep.per_residue(seqs, ids, self.t, self.layer)


# --- the representer -------------------------------------------------------------------------------
class LayerError(ArgumentError):
    """A denoiser layer index that the model does not have."""


class MaxLenError(ArgumentError):
    """A ``max_len`` below 1 or beyond the length the model was trained on."""


class Representer:
    """Features of sequences from a checkpoint (path) or model of kind autoencoder | mlm | diffusion.

    ``t``/``layer``: what :meth:`featurize` returns. ``k``: noise draws averaged per t > 0.
    ``max_tokens``: token slots (batch × padded length) per denoiser call; ``t_stack``: t values
    stacked per call (default all), encoder batches get ``max_tokens / t_stack`` slots.
    ``max_len``: the window (default: the model's ``max_len``). ``long``: what happens to a longer
    sequence. ``"window"`` (default): it is covered by overlapping windows of ``max_len`` (stride
    ``max_len // 2``, the last one aligned to its end, :func:`windows`), each residue's features are
    taken from the window where it is most central, and the pooled vector is the mean over all its
    residues, each counted once; a line on stderr says how many sequences were windowed.
    ``"truncate"``: it is cut to its first ``max_len`` residues (as ESM's extract does); ``lengths``
    in the output say so.
    ``progress``: a tqdm bar over the batches of a pass (stderr, or a widget in a notebook), shown
    when the pass takes more than a couple of seconds. ``precision`` (fp32 | bf16 | auto,
    :func:`lsdkit.device.resolve_precision`): bf16 runs the networks under bf16 autocast (pooling
    and the noise stay fp32); it is part of the cache key.
    """

    def __init__(self, model, *, t: float | None = None, layer: int | str = -1, k: int = 1, seed: int = 0,
                 max_tokens: int = 16384, t_stack: int | None = None, max_len: int | None = None,
                 cache_dir: str | os.PathLike | None = None, device: str | torch.device | None = None,
                 progress: bool = True, precision: str = "fp32", long: str = "window"):
        self.source = None
        if long not in LONG_MODES:
            raise ArgumentError(f"long={long!r}: expected one of {', '.join(LONG_MODES)}")
        self.long = long
        if isinstance(model, (str, os.PathLike)):
            self.source = str(resolve(model))
            model = load_model(model)
        if getattr(model, "kind", None) not in KINDS:
            raise ValueError(f"cannot represent with a model of kind {getattr(model, 'kind', None)!r}; "
                             f"expected one of {KINDS}")
        if k < 1 or max_tokens < 1 or (t_stack is not None and t_stack < 1):
            raise ValueError(f"k, max_tokens and t_stack must be >= 1 (k={k}, max_tokens={max_tokens}, "
                             f"t_stack={t_stack})")
        self.device = resolve_device(device)
        self.precision = resolve_precision(precision, self.device)
        self.model, self.kind = model.to(self.device).eval(), model.kind
        self.t, self.layer, self.k, self.seed = t, layer, int(k), int(seed)
        self.max_tokens, self.t_stack = int(max_tokens), t_stack
        trained = int(model.config.max_len)
        if max_len is not None and not 1 <= int(max_len) <= trained:
            raise MaxLenError(f"max_len={max_len} is outside 1..{trained}: the {model.kind} model was trained on "
                              f"sequences of at most {trained} residues (its max_len)")
        self.max_len = int(max_len or trained)
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self.progress = progress
        self.counters: Counter = Counter()   # encoder_batches, denoiser_calls, cache_hits, cache_writes, windowed
        self.padding_fraction: float | None = None
        self._model_hash: str | None = None

    # -- what can be asked ---------------------------------------------------------------------------
    @property
    def n_layers(self) -> int:
        """Number of denoiser hidden layers (n_layers + 1), 0 for autoencoder/MLM checkpoints."""
        return self.model.config.n_layers + 1 if self.kind == "diffusion" else 0

    def resolve_layers(self, layer: int | str | Iterable[int]) -> list[int]:
        """``-1`` (last), ``"all"``, an int or ints in [-n, n) -> sorted non-negative layer indices."""
        n = self.n_layers
        if layer == "all":
            return list(range(n))
        layers = [layer] if isinstance(layer, (int, np.integer)) else list(layer)
        out = []
        for x in layers:
            if not -n <= int(x) < n:
                raise LayerError(f"layer {x} does not exist: the denoiser has hidden layers 0..{n - 1} "
                                 f"(0 = input projection, {n - 1} = last block)")
            out.append(int(x) % n)
        return sorted(set(out))

    def _check_ts(self, ts: Iterable[float | None]) -> list[float | None]:
        ts = list(ts)
        for t in ts:
            if t is None:
                continue
            if self.kind != "diffusion":
                raise ArgumentError(f"t={t}: a {self.kind} checkpoint has no diffusion levels; use t=None "
                                 "(the latent) or a diffusion checkpoint")
            if not 0.0 <= float(t) <= 1.0:
                raise ArgumentError(f"t={t} is outside [0, 1]")
        return ts

    @property
    def model_hash(self) -> str:
        if self._model_hash is None:
            cfg = json.dumps(config_to_dict(self.model.config), sort_keys=True)
            self._model_hash = hashlib.sha256(f"{self.kind}|{cfg}|{weights_hash(self.model)}".encode()).hexdigest()
        return self._model_hash

    # -- public calls --------------------------------------------------------------------------------
    def features(self, seqs: Sequence[str], ids: Sequence[str] | None = None,
                 ts: Iterable[float | None] = (None,), layers: int | str | Iterable[int] = -1,
                 per_residue: bool = False) -> dict:
        """``{feature_key(t, l): array}`` for every t in ``ts`` (None = the latent) and layer.

        Pooled: ``np.ndarray [N, D]`` (float32). ``per_residue=True``: a list of N arrays
        ``[L_i, D]``. Also ``"lengths"`` (residues used per sequence: all of them, or ``max_len`` at
        most with ``long="truncate"``).
        """
        seqs, ids = list(seqs), (list(ids) if ids is not None else None)
        if not seqs:
            raise ValueError("no sequences given")
        ids = ids if ids is not None else [f"seq{i}" for i in range(len(seqs))]
        if len(ids) != len(seqs):
            raise ValueError(f"{len(ids)} ids but {len(seqs)} sequences")
        toks = [ALPHABET.encode(s, record=str(r)) for s, r in zip(seqs, ids)]
        if self.long == "truncate":
            toks = [t[: self.max_len] for t in toks]
        clean = [ALPHABET.decode(t) for t in toks]
        ts = self._check_ts(ts)
        layer_list = self.resolve_layers(layers) if any(t is not None for t in ts) else []
        want = {t: ([None] if t is None else layer_list) for t in dict.fromkeys(ts)}
        dhash = data_hash(ids, clean)
        out, missing = {}, {}
        for t, ls in want.items():
            for l in ls:
                key = feature_key(t, l)
                cached = self._cache_load(dhash, key, per_residue, len(seqs))
                if cached is None:
                    missing.setdefault(t, []).append(l)
                else:
                    out[key] = cached
                    self.counters["cache_hits"] += 1
        if missing:
            windowed = sum(len(t) > self.max_len for t in toks)
            if windowed:
                self.counters["windowed"] += windowed
                print(f"[lsdkit] {windowed} of {len(toks)} sequences are longer than the window of {self.max_len} "
                      f"residues: their features come from overlapping windows", file=sys.stderr, flush=True)
            fresh = self._compute(toks, clean, missing, per_residue)
            for key, value in fresh.items():
                self._cache_save(dhash, key, per_residue, value)
            out.update(fresh)
        out["lengths"] = np.array([len(t) for t in toks], dtype=np.int64)
        return out

    def _one_key(self, t, layer) -> str:
        if t is None:
            return LATENT
        layers = self.resolve_layers(layer)
        if len(layers) != 1:
            raise ValueError(f"layer={layer!r} names {len(layers)} layers; this call returns one "
                             "(use features(..., layers=...) for several)")
        return feature_key(t, layers[0])

    def pooled(self, seqs, ids=None, t: float | None = None, layer: int = -1) -> np.ndarray:
        """Masked-mean-pooled features ``[N, D]`` at level t (None: the latent)."""
        key = self._one_key(t, layer)
        return self.features(seqs, ids, [t], layer)[key]

    def per_residue(self, seqs, ids=None, t: float | None = None, layer: int = -1) -> list[np.ndarray]:
        """Per-residue features: a list of ``[L_i, D]`` arrays at level t (None: the latent)."""
        key = self._one_key(t, layer)
        return self.features(seqs, ids, [t], layer, per_residue=True)[key]

    def sweep(self, seqs, ids=None, ts: Iterable[float] = DEFAULT_TS, layers="all") -> dict:
        """Pooled features for every (t, layer) from one pass per batch, plus the latent."""
        return self.features(seqs, ids, [None, *ts], layers)

    def featurizer(self, t: float | None = None, layer: int = -1, name: str | None = None) -> KeyFeaturizer:
        """The probes' featurizer for one key: ``f(seqs, ids=None) -> [N, D]``, ``f.residues(...)``."""
        return KeyFeaturizer(self, t, layer, name)

    def featurize(self, seqs, ids=None) -> np.ndarray:
        """Pooled features at the constructor's ``t`` and ``layer``."""
        return self.pooled(seqs, ids, self.t, self.layer)

    # -- the pass ------------------------------------------------------------------------------------
    @torch.no_grad()
    def _compute(self, toks: list[np.ndarray], clean: list[str], want: dict, per_residue: bool) -> dict:
        m, N = self.model, len(toks)
        ts = [t for t in want if t is not None]
        lengths = np.array([len(t) for t in toks], dtype=np.int64)
        # the units of a pass: (sequence, window start, owned residues [a, b) of the window)
        units = [(i, start, a, b) for i in range(N) for start, a, b in windows(int(lengths[i]), self.max_len)]
        unit_len = np.array([min(self.max_len, lengths[i] - start) for i, start, _, _ in units], dtype=np.int64)
        stack = max(1, min(self.t_stack or len(ts), len(ts)))        # t values per denoiser call
        sampler = TokenBudgetBatchSampler(unit_len, max(self.max_tokens // stack, int(unit_len.max())), shuffle=False)
        self.padding_fraction = sampler.padding_fraction()
        acc: dict = {}

        def add(key, idx, h, weight):
            """Each unit's owned residues into its sequence: rows (per residue) or the owned residues'
            sum divided by the sequence's length (pooled; ``pool_w`` and ``seq`` are the batch's)."""
            h = h.float()
            if per_residue:
                rows = acc.setdefault(key, [None] * N)
                for j, u in enumerate(idx):
                    i, start, a, b = units[u]
                    if rows[i] is None:
                        rows[i] = np.zeros((lengths[i], h.shape[-1]), dtype=np.float32)
                    rows[i][start + a:start + b] += h[j, a:b].cpu().numpy() * weight
            else:
                if key not in acc:
                    acc[key] = np.zeros((N, h.shape[-1]), dtype=np.float32)
                np.add.at(acc[key], seq, torch.einsum("bl,bld->bd", pool_w, h).cpu().numpy() * weight)

        desc = f"{self.kind} features" + (f" at {len(ts)} t" if ts else "")
        for idx in tqdm(sampler, total=len(sampler), desc=desc, unit="batch", leave=False, delay=2,
                        disable=not self.progress):
            pieces = [toks[units[u][0]][units[u][1]:units[u][1] + self.max_len] for u in idx]
            batch = collate([("", p) for p in pieces])
            tokens, mask = batch["tokens"].to(self.device), batch["mask"].to(self.device)
            seq = np.array([units[u][0] for u in idx])
            owned = torch.tensor([units[u][2:] for u in idx], device=self.device)     # [B, 2]: a, b
            pos = torch.arange(tokens.shape[1], device=self.device)
            pool_w = (((pos >= owned[:, :1]) & (pos < owned[:, 1:])).float()
                      / torch.as_tensor(lengths[seq], dtype=torch.float32, device=self.device)[:, None])
            with autocast(self.device, self.precision):
                z = m.encoder_latents(tokens, mask) if self.kind == "diffusion" else m.encode(tokens, mask)
            z = z.float()
            self.counters["encoder_batches"] += 1
            if None in want:
                add(LATENT, idx, z, 1.0)
            if not ts:
                continue
            B, L, d_z = z.shape
            z0 = standardise(z, m.latent_mean, m.latent_std).masked_fill(~mask[..., None], 0.0)
            for draw in range(self.k):
                eps = torch.zeros(B, L, d_z)
                for j, (u, p) in enumerate(zip(idx, pieces)):
                    i, start = units[u][:2]
                    eps[j, : len(p)] = sequence_noise(clean[i][start:start + len(p)], len(p), d_z, self.seed, draw)
                eps = eps.to(self.device)
                t_draw = ts if draw == 0 else [t for t in ts if t > 0]   # t = 0 has no noise to average
                for a in range(0, len(t_draw), stack):
                    chunk = t_draw[a:a + stack]
                    c = len(chunk)
                    tt = torch.tensor(chunk, dtype=torch.float32, device=self.device).repeat_interleave(B)
                    alpha, sigma = m.alpha_sigma(tt)
                    zt = q_sample(z0.repeat(c, 1, 1), alpha, sigma, eps.repeat(c, 1, 1))
                    mask_c = mask.repeat(c, 1)
                    with autocast(self.device, self.precision):
                        _, hiddens = m.denoiser(zt, tt, mask_c, return_hidden=True)
                    self.counters["denoiser_calls"] += 1
                    for j, t in enumerate(chunk):
                        weight = 1.0 / (self.k if t > 0 else 1)
                        for layer in want[t]:
                            add(feature_key(t, layer), idx, hiddens[layer][j * B:(j + 1) * B], weight)
        return acc

    # -- cache ---------------------------------------------------------------------------------------
    def _cache_path(self, dhash: str, key: str, per_residue: bool) -> Path | None:
        if self.cache_dir is None:
            return None
        noisy = key != LATENT and not key.startswith("t0_")
        spec = {"v": CACHE_VERSION, "model": self.model_hash, "data": dhash, "key": key,
                "pool": "residue" if per_residue else "mean", "max_len": self.max_len,
                "k": self.k if noisy else 0, "seed": self.seed if noisy else 0,
                **({"precision": self.precision} if self.precision != "fp32" else {})}
        digest = hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:32]
        return self.cache_dir / f"{key}_{'res' if per_residue else 'mean'}_{digest}.npz"

    def _cache_load(self, dhash, key, per_residue, n):
        path = self._cache_path(dhash, key, per_residue)
        if path is None or not path.is_file():
            return None
        try:
            if per_residue:
                rows = load_ragged(path)
                return rows if len(rows) == n else None
            with np.load(path) as f:
                values = f["values"]
            return values if len(values) == n else None
        except (OSError, ValueError, KeyError):   # a damaged cache file is recomputed
            return None

    def _cache_save(self, dhash, key, per_residue, value) -> None:
        path = self._cache_path(dhash, key, per_residue)
        if path is None:
            return
        if per_residue:
            atomic_save_ragged(path, value)
        else:
            atomic_save_npz(path, {"values": np.asarray(value, dtype=np.float32)})
        self.counters["cache_writes"] += 1
