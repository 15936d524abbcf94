"""Latent geometry, measured: numbers beside the UMAP pictures.

Every measure is computed on the **per-residue** representations of held-out proteins (the corpus's
validation split) and comes with the number of items used and a percentile bootstrap interval
(:mod:`lsdkit.stats`; units resampled are **proteins**, so residues of one protein move together).
Only real residues enter: a per-protein list ``[L_i, d]`` holds nothing else, and a padded
``[N, L, d]`` array needs its ``mask`` (:func:`residues`). The held-out proteins are split by protein
(``test_fraction``, seeded) into a fit part and a test part for the probes and regressions.

==================== =========================================================================
measure              what is computed
==================== =========================================================================
``decodability``     accuracy on test residues of a linear probe (standardised inputs, multinomial
                     logistic regression, C = ``probe_c``) predicting the residue type (20 + X) from
                     its representation; per type (group = the letter) the accuracy on residues of
                     that type. Row ``representation="chance"``: the majority type of the fit part
                     predicted for every test residue.
``homogeneity``      mean over residue types (>= ``min_type_residues``) of MMD²(P_type, P_pooled),
                     Gaussian kernel exp(-‖x-y‖²/m), m = median squared pairwise distance of the
                     (subsampled) pooled residues. Estimated without bias as (1-π)² MMD²_u(type,
                     rest), which equals MMD² to the pooled law (its mean embedding is the mixture);
                     0: identically distributed; pairs of a residue with itself never enter.
``context_r2_*``     R² on test residues of a ridge regression (alpha = ``ridge_alpha``) of the
                     representation (each dimension standardised on the fit part) on one-hot tokens:
                     ``own`` the residue's own token, ``neighbours`` the tokens at ±1..±``window``
                     (positional, not the residue itself), ``both``. R² = 1 - Σ‖y-ŷ‖² / Σ‖y-ȳ‖².
shape                on all drawn residues (fit and test), after the standardisation the denoiser sees
                     (z - μ)/s (a diffusion checkpoint's stored μ, s; ``note`` says "raw" otherwise):
                     ``mean_abs_mean`` and ``mean_variance`` (averages over dimensions; per dimension
                     as ``dim_mean``/``dim_variance``/``dim_kurtosis``, group ``dim<j>``),
                     ``excess_kurtosis`` (mean over dimensions, Gaussian 0), ``effective_rank``
                     (participation ratio (Σλ)²/Σλ² of the covariance's eigenvalues; d for an
                     isotropic cloud), ``top<k>_variance`` (fraction of variance in the top k PCs).
``knn_agreement``    pooled (masked-mean) representations of ``knn_proteins`` proteins of a labelled
                     task: the mean over proteins of the label similarity to their ``k`` nearest
                     neighbours (Euclidean after per-dimension standardisation; similarity = same
                     class, or Jaccard of label sets for a multilabel task). The same for amino-acid
                     composition (``representation="composition"``) and for random pairs
                     (``"chance"``). Items: proteins.
==================== =========================================================================

Entry points: :func:`measure` (arrays in, tidy DataFrame out), :func:`geometry_table`
(representers), :func:`study_geometry` / :func:`study_geometry_along_t` (a study's encoders; one
denoiser layer along t), ``lsdkit geometry`` (a checkpoint).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields

import numpy as np
import pandas as pd

from lsdkit.alphabet import STANDARD
from lsdkit.errors import ArgumentError
from lsdkit.stats import Interval, bootstrap_ci, percentile_interval, resample_indices

TYPES = STANDARD + "X"                   # residue types, in lsdkit.baselines.residue_index order
COLUMNS = ["representation", "key", "t", "layer", "measure", "group", "value", "ci_low", "ci_high", "n",
           "unit", "note"]
SUMMARY_ORDER = ["decodability", "homogeneity", "context_r2_own", "context_r2_neighbours", "context_r2_both",
                 "mean_abs_mean", "mean_variance", "excess_kurtosis", "effective_rank", "top_variance",
                 "knn_agreement"]


class GeometryError(ArgumentError):
    """Inputs a geometry measure cannot use (shapes that disagree, too few proteins, a bad task)."""


@dataclass
class GeometryConfig:
    """What the measures use. Every count is an upper bound; draws are seeded."""

    n_proteins: int = 200               # held-out proteins (corpus validation split)
    max_residues: int = 10_000          # residues kept for probes, regressions, shape (seeded draw)
    max_kernel_residues: int = 1_500    # residues in the homogeneity kernel matrix
    test_fraction: float = 0.5          # share of held-out proteins that score the probes/regressions
    window: int = 3                     # neighbour tokens on each side (context regression)
    probe_c: float = 1.0                # inverse L2 strength of the residue-type probe
    ridge_alpha: float = 1.0            # ridge strength of the context regressions
    min_type_residues: int = 10         # residue types with fewer residues are left out of homogeneity
    top_k: int = 4                      # principal components of top<k>_variance
    k: int = 10                         # neighbours of knn_agreement
    knn_task: str | None = "auto"       # labelled task; auto: deeploc10 if the data has it, else go_mf_sp14
    knn_proteins: int = 500             # proteins of the task (its validation split, seeded draw)
    n_boot: int = 200                   # bootstrap resamples
    level: float = 0.95                 # interval level
    seed: int = 0
    corpus_limit: int | None = 50_000   # corpus records read to find held-out proteins (geometry_table)

    def __post_init__(self):
        for f in fields(self):
            v = getattr(self, f.name)
            if f.name in ("test_fraction", "level"):
                ok = 0 < v < 1
            elif f.name in ("probe_c", "ridge_alpha"):
                ok = v > 0
            elif f.name == "corpus_limit":
                ok = v is None or v >= 1
            elif f.name in ("knn_task", "seed"):
                ok = True
            else:
                ok = v >= 1
            if not ok:
                raise GeometryError(f"GeometryConfig.{f.name}={v!r} is out of range")


# --- residues -------------------------------------------------------------------------------------
@dataclass
class Residues:
    """Real residues of held-out proteins: ``X`` [N, d], ``types`` [N] (index into TYPES),
    ``protein`` [N] (0..P-1), ``context`` [N, 2w] (neighbour types, -1 beyond the ends)."""

    X: np.ndarray
    types: np.ndarray
    protein: np.ndarray
    context: np.ndarray
    n_proteins: int


def residues(latents, sequences: Sequence[str], *, mask=None, window: int = 3) -> Residues:
    """The real residues of each protein: ``latents`` is a list of ``[L_i, d]`` arrays, or a padded
    ``[N, L, d]`` array with ``mask`` [N, L] (True at real residues; nothing else is read)."""
    from lsdkit.baselines import residue_index
    if mask is not None or (isinstance(latents, np.ndarray) and latents.ndim == 3):
        if mask is None:
            raise GeometryError("a padded [N, L, d] latent array needs mask= (True at real residues)")
        try:
            latents, mask = np.asarray(latents, dtype=np.float64), np.asarray(mask, dtype=bool)
        except ValueError:
            raise GeometryError("mask= goes with a padded [N, L, d] array, not a list of [L_i, d] arrays") from None
        if latents.ndim != 3 or mask.shape != latents.shape[:2]:
            raise GeometryError(f"mask of shape {mask.shape} does not match latents of shape {latents.shape}")
        rows = [latents[i][mask[i]] for i in range(len(latents))]
    else:
        rows = [np.asarray(a) for a in latents]
    if len(rows) != len(sequences):
        raise GeometryError(f"{len(rows)} latent arrays but {len(sequences)} sequences")
    if len(rows) < 2:
        raise GeometryError(f"need at least 2 proteins, got {len(rows)}")
    X, types, protein, context = [], [], [], []
    offsets = [o for o in range(-window, window + 1) if o]
    for i, (z, seq) in enumerate(zip(rows, sequences)):
        idx = residue_index(seq, record=f"protein {i}")
        if z.ndim != 2 or len(z) != len(idx):
            raise GeometryError(f"protein {i}: latents of shape {z.shape} for {len(idx)} residues")
        padded = np.concatenate([np.full(window, -1), idx, np.full(window, -1)])
        context.append(np.stack([padded[window + o: window + o + len(idx)] for o in offsets], 1)
                       if offsets else np.zeros((len(idx), 0), np.int64))
        X.append(z.astype(np.float64))
        types.append(idx)
        protein.append(np.full(len(idx), i))
    return Residues(np.concatenate(X), np.concatenate(types), np.concatenate(protein), np.concatenate(context),
                    len(rows))


def _draw(n: int, cap: int, rng: np.random.Generator) -> np.ndarray:
    return np.arange(n) if n <= cap else np.sort(rng.choice(n, size=cap, replace=False))


def _split(res: Residues, cfg: GeometryConfig) -> tuple[np.ndarray, np.ndarray]:
    """Row masks (fit, test) of a split of the proteins."""
    order = np.random.default_rng(cfg.seed).permutation(res.n_proteins)
    n_test = min(max(1, round(cfg.test_fraction * res.n_proteins)), res.n_proteins - 1)
    test = np.isin(res.protein, order[:n_test])
    return ~test, test


def _row(measure: str, iv: Interval, n: int, group: str = "all", unit: str = "residues", note: str = "",
         **extra) -> dict:
    return dict(measure=measure, group=group, value=iv.value, ci_low=iv.low, ci_high=iv.high, n=int(n),
                unit=unit, note=note, **extra)


def _protein_intervals(stat, n_units: int, cfg: GeometryConfig) -> list[Interval]:
    """``stat(w)`` (a vector) at unit weights 1 and at the bootstrap's unit counts, as intervals."""
    point = np.asarray(stat(np.ones(n_units)), dtype=np.float64)
    reps = np.array([stat(np.bincount(idx, minlength=n_units).astype(np.float64))
                     for idx in resample_indices(n_units, cfg.n_boot, cfg.seed)])
    return [percentile_interval(point[j], reps[:, j], cfg.level) for j in range(len(point))]


