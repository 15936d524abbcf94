"""UMAP: 2-D maps of latents, cached on disk, aligned across timesteps, and the points they show.

:func:`umap_embed` is reproducible for a given ``random_state`` (duplicate rows are collapsed
first, umap#1277) and, given a ``cache_dir``, keeps each embedding as an ``.npz`` keyed by a hash of
the input array and the parameters, so a re-run notebook loads its maps instead of fitting them
(``Study.cache_dir`` is the run directory's cache). :func:`embed_over_t` chains maps over t.

:func:`residue_latents` and :func:`protein_latents` gather what notebook 03 maps: latents of
validation proteins of a task, drawn with a seed, for every encoder of a :class:`~lsdkit.study.Study`,
with the labels that colour them.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from lsdkit.io import atomic_save_npz
from lsdkit.viz.figures import protein_labels, residue_labels, scatter_panels

CACHE_VERSION = 1


def umap_embed(X, *, random_state: int = 0, dedupe: bool = True, decimals: int = 4,
               n_neighbors: int = 15, min_dist: float = 0.1, metric: str = "euclidean",
               init: str | np.ndarray = "spectral", cache_dir: str | os.PathLike | None = None) -> np.ndarray:
    """2-D UMAP of the rows of ``X`` [N, d], reproducible for a given ``random_state``.

    With ``dedupe`` the rows are quantised to ``decimals`` digits of their overall scale and
    only distinct rows are embedded (duplicates break UMAP's determinism, umap#1277; LSD-TN
    latents have many); duplicates get their representative's coordinates. ``init`` may be an
    [N, 2] array (e.g. the embedding at a neighbouring timestep) to keep successive maps aligned.

    With ``cache_dir`` the embedding is kept there as ``umap_<hash>.npz``, the hash taken over
    ``X``, ``init`` and every parameter (and the umap-learn version), so a repeated call loads it
    instead of fitting again; a damaged file is recomputed.
    """
    X = np.asarray(X, dtype=np.float32)
    if X.ndim != 2:
        raise ValueError(f"umap_embed: expected a 2-D array [N, d], got shape {X.shape}")
    if not np.isfinite(X).all():
        bad = int(np.flatnonzero(~np.isfinite(X).all(axis=1))[0])
        raise ValueError(f"umap_embed: row {bad} contains NaN or infinity")
    if dedupe:
        scale = float(np.abs(X).max()) or 1.0
        _, first, inverse = np.unique(np.round(X / scale, decimals), axis=0, return_index=True,
                                      return_inverse=True)
        inverse = inverse.reshape(-1)
    else:
        first, inverse = np.arange(len(X)), np.arange(len(X))
    rows = X[first]
    if len(rows) < 4:
        raise ValueError(f"umap_embed: need at least 4 distinct rows, got {len(rows)} (of {len(X)})")
    if isinstance(init, np.ndarray):
        if init.shape != (len(X), 2):
            raise ValueError(f"umap_embed: init must have shape {(len(X), 2)}, got {init.shape}")
        init = np.asarray(init, dtype=np.float64)[first]
    path = _cache_path(cache_dir, X, init, dict(random_state=random_state, dedupe=dedupe, decimals=decimals,
                                                 n_neighbors=n_neighbors, min_dist=min_dist, metric=metric))
    cached = _cache_load(path, len(X))
    if cached is not None:
        return cached
    emb = _fit(rows, init=init, random_state=random_state, n_neighbors=min(n_neighbors, len(rows) - 1),
               min_dist=min_dist, metric=metric)[inverse]
    if path is not None:
        atomic_save_npz(path, {"embedding": emb})
    return emb


def _fit(rows: np.ndarray, *, init, random_state: int, n_neighbors: int, min_dist: float, metric: str) -> np.ndarray:
    """The UMAP fit itself: [n, 2] float32 coordinates of ``rows``."""
    import umap  # slow import (numba); only when needed

    reducer = umap.UMAP(n_components=2, n_neighbors=n_neighbors, min_dist=min_dist,
                        metric=metric, init=init, random_state=random_state, n_jobs=1)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*n_jobs.*overridden.*")
        warnings.filterwarnings("ignore", message=".*Spectral initialisation failed.*")
        emb = reducer.fit_transform(rows)
    return np.asarray(emb, dtype=np.float32)


def _cache_path(cache_dir, X: np.ndarray, init, params: dict) -> Path | None:
    if cache_dir is None:
        return None
    from importlib.metadata import version

    spec = {"v": CACHE_VERSION, "umap": version("umap-learn"), "shape": list(X.shape), **params,
            "init": "array" if isinstance(init, np.ndarray) else init}
    h = hashlib.sha256(json.dumps(spec, sort_keys=True).encode())
    h.update(np.ascontiguousarray(X).tobytes())
    if isinstance(init, np.ndarray):
        h.update(np.ascontiguousarray(init, dtype=np.float64).tobytes())
    return Path(cache_dir) / f"umap_{h.hexdigest()[:32]}.npz"


def _cache_load(path: Path | None, n: int) -> np.ndarray | None:
    if path is None or not path.is_file():
        return None
    try:
        with np.load(path) as f:
            emb = f["embedding"]
    except (OSError, ValueError, KeyError):   # a damaged cache file is recomputed
        return None
    return emb if emb.shape == (n, 2) and emb.dtype == np.float32 else None


def align_to(Y: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """``Y`` [N, 2] rotated/reflected, scaled and shifted onto ``reference`` (orthogonal Procrustes),
    so successive UMAPs of the same points do not jump around."""
    from scipy.linalg import orthogonal_procrustes

    mu_y, mu_r = Y.mean(0), reference.mean(0)
    Yc, Rc = Y - mu_y, reference - mu_r
    R, _ = orthogonal_procrustes(Yc, Rc)
    scale = np.linalg.norm(Rc) / max(np.linalg.norm(Yc), 1e-12)
    return (Yc @ R * scale + mu_r).astype(np.float32)


def embed_over_t(features_by_t: Mapping[float, np.ndarray], *, random_state: int = 0,
                 **kwargs) -> dict[float, np.ndarray]:
    """UMAP at each t (ascending), each initialised from the previous map and aligned to it
    (:func:`align_to`) so points move smoothly as t changes; ``kwargs`` go to :func:`umap_embed`
    (e.g. ``cache_dir``)."""
    coords: dict[float, np.ndarray] = {}
    prev = None
    for t in sorted(features_by_t):
        emb = umap_embed(features_by_t[t], random_state=random_state,
                         init=prev if prev is not None else "spectral", **kwargs)
        coords[t] = emb if prev is None else align_to(emb, prev)
        prev = coords[t]
    return coords


def sample_rows(n: int, max_rows: int, seed: int = 0) -> np.ndarray:
    """Sorted indices of at most ``max_rows`` of ``n`` rows, drawn without replacement."""
    if n <= max_rows:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=max_rows, replace=False))


def sample_records(task, n: int, seed: int = 0, split: str = "valid") -> list:
    """At most ``n`` records of ``task``'s ``split`` (a :class:`~lsdkit.data.tasks.TaskData`), drawn
    with :func:`sample_rows` (in their order in the split)."""
    records = task.splits[split]
    return [records[i] for i in sample_rows(len(records), n, seed=seed)]


@dataclass
class LatentPoints:
    """Latents of drawn points, ``latents[encoder display name]`` [N, d], and their ``labels`` (N rows)."""

    latents: dict[str, np.ndarray]
    labels: pd.DataFrame
    n_proteins: int
    unit: str = "residues"

    def summary(self) -> str:
        sizes = {k: v.shape[1] for k, v in self.latents.items()}
        return f"{len(self.labels)} {self.unit} of {self.n_proteins} proteins; latent sizes: {sizes}"


def _encoder_representers(study) -> dict:
    """A Representer of each latent space of the study (its encoders and pretrained models), by display name."""
    return {study.display_name(name): study.representer(name, diffusion=False) for name in study.latent_spaces}


def residue_latents(study, task: str, n_proteins: int, max_points: int, seed: int = 0) -> LatentPoints:
    """Per-residue latents of every encoder of ``study`` for ``max_points`` residues drawn (seeded) from
    ``n_proteins`` validation proteins of the per-residue ``task`` (themselves drawn), labelled by
    :func:`~lsdkit.viz.figures.residue_labels` with the task's classes in a column named ``task``.
    Sequences are cut to the encoders' smallest ``max_len`` so latents and labels line up."""
    from lsdkit.data.tasks import load_task

    reps = _encoder_representers(study)
    max_len = min(rep.max_len for rep in reps.values())
    data = load_task(task, study.data_dir)
    records = sample_records(data, n_proteins, seed=seed)
    ids, seqs = [r.id for r in records], [r.sequence[:max_len] for r in records]
    labels = residue_labels(ids, seqs, {task: [r.label[:max_len] for r in records]}, classes={task: data.classes})
    rows = sample_rows(len(labels), max_points, seed=seed)
    latents = {name: np.concatenate(rep.per_residue(seqs, ids))[rows] for name, rep in reps.items()}
    return LatentPoints(latents, labels.iloc[rows].reset_index(drop=True), len(ids))


