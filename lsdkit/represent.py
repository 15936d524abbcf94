"""Representations of sequences from any lsdkit checkpoint: latents and diffusion features at t.

One API for every model kind (:class:`Representer`):

* ``"latent"`` - the encoder's per-residue latent z (autoencoder latent, or the MLM's d_z
  embedding; for a diffusion checkpoint, its frozen encoder's latent), **mean-pooled over real
  residues only** (:func:`masked_mean`; padding never enters a pooled vector).
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
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from lsdkit.alphabet import ALPHABET
from lsdkit.checkpoint import config_to_dict, load_model, resolve
from lsdkit.data.batching import TokenBudgetBatchSampler, collate
from lsdkit.device import resolve_device
from lsdkit.errors import ArgumentError
from lsdkit.io import atomic_save_npz
from lsdkit.models.diffusion import standardise, weights_hash
from lsdkit.schedules import DEFAULT_TS, q_sample

LATENT = "latent"
KINDS = ("autoencoder", "mlm", "diffusion")
CACHE_VERSION = 1


# --- the small pieces ------------------------------------------------------------------------------
def masked_mean(h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``h [B, L, D]`` over the real residues of each row: Σ_i m_i h_i / Σ_i m_i."""
    m = mask[..., None].to(h.dtype)
    return (h * m).sum(1) / m.sum(1).clamp(min=1.0)


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