# --- the measures ---------------------------------------------------------------------------------
def decodability(res: Residues, cfg: GeometryConfig) -> list[dict]:
    """Residue-type accuracy of a linear probe (fit proteins -> test proteins), overall and per type,
    and the majority-type predictor's accuracy (``representation="chance"``)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    fit, test = _split(res, cfg)
    y_fit, y_test, units = res.types[fit], res.types[test], res.protein[test]
    if len(np.unique(y_fit)) < 2:
        pred = np.full(len(y_test), y_fit[0])
    else:
        probe = make_pipeline(StandardScaler(), LogisticRegression(C=cfg.probe_c, max_iter=500))
        pred = probe.fit(res.X[fit], y_fit).predict(res.X[test])
    correct = (pred == y_test).astype(np.float64)
    majority = np.bincount(y_fit).argmax()
    boot = dict(n=cfg.n_boot, seed=cfg.seed, level=cfg.level)
    rows = [_row("decodability", bootstrap_ci(np.mean, correct, units=units, **boot), len(y_test),
                 note=f"linear probe, {fit.sum()} fit residues"),
            _row("decodability", bootstrap_ci(np.mean, (y_test == majority).astype(np.float64), units=units, **boot),
                 len(y_test), note=f"majority type {TYPES[majority]}", representation="chance")]
    for c in np.unique(y_test):
        m = y_test == c
        rows.append(_row("decodability", bootstrap_ci(np.mean, correct[m], units=units[m], **boot), m.sum(),
                         group=TYPES[c]))
    return rows


def homogeneity(res: Residues, cfg: GeometryConfig) -> list[dict]:
    """MMD² between each residue type's representations and the pooled ones (module docstring)."""
    rows = _draw(len(res.X), cfg.max_kernel_residues, np.random.default_rng(cfg.seed + 1))
    X, types, protein = res.X[rows], res.types[rows], res.protein[rows]
    sq = (X * X).sum(1)
    D = np.maximum(sq[:, None] + sq[None, :] - 2 * X @ X.T, 0.0)
    m = float(np.median(D[np.triu_indices(len(X), 1)])) if len(X) > 1 else 0.0
    K = np.exp(-D / m) if m > 0 else np.ones_like(D)
    A = np.eye(len(TYPES))[types]                                        # [N, C] one-hot
    counts = np.bincount(types, minlength=len(TYPES))
    keep = np.flatnonzero((counts >= max(cfg.min_type_residues, 2)) & (len(X) - counts >= 2))
    if not len(keep):
        return []

    def stat(w_protein):
        w = w_protein[protein]
        Aw = A * w[:, None]
        M = Aw.T @ K @ Aw                                                # weighted block sums
        n, n2 = Aw.sum(0), (A * (w * w)[:, None]).sum(0)                 # Σw, Σw² per type
        N, N2, total, row = n.sum(), n2.sum(), M.sum(), M.sum(1)
        out = []
        for t in keep:
            nt, nr = n[t], N - n[t]
            pairs_t, pairs_r = nt * nt - n2[t], nr * nr - (N2 - n2[t])    # pairs of distinct residues
            if pairs_t <= 0 or pairs_r <= 0:
                out.append(np.nan)
                continue
            xx = (M[t, t] - n2[t]) / pairs_t                             # K(x, x) = 1 is left out
            yy = (total - 2 * row[t] + M[t, t] - (N2 - n2[t])) / pairs_r
            xy = (row[t] - M[t, t]) / (nt * nr)
            out.append((1 - nt / N) ** 2 * (xx + yy - 2 * xy))
        return [np.nanmean(out), *out]

    ivs = _protein_intervals(stat, res.n_proteins, cfg)
    note = f"MMD², Gaussian kernel exp(-d²/m), m={m:.4g} (median d²)"
    return [_row("homogeneity", ivs[0], len(X), note=note + f", {len(keep)} types")] + \
        [_row("homogeneity", iv, counts[t], group=TYPES[t]) for t, iv in zip(keep, ivs[1:])]