def protein_latents(study, task: str, n_proteins: int, seed: int = 0, label: str | None = None) -> LatentPoints:
    """Mean-pooled latents of every encoder of ``study`` for ``n_proteins`` validation proteins of the
    per-protein ``task`` (drawn with ``seed``); labels: protein_id, the class name (column ``label``,
    default the task name) and length."""
    from lsdkit.data.tasks import load_task

    reps = _encoder_representers(study)
    data = load_task(task, study.data_dir)
    records = sample_records(data, n_proteins, seed=seed)
    ids, seqs = [r.id for r in records], [r.sequence for r in records]
    labels = protein_labels(records, data.classes, label or task, length=True)
    return LatentPoints({name: rep.pooled(seqs, ids) for name, rep in reps.items()}, labels, len(ids), "proteins")


# --------------------------------------------------------------------------- figures

def umap_panels(latents: Mapping[str, np.ndarray], labels: pd.DataFrame, color: str | Sequence[str], *,
                random_state: int = 0, hover: Sequence[str] | None = None, title: str = "",
                cache_dir: str | os.PathLike | None = None) -> go.Figure:
    """UMAP of each space (``latents[name]`` is [N, d], rows aligned with ``labels``), side by side,
    coloured by ``color`` (columns missing from ``labels`` are left out; several -> dropdown).
    ``cache_dir``: see :func:`umap_embed`."""
    colors = [color] if isinstance(color, str) else [c for c in color if c in labels.columns]
    coords = {name: umap_embed(X, random_state=random_state, cache_dir=cache_dir) for name, X in latents.items()}
    return scatter_panels(coords, labels, colors, hover=hover, title=title)


def residue_umap(latents: Mapping[str, np.ndarray], labels: pd.DataFrame,
                 color: str | Sequence[str] = ("residue", "aa_class", "ss3"), *, random_state: int = 0,
                 hover: Sequence[str] | None = None, title: str = "Residue latents (UMAP)",
                 cache_dir: str | os.PathLike | None = None) -> go.Figure:
    """:func:`umap_panels` of per-residue latents, coloured by residue type, class and ss3."""
    return umap_panels(latents, labels, color, random_state=random_state, hover=hover, title=title,
                       cache_dir=cache_dir)
