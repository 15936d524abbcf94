"""Probes: metrics against hand-computed answers, every label kind on tiny data, and the rule
that nothing is tuned on a test split."""

import json
import os

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from lsdkit.baselines import Composition
from lsdkit.data.tasks import Record, TaskData, TaskSpec
from lsdkit.probe import (OneVsRestTerms, Predictions, ProbeConfig, accuracy, auroc, evaluate, fit_probe, fmax,
                          item_metric, load_predictions, markdown_table, pair_features, pooled_predictions,
                          probe_task, residue_units, result_rows, run_probe, save_predictions, score,
                          select_on_valid, spearman, task_arrays)

# --- metrics ---------------------------------------------------------------------------------
# 3 proteins x 3 terms, worked by hand (see test_fmax_hand_computed)
Y = np.array([[1, 0, 0], [0, 1, 1], [1, 1, 0]], bool)
S = np.array([[0.9, 0.2, 0.1], [0.3, 0.8, 0.4], [0.6, 0.1, 0.7]])


def test_fmax_hand_computed():
    # τ = 0.4: P1={0} (p 1, r 1), P2={1,2} (1, 1), P3={0,2} (1/2, 1/2) -> pr = rc = 5/6, F = 5/6
    assert fmax(Y, S, thresholds=[0.4]) == pytest.approx(5 / 6)       # scores >= τ predict
    # τ = 0.41: P2={1} (1, 1/2) -> pr 5/6, rc 2/3, F = 20/27
    assert fmax(Y, S, thresholds=[0.41]) == pytest.approx(20 / 27)
    # τ = 0.75: protein 3 predicts nothing -> precision over the 2 covered proteins = 1,
    # recall over all 3 = (1 + 1/2 + 0)/3 = 1/2, F = 2/3 (averaging precision over all: 4/7)
    assert fmax(Y, S, thresholds=[0.75]) == pytest.approx(2 / 3)
    # τ = 0.05: everything predicted: pr = (1/3 + 2/3 + 2/3)/3 = 5/9, rc = 1, F = 10/14
    assert fmax(Y, S, thresholds=[0.05]) == pytest.approx(10 / 14)
    assert fmax(Y, S) == pytest.approx(5 / 6)                          # max over 0.00..1.00
    # a protein without true terms is not part of the benchmark
    assert fmax(np.vstack([Y, [[0, 0, 0]]]), np.vstack([S, [[0.9, 0.9, 0.9]]])) == pytest.approx(5 / 6)
    assert fmax(Y, np.zeros_like(S), thresholds=[0.5]) == 0.0           # nothing predicted


def test_auroc_spearman_accuracy_known_answers():
    assert auroc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]) == pytest.approx(0.75)
    assert auroc([0, 1], [0.5, 0.5]) == pytest.approx(0.5)             # ties count one half
    rng = np.random.default_rng(0)
    y, s = rng.integers(0, 2, 50), rng.random(50).round(1)
    assert auroc(y, s) == pytest.approx(roc_auc_score(y, s))
    # ranks of pred: 1, 2, 3.5, 5, 3.5 -> rho = 8 / sqrt(10 * 9.5)
    assert spearman([1, 2, 3, 4, 5], [5, 6, 7, 8, 7]) == pytest.approx(8 / np.sqrt(95))
    assert accuracy([0, 1, 2, 2], [0, 1, 1, 2]) == 0.75


@pytest.mark.parametrize("metric", ["accuracy", "auroc", "spearman", "fmax"])
def test_item_metric_recomputes_the_score_on_any_resample(metric):
    rng = np.random.default_rng(0)
    n = 40
    if metric == "fmax":
        y, out = rng.random((n, 5)) < 0.3, {"score": rng.random((n, 5)).round(2)}
    elif metric == "spearman":
        y = rng.normal(size=n)
        out = {"pred": y + rng.normal(size=n)}
    else:
        y = rng.integers(0, 2, n)
        out = {"pred": rng.integers(0, 2, n), "score": rng.random(n)}
    fn, items = item_metric(metric, y, out)
    assert fn(*items) == pytest.approx(score(metric, y, out), abs=1e-12)
    idx = rng.integers(0, n, n)                                   # a resample, with repeats
    resampled = fn(*(a[idx] for a in items))
    assert resampled == pytest.approx(score(metric, y[idx], {k: v[idx] for k, v in out.items()}), abs=1e-12)