def _onehot(idx: np.ndarray) -> np.ndarray:
    out = np.zeros((len(idx), len(TYPES)))
    ok = idx >= 0
    out[np.flatnonzero(ok), idx[ok]] = 1.0
    return out


def context_content(res: Residues, cfg: GeometryConfig) -> list[dict]:
    """R² of ridge regressions of the representation on the own token, the neighbours' tokens, both."""
    from sklearn.linear_model import Ridge
    fit, test = _split(res, cfg)
    mu, sd = res.X[fit].mean(0), res.X[fit].std(0)
    Y = (res.X - mu) / np.where(sd > 0, sd, 1.0)
    own = _onehot(res.types)
    neigh = np.hstack([_onehot(res.context[:, j]) for j in range(res.context.shape[1])]) \
        if res.context.shape[1] else np.zeros((len(Y), 0))
    s = ((Y[test] - Y[fit].mean(0)) ** 2).sum(1)
    rows = []
    for name, F in (("own", own), ("neighbours", neigh), ("both", np.hstack([own, neigh]))):
        pred = Ridge(alpha=cfg.ridge_alpha).fit(F[fit], Y[fit]).predict(F[test]) if F.shape[1] else \
            np.broadcast_to(Y[fit].mean(0), Y[test].shape)
        e = ((Y[test] - pred) ** 2).sum(1)
        iv = bootstrap_ci(lambda e_, s_: 1 - e_.sum() / s_.sum(), e, s, n=cfg.n_boot, seed=cfg.seed,
                          level=cfg.level, units=res.protein[test])
        rows.append(_row(f"context_r2_{name}", iv, len(e), note=f"ridge, ±{cfg.window} neighbours"
                         if name != "own" else "ridge on the residue's own token"))
    return rows


