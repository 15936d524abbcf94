"""Uncertainty of test scores: a percentile bootstrap over test items, and paired differences.

A test score is an estimate from one finite test set; its interval says how much it would move on
another draw of test proteins. Both functions here resample the **test items** (rows; or whole
units, e.g. the proteins of a per-residue task) with replacement and recompute the metric on each
resample:

* :func:`bootstrap_ci` - the metric and its percentile interval;
* :func:`paired_bootstrap_diff` - the difference ``metric(a) - metric(b)`` of two representations
  scored **on the same test items**, each resample applied to both (so what the two share, the
  items' difficulty, cancels), and its percentile interval.

How the resamples are drawn (:func:`resample_indices`), so that any interval can be recomputed by
hand: ``rng = np.random.default_rng(seed)``; resample ``b = 0 .. n-1`` draws, for each stratum in
sorted order, ``rng.integers(0, U, size=U)`` where ``U`` is the stratum's number of units (units in
order of first appearance; without ``units`` every row is a unit, without ``strata`` there is one
stratum), and takes every row of each drawn unit. With neither, resample ``b`` is simply
``rng.integers(0, N, size=N)``. Because the draws depend only on ``(N, seed, strata, units)``, every
representation scored on the same test items gets the same resamples: a paired difference is the
difference of the two replicate vectors (:func:`replicates`).

The interval is the percentile interval: the ``(1 - level)/2`` and ``(1 + level)/2`` quantiles of the
replicates (numpy's default, linearly interpolated, quantile). Replicates where the metric is
undefined (NaN, e.g. AUROC on a resample with one class) are left out; with none left the interval
is NaN.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import NamedTuple

import numpy as np

__all__ = ["Interval", "resample_indices", "replicates", "percentile_interval", "bootstrap_ci",
           "paired_bootstrap_diff"]


class Interval(NamedTuple):
    """A point value and its interval ``[low, high]``."""

    value: float
    low: float
    high: float

    @property
    def above_zero(self) -> bool:
        return bool(self.low > 0)

    @property
    def below_zero(self) -> bool:
        return bool(self.high < 0)

    def format(self, digits: int = 3, signed: bool = False) -> str:
        """``0.366 [0.341, 0.392]`` (``signed``: ``+0.012 [-0.004, +0.027]``); no interval if NaN."""
        f = f"{{:{'+' if signed else ''}.{digits}f}}".format
        if np.isnan(self.low) or np.isnan(self.high):
            return f(self.value)
        return f"{f(self.value)} [{f(self.low)}, {f(self.high)}]"


def _units_by_stratum(n_rows: int, strata, units) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Per stratum (sorted): the rows ordered by unit, each unit's start in that order, its length."""
    strata = np.zeros(n_rows, np.int64) if strata is None else np.asarray(strata)
    units = np.arange(n_rows) if units is None else np.asarray(units)
    if len(strata) != n_rows or len(units) != n_rows:
        raise ValueError(f"strata/units must have one entry per item ({n_rows})")
    out = []
    for s in np.unique(strata):
        rows = np.flatnonzero(strata == s)
        _, first, inverse = np.unique(units[rows], return_index=True, return_inverse=True)
        rank = np.argsort(np.argsort(first))            # units in order of first appearance
        unit_of_row = rank[inverse]
        order = rows[np.argsort(unit_of_row, kind="stable")]
        lengths = np.bincount(unit_of_row, minlength=len(first))
        if (np.unique(strata[np.isin(units, units[rows])]) != s).any():
            raise ValueError("a unit spans two strata")
        out.append((order, np.concatenate([[0], np.cumsum(lengths)[:-1]]), lengths))
    return out