class Representer:
    """Features of sequences from a checkpoint (path) or model of kind autoencoder | mlm | diffusion.

    ``t``/``layer``: what :meth:`featurize` returns. ``k``: noise draws averaged per t > 0.
    ``max_tokens``: token slots (batch × padded length) per denoiser call; ``t_stack``: t values
    stacked per call (default all), encoder batches get ``max_tokens / t_stack`` slots.
    ``max_len``: longer sequences are cut to their first ``max_len`` residues (default: the
    model's ``max_len``, as ESM's extract truncates); ``lengths`` in the output say so.
    ``progress``: a tqdm bar over the batches of a pass (stderr, or a widget in a notebook), shown
    when the pass takes more than a couple of seconds.
    """

    def __init__(self, model, *, t: float | None = None, layer: int | str = -1, k: int = 1, seed: int = 0,
                 max_tokens: int = 16384, t_stack: int | None = None, max_len: int | None = None,
                 cache_dir: str | os.PathLike | None = None, device: str | torch.device | None = None,
                 progress: bool = True):
        self.source = None
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
        self.model, self.kind = model.to(self.device).eval(), model.kind
        self.t, self.layer, self.k, self.seed = t, layer, int(k), int(seed)
        self.max_tokens, self.t_stack = int(max_tokens), t_stack
        self.max_len = int(max_len or model.config.max_len)
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self.progress = progress
        self.counters: Counter = Counter()   # encoder_batches, denoiser_calls, cache_hits, cache_writes
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
        ``[L_i, D]``. Also ``"lengths"`` (residues used per sequence, after ``max_len``).
        """
        seqs, ids = list(seqs), (list(ids) if ids is not None else None)
        if not seqs:
            raise ValueError("no sequences given")
        ids = ids if ids is not None else [f"seq{i}" for i in range(len(seqs))]
        if len(ids) != len(seqs):
            raise ValueError(f"{len(ids)} ids but {len(seqs)} sequences")
        toks = [ALPHABET.encode(s, record=str(r))[: self.max_len] for s, r in zip(seqs, ids)]
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
        stack = max(1, min(self.t_stack or len(ts), len(ts)))        # t values per denoiser call
        sampler = TokenBudgetBatchSampler(lengths, max(self.max_tokens // stack, int(lengths.max())), shuffle=False)
        self.padding_fraction = sampler.padding_fraction()
        acc: dict = {}

        def add(key, idx, h, mask, weight):
            if per_residue:
                rows = acc.setdefault(key, [None] * N)
                for j, i in enumerate(idx):
                    v = h[j, : lengths[i]].float().cpu().numpy() * weight
                    rows[i] = v if rows[i] is None else rows[i] + v
            else:
                if key not in acc:
                    acc[key] = np.zeros((N, h.shape[-1]), dtype=np.float32)
                acc[key][idx] += masked_mean(h.float(), mask).cpu().numpy() * weight

        desc = f"{self.kind} features" + (f" at {len(ts)} t" if ts else "")
        for idx in tqdm(sampler, total=len(sampler), desc=desc, unit="batch", leave=False, delay=2,
                        disable=not self.progress):
            batch = collate([("", toks[i]) for i in idx])
            tokens, mask = batch["tokens"].to(self.device), batch["mask"].to(self.device)
            z = m.encoder_latents(tokens, mask) if self.kind == "diffusion" else m.encode(tokens, mask).float()
            self.counters["encoder_batches"] += 1
            if None in want:
                add(LATENT, idx, z, mask, 1.0)
            if not ts:
                continue
            B, L, d_z = z.shape
            z0 = standardise(z, m.latent_mean, m.latent_std).masked_fill(~mask[..., None], 0.0)
            for draw in range(self.k):
                eps = torch.zeros(B, L, d_z)
                for j, i in enumerate(idx):
                    eps[j, : lengths[i]] = sequence_noise(clean[i], int(lengths[i]), d_z, self.seed, draw)
                eps = eps.to(self.device)
                t_draw = ts if draw == 0 else [t for t in ts if t > 0]   # t = 0 has no noise to average
                for a in range(0, len(t_draw), stack):
                    chunk = t_draw[a:a + stack]
                    c = len(chunk)
                    tt = torch.tensor(chunk, dtype=torch.float32, device=self.device).repeat_interleave(B)
                    alpha, sigma = m.alpha_sigma(tt)
                    zt = q_sample(z0.repeat(c, 1, 1), alpha, sigma, eps.repeat(c, 1, 1))
                    mask_c = mask.repeat(c, 1)
                    _, hiddens = m.denoiser(zt, tt, mask_c, return_hidden=True)
                    self.counters["denoiser_calls"] += 1
                    for j, t in enumerate(chunk):
                        weight = 1.0 / (self.k if t > 0 else 1)
                        for layer in want[t]:
                            add(feature_key(t, layer), idx, hiddens[layer][j * B:(j + 1) * B], mask, weight)
        return acc

    # -- cache ---------------------------------------------------------------------------------------
    def _cache_path(self, dhash: str, key: str, per_residue: bool) -> Path | None:
        if self.cache_dir is None:
            return None
        noisy = key != LATENT and not key.startswith("t0_")
        spec = {"v": CACHE_VERSION, "model": self.model_hash, "data": dhash, "key": key,
                "pool": "residue" if per_residue else "mean", "max_len": self.max_len,
                "k": self.k if noisy else 0, "seed": self.seed if noisy else 0}
        digest = hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:32]
        return self.cache_dir / f"{key}_{'res' if per_residue else 'mean'}_{digest}.npz"

    def _cache_load(self, dhash, key, per_residue, n):
        path = self._cache_path(dhash, key, per_residue)
        if path is None or not path.is_file():
            return None
        try:
            with np.load(path) as f:
                if per_residue:
                    values, offsets = f["values"], f["offsets"]
                    if len(offsets) != n + 1:
                        return None
                    return [values[offsets[i]:offsets[i + 1]] for i in range(n)]
                values = f["values"]
                return values if len(values) == n else None
        except (OSError, ValueError, KeyError):   # a damaged cache file is recomputed
            return None

    def _cache_save(self, dhash, key, per_residue, value) -> None:
        path = self._cache_path(dhash, key, per_residue)
        if path is None:
            return
        if per_residue:
            offsets = np.zeros(len(value) + 1, dtype=np.int64)
            offsets[1:] = np.cumsum([len(v) for v in value])
            atomic_save_npz(path, {"values": np.concatenate(value).astype(np.float32), "offsets": offsets})
        else:
            atomic_save_npz(path, {"values": np.asarray(value, dtype=np.float32)})
        self.counters["cache_writes"] += 1