def test_predictions_pool_folds_round_trip_and_residue_units(tmp_path):
    a = Predictions(y=np.array([0, 1, 1, 0]), pred=np.array([0, 1, 0, 0]))          # fold 0: 3/4
    b = Predictions(y=np.array([1, 1]), pred=np.array([1, 1]))                      # fold 1: 2/2
    pooled = Predictions.pool([a, b], [0, 1])
    assert pooled.fold.tolist() == [0, 0, 0, 0, 1, 1]
    assert pooled.value("accuracy") == pytest.approx((0.75 + 1.0) / 2)              # the mean over folds
    reps = pooled.replicates("accuracy", n=50)
    assert len(reps) == 50 and np.isin(reps * 8 - 4, np.arange(5)).all()         # (fold 0 + 1.0) / 2
    save_predictions(tmp_path / "p.npz", {("LSD-TN", "toy", "t0.1_layer2"): pooled})
    (key, back), = load_predictions(tmp_path / "p.npz").items()
    assert key == ("LSD-TN", "toy", "t0.1_layer2") and back.same_items(pooled) and back.score is None
    np.testing.assert_array_equal(back.pred, pooled.pred)
    assert back.interval("accuracy") == pooled.interval("accuracy")
    res = toy_task("residue_multiclass", [("ACDE", np.array([0, 1, -1, 2], np.int8)),
                                          ("AC", np.array([-1, -1], np.int8)), ("AA", np.array([1, 1], np.int8))],
                   ("H", "E", "C"))
    assert residue_units(res).tolist() == [0, 0, 0, 2, 2]                            # the protein of each residue
    assert residue_units(toy_task("binary", [("AC", 0)])) is None


# --- every label kind on tiny data ------------------------------------------------------------
def spec(kind, metric, **kw):
    return TaskSpec(name=f"toy_{kind}", source="-", kind=kind, metric=metric, protocol="toy",
                    description="toy", **kw)


def blobs(n, k, d=5, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    centres = rng.normal(scale=4, size=(k, d))
    return centres[y] + rng.normal(size=(n, d)), y


def split3(X, y):
    n = len(X)
    a, b = n // 2, 3 * n // 4
    return {"train": X[:a], "valid": X[a:b], "test": X[b:]}, {"train": y[:a], "valid": y[a:b], "test": y[b:]}


def test_multiclass_binary_and_residue_probes():
    X, y = blobs(240, 3)
    for kind in ("multiclass", "residue_multiclass"):
        r = probe_task(*split3(X, y), spec(kind, "accuracy"))
        assert r.test["accuracy"] > 0.95 and r.valid["accuracy"] > 0.95
        assert r.hyperparams["probe"] == "logreg" and r.hyperparams["C"] in ProbeConfig().C_grid
        assert r.seed == 0 and set(r.valid_curve) == {repr(c) for c in ProbeConfig().C_grid}
    X, y = blobs(200, 2, seed=1)
    r = probe_task(*split3(X, y), spec("binary", "accuracy", extra_metrics=("auroc",)))
    assert r.metrics == ("accuracy", "auroc") and r.test["auroc"] > 0.98


def test_regression_probe():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 6))
    y = X @ rng.normal(size=6) + 0.1 * rng.normal(size=200)
    r = probe_task(*split3(X, y), spec("regression", "spearman"))
    assert r.test["spearman"] > 0.95 and r.hyperparams["probe"] == "ridge" and "alpha" in r.hyperparams


def test_multilabel_probe_and_untrainable_terms():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 6))
    Yl = np.stack([X[:, 0] > 0, X[:, 1] > 0.5, X[:, 2] + X[:, 3] > 0, np.zeros(300, bool)], 1)
    Yl[::2, 3] = False
    r = probe_task(*split3(X, Yl), spec("multilabel", "fmax"))
    assert r.test["fmax"] > 0.85
    # a term never positive in training scores its training frequency (0)
    assert (r.model.predict_proba(X[:5])[:, 3] == 0).all()


def test_one_vs_rest_terms_matches_sklearn_logistic_regression():
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    X = rng.normal(size=(150, 4))
    Yl = (X @ rng.normal(size=(4, 3)) + rng.normal(size=(150, 3))) > 0
    ours = OneVsRestTerms(C=0.1).fit(X, Yl).predict_proba(X)
    for k in range(3):
        ref = LogisticRegression(C=0.1, tol=1e-10, max_iter=5000).fit(X, Yl[:, k]).predict_proba(X)[:, 1]
        np.testing.assert_allclose(ours[:, k], ref, atol=2e-3)


