"""Timestep sweeps: one probe per (t, layer) from one cached representation pass (DDAE `linear.py` shape).

A sweep over a task and a :class:`~lsdkit.represent.Representer`:

1. :class:`WideFeaturizer` asks the Representer for every feature key at once (the latent and
   each (t, layer)); the encoder runs once per batch and the denoiser once per stack of t values.
   The keys come back side by side, so the task's splits are featurised (and subsampled) once.
2. For every key a probe is fitted on train and scored on valid (:func:`lsdkit.probe.fit_probe`).
3. The best diffusion key is chosen **on validation** (:func:`lsdkit.probe.select_on_valid`); the test
   split is then scored once for that key and once for the latent. Test scores of the other keys
   are never computed, so nothing can be tuned on them.

The result is a tidy table: ``representation, task, key, t, layer, split, metric, value, selected,
fold, hyperparams, seed, protocol`` (one row per metric); on request, the test predictions of the
chosen keys too (item by item, for intervals: :class:`lsdkit.probe.Predictions`).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from lsdkit.data.tasks import TaskData, load_task, task_folds
from lsdkit.probe import (Predictions, ProbeConfig, ProbeResult, evaluate, fit_probe, residue_units,
                          select_on_valid, task_arrays)
from lsdkit.represent import Representer, feature_key
from lsdkit.schedules import DEFAULT_TS


@dataclass(frozen=True)
class Key:
    """One representation of a sweep: the latent (t None) or the denoiser's layer at level t."""

    t: float | None
    layer: int | None = None

    @property
    def name(self) -> str:
        return feature_key(self.t, self.layer)


class WideFeaturizer:
    """A probe featurizer whose columns are every key's features side by side.

    ``blocks`` (filled on the first call) maps each key to its ``slice`` of the columns.
    """

    def __init__(self, rep: Representer, keys: Sequence[Key], name: str):
        self.rep, self.keys, self.name = rep, list(keys), name
        self.blocks: dict[Key, slice] = {}

    def _request(self):
        ts = list(dict.fromkeys(k.t for k in self.keys))
        layers = sorted({k.layer for k in self.keys if k.layer is not None}) or -1
        return ts, layers

    def _stack(self, feats: dict, per_residue: bool):
        widths = [(feats[k.name][0] if per_residue else feats[k.name]).shape[-1] for k in self.keys]
        starts = np.cumsum([0, *widths])
        self.blocks = {k: slice(int(a), int(b)) for k, a, b in zip(self.keys, starts[:-1], starts[1:])}
        if per_residue:
            n = len(feats[self.keys[0].name])
            return [np.concatenate([feats[k.name][i] for k in self.keys], axis=1) for i in range(n)]
        return np.concatenate([feats[k.name] for k in self.keys], axis=1)

    def __call__(self, sequences: list[str]) -> np.ndarray:
        ts, layers = self._request()
        return self._stack(self.rep.features(sequences, ts=ts, layers=layers), per_residue=False)

    def residues(self, sequences: list[str]) -> list[np.ndarray]:
        ts, layers = self._request()
        return self._stack(self.rep.features(sequences, ts=ts, layers=layers, per_residue=True),
                           per_residue=True)


def key_columns(X: np.ndarray, block: slice, width: int, kind: str) -> np.ndarray:
    """Columns of one key in a wide matrix; pair features are ``[a⊙b | |a−b|]`` of the wide vectors."""
    if kind == "pair_binary":
        return np.concatenate([X[:, block], X[:, width + block.start: width + block.stop]], axis=1)
    return X[:, block]


def sweep_keys(rep: Representer, ts: Iterable[float] = DEFAULT_TS,
               layers: int | str | Iterable[int] = "all") -> list[Key]:
    """The latent plus every (t, layer) the Representer can give (only the latent for encoders)."""
    keys = [Key(None)]
    if rep.kind == "diffusion":
        keys += [Key(float(t), l) for t in ts for l in rep.resolve_layers(layers)]
    return keys


def sweep_task(rep: Representer, task: str | TaskData, representation: str, *, ts: Iterable[float] = DEFAULT_TS,
               layers: int | str | Iterable[int] = "all", config: ProbeConfig | None = None,
               data=None, progress: bool = True, predictions: dict[str, Predictions] | None = None) -> pd.DataFrame:
    """Probe every key of ``rep`` on ``task``; the best diffusion key is chosen on validation.

    Cross-validated tasks (several folds) choose the key with the best mean validation score and
    report test as the mean over folds (one row per fold too). ``progress``: a tqdm bar (stderr, or
    a widget in a notebook) over each fold's probes, shown when they take more than a couple of
    seconds; the representation pass before them has its own (:class:`~lsdkit.represent.Representer`).
    ``predictions``: a dict that receives, by key name, the test predictions of the keys scored on
    test (the latent and the chosen diffusion key; folds pooled), what an interval on their test
    score needs.
    """
    cfg = config or ProbeConfig()
    keys = sweep_keys(rep, ts, layers)
    wide = WideFeaturizer(rep, keys, representation)
    by_key: dict[Key, list[ProbeResult]] = {k: [] for k in keys}
    folds = [task] if isinstance(task, TaskData) else [load_task(task, data, f) for f in task_folds(task)]
    arrays = []
    for d in folds:
        X, Y = task_arrays(d, wide, cfg, cache={})
        width = sum(b.stop - b.start for b in wide.blocks.values())
        arrays.append((d, X, Y, width))
        fold = "" if d.fold is None else f", fold {d.fold}"
        for k in tqdm(keys, desc=f"{representation} {d.name}{fold}: probes", unit="probe", leave=False, delay=2,
                      disable=not progress):
            cols = {s: key_columns(X[s], wide.blocks[k], width, d.kind) for s in ("train", "valid")}
            r = fit_probe(cols["train"], Y["train"], cols["valid"], Y["valid"], d, cfg)
            by_key[k].append(r)
    diffusion_keys = [k for k in keys if k.t is not None]
    mean_valid = {k: _mean_result(by_key[k]) for k in keys}
    chosen = [Key(None)]
    if diffusion_keys:
        chosen.append(select_on_valid({k: mean_valid[k] for k in diffusion_keys}))
    for k in chosen:
        for i, (d, X, Y, width) in enumerate(arrays):
            r = evaluate(by_key[k][i], key_columns(X["test"], wide.blocks[k], width, d.kind), Y["test"])
            by_key[k][i] = r
        if predictions is not None:
            parts = [dataclasses.replace(r.test_predictions, unit=residue_units(d))
                     for r, (d, *_) in zip(by_key[k], arrays)]
            predictions[k.name] = Predictions.pool(parts, [d.fold for d, *_ in arrays])
    return _rows(by_key, chosen, representation)