def resample_indices(n_items: int, n: int = 1000, seed: int = 0, strata=None, units=None) -> Iterator[np.ndarray]:
    """The row indices of each of ``n`` bootstrap resamples of ``n_items`` rows (see the module
    docstring for the exact draw). ``strata``: resample within each stratum (e.g. the CV fold of
    each row), keeping its size; ``units``: resample whole units (e.g. the protein of each residue)."""
    rng = np.random.default_rng(seed)
    if strata is None and units is None:
        for _ in range(n):
            yield rng.integers(0, n_items, size=n_items)
        return
    groups = _units_by_stratum(n_items, strata, units)
    for _ in range(n):
        parts = []
        for order, starts, lengths in groups:
            pick = rng.integers(0, len(starts), size=len(starts))
            take = lengths[pick]
            offsets = np.repeat(starts[pick] - np.concatenate([[0], np.cumsum(take)[:-1]]), take)
            parts.append(order[np.arange(take.sum()) + offsets])
        yield np.concatenate(parts)


def _as_items(items) -> tuple[np.ndarray, ...]:
    items = (items,) if isinstance(items, np.ndarray) else tuple(items)
    items = tuple(np.asarray(a) for a in items)
    if not items or len({len(a) for a in items}) != 1:
        raise ValueError("bootstrap: give one or more arrays with the same number of items (rows)")
    return items


def replicates(metric_fn: Callable[..., float], *items, n: int = 1000, seed: int = 0, strata=None,
               units=None) -> np.ndarray:
    """``metric_fn(*[a[idx] for a in items])`` for each resample ``idx`` of :func:`resample_indices`."""
    items = _as_items(items)
    return np.array([float(metric_fn(*(a[idx] for a in items)))
                     for idx in resample_indices(len(items[0]), n, seed, strata, units)])


def percentile_interval(value: float, reps: np.ndarray, level: float = 0.95) -> Interval:
    """``value`` with the percentile interval of the bootstrap replicates ``reps`` (NaNs left out)."""
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    reps = np.asarray(reps, dtype=np.float64)
    reps = reps[~np.isnan(reps)]
    if not len(reps):
        return Interval(float(value), np.nan, np.nan)
    low, high = np.quantile(reps, [(1 - level) / 2, (1 + level) / 2])
    return Interval(float(value), float(low), float(high))


def bootstrap_ci(metric_fn: Callable[..., float], *items, n: int = 1000, seed: int = 0, level: float = 0.95,
                 strata=None, units=None) -> Interval:
    """``metric_fn(*items)`` and its percentile bootstrap interval over the items (rows of every
    array in ``items``, resampled together).

    >>> correct = np.array([1, 1, 0, 1, 0, 1, 1, 1])
    >>> bootstrap_ci(np.mean, correct).format()          # accuracy 0.75 and its 95 % interval
    '0.750 [0.375, 1.000]'
    """
    items = _as_items(items)
    reps = replicates(metric_fn, *items, n=n, seed=seed, strata=strata, units=units)
    return percentile_interval(float(metric_fn(*items)), reps, level)


def paired_bootstrap_diff(metric_fn: Callable[..., float], a_items: Sequence[np.ndarray] | np.ndarray,
                          b_items: Sequence[np.ndarray] | np.ndarray, *, n: int = 1000, seed: int = 0,
                          level: float = 0.95, strata=None, units=None) -> Interval:
    """``metric_fn(*a_items) - metric_fn(*b_items)`` and its percentile interval, both recomputed on
    the same resampled test items (``a_items`` and ``b_items`` describe the same items, row by row,
    e.g. each representation's per-item correctness). Identical inputs give exactly 0 [0, 0]."""
    a, b = _as_items(a_items), _as_items(b_items)
    if len(a[0]) != len(b[0]):
        raise ValueError(f"paired bootstrap: {len(a[0])} vs {len(b[0])} items; both must be the same test items")
    kw = dict(n=n, seed=seed, strata=strata, units=units)
    diff = replicates(metric_fn, *a, **kw) - replicates(metric_fn, *b, **kw)
    return percentile_interval(float(metric_fn(*a)) - float(metric_fn(*b)), diff, level)