def shape(res: Residues, cfg: GeometryConfig, mean=None, std=None) -> list[dict]:
    """Per-dimension mean/variance/kurtosis after ``(x - mean)/std`` (if given), effective rank and the
    top-k variance fraction; bootstrap over proteins from per-protein moment sums."""
    Z = res.X if mean is None else (res.X - np.asarray(mean, np.float64)) / np.asarray(std, np.float64)
    d, P = Z.shape[1], res.n_proteins
    S1, S2, S3, S4 = (np.zeros((P, d)) for _ in range(4))
    big = P * d * d > 2e7                                 # per-protein second moments in float32 when large
    C, cnt = np.zeros((P, d, d), np.float32 if big else np.float64), np.bincount(res.protein, minlength=P).astype(float)
    for j, S in enumerate((S1, S2, S3, S4), 1):
        np.add.at(S, res.protein, Z ** j)
    for p in range(P):
        z = Z[res.protein == p]
        C[p] = z.T @ z
    k = min(cfg.top_k, d)

    def stat(w):
        n = w @ cnt
        m1, m2, m3, m4 = (w @ S / n for S in (S1, S2, S3, S4))
        var = np.maximum(m2 - m1 ** 2, 0.0)
        c4 = m4 - 4 * m1 * m3 + 6 * m1 ** 2 * m2 - 3 * m1 ** 4
        kurt = np.where(var > 0, c4 / np.where(var > 0, var, 1) ** 2 - 3, np.nan)
        cov = np.tensordot(w, C, 1).astype(np.float64) / n - np.outer(m1, m1)
        lam = np.clip(np.sort(np.linalg.eigvalsh(cov))[::-1], 0, None)
        pr = lam.sum() ** 2 / (lam ** 2).sum() if lam.sum() > 0 else np.nan
        top = lam[:k].sum() / lam.sum() if lam.sum() > 0 else np.nan
        return [np.abs(m1).mean(), var.mean(), np.nanmean(kurt) if np.isfinite(kurt).any() else np.nan, pr, top,
                *m1, *var, *kurt]

    ivs = _protein_intervals(stat, P, cfg)
    note = "standardised as the denoiser sees it" if mean is not None else "raw (no denoiser standardisation)"
    n = len(Z)
    rows = [_row(name, iv, n, note=note) for name, iv in
            zip(["mean_abs_mean", "mean_variance", "excess_kurtosis", "effective_rank", "top_variance"], ivs[:5])]
    rows[-1]["note"] = f"top {k} of {d} PCs; " + note
    for j in range(d):
        for name, off in (("dim_mean", 5), ("dim_variance", 5 + d), ("dim_kurtosis", 5 + 2 * d)):
            rows.append(_row(name, ivs[off + j], n, group=f"dim{j}"))
    return rows