def test_mlp_probe_is_seeded():
    X, y = blobs(400, 3)
    cfg = ProbeConfig(model="mlp", mlp_hidden=(8,), mlp_alpha_grid=(1e-2,), max_iter=200, seed=3)
    a, b = (probe_task(*split3(X, y), spec("multiclass", "accuracy"), cfg) for _ in range(2))
    assert a.test == b.test and a.hyperparams["probe"] == "mlp" and a.seed == 3
    assert a.test["accuracy"] > 0.9


def test_linear_probes_are_deterministic_so_fitted_once():
    """The probe seed does not change a linear probe (lbfgs logistic, ridge, OneVsRestTerms): one fit."""
    X, y = blobs(200, 3)
    rng = np.random.default_rng(0)
    Yl = np.stack([X[:, 0] > 0, X[:, 1] > 0], 1)
    noisy = X[:, 0] + rng.normal(size=200)
    for kind, metric, labels in (("multiclass", "accuracy", y), ("regression", "spearman", noisy),
                                 ("multilabel", "fmax", Yl)):
        a, b = (probe_task(*split3(X, labels), spec(kind, metric), ProbeConfig(seed=s)) for s in (0, 7))
        assert a.test == b.test and a.valid_curve == b.valid_curve
    from lsdkit.probe import probe_seeds
    assert probe_seeds(ProbeConfig(seed=4)) == [4] and probe_seeds(ProbeConfig(model="mlp", seed=4)) == [4, 5, 6]


class ArrayFeaturizer:
    """Features looked up by sequence (a stand-in for a representation)."""

    name = "toyfeat"

    def __init__(self, table):
        self.table = table

    def __call__(self, seqs):
        return np.stack([self.table[s] for s in seqs])


def test_mlp_probe_reports_the_spread_over_seeds():
    X, y = blobs(240, 3, seed=2)
    X = X + np.random.default_rng(3).normal(scale=3.0, size=X.shape)       # hard enough that seeds differ
    seqs = [f"S{i}" for i in range(len(X))]
    splits = {s: [Record(seqs[i], seqs[i], int(y[i])) for i in idx] for s, idx in
              (("train", range(0, 120)), ("valid", range(120, 180)), ("test", range(180, 240)))}
    task = TaskData(spec=spec("multiclass", "accuracy"), splits=splits, classes=("a", "b", "c"))
    cfg = ProbeConfig(model="mlp", mlp_hidden=(16,), mlp_alpha_grid=(1e-2,), max_iter=300, seed=1)
    results = run_probe(task, ArrayFeaturizer(dict(zip(seqs, X))), cfg)
    assert [r.seed for r in results] == [1, 2, 3] and all(r.test_predictions is not None for r in results)
    tests = [r.test["accuracy"] for r in results]
    assert len(set(tests)) > 1                                          # the seeds do change the MLP
    rows = {(r["split"], r["metric"]): r["value"] for r in result_rows(results)}
    assert rows["test", "accuracy"] == pytest.approx(np.mean(tests))
    assert rows["test", "accuracy_seed_sd"] == pytest.approx(np.std(tests, ddof=1))
    assert ("test", "accuracy_sd") not in rows                          # one fold: no sd over folds
    assert f"{np.mean(tests):.3f} ± {np.std(tests, ddof=1):.3f} (3 seeds)" in markdown_table([results])
    np.testing.assert_array_equal(pooled_predictions(results).pred, results[0].test_predictions.pred)


