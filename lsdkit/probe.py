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

Uncertainty: :func:`evaluate` keeps the probe's test outputs item by item
(:class:`Predictions`), so a test score can be recomputed on any resample of test proteins
(:func:`item_metric`; intervals in :mod:`lsdkit.stats`). The linear probes are deterministic; the
MLP probe is not, so :func:`run_probe` fits it with ``ProbeConfig.mlp_seeds`` seeds and
:func:`result_rows` / :func:`markdown_table` report mean ± sd over them.
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


def _labels(y: np.ndarray, pred: np.ndarray) -> np.ndarray:
    return np.union1d(np.unique(np.asarray(y)), np.unique(np.asarray(pred)))


def macro_f1(y: np.ndarray, pred: np.ndarray) -> float:
    """Unweighted mean over classes (those in ``y`` or ``pred``) of F1 = 2·TP / (2·TP + FP + FN)."""
    y, pred = np.asarray(y), np.asarray(pred)
    f1 = [2 * np.sum((y == c) & (pred == c)) / max(np.sum(y == c) + np.sum(pred == c), 1) for c in _labels(y, pred)]
    return float(np.mean(f1)) if f1 else float("nan")


def balanced_accuracy(y: np.ndarray, pred: np.ndarray) -> float:
    """Mean over the classes present in ``y`` of their recall."""
    y, pred = np.asarray(y), np.asarray(pred)
    recalls = [np.mean(pred[y == c] == c) for c in np.unique(y)]
    return float(np.mean(recalls)) if recalls else float("nan")


def mcc(y: np.ndarray, pred: np.ndarray) -> float:
    """Matthews correlation coefficient (multiclass: Gorodkin's R_K, as sklearn); 0 when undefined."""
    y, pred = np.asarray(y), np.asarray(pred)
    labels = _labels(y, pred)
    yi, pi = np.searchsorted(labels, y), np.searchsorted(labels, pred)
    cm = np.zeros((len(labels), len(labels)), np.float64)
    np.add.at(cm, (yi, pi), 1)
    t, p, c, n = cm.sum(axis=1), cm.sum(axis=0), np.trace(cm), cm.sum()
    denom = np.sqrt((n * n - p @ p) * (n * n - t @ t))
    return float((c * n - t @ p) / denom) if denom > 0 else 0.0


def auprc(y: np.ndarray, score: np.ndarray) -> float:
    """Area under the precision-recall curve as average precision: Σ_k (R_k − R_{k−1}) P_k over
    the distinct score thresholds (as sklearn's ``average_precision_score``); NaN without positives."""
    y, s = np.asarray(y).astype(bool), np.asarray(score, np.float64)
    if y.sum() == 0:
        return float("nan")
    order = np.argsort(-s, kind="mergesort")
    y, s = y[order], s[order]
    last = np.r_[np.flatnonzero(np.diff(s)), len(s) - 1]        # the end of each run of tied scores
    tp = np.cumsum(y)[last]
    precision, recall = tp / (last + 1), tp / y.sum()
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def class_report(y: np.ndarray, pred: np.ndarray, classes: tuple[str, ...] | None = None) -> list[dict[str, Any]]:
    """Per class: precision, recall, F1 and support (true items) of a classification's predictions."""
    y, pred = np.asarray(y), np.asarray(pred)
    out = []
    for c in (range(len(classes)) if classes else _labels(y, pred)):
        tp, n_true, n_pred = np.sum((y == c) & (pred == c)), np.sum(y == c), np.sum(pred == c)
        out.append({"class": classes[c] if classes else c, "precision": tp / n_pred if n_pred else float("nan"),
                    "recall": tp / n_true if n_true else float("nan"),
                    "f1": 2 * tp / (n_true + n_pred) if n_true + n_pred else float("nan"), "support": int(n_true)})
    return out


# metrics of predicted labels (pred) and of a positive-class score; which ones a task kind can have
LABEL_METRICS = {"accuracy": accuracy, "macro_f1": macro_f1, "balanced_accuracy": balanced_accuracy, "mcc": mcc}
SCORE_METRICS = {"auroc": auroc, "auprc": auprc}
CLASSIFICATION_METRICS = ("macro_f1", "balanced_accuracy", "mcc")