# --- protein neighbourhoods -----------------------------------------------------------------------
@dataclass
class LabelledProteins:
    """Proteins of a labelled task for :func:`knn_agreement`: ``labels`` are class indices
    (multiclass, binary) or tuples of them (multilabel)."""

    task: str
    kind: str
    ids: list[str]
    sequences: list[str]
    labels: list = field(default_factory=list)

    def similarity(self) -> np.ndarray:
        """[P, P]: 1 for the same class (Jaccard of the label sets for multilabel)."""
        if self.kind == "multilabel":
            classes = sorted({c for lab in self.labels for c in lab})
            Y = np.zeros((len(self.labels), len(classes)))
            pos = {c: j for j, c in enumerate(classes)}
            for i, lab in enumerate(self.labels):
                Y[i, [pos[c] for c in lab]] = 1.0
            inter = Y @ Y.T
            union = Y.sum(1)[:, None] + Y.sum(1)[None, :] - inter
            return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)
        y = np.asarray(self.labels)
        return (y[:, None] == y[None, :]).astype(np.float64)


def labelled_proteins(task: str, n: int, seed: int = 0, data_dir=None, max_len: int | None = None) -> LabelledProteins:
    """At most ``n`` proteins drawn (seeded) from the validation split of ``task`` (``"auto"``:
    deeploc10 when the data directory has it, else the bundled go_mf_sp14); multilabel proteins
    without a label are left out; sequences cut to ``max_len``."""
    from lsdkit.data.sources import configured_data_dir
    from lsdkit.data.tasks import TASKS, get_task, load_task
    if task == "auto":
        root = configured_data_dir(data_dir)
        task = "deeploc10" if root is not None and (root / TASKS["deeploc10"].source).is_dir() else "go_mf_sp14"
    spec = get_task(task)
    if spec.kind not in ("multiclass", "binary", "multilabel"):
        raise GeometryError(f"knn task {task!r} has {spec.kind} labels; choose a multiclass, binary or multilabel "
                            "task (e.g. deeploc10, ec_level1, go_mf_sp14)")
    records = [r for r in load_task(task, data_dir).splits["valid"] if spec.kind != "multilabel" or len(r.label)]
    records = [records[i] for i in _draw(len(records), n, np.random.default_rng(seed))]
    if len(records) < 3:
        raise GeometryError(f"knn task {task!r}: only {len(records)} labelled validation proteins")
    return LabelledProteins(task, spec.kind, [r.id for r in records], [r.sequence[:max_len] for r in records],
                            [r.label for r in records])