# --- nothing is tuned on test ----------------------------------------------------------------
def test_hyperparameters_are_chosen_on_valid_even_when_test_prefers_another():
    """Train/valid follow y = X w; test follows the direction a heavily shrunk ridge predicts
    (X^T y), so on test alpha=1e4 would win; the probe must still pick the valid-best alpha."""
    rng = np.random.default_rng(0)
    cov = np.array([[1, 0.95], [0.95, 1]])
    X = rng.multivariate_normal([0, 0], cov, size=600)
    w = np.array([1.0, -0.8])
    y = X @ w
    Xs = (X - X[:300].mean(0)) / X[:300].std(0)
    w_shrunk = Xs[:300].T @ y[:300]
    y_test = Xs[400:] @ w_shrunk
    feats = {"train": X[:300], "valid": X[300:400], "test": X[400:]}
    labels = {"train": y[:300], "valid": y[300:400], "test": y_test}
    task = spec("regression", "spearman")
    cfg = ProbeConfig(alpha_grid=(1e4, 1e-3))
    chosen = probe_task(feats, labels, task, cfg)
    assert chosen.hyperparams["alpha"] == 1e-3
    other = probe_task(feats, labels, task, ProbeConfig(alpha_grid=(1e4,)))
    assert other.test["spearman"] > chosen.test["spearman"] + 0.1   # test would have chosen 1e4
    assert other.valid["spearman"] < chosen.valid["spearman"]
    with pytest.raises(RuntimeError, match="scored once"):
        evaluate(chosen, feats["test"], labels["test"])


def _regression_splits():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(400, 6))
    y = X @ rng.normal(size=6) + rng.normal(scale=2.0, size=400)
    return ({"train": X[:200], "valid": X[200:300], "test": X[300:]},
            {"train": y[:200], "valid": y[200:300], "test": y[300:]})


@pytest.mark.parametrize("kind, metric", [("regression", "spearman"), ("multiclass", "accuracy")])
def test_the_test_split_never_reaches_selection(kind, metric, monkeypatch):
    """Corrupting the test split (noise features, permuted labels) changes the test score and
    nothing else; and no fit, prediction or score touches test rows before selection is final."""
    import lsdkit.probe as probe_mod

    feats, labels = _regression_splits() if kind == "regression" else split3(*blobs(400, 3))
    task, cfg = spec(kind, metric), ProbeConfig(alpha_grid=(1e3, 10.0, 0.1), C_grid=(1e-3, 1e-1, 10.0))
    rng = np.random.default_rng(7)
    bad_feats = {**feats, "test": rng.normal(scale=5.0, size=(60, feats["test"].shape[1]))}
    bad_labels = {**labels, "test": rng.permutation(labels["train"])[:60]}
    real, bad = probe_task(feats, labels, task, cfg), probe_task(bad_feats, bad_labels, task, cfg)
    assert bad.hyperparams == real.hyperparams
    assert bad.valid == real.valid and bad.valid_curve == real.valid_curve
    np.testing.assert_array_equal(bad.model[-1].coef_, real.model[-1].coef_)     # the same fitted probe
    assert bad.test != real.test and bad.n_rows["test"] == 60                    # test was read: only here

    # every use of the test arrays, in order: none before the selecting step has returned
    events = []
    is_test = lambda a: any(a is v for v in (feats["test"], labels["test"]))       # noqa: E731
    fit_probe_, outputs_, score_ = probe_mod.fit_probe, probe_mod._outputs, probe_mod.score

    def spy_fit_probe(*args, **kw):
        events.append(("select", any(is_test(a) for a in args)))
        result = fit_probe_(*args, **kw)
        events.append(("selected", False))
        return result

    def spy_outputs(model, kind_, X):
        events.append(("predict", is_test(X)))
        return outputs_(model, kind_, X)

    def spy_score(metric_, y, out):
        events.append(("score", is_test(y)))
        return score_(metric_, y, out)

    monkeypatch.setattr(probe_mod, "fit_probe", spy_fit_probe)
    monkeypatch.setattr(probe_mod, "_outputs", spy_outputs)
    monkeypatch.setattr(probe_mod, "score", spy_score)
    again = probe_mod.probe_task(feats, labels, task, cfg)
    assert again.test == real.test and again.hyperparams == real.hyperparams
    done = events.index(("selected", False))
    assert not any(touched for _, touched in events[:done])
    assert [e for e in events[done:] if e[1]] == [("predict", True)] + [("score", True)] * len(real.metrics)


def test_select_on_valid_ignores_test():
    X, y = blobs(160, 2)
    r = probe_task(*split3(X, y), spec("binary", "accuracy"))
    good = dataclass_replace(r, valid={"accuracy": 0.9}, test={"accuracy": 0.5})
    bad = dataclass_replace(r, valid={"accuracy": 0.7}, test={"accuracy": 0.99})
    assert select_on_valid({(0.1, 2): bad, (0.5, 2): good, (0.9, 2): bad}) == (0.5, 2)
    assert select_on_valid({"a": good, "b": good}) == "a"            # ties keep the first
    with pytest.raises(ValueError):
        select_on_valid({})