def _mean_result(results: list[ProbeResult]) -> ProbeResult:
    """A stand-in result whose valid scores are the mean over folds (for selection only)."""
    valid = {m: float(np.mean([r.valid[m] for r in results])) for m in results[0].valid}
    return dataclasses.replace(results[0], valid=valid, model=None)


def _rows(by_key: dict[Key, list[ProbeResult]], chosen: list[Key], representation: str) -> pd.DataFrame:
    rows = []
    for k, results in by_key.items():
        for r in results:
            base = dict(representation=representation, task=r.task, key=k.name, t=k.t, layer=k.layer,
                        selected=k in chosen, fold=r.fold, protocol=r.protocol, seed=r.seed,
                        hyperparams=json.dumps(r.hyperparams, default=str))
            for split, scores in (("valid", r.valid), ("test", r.test)):
                for metric, value in (scores or {}).items():
                    rows.append({**base, "split": split, "metric": metric, "value": float(value)})
    df = pd.DataFrame(rows)
    # cross-validated tasks: the mean over folds as its own rows (fold = "mean")
    if df["fold"].notna().any():
        grp = ["representation", "task", "key", "t", "layer", "selected", "split", "metric", "protocol"]
        mean = df.groupby(grp, dropna=False, as_index=False)["value"].mean()
        mean["fold"], mean["seed"], mean["hyperparams"] = "mean", df["seed"].iloc[0], ""
        df = pd.concat([df, mean[df.columns]], ignore_index=True)
    return df


# --- reading a sweep table ------------------------------------------------------------------------
def primary_metrics(df: pd.DataFrame) -> dict[str, str]:
    """``{task: its primary metric}`` for every task of a sweep table (the metric the table reports)."""
    from lsdkit.data.tasks import get_task
    return {task: get_task(task).metric for task in df["task"].unique()}


def sweep_curves(df: pd.DataFrame, *, split: str = "valid", metric: Mapping[str, str] | None = None,
                 layer: int | str = "best") -> pd.DataFrame:
    """The sweep table reduced to one value per (representation, task, metric, t).

    ``df`` is the tidy sweep (representation, task, t, split, metric, value[, layer, fold]). Keeps
    ``split`` rows, fold-less or fold ``"mean"`` rows, and for each task only ``metric[task]`` if
    given. Several layers per t: ``layer="best"`` takes the best layer (on this split), ``"mean"``
    their mean, an int that layer. Rows without t (the latent) are kept with t = NaN.
    """
    need = {"representation", "task", "t", "split", "metric", "value"}
    if missing := need - set(df.columns):
        raise KeyError(f"sweep_curves: missing columns {sorted(missing)}")
    d = df[df["split"] == split]
    if "fold" in d.columns:
        d = d[d["fold"].isna() | (d["fold"].astype(str) == "mean")]
    if metric is not None:
        d = d[d["metric"] == d["task"].map(metric)]
    if isinstance(layer, (int, np.integer)) and "layer" in d.columns:
        d = d[d["t"].isna() | (d["layer"] == layer)]
    elif layer not in ("best", "mean") and not isinstance(layer, (int, np.integer)):
        raise ValueError(f"sweep_curves: layer must be 'best', 'mean' or an int, got {layer!r}")
    if d.empty:
        raise ValueError(f"sweep_curves: no rows for split {split!r}")
    keys = ["representation", "task", "metric"]
    how = "max" if layer == "best" else "mean"
    timed = d.dropna(subset=["t"]).groupby(keys + ["t"], as_index=False, sort=False)["value"].agg(how)
    untimed = d[d["t"].isna()].groupby(keys, as_index=False, sort=False)["value"].mean().assign(t=np.nan)
    return pd.concat([timed, untimed[timed.columns]], ignore_index=True)


def chosen_curve(df: pd.DataFrame, representation: str, task: str) -> tuple[int, dict[float, float]]:
    """The layer chosen on validation for ``representation``'s diffusion keys on ``task``, and that
    layer's validation score at each swept t (the task's primary metric): ``(layer, {t: score})``.

    Raises KeyError when no diffusion key of ``representation`` was chosen on ``task`` (not swept).
    """
    from lsdkit.report import chosen_keys

    chosen = chosen_keys(df)
    pick = chosen[(chosen["representation"] == representation) & (chosen["task"] == task)]
    if pick.empty:
        raise KeyError(f"task {task!r} was not swept for {representation}")
    layer = int(pick["layer"].iloc[0])
    curve = sweep_curves(df, metric=primary_metrics(df), layer=layer)
    curve = curve[(curve["representation"] == representation) & (curve["task"] == task)].dropna(subset=["t"])
    return layer, dict(zip(curve["t"], curve["value"]))