def knn_agreement(pooled: np.ndarray, proteins: LabelledProteins, cfg: GeometryConfig,
                  representation: str | None = None) -> list[dict]:
    """Mean label similarity of each protein to its ``k`` nearest neighbours (and, for
    ``representation=None``, the same for composition features and for random pairs)."""
    from sklearn.neighbors import NearestNeighbors
    from sklearn.preprocessing import StandardScaler
    S = proteins.similarity()
    P = len(S)
    if len(pooled) != P:
        raise GeometryError(f"{len(pooled)} pooled rows for {P} proteins")
    k = min(cfg.k, P - 1)
    boot = dict(n=cfg.n_boot, seed=cfg.seed, level=cfg.level)
    note = f"{proteins.task}, k={k}"

    def agree(F):
        F = StandardScaler().fit_transform(np.asarray(F, np.float64))
        _, ind = NearestNeighbors(n_neighbors=k + 1).fit(F).kneighbors(F)
        nbrs = np.array([[j for j in row if j != i][:k] for i, row in enumerate(ind)])
        return S[np.arange(P)[:, None], nbrs].mean(1)

    if representation is not None:
        return [_row("knn_agreement", bootstrap_ci(np.mean, agree(pooled), **boot), P, unit="proteins", note=note)]
    from lsdkit.baselines import composition_features
    chance = (S.sum(1) - np.diag(S)) / (P - 1)
    return [_row("knn_agreement", bootstrap_ci(np.mean, agree(pooled), **boot), P, unit="proteins", note=note),
            _row("knn_agreement", bootstrap_ci(np.mean, agree(composition_features(proteins.sequences)), **boot), P,
                 unit="proteins", note=note + ", amino-acid composition", representation="composition"),
            _row("knn_agreement", bootstrap_ci(np.mean, chance, **boot), P, unit="proteins",
                 note=note + ", random pairs", representation="chance")]


# --- tables ---------------------------------------------------------------------------------------
def measure(latents, sequences: Sequence[str], *, representation: str = "representation", mask=None,
            mean=None, std=None, pooled: np.ndarray | None = None, proteins: LabelledProteins | None = None,
            config: GeometryConfig | None = None, key: str = "latent", t: float | None = None,
            layer: int | None = None) -> pd.DataFrame:
    """Every measure of one representation as a tidy table (:data:`COLUMNS`). ``latents``/``mask``:
    see :func:`residues`; ``mean``/``std``: the denoiser's standardisation (shape measures);
    ``pooled`` [P, d] for ``proteins``: the neighbourhood measure (left out when not given)."""
    cfg = config or GeometryConfig()
    res = residues(latents, sequences, mask=mask, window=cfg.window)
    keep = _draw(len(res.X), cfg.max_residues, np.random.default_rng(cfg.seed))
    res = Residues(res.X[keep], res.types[keep], res.protein[keep], res.context[keep], res.n_proteins)
    rows = decodability(res, cfg) + homogeneity(res, cfg) + context_content(res, cfg) + shape(res, cfg, mean, std)
    if pooled is not None and proteins is not None:
        rows += knn_agreement(pooled, proteins, cfg)
    df = pd.DataFrame(rows)
    if "representation" not in df:
        df["representation"] = None
    df["representation"] = df["representation"].fillna(representation)
    own = df["representation"] == representation               # the rest: references (chance, composition)
    df["key"] = np.where(own, key, "")
    df["t"] = np.where(own, np.nan if t is None else float(t), np.nan)
    df["layer"] = np.where(own, np.nan if layer is None else layer, np.nan)
    return df[COLUMNS]


def combine(frames: Sequence[pd.DataFrame]) -> pd.DataFrame:
    """Tables of several representations in one; the shared reference rows (chance, composition)
    of the same residues/proteins are kept once."""
    df = pd.concat(frames, ignore_index=True)
    ref = df["key"] == ""
    return pd.concat([df[~ref], df[ref].drop_duplicates(["representation", "measure", "group", "value", "n"])],
                     ignore_index=True)


def _standardisation(rep):
    m = rep.model
    if rep.kind == "diffusion":
        return m.latent_mean.detach().cpu().numpy(), m.latent_std.detach().cpu().numpy()
    return None, None