def dataclass_replace(r, **kw):
    import dataclasses
    return dataclasses.replace(r, **kw)


# --- tasks -> arrays -> rows -----------------------------------------------------------------
def toy_task(kind, records, classes=None, **kw):
    splits = {s: [Record(f"{s}{i}", seq, lab) for i, (seq, lab) in enumerate(records)]
              for s in ("train", "valid", "test")}
    return TaskData(spec=spec(kind, "accuracy", **kw), splits=splits, classes=classes)


def test_task_arrays_for_pairs_and_residues():
    pairs = toy_task("pair_binary", [(("AAAA", "CCCC"), 1), (("CCCC", "AAAA"), 0), (("AAAA", "AAAA"), 1)], ("n", "y"))
    X, Yp = task_arrays(pairs, Composition())
    assert X["train"].shape == (3, 40) and Yp["train"].tolist() == [1, 0, 1]
    np.testing.assert_array_equal(X["train"][0], X["train"][1])      # [a*b, |a-b|] is symmetric
    np.testing.assert_array_equal(pair_features(np.ones((1, 2)), np.zeros((1, 2))), [[0, 0, 1, 1]])
    res = toy_task("residue_multiclass", [("ACDE", np.array([0, 1, -1, 2], np.int8)),
                                          ("AC", np.array([-1, -1], np.int8))], ("H", "E", "C"))
    X, Yr = task_arrays(res, Composition())
    assert X["test"].shape == (3, 20) and Yr["test"].tolist() == [0, 1, 2]    # -1 residues dropped
    capped = toy_task("multiclass", [(s, i % 2) for i, s in enumerate(["AC", "CA", "AA", "CC", "AD"])], ("a", "b"))
    X, _ = task_arrays(capped, Composition(), ProbeConfig(max_train_rows=2))
    assert len(X["train"]) == 2 and len(X["test"]) == 5              # test is never capped


def test_result_rows_and_cv_aggregation():
    X, y = blobs(160, 2)
    results = []
    for seed in (0, 1):
        r = probe_task(*split3(X, y), spec("binary", "accuracy", extra_metrics=("auroc",)), ProbeConfig(seed=seed))
        results.append(dataclass_replace(r, representation="toy", fold=seed))
    rows = result_rows(results)
    assert list(rows[0]) == ["representation", "task", "t", "split", "metric", "value", "hyperparams", "seed", "protocol",
                             "seconds"]
    test = next(r for r in rows if (r["split"], r["metric"]) == ("test", "accuracy"))
    ci = pooled_predictions(results).interval("accuracy")      # folds pooled, resampled within each
    assert (test["ci_low"], test["ci_high"]) == (ci.low, ci.high) and ci.low <= test["value"] <= ci.high
    assert test["value"] == pytest.approx(ci.value)          # the mean over folds
    assert all("ci_low" not in r for r in rows if r is not test)
    assert {(r["split"], r["metric"]) for r in rows} == {(s, m) for s in ("valid", "test")
                                                         for m in ("accuracy", "accuracy_sd", "auroc", "auroc_sd")}
    assert [r["fold"] for r in json.loads(rows[0]["hyperparams"])["runs"]] == [0, 1]
    one = result_rows(results[:1])
    assert {r["metric"] for r in one} == {"accuracy", "auroc"}
    assert "| toy | toy_binary | toy | accuracy |" in markdown_table([results])
    assert f"| [{ci.low:.3f}, {ci.high:.3f}] |" in markdown_table([results])


