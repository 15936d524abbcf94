"""Probes: scikit-learn readouts of frozen representations, their metrics, and the ``lsdkit probe`` command.

A probe is ``StandardScaler`` + logistic regression (multiclass / binary / per-residue / pairs;
one-vs-rest for multilabel) or ridge regression, or with ``ProbeConfig(model="mlp")`` an sklearn
MLP. Its regularisation is chosen on the **validation** split from a grid.

No choice sees a test split, by construction: :func:`fit_probe` (which picks hyper-parameters)
and :func:`select_on_valid` (which picks the best key of a sweep, e.g. (t, layer)) receive only
train/valid data; :func:`evaluate` scores a fitted probe on test once and refuses a second time.
:func:`probe_task` is the three steps in order. The chosen model is the one fitted on train
(not refitted on train+valid).

Metrics (higher is better for all): accuracy, AUROC, Spearman ρ, and protein-centric Fmax — see
:func:`fmax` for the exact definition.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import time
import warnings
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
from scipy.stats import rankdata, spearmanr
from sklearn.base import BaseEstimator

from lsdkit.data.tasks import SPLITS, TaskData, TaskSpec

class Featurizer(Protocol):
    """What baselines and models provide: pooled ``[N, D]`` features, and per-residue arrays
    ``[L_i, D']`` (needed only for per-residue tasks). ``name`` labels the results."""

    name: str

    def __call__(self, sequences: list[str]) -> np.ndarray: ...

    def residues(self, sequences: list[str]) -> list[np.ndarray]: ...


# ---------------------------------------------------------------------------------------------
# metrics
def accuracy(y: np.ndarray, pred: np.ndarray) -> float:
    return float(np.mean(np.asarray(y) == np.asarray(pred)))


def auroc(y: np.ndarray, score: np.ndarray) -> float:
    """Area under the ROC curve = P(score of a random positive > a random negative), ties count ½."""
    y, r = np.asarray(y).astype(bool), rankdata(score)
    n_pos, n_neg = y.sum(), (~y).sum()
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    return float((r[y].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def spearman(y: np.ndarray, pred: np.ndarray) -> float:
    return float(spearmanr(y, pred).statistic)


def fmax(y_true: np.ndarray, scores: np.ndarray, thresholds: np.ndarray | None = None) -> float:
    """Protein-centric maximum F-measure (CAFA; Radivojac et al. 2013; as in DeepFRI and SaProt
    after its April-2024 fix). For each threshold τ (default 0.00, 0.01, …, 1.00), protein i
    predicts the terms with score ≥ τ. Precision pr(τ) averages |P∩T|/|P| over the proteins with
    at least one prediction; recall rc(τ) averages |P∩T|/|T| over all proteins that have at least
    one true term. Fmax = max over τ (with ≥ 1 predicting protein) of 2·pr·rc / (pr + rc)."""
    y = np.asarray(y_true).astype(bool)
    s = np.asarray(scores, dtype=np.float64)
    y, s = y[y.any(axis=1)], s[y.any(axis=1)]
    thresholds = np.round(np.arange(0, 101) / 100, 2) if thresholds is None else thresholds
    n_true, best = y.sum(axis=1), 0.0
    for tau in thresholds:
        p = s >= tau
        n_pred = p.sum(axis=1)
        covered = n_pred > 0
        if not covered.any():
            continue
        tp = (p & y).sum(axis=1)
        pr = np.mean(tp[covered] / n_pred[covered])
        rc = np.mean(tp / n_true)
        if pr + rc > 0:
            best = max(best, 2 * pr * rc / (pr + rc))
    return float(best)


def score(metric: str, y: np.ndarray, out: dict[str, np.ndarray]) -> float:
    """One metric from a probe's outputs ``{"pred": ..., "score": ...}``."""
    if metric == "accuracy":
        return accuracy(y, out["pred"])
    if metric == "auroc":
        return auroc(y, out["score"])
    if metric == "spearman":
        return spearman(y, out["pred"])
    if metric == "fmax":
        return fmax(y, out["score"])
    raise ValueError(f"unknown metric {metric!r}")


# ---------------------------------------------------------------------------------------------
# probes
@dataclass
class ProbeConfig:
    """How probes are fitted. Grids run from strong to weak regularisation (ties keep the first)."""

    model: str = "linear"                    # "linear" (logistic / ridge) or "mlp"
    C_grid: tuple[float, ...] = (1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0)         # logistic: inverse L2
    alpha_grid: tuple[float, ...] = (1e4, 1e3, 1e2, 10.0, 1.0, 0.1, 0.01)   # ridge: L2 strength
    mlp_alpha_grid: tuple[float, ...] = (1.0, 1e-2, 1e-4)                   # MLP: L2 strength
    mlp_hidden: tuple[int, ...] = (256,)
    max_iter: int = 1000
    seed: int = 0
    max_train_rows: int | None = None        # None: the task's documented cap (if any)
    max_valid_rows: int | None = None
    threads: int | None = 1                  # BLAS threads while fitting (None: library default).
    # Probe matrices are small; on a shared or oversubscribed CPU, multithreaded BLAS in tight
    # L-BFGS loops was measured 10x slower than one thread (2-core machine, load 9).


@dataclass
class ProbeResult:
    """A fitted probe: chosen hyper-parameters, validation (and, once, test) scores."""

    task: str
    kind: str
    metric: str
    metrics: tuple[str, ...]
    hyperparams: dict[str, Any]
    seed: int
    valid: dict[str, float]
    valid_curve: dict[str, float]            # grid value -> validation score (primary metric)
    n_rows: dict[str, int]
    test: dict[str, float] | None = None
    representation: str = ""
    t: float | None = None
    protocol: str = ""
    fold: int | None = None
    seconds: float = 0.0
    model: Any = field(default=None, repr=False)


class OneVsRestTerms(BaseEstimator):
    """Multilabel probe: an independent L2 logistic regression per term (the objective of sklearn's
    ``OneVsRestClassifier(LogisticRegression(C))``: ½‖w_c‖² + C Σ_i logloss), solved for all terms
    at once by L-BFGS on the summed objective (it separates over terms), warm-started along the C
    path. Terms without a positive (or a negative) training example score their training frequency."""

    def __init__(self, C: float = 1.0, max_iter: int = 1000):
        self.C, self.max_iter = C, max_iter

    def fit(self, X: np.ndarray, Y: np.ndarray) -> OneVsRestTerms:
        from scipy.optimize import minimize
        from scipy.special import expit

        from sklearn.exceptions import ConvergenceWarning

        Y = np.asarray(Y, dtype=bool)
        self.active_, self.freq_ = Y.any(0) & ~Y.all(0), Y.mean(0)
        T = Y[:, self.active_].astype(np.float64)
        X = np.asarray(X, dtype=np.float64)
        D, K = X.shape[1], T.shape[1]

        def loss(theta):
            W, b = theta[:D * K].reshape(D, K), theta[D * K:]
            Z = X @ W + b
            # logloss(y, z) = log(1 + e^z) − y z, summed; its gradient is σ(z) − y
            f = np.logaddexp(0, Z).sum() - (T * Z).sum() + 0.5 / self.C * (W * W).sum()
            G = expit(Z) - T
            return f, np.concatenate([(X.T @ G + W / self.C).ravel(), G.sum(0)])

        warm = getattr(self, "coef_", None) is not None and self.coef_.shape == (D, K)
        if warm:
            theta0 = np.concatenate([self.coef_.ravel(), self.intercept_])
        else:       # W = 0 and each intercept at the logit of its term's frequency (the W = 0 optimum)
            p = T.mean(0)
            theta0 = np.concatenate([np.zeros(D * K), np.log(p / (1 - p))])
        res = minimize(loss, theta0, jac=True, method="L-BFGS-B",
                       options={"maxiter": self.max_iter, "gtol": 1e-4 * len(X)})
        if not res.success and res.nit >= self.max_iter:
            warnings.warn(f"multilabel probe: L-BFGS did not converge in {self.max_iter} iterations",
                          ConvergenceWarning)
        self.coef_, self.intercept_ = res.x[:D * K].reshape(D, K), res.x[D * K:]
        self.n_iter_ = res.nit
        return self

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        from scipy.special import expit

        full = np.tile(self.freq_.astype(np.float64), (len(X), 1))
        full[:, self.active_] = expit(np.asarray(X, np.float64) @ self.coef_ + self.intercept_)
        return full


def _estimator(kind: str, cfg: ProbeConfig, value: float):
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.neural_network import MLPClassifier, MLPRegressor

    if cfg.model == "mlp":
        mlp = MLPRegressor if kind == "regression" else MLPClassifier
        return mlp(hidden_layer_sizes=cfg.mlp_hidden, alpha=value,
                   max_iter=cfg.max_iter, random_state=cfg.seed)
    if cfg.model != "linear":
        raise ValueError(f"unknown probe model {cfg.model!r} (linear or mlp)")
    if kind == "regression":
        return Ridge(alpha=value)
    if kind == "multilabel":
        return OneVsRestTerms(C=value, max_iter=cfg.max_iter)
    return LogisticRegression(C=value, max_iter=cfg.max_iter, warm_start=True)  # warm: along the C path


def _grid(kind: str, cfg: ProbeConfig) -> tuple[str, tuple[float, ...]]:
    if cfg.model == "mlp":
        return "alpha", cfg.mlp_alpha_grid
    return ("alpha", cfg.alpha_grid) if kind == "regression" else ("C", cfg.C_grid)


def _outputs(model, kind: str, X: np.ndarray) -> dict[str, np.ndarray]:
    """``pred`` (labels / values) and ``score`` (P(positive), or per-term probabilities)."""
    if kind == "regression":
        return {"pred": model.predict(X)}
    proba = np.asarray(model.predict_proba(X))
    if kind == "multilabel":
        return {"score": proba}
    classes = model.classes_
    out = {"pred": classes[np.argmax(proba, axis=1)]}
    if len(classes) == 2:
        out["score"] = proba[:, 1]
    return out


def fit_probe(X_train: np.ndarray, y_train: np.ndarray, X_valid: np.ndarray, y_valid: np.ndarray,
              task: TaskSpec | TaskData, config: ProbeConfig | None = None) -> ProbeResult:
    """Fit one probe per grid value on train, keep the best on valid. Sees no test data."""
    from threadpoolctl import threadpool_limits

    cfg = config or ProbeConfig()
    with threadpool_limits(cfg.threads):
        return _fit_probe(X_train, y_train, X_valid, y_valid, task, cfg)


def _fit_probe(X_train, y_train, X_valid, y_valid, task, cfg: ProbeConfig) -> ProbeResult:
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    spec = task.spec if isinstance(task, TaskData) else task
    kind, metric = spec.kind, spec.metric
    metrics = (metric, *[m for m in spec.extra_metrics if m != metric])
    started = time.perf_counter()
    scaler = StandardScaler().fit(X_train)
    Xt, Xv = scaler.transform(X_train), scaler.transform(X_valid)
    name, grid = _grid(kind, cfg)
    est = _estimator(kind, cfg, grid[0])
    best, curve, unconverged = None, {}, []
    for value in grid:
        est.set_params(**{name: value})
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ConvergenceWarning)
            est.fit(Xt, y_train)
        if any(issubclass(w.category, ConvergenceWarning) for w in caught):
            unconverged.append(value)
        out = _outputs(est, kind, Xv)
        curve[repr(value)] = score(metric, y_valid, out)
        if best is None or curve[repr(value)] > best[1]:
            best = (value, curve[repr(value)], copy.deepcopy(est), out)
    value, _, fitted, out = best
    hyper = {"probe": ("mlp" if cfg.model == "mlp" else "ridge" if kind == "regression" else "logreg"),
             name: value, "grid": list(grid), "scaler": "standard", "max_iter": cfg.max_iter,
             "unconverged": unconverged}
    if cfg.model == "mlp":
        hyper["hidden"] = list(cfg.mlp_hidden)
    return ProbeResult(task=spec.name, kind=kind, metric=metric, metrics=metrics, hyperparams=hyper,
                       seed=cfg.seed, valid={m: score(m, y_valid, out) for m in metrics},
                       valid_curve=curve, n_rows={"train": len(X_train), "valid": len(X_valid)},
                       protocol=spec.protocol, fold=task.fold if isinstance(task, TaskData) else None,
                       seconds=time.perf_counter() - started, model=Pipeline([("scale", scaler), ("probe", fitted)]))


def evaluate(result: ProbeResult, X_test: np.ndarray, y_test: np.ndarray) -> ProbeResult:
    """Score a fitted probe on the test split — once (a second call raises)."""
    if result.test is not None:
        raise RuntimeError(f"{result.task}: the test split was already scored; it is scored once")
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):
        out = _outputs(result.model, result.kind, X_test)
    test = {m: score(m, y_test, out) for m in result.metrics}
    return dataclasses.replace(result, test=test, n_rows={**result.n_rows, "test": len(X_test)})


def probe_task(features: dict[str, np.ndarray], labels: dict[str, np.ndarray],
               task: TaskSpec | TaskData, config: ProbeConfig | None = None) -> ProbeResult:
    """Pick hyper-parameters on valid (train/valid only), then score test once."""
    result = fit_probe(features["train"], labels["train"], features["valid"], labels["valid"], task, config)
    return evaluate(result, features["test"], labels["test"])


def select_on_valid(results_by_key: dict[Any, ProbeResult]) -> Any:
    """The key (e.g. ``(t, layer)``) whose probe scores best on validation; ties keep the first.
    Reads only ``result.valid``: the sweep is then reported on test for that key alone."""
    if not results_by_key:
        raise ValueError("select_on_valid: no results")
    best_key, best = None, -np.inf
    for key, r in results_by_key.items():
        v = r.valid[r.metric]
        if v > best:
            best_key, best = key, v
    return best_key if best_key is not None else next(iter(results_by_key))


# ---------------------------------------------------------------------------------------------
# tasks -> arrays -> results
def pair_features(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Symmetric pair representation [a ⊙ b, |a − b|] of two pooled vectors."""
    return np.concatenate([a * b, np.abs(a - b)], axis=1)


def _pooled(featurizer: Featurizer, seqs: list[str], cache: dict[str, np.ndarray] | None) -> np.ndarray:
    """Pooled features, each distinct sequence computed once (and kept in ``cache`` if given)."""
    cache = {} if cache is None else cache
    todo = list(dict.fromkeys(s for s in seqs if s not in cache))
    if todo:
        cache.update(zip(todo, np.asarray(featurizer(todo), dtype=np.float32)))
    dim = next(iter(cache.values())).shape[0] if cache else 0
    return np.stack([cache[s] for s in seqs]) if seqs else np.zeros((0, dim), np.float32)


def _subsample(records: list, cap: int | None, kind: str, rng: np.random.Generator) -> list:
    """At most ``cap`` rows (residues for per-residue tasks, whole proteins), seeded."""
    if cap is None:
        return records
    if kind == "residue_multiclass":
        order, out, n = rng.permutation(len(records)), [], 0
        for i in order:
            if n >= cap:
                break
            out.append(i)
            n += int((np.asarray(records[i].label) >= 0).sum())
        return [records[i] for i in sorted(out)]
    if len(records) <= cap:
        return records
    return [records[i] for i in np.sort(rng.choice(len(records), cap, replace=False))]


def task_arrays(data: TaskData, featurizer: Featurizer, config: ProbeConfig | None = None,
                cache: dict[str, np.ndarray] | None = None) -> tuple[dict, dict]:
    """Features and labels per split for a task: pooled vectors, pair features, or residues
    (ignored residues dropped). Train/valid are capped as configured; test never is."""
    from lsdkit.data.tasks import label_array

    cfg = config or ProbeConfig()
    rng = np.random.default_rng(cfg.seed)
    caps = {"train": cfg.max_train_rows or data.spec.max_train_rows,
            "valid": cfg.max_valid_rows or data.spec.max_valid_rows, "test": None}
    X, Y = {}, {}
    for split in SPLITS:
        recs = _subsample(data.splits[split], caps[split], data.kind, rng)
        y = label_array(recs, data.kind, len(data.classes or ()))
        seqs = [r.sequence for r in recs]
        if data.kind == "residue_multiclass":
            per = featurizer.residues(seqs)
            x = np.concatenate(per).astype(np.float32) if per else np.zeros((0, 0), np.float32)
            keep = y >= 0
            x, y = x[keep], y[keep]
        elif data.kind == "pair_binary":
            x = pair_features(_pooled(featurizer, [a for a, _ in seqs], cache),
                              _pooled(featurizer, [b for _, b in seqs], cache))
        else:
            x = _pooled(featurizer, seqs, cache)
        X[split], Y[split] = x, y
    return X, Y


def run_probe(task: str | TaskData, featurizer: Featurizer, config: ProbeConfig | None = None,
              data: str | None = None, t: float | None = None) -> list[ProbeResult]:
    """Probe one task with one representation: one result per fold (one for fixed splits)."""
    from lsdkit.data.tasks import load_task, task_folds

    datas = [task] if isinstance(task, TaskData) else [load_task(task, data, fold) for fold in task_folds(task)]
    cache: dict[str, np.ndarray] = {}
    results = []
    for d in datas:
        started = time.perf_counter()
        X, Y = task_arrays(d, featurizer, config, cache)
        r = probe_task(X, Y, d, config)
        results.append(dataclasses.replace(r, representation=featurizer.name, t=t, fold=d.fold,
                                           seconds=time.perf_counter() - started))
    return results


def result_rows(results: list[ProbeResult]) -> list[dict[str, Any]]:
    """Tidy rows (representation, task, t, split, metric, value, hyperparams, seed, protocol).
    The folds of a cross-validated task become their mean plus a ``<metric>_sd`` row."""
    r0 = results[0]
    folds = len(results) > 1
    hyper = ({"folds": [{k: v for k, v in r.hyperparams.items() if k != "grid"} for r in results],
              "grid": r0.hyperparams["grid"]} if folds else r0.hyperparams)
    rows = []
    for split in ("valid", "test"):
        for m in r0.metrics:
            vals = [getattr(r, split)[m] for r in results if getattr(r, split) is not None]
            if not vals:
                continue
            named = [(m, float(np.mean(vals)))] + ([(f"{m}_sd", float(np.std(vals)))] if folds else [])
            for metric, value in named:
                rows.append({"representation": r0.representation, "task": r0.task, "t": r0.t, "split": split,
                             "metric": metric, "value": value, "hyperparams": json.dumps(hyper, default=str),
                             "seed": r0.seed, "protocol": r0.protocol})
    return rows


def markdown_table(results_per_task: list[list[ProbeResult]]) -> str:
    """One line per task: primary metric on valid and test (mean ± sd over folds), choices, sizes."""
    lines = ["| representation | task | protocol | metric | valid | test | chosen | n train/valid/test | s |",
             "|---|---|---|---|---|---|---|---|---|"]
    for results in results_per_task:
        r0 = results[0]
        name = "alpha" if "alpha" in r0.hyperparams else "C"

        def fmt(split, m=r0.metric):
            v = [getattr(r, split)[m] for r in results]
            return f"{np.mean(v):.3f}" + (f" ± {np.std(v):.3f}" if len(v) > 1 else "")
        chosen = ",".join(f"{r.hyperparams[name]:g}" for r in results)
        n = "/".join(str(results[0].n_rows[s]) for s in SPLITS)
        secs = sum(r.seconds for r in results)
        lines.append(f"| {r0.representation} | {r0.task} | {r0.protocol} | {r0.metric} | {fmt('valid')} | "
                     f"{fmt('test')} | {name}={chosen} | {n} | {secs:.0f} |")
    return "\n".join(lines)