def heldout_sequences(n: int, max_len: int, data_dir=None, limit: int | None = 50_000):
    """``(ids, sequences)``: the first ``n`` proteins of the corpus's validation split (fixed crop to
    ``max_len``) among its first ``limit`` records, as :meth:`lsdkit.study.Study.valid_sequences`."""
    from lsdkit.alphabet import ALPHABET
    from lsdkit.data.corpus import Corpus, CorpusConfig
    from lsdkit.data.sources import corpus_fasta
    ds = Corpus.load(CorpusConfig(fasta=str(corpus_fasta(data_dir)), max_len=max_len, limit=limit)).split("valid")
    items = [ds[i] for i in range(min(n, len(ds)))]
    return [i for i, _ in items], [ALPHABET.decode(t) for _, t in items]


def geometry_table(representers: Mapping[str, object], ids=None, sequences=None, config: GeometryConfig | None = None,
                   data_dir=None) -> pd.DataFrame:
    """:func:`measure` of the latent of each :class:`~lsdkit.represent.Representer` (by display name)
    on the same held-out proteins (default: :func:`heldout_sequences`) and task proteins; a diffusion
    checkpoint's latent is standardised with its stored μ, s."""
    cfg = config or GeometryConfig()
    max_len = min(r.max_len for r in representers.values())
    if sequences is None:
        ids, sequences = heldout_sequences(cfg.n_proteins, max_len, data_dir, cfg.corpus_limit)
    proteins = labelled_proteins(cfg.knn_task, cfg.knn_proteins, cfg.seed, data_dir, max_len) if cfg.knn_task else None
    frames = []
    for name, rep in representers.items():
        feats = rep.features(sequences, ids, per_residue=True)
        seqs = [s[:n] for s, n in zip(sequences, feats["lengths"])]
        pooled = rep.pooled(proteins.sequences, proteins.ids) if proteins else None
        mean, std = _standardisation(rep)
        frames.append(measure(feats["latent"], seqs, representation=name, mean=mean, std=std, pooled=pooled,
                              proteins=proteins, config=cfg))
    return combine(frames)


@dataclass
class GeometryAlongT:
    """:func:`geometry_along_t`'s result: the tidy ``table`` (one representation per t) and, for the
    explorer, ``residues_by_t[t]`` [n, D] of drawn residues with their ``labels`` (protein_id,
    position, residue, aa_class)."""

    table: pd.DataFrame
    residues_by_t: dict
    labels: pd.DataFrame
    name: str
    layer: int


def geometry_along_t(rep, ts: Sequence[float], layer: int | None = -1, ids=None, sequences=None,
                     config: GeometryConfig | None = None, data_dir=None, name: str = "diffusion",
                     explorer_points: int = 1000) -> GeometryAlongT:
    """:func:`measure` of a diffusion representer's hidden states at ``layer`` at every t (raw, no
    standardisation), on the same held-out and task proteins as :func:`geometry_table` (``layer``
    None: the last block)."""
    from lsdkit.represent import feature_key
    from lsdkit.viz.figures import residue_labels
    cfg = config or GeometryConfig()
    if rep.kind != "diffusion":
        raise GeometryError(f"geometry along t needs a diffusion checkpoint, got a {rep.kind} one")
    (layer,) = rep.resolve_layers(-1 if layer is None else layer)
    if sequences is None:
        ids, sequences = heldout_sequences(cfg.n_proteins, rep.max_len, data_dir, cfg.corpus_limit)
    proteins = labelled_proteins(cfg.knn_task, cfg.knn_proteins, cfg.seed, data_dir, rep.max_len) \
        if cfg.knn_task else None
    ts = [float(t) for t in ts]
    feats = rep.features(sequences, ids, ts=ts, layers=layer, per_residue=True)
    pooled = rep.features(proteins.sequences, proteins.ids, ts=ts, layers=layer) if proteins else {}
    seqs = [s[:n] for s, n in zip(sequences, feats["lengths"])]
    labels = residue_labels(ids, seqs)
    draw = _draw(len(labels), explorer_points, np.random.default_rng(cfg.seed))
    frames, by_t = [], {}
    for t in ts:
        key = feature_key(t, layer)
        frames.append(measure(feats[key], seqs, representation=f"{name} t={t:g}", pooled=pooled.get(key),
                              proteins=proteins, config=cfg, key=key, t=t, layer=layer))
        by_t[t] = np.concatenate(feats[key])[draw]
    return GeometryAlongT(combine(frames), by_t, labels.iloc[draw].reset_index(drop=True), name, layer)