def test_probe_command_on_the_bundled_go_task(tmp_path, capsys, monkeypatch):
    import csv

    from lsdkit.cli import main

    monkeypatch.delenv("LSDKIT_DATA", raising=False)          # go_mf_sp14 ships with lsdkit
    out = tmp_path / "r.csv"
    assert main(["probe", "--features", "composition", "--task", "go_mf_sp14", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "| composition | go_mf_sp14 | sp14-sample-homology-split | fmax |" in printed
    rows = list(csv.DictReader(out.open()))
    assert [(r["split"], r["metric"]) for r in rows] == [("valid", "fmax"), ("test", "fmax")]
    assert 0.2 < float(rows[1]["value"]) < 0.8 and json.loads(rows[1]["hyperparams"])["probe"] == "logreg"
    assert main(["probe", "--features", "composition", "--task", "nope"]) == 2
    assert "unknown task 'nope'" in capsys.readouterr().err


@pytest.mark.skipif(not os.environ.get("LSDKIT_DATA"), reason="LSDKIT_DATA is not set (real task data)")
def test_run_probe_on_real_thermostability():
    (r,) = run_probe("thermostability", Composition(), data=os.environ["LSDKIT_DATA"])
    assert r.representation == "composition" and r.protocol == "saprot-valid"
    assert r.n_rows == {"train": 498, "valid": 141, "test": 1336}
    assert 0.2 < r.test["spearman"] < 0.6


# --- metrics beyond the primary one, per-record predictions, task files on the command line -------------
def test_classification_metrics_match_sklearn_and_known_answers():
    from sklearn.metrics import (average_precision_score, balanced_accuracy_score, f1_score,
                                 matthews_corrcoef)

    from lsdkit.probe import auprc, balanced_accuracy, class_report, macro_f1, mcc
    y, p = np.array([0, 0, 0, 1, 1, 2]), np.array([0, 0, 1, 1, 2, 2])
    assert macro_f1(y, p) == pytest.approx((0.8 + 0.5 + 2 / 3) / 3)
    assert balanced_accuracy(y, p) == pytest.approx((2 / 3 + 1 / 2 + 1) / 3)
    assert mcc([0, 1, 0, 1], [0, 1, 0, 1]) == 1.0 and mcc([0, 1, 0, 1], [1, 0, 1, 0]) == -1.0
    assert mcc([0, 0, 0], [0, 0, 0]) == 0.0                           # undefined: 0, as sklearn
    assert auprc([1, 0, 1, 0], [0.9, 0.8, 0.7, 0.1]) == pytest.approx((1 + 2 / 3) / 2)
    rng = np.random.default_rng(1)
    for _ in range(50):
        y = rng.integers(0, 3, 40)
        p = np.where(rng.random(40) < 0.6, y, rng.integers(0, 3, 40))
        assert macro_f1(y, p) == pytest.approx(f1_score(y, p, average="macro"))
        assert balanced_accuracy(y, p) == pytest.approx(balanced_accuracy_score(y, p))
        assert mcc(y, p) == pytest.approx(matthews_corrcoef(y, p))
        yb, s = rng.integers(0, 2, 40), np.round(rng.random(40), 1)
        assert auprc(yb, s) == pytest.approx(average_precision_score(yb, s))
    rep = class_report(y, p, ("a", "b", "c"))
    assert [r["class"] for r in rep] == ["a", "b", "c"] and sum(r["support"] for r in rep) == 40
    assert rep[0]["recall"] == pytest.approx(np.mean(p[y == 0] == 0))


def _residue_task(tmp_path):
    from lsdkit.data.tasks import load_custom_task
    rng = np.random.default_rng(0)
    lines = []
    for i in range(60):
        seq = "".join(rng.choice(list("ACDEFGHIKLMNPQRSTVWY"), 30))
        lab = "".join("H" if c in "AELMQK" else "C" for c in seq)         # learnable from the residue
        lines.append(f"r{i},{seq},{lab},{['train', 'train', 'valid', 'test'][i % 4]}\n")
    path = tmp_path / "res.csv"
    path.write_text("id,sequence,label,split\n" + "".join(lines))
    return load_custom_task(path, "residue_multiclass")


def test_binary_residue_task_reports_auroc_auprc_and_per_residue_predictions(tmp_path):
    from lsdkit.baselines import OneHot
    from lsdkit.probe import prediction_rows
    task = _residue_task(tmp_path)
    assert task.spec.extra_metrics[-2:] == ("auroc", "auprc")
    (r,) = run_probe(task, OneHot())
    assert {"accuracy", "macro_f1", "balanced_accuracy", "mcc", "auroc", "auprc"} <= set(r.test)
    assert r.test["auroc"] > 0.9 and r.test["auprc"] > 0.9
    rows = prediction_rows(task, r)
    assert len(rows) == 15 * 30 and rows[0]["id"] == "r3" and rows[0]["position"] == 1
    assert {row["label"] for row in rows} == {"C", "H"} and 0 <= rows[0]["score"] <= 1
    assert np.mean([row["label"] == row["prediction"] for row in rows]) == pytest.approx(r.test["accuracy"])


def test_extra_metrics_for_registered_tasks_only_when_asked(tmp_path):
    import dataclasses

    from lsdkit.data.tasks import load_custom_task
    path = tmp_path / "three.csv"
    path.write_text("id,sequence,label\n" + "".join(
        f"r{i},{'MKV' + 'ACDEFGHIKLMNPQRSTVWY'[i % 20] * (4 + i % 5) + ['KKRR', 'DDEE', 'WWFF'][i % 3]},c{i % 3}\n"
        for i in range(150)))
    custom = load_custom_task(path)
    data = dataclasses.replace(custom, spec=dataclasses.replace(custom.spec, extra_metrics=()))   # as a registered one
    (plain,) = run_probe(data, Composition())
    assert tuple(plain.test) == ("accuracy",)
    (more,) = run_probe(data, Composition(), ProbeConfig(extra_metrics=("mcc", "auroc", "macro_f1")))
    assert tuple(more.test) == ("accuracy", "mcc", "macro_f1")        # auroc: not for 3 classes
    assert more.test["accuracy"] == plain.test["accuracy"]


TASK_CSV = "Entry,Seq,compartment\n" + "".join(
    f"P{i},{'MKV' + 'ACDEFGHIKLMNPQRSTVWY'[i % 20] * (5 + i % 7) + ('KKKRRR' if i % 2 else 'DDDEEE')},"
    f"{'nucleus' if i % 2 else 'secreted'}\n" for i in range(120))


def test_probe_command_on_a_task_file(tmp_path, capsys):
    import csv

    from lsdkit.cli import main
    task = tmp_path / "mine.csv"
    task.write_text(TASK_CSV + "bad1,MK1V,nucleus\nbad2,MKV,\n")
    out, pred = tmp_path / "r.csv", tmp_path / "pred.csv"
    argv = ["probe", "--features", "composition", "--task", str(task), "--label-col", "compartment",
            "--out", str(out), "--predictions", str(pred)]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "2 bad record(s)" in err[0] and "mine.csv:122: record 'bad1'" in err[0]
    assert not out.exists() and not pred.exists()
    assert main(argv + ["--on-bad", "skip"]) == 0
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert lines[0].startswith("task mine (") and "kind binary (inferred: 2 distinct text labels), 2 classes" in lines[0]
    assert any("dropped 2 bad record(s) (1 empty label, 1 invalid sequence)" in ln for ln in lines)
    assert any("no exact duplicate sequences" in ln or "exact duplicate sequences across splits" in ln for ln in lines)
    assert any(ln.strip().startswith("nucleus") for ln in lines)                   # the per-class report
    assert "| composition | mine | custom-hash-split-lsdkit | accuracy |" in captured.out
    metrics = {(r["split"], r["metric"]) for r in csv.DictReader(out.open())}
    assert {("test", m) for m in ("accuracy", "auroc", "auprc", "macro_f1", "balanced_accuracy", "mcc")} <= metrics
    rows = list(csv.DictReader(pred.open()))
    assert rows and {"id", "label", "prediction", "score"} <= set(rows[0]) and rows[0]["label"] in ("nucleus", "secreted")


@pytest.mark.parametrize("argv,flag", [
    (["--task", "missing.csv"], "--task"),
    (["--task", "go_mf_sp14", "--label-col", "x"], "--label-col"),
    (["--task", "go_mf_sp14", "--on-bad", "skip"], "--on-bad"),
    (["--task", "{tmp}/s.fasta"], "--labels"),
    (["--task", "{tmp}/mine.csv", "--labels", "{tmp}/mine.csv"], "--labels"),
    (["--task", "{tmp}/mine.csv", "--kind", "nonsense"], "--kind"),
    (["--task", "{tmp}/mine.csv", "--metrics", "r2"], "--metrics"),
    (["--task", "{tmp}/mine.csv", "--label-col", "nope"], "--label-col"),
])
def test_probe_task_file_flags_are_checked_before_any_work(tmp_path, capsys, argv, flag):
    from lsdkit.cli import main
    (tmp_path / "mine.csv").write_text(TASK_CSV)
    (tmp_path / "s.fasta").write_text(">a\nMKV\n")
    argv = ["probe", "--features", "composition", *[a.format(tmp=tmp_path) for a in argv],
            "--out", str(tmp_path / "out.csv")]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("lsdkit: error: ") and flag in err[0], err
    assert not (tmp_path / "out.csv").exists()