def applicable_metrics(kind: str, n_classes: int) -> tuple[str, ...]:
    """The optional metrics a task of this kind can report (besides its primary one)."""
    if kind in ("multiclass", "residue_multiclass", "binary", "pair_binary"):
        return CLASSIFICATION_METRICS + (("auroc", "auprc") if n_classes == 2 or kind in ("binary", "pair_binary")
                                         else ())
    return ()


def fmax(y_true: np.ndarray, scores: np.ndarray, thresholds: np.ndarray | None = None) -> float:
    """Protein-centric maximum F-measure (CAFA; Radivojac et al. 2013; as in DeepFRI and SaProt
    after its April-2024 fix). For each threshold τ (default 0.00, 0.01, …, 1.00), protein i
    predicts the terms with score ≥ τ. Precision pr(τ) averages |P∩T|/|P| over the proteins with
    at least one prediction; recall rc(τ) averages |P∩T|/|T| over all proteins that have at least
    one true term. Fmax = max over τ (with ≥ 1 predicting protein) of 2·pr·rc / (pr + rc)."""
    return fmax_from_counts(*fmax_counts(y_true, scores, thresholds))


def fmax_counts(y_true: np.ndarray, scores: np.ndarray,
                thresholds: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per protein: true positives ``[N, τ]`` and predicted terms ``[N, τ]`` at each threshold, and
    true terms ``[N]`` - what :func:`fmax_from_counts` needs, so Fmax of any subset or resample of
    proteins is the same function of the same rows."""
    y = np.asarray(y_true).astype(bool)
    s = np.asarray(scores, dtype=np.float64)
    thresholds = np.round(np.arange(0, 101) / 100, 2) if thresholds is None else thresholds
    tp = np.empty((len(y), len(thresholds)), np.int64)
    n_pred = np.empty_like(tp)
    for j, tau in enumerate(thresholds):
        p = s >= tau
        tp[:, j], n_pred[:, j] = (p & y).sum(axis=1), p.sum(axis=1)
    return tp, n_pred, y.sum(axis=1)


def fmax_from_counts(tp: np.ndarray, n_pred: np.ndarray, n_true: np.ndarray) -> float:
    """:func:`fmax` from the per-protein counts of :func:`fmax_counts` (proteins without a true term
    are left out)."""
    keep = n_true > 0
    tp, n_pred, n_true = tp[keep].astype(np.float64), n_pred[keep], n_true[keep]
    covered = n_pred > 0
    n_covered = covered.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        pr = np.where(covered, tp / np.maximum(n_pred, 1), 0.0).sum(axis=0) / n_covered
        rc = (tp / n_true[:, None]).mean(axis=0)
        f = 2 * pr * rc / (pr + rc)
    ok = (n_covered > 0) & (pr + rc > 0)
    return float(f[ok].max()) if ok.any() else 0.0


def score(metric: str, y: np.ndarray, out: dict[str, np.ndarray]) -> float:
    """One metric from a probe's outputs ``{"pred": ..., "score": ...}``."""
    if metric in LABEL_METRICS:
        return LABEL_METRICS[metric](y, out["pred"])
    if metric in SCORE_METRICS:
        return SCORE_METRICS[metric](y, out["score"])
    if metric == "spearman":
        return spearman(y, out["pred"])
    if metric == "fmax":
        return fmax(y, out["score"])
    raise ValueError(f"unknown metric {metric!r}")


def item_metric(metric: str, y: np.ndarray, out: dict[str, np.ndarray]) -> tuple[Any, tuple[np.ndarray, ...]]:
    """A metric as a function of per-item arrays: ``(fn, items)`` with ``fn(*items)`` equal to
    :func:`score` and ``fn(*[a[idx] for a in items])`` its value on the test items ``idx`` (a
    bootstrap resample). Accuracy: per-item correctness; AUROC: (labels, scores); Spearman:
    (values, predictions); Fmax: the per-protein counts of :func:`fmax_counts`."""
    if metric == "accuracy":
        return np.mean, ((np.asarray(y) == np.asarray(out["pred"])).astype(np.float64),)
    if metric in LABEL_METRICS:
        return LABEL_METRICS[metric], (np.asarray(y), np.asarray(out["pred"]))
    if metric in SCORE_METRICS:
        return SCORE_METRICS[metric], (np.asarray(y), np.asarray(out["score"]))
    if metric == "spearman":
        return spearman, (np.asarray(y), np.asarray(out["pred"]))
    if metric == "fmax":
        return fmax_from_counts, fmax_counts(y, out["score"])
    raise ValueError(f"unknown metric {metric!r}")


# ---------------------------------------------------------------------------------------------
# test predictions (for intervals on test scores)
def _fold_mean(fn):
    """``fn`` on each fold's items, averaged over folds (the number a CV task reports)."""
    def per_fold(fold, *items):
        return float(np.mean([fn(*(a[fold == f] for a in items)) for f in np.unique(fold)]))
    return per_fold


@dataclass(eq=False)
class Predictions:
    """A probe's outputs on the test items, item by item: what recomputing its metric on a
    resample of test items needs (:mod:`lsdkit.stats`).

    ``y``: labels (as :func:`~lsdkit.data.tasks.label_array`); ``pred`` / ``score``: the probe's
    outputs (see :func:`score`); ``fold``: each item's CV fold (test items pooled over folds; the
    metric is then the mean over folds and the bootstrap resamples within each fold); ``unit``: the
    protein of each item where items are residues (the bootstrap resamples whole proteins).
    """

    y: np.ndarray
    pred: np.ndarray | None = None
    score: np.ndarray | None = None
    fold: np.ndarray | None = None
    unit: np.ndarray | None = None
    _replicates: dict = field(default_factory=dict, init=False, repr=False)   # (metric, n, seed) -> replicates

    FIELDS = ("y", "pred", "score", "fold", "unit")

    def __len__(self) -> int:
        return len(self.y)

    def _outputs(self) -> dict[str, np.ndarray]:
        return {k: v for k, v in (("pred", self.pred), ("score", self.score)) if v is not None}

    def _bootstrap_items(self, metric: str):
        fn, items = item_metric(metric, self.y, self._outputs())
        if self.fold is None:
            return fn, items
        return _fold_mean(fn), (self.fold, *items)

    def value(self, metric: str) -> float:
        """The metric on all test items (the mean over folds for a CV task)."""
        fn, items = self._bootstrap_items(metric)
        return float(fn(*items))

    def replicates(self, metric: str, n: int = 1000, seed: int = 0) -> np.ndarray:
        """The metric on each of ``n`` bootstrap resamples of the test items (seeded; the same
        resamples for every representation scored on the same items). Computed once."""
        from lsdkit.stats import replicates

        if (metric, n, seed) not in self._replicates:
            fn, items = self._bootstrap_items(metric)
            self._replicates[metric, n, seed] = replicates(fn, *items, n=n, seed=seed, strata=self.fold,
                                                           units=self.unit)
        return self._replicates[metric, n, seed]

    def interval(self, metric: str, n: int = 1000, seed: int = 0, level: float = 0.95):
        """The metric and its percentile bootstrap interval (:class:`lsdkit.stats.Interval`)."""
        from lsdkit.stats import percentile_interval
        return percentile_interval(self.value(metric), self.replicates(metric, n, seed), level)

    def same_items(self, other: Predictions) -> bool:
        """Whether ``other`` is scored on the same test items (labels, folds and units row by row)."""
        def same(a, b):
            return (a is None) == (b is None) and (a is None or np.array_equal(a, b))
        return same(self.y, other.y) and same(self.fold, other.fold) and same(self.unit, other.unit)

    def diff(self, other: Predictions, metric: str, n: int = 1000, seed: int = 0, level: float = 0.95):
        """``metric(self) - metric(other)`` on the same test items, with its paired bootstrap interval
        (both on the same resamples: :func:`lsdkit.stats.paired_bootstrap_diff`)."""
        from lsdkit.stats import percentile_interval
        if not self.same_items(other):
            raise ValueError("paired bootstrap: the two predictions are not on the same test items")
        return percentile_interval(self.value(metric) - other.value(metric),
                                   self.replicates(metric, n, seed) - other.replicates(metric, n, seed), level)

    @classmethod
    def pool(cls, parts: list[Predictions], folds: list[int | None]) -> Predictions:
        """The test items of several CV folds as one set (``fold`` marks each item's fold)."""
        if len(parts) == 1 and folds[0] is None:
            return parts[0]
        offsets = np.cumsum([0, *[len(p) for p in parts[:-1]]])

        def cat(name):
            arrays = [getattr(p, name) for p in parts]
            return None if arrays[0] is None else np.concatenate(arrays)
        unit = None if parts[0].unit is None else np.concatenate([p.unit + o for p, o in zip(parts, offsets)])
        fold = np.concatenate([np.full(len(p), -1 if f is None else f) for p, f in zip(parts, folds)])
        return cls(y=cat("y"), pred=cat("pred"), score=cat("score"), fold=fold, unit=unit)


def residue_units(data: TaskData) -> np.ndarray | None:
    """For a per-residue task, the protein (index in the test split) of each scored test residue
    (as :func:`task_arrays` orders them); None for per-protein tasks."""
    if data.kind != "residue_multiclass":
        return None
    recs = data.splits["test"]
    return np.concatenate([np.full(int((np.asarray(r.label) >= 0).sum()), i) for i, r in enumerate(recs)]
                          or [np.zeros(0, np.int64)]).astype(np.int64)


def save_predictions(path, predictions: dict[tuple[str, str, str], Predictions]):
    """Test predictions keyed by ``(representation, task, key)`` as one ``.npz`` (atomic)."""
    from lsdkit.io import atomic_save_npz

    arrays = {}
    for names, p in predictions.items():
        if any("|" in str(x) for x in names):
            raise ValueError(f"save_predictions: '|' in a name {names!r}")
        for f in Predictions.FIELDS:
            if getattr(p, f) is not None:
                arrays["|".join([*map(str, names), f])] = np.asarray(getattr(p, f))
    return atomic_save_npz(path, arrays)


def load_predictions(path) -> dict[tuple[str, str, str], Predictions]:
    """What :func:`save_predictions` wrote."""
    fields: dict[tuple[str, str, str], dict[str, np.ndarray]] = {}
    with np.load(path, allow_pickle=False) as z:
        for name in z.files:
            rep, task, key, f = name.rsplit("|", 3)
            fields.setdefault((rep, task, key), {})[f] = z[name]
    return {k: Predictions(**v) for k, v in fields.items()}


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
    mlp_seeds: int = 3                       # MLP: fitted with seeds seed, seed+1, ... (their spread is
    # reported); the linear probes (lbfgs logistic, ridge, OneVsRestTerms) are deterministic: fitted once
    max_train_rows: int | None = None        # None: the task's documented cap (if any)
    max_valid_rows: int | None = None
    extra_metrics: tuple[str, ...] = ()      # reported beside the task's own, where the kind has them
    # (applicable_metrics: macro_f1, balanced_accuracy, mcc; auroc, auprc for two classes)
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
    test_predictions: Predictions | None = field(default=None, repr=False)   # set by evaluate()


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
    n_classes = len(task.classes or ()) if isinstance(task, TaskData) else 0
    usable = applicable_metrics(kind, n_classes)
    metrics = tuple(dict.fromkeys((metric, *spec.extra_metrics, *[m for m in cfg.extra_metrics if m in usable])))
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
    return dataclasses.replace(result, test=test, n_rows={**result.n_rows, "test": len(X_test)},
                               test_predictions=Predictions(y=np.asarray(y_test), pred=out.get("pred"),
                                                            score=out.get("score")))


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


def probe_seeds(config: ProbeConfig | None = None) -> list[int]:
    """The seeds a probe is fitted with: ``mlp_seeds`` of them for the (stochastic) MLP probe, one
    for the deterministic linear probes."""
    cfg = config or ProbeConfig()
    return [cfg.seed + i for i in range(max(cfg.mlp_seeds, 1))] if cfg.model == "mlp" else [cfg.seed]


def run_probe(task: str | TaskData, featurizer: Featurizer, config: ProbeConfig | None = None,
              data: str | None = None, t: float | None = None) -> list[ProbeResult]:
    """Probe one task with one representation: one result per fold (one for fixed splits) and probe
    seed (:func:`probe_seeds`; the seeds change the probe's initialisation only, not the data
    subsample), fold-major. Each result carries its test predictions (residues of a per-residue
    task marked with their protein)."""
    from lsdkit.data.tasks import load_task, task_folds

    cfg = config or ProbeConfig()
    datas = [task] if isinstance(task, TaskData) else [load_task(task, data, fold) for fold in task_folds(task)]
    cache: dict[str, np.ndarray] = {}
    results = []
    for d in datas:
        started = time.perf_counter()
        X, Y = task_arrays(d, featurizer, cfg, cache)
        for seed in probe_seeds(cfg):
            r = probe_task(X, Y, d, dataclasses.replace(cfg, seed=seed))
            preds = dataclasses.replace(r.test_predictions, unit=residue_units(d))
            results.append(dataclasses.replace(r, representation=featurizer.name, t=t, fold=d.fold,
                                               seconds=time.perf_counter() - started, test_predictions=preds))
            started = time.perf_counter()
    return results


def pooled_predictions(results: list[ProbeResult]) -> Predictions:
    """The test predictions of :func:`run_probe`'s results as one set: folds pooled, the first probe
    seed's (an interval is over test items; the seeds' spread is reported apart)."""
    first = [r for r in results if r.seed == results[0].seed]
    return Predictions.pool([r.test_predictions for r in first], [r.fold for r in first])


def prediction_rows(data: TaskData, result: ProbeResult) -> list[dict[str, Any]]:
    """Per-record test predictions of one probe result (``data``: the task, or fold, it was fitted on):
    representation, task, fold, seed, id, [position (per-residue, 1-based)], label, prediction
    [, score: P(second class) for two classes; multilabel: top_score, prediction = terms with
    probability >= 0.5]. Class indices are written as class names."""
    p = result.test_predictions
    if p is None:
        raise ValueError(f"{result.task}: the probe was not scored on test; no predictions")
    classes = data.classes

    def name(v):
        return classes[int(v)] if classes else float(v)

    base = {"representation": result.representation, "task": data.name, "fold": data.fold, "seed": result.seed}
    rows, recs = [], data.splits["test"]
    if data.kind == "residue_multiclass":
        k = 0
        for r in recs:
            for pos in np.flatnonzero(np.asarray(r.label) >= 0):
                row = {**base, "id": r.id, "position": int(pos) + 1, "label": name(p.y[k]), "prediction": name(p.pred[k])}
                if p.score is not None:
                    row["score"] = float(p.score[k])
                rows.append(row)
                k += 1
    elif data.kind == "multilabel":
        for i, r in enumerate(recs):
            rows.append({**base, "id": r.id, "label": ";".join(classes[j] for j in np.flatnonzero(p.y[i])),
                         "prediction": ";".join(classes[j] for j in np.flatnonzero(p.score[i] >= 0.5)),
                         "top_score": float(p.score[i].max()) if p.score.shape[1] else float("nan")})
    else:
        for i, r in enumerate(recs):
            row = {**base, "id": r.id, "label": name(p.y[i]), "prediction": name(p.pred[i])}
            if p.score is not None:
                row["score"] = float(p.score[i])
            rows.append(row)
    if len(rows) != len(p):
        raise ValueError(f"{result.task}: {len(p)} test predictions for {len(rows)} test items (another fold?)")
    return rows


def _spread(results: list[ProbeResult], split: str, metric: str) -> tuple[float, float | None, float | None, int]:
    """Mean of ``metric`` on ``split`` over the results (folds x probe seeds), the sd over folds (of
    each fold's mean over seeds; population sd) if there are several folds, the sd over probe seeds
    (of each seed's mean over folds; sample sd) if some fold has several seeds, and the seed count."""
    scored = [r for r in results if getattr(r, split) is not None]
    by_fold: dict[Any, list[float]] = {}
    by_seed: dict[int, list[float]] = {}
    for r in scored:
        by_fold.setdefault(r.fold, []).append(getattr(r, split)[metric])
        by_seed.setdefault(r.seed, []).append(getattr(r, split)[metric])
    n_seeds = max(len(v) for v in by_fold.values())
    fold_sd = float(np.std([np.mean(v) for v in by_fold.values()])) if len(by_fold) > 1 else None
    seed_sd = float(np.std([np.mean(v) for v in by_seed.values()], ddof=1)) if n_seeds > 1 else None
    return float(np.mean([getattr(r, split)[metric] for r in scored])), fold_sd, seed_sd, n_seeds


def result_rows(results: list[ProbeResult]) -> list[dict[str, Any]]:
    """Tidy rows (representation, task, t, split, metric, value, hyperparams, seed, protocol).
    Several results (the folds of a cross-validated task, the seeds of an MLP probe) become their
    mean, plus a ``<metric>_sd`` row (sd over folds) and a ``<metric>_seed_sd`` row (sd over probe
    seeds) where there are several."""
    r0 = results[0]
    hyper = ({"runs": [{"fold": r.fold, "seed": r.seed, **{k: v for k, v in r.hyperparams.items() if k != "grid"}}
                       for r in results], "grid": r0.hyperparams["grid"]} if len(results) > 1 else r0.hyperparams)
    ci = score_interval(results)
    rows = []
    for split in ("valid", "test"):
        for m in r0.metrics:
            if all(getattr(r, split) is None for r in results):
                continue
            mean, fold_sd, seed_sd, _ = _spread(results, split, m)
            named = [(m, mean)] + ([(f"{m}_sd", fold_sd)] if fold_sd is not None else []) \
                + ([(f"{m}_seed_sd", seed_sd)] if seed_sd is not None else [])
            for metric, value in named:
                row = {"representation": r0.representation, "task": r0.task, "t": r0.t, "split": split,
                       "metric": metric, "value": value}
                if ci is not None and split == "test" and metric == r0.metric:
                    row.update(ci_low=ci.low, ci_high=ci.high)
                rows.append({**row, "hyperparams": json.dumps(hyper, default=str), "seed": r0.seed,
                             "protocol": r0.protocol, "seconds": round(sum(r.seconds for r in results), 3)})
    return rows


def score_interval(results: list[ProbeResult], n: int = 1000, seed: int = 0, level: float = 0.95):
    """The 95 % percentile bootstrap interval of the primary test metric over the test items (whole
    proteins for per-residue tasks; within folds for CV tasks; the first probe seed's predictions),
    or None when the results carry no test predictions. Its centre is the pooled value, which for a
    CV task is the mean over folds."""
    if any(r.test_predictions is None for r in results):
        return None
    return pooled_predictions(results).interval(results[0].metric, n=n, seed=seed, level=level)


def markdown_table(results_per_task: list[list[ProbeResult]]) -> str:
    """One line per task: primary metric on valid and test (mean ± sd over folds; ± sd over probe
    seeds where the probe is stochastic), the test score's 95 % bootstrap interval
    (:func:`score_interval`), choices, sizes and seconds (features and probes)."""
    lines = ["| representation | task | protocol | metric | valid | test | test 95 % CI | chosen | n train/valid/test "
             "| s |", "|---|---|---|---|---|---|---|---|---|---|"]
    for results in results_per_task:
        r0 = results[0]
        name = "alpha" if "alpha" in r0.hyperparams else "C"

        def fmt(split, m=r0.metric):
            mean, fold_sd, seed_sd, n_seeds = _spread(results, split, m)
            return (f"{mean:.3f}" + (f" ± {fold_sd:.3f}" if fold_sd is not None else "")
                    + (f" ± {seed_sd:.3f} ({n_seeds} seeds)" if seed_sd is not None else ""))
        chosen = ",".join(f"{r.hyperparams[name]:g}" for r in results)
        n = "/".join(str(results[0].n_rows[s]) for s in SPLITS)
        secs = sum(r.seconds for r in results)
        ci = score_interval(results)
        ci = "—" if ci is None else f"[{ci.low:.3f}, {ci.high:.3f}]"
        lines.append(f"| {r0.representation} | {r0.task} | {r0.protocol} | {r0.metric} | {fmt('valid')} | "
                     f"{fmt('test')} | {ci} | {name}={chosen} | {n} | {secs:.0f} |")
    return "\n".join(lines)