def study_geometry(study, config: GeometryConfig | None = None) -> pd.DataFrame:
    """:func:`geometry_table` of every encoder of ``study`` (its latent, standardised as its
    denoiser sees it) on ``config.n_proteins`` proteins of the study's validation split."""
    cfg = config or GeometryConfig()
    ids, seqs = study.valid_sequences(cfg.n_proteins)
    reps = {study.display_name(name): study.representer(name) for name in study.latent_spaces}
    return geometry_table(reps, ids, seqs, cfg, study.data_dir)


def study_geometry_along_t(study, encoder: str, ts: Sequence[float] | None = None, layer: int | None = -1,
                           config: GeometryConfig | None = None, explorer_points: int = 1000) -> GeometryAlongT:
    """:func:`geometry_along_t` of ``encoder``'s denoiser (default t grid: the study's)."""
    cfg = config or GeometryConfig()
    ids, seqs = study.valid_sequences(cfg.n_proteins)
    return geometry_along_t(study.representer(encoder), ts or study.config.ts, layer, ids, seqs, cfg,
                            study.data_dir, name=f"{study.display_name(encoder)} diffusion",
                            explorer_points=explorer_points)


def summary_table(df: pd.DataFrame, digits: int = 3) -> pd.DataFrame:
    """The ``group == "all"`` rows side by side: one row per measure, one column per representation,
    cells ``value [ci_low, ci_high] n=N``."""
    s = df[df["group"] == "all"].copy()
    s["cell"] = [f"{Interval(v, lo, hi).format(digits)} n={n}" for v, lo, hi, n in
                 zip(s["value"], s["ci_low"], s["ci_high"], s["n"])]
    order = {m: i for i, m in enumerate(SUMMARY_ORDER)}
    wide = s.pivot(index="measure", columns="representation", values="cell")
    wide = wide.loc[sorted(wide.index, key=lambda m: order.get(m, len(order)))]
    cols = list(dict.fromkeys(r for r in s["representation"] if r not in ("chance", "composition")))
    wide = wide[cols + [c for c in ("composition", "chance") if c in wide.columns]].fillna("")
    wide.columns.name = None
    return wide


def per_group_table(df: pd.DataFrame, measure: str = "decodability", digits: int = 3) -> pd.DataFrame:
    """One measure's per-group rows side by side (e.g. decodability per residue type): one row per
    group (residue types in TYPES order, then dimensions), one column per representation."""
    s = df[(df["measure"] == measure) & (df["group"] != "all")].copy()
    if not len(s):
        raise GeometryError(f"no per-group rows of {measure!r}; measures with them: "
                            f"{sorted(set(df.loc[df['group'] != 'all', 'measure']))}")
    s["cell"] = [f"{Interval(v, lo, hi).format(digits)} n={n}" for v, lo, hi, n in
                 zip(s["value"], s["ci_low"], s["ci_high"], s["n"])]
    wide = s.pivot(index="group", columns="representation", values="cell")
    rank = {t: i for i, t in enumerate(TYPES)}
    wide = wide.loc[sorted(wide.index, key=lambda g: (rank.get(g, len(rank)), len(g), g))]
    wide = wide[list(dict.fromkeys(s["representation"]))].fillna("")
    wide.columns.name = None
    return wide


def markdown(wide: pd.DataFrame) -> str:
    """A Markdown table of :func:`summary_table`."""
    head = ["measure", *map(str, wide.columns)]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join([str(i), *map(str, r)]) + " |" for i, r in zip(wide.index, wide.to_numpy())]
    return "\n".join(lines)


def representation_name(model) -> str:
    """Display name of a checkpoint's latent space: LSD-TN, LSD-NM, LSD-TN-M, MLM (through a
    diffusion model's frozen encoder)."""
    from lsdkit.models.presets import DISPLAY_NAMES
    enc = model.encoder if model.kind == "diffusion" else model
    if enc.kind == "pretrained":
        from lsdkit.pretrained import display_name
        return display_name(enc.name)
    if enc.kind == "mlm":
        return DISPLAY_NAMES["mlm"]
    b = getattr(enc.config, "bottleneck", "")
    return DISPLAY_NAMES.get(b, f"autoencoder ({b})")
