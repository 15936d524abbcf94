"""Timestep sweeps (one pass, selection on valid only) and the comparison table / findings."""

import numpy as np
import pandas as pd
import pytest

from lsdkit.baselines import Composition
from lsdkit.data.tasks import load_custom_task
from lsdkit.probe import Predictions, ProbeConfig
from lsdkit.report import (BASELINE_KEY, Finding, ReportError, comparison_table, judge_findings, table_predictions,
                           to_markdown)
from lsdkit.sweep import Key, WideFeaturizer, key_columns, sweep_keys, sweep_task


class FakeRepresenter:
    """Diffusion-like features: the latent is amino-acid composition; at level t, layer l the
    composition is mixed with seeded noise of strength t·(l+1) - so small t is best."""

    kind = "diffusion"

    def __init__(self):
        self.calls = 0

    def resolve_layers(self, layers):
        return [0, 1] if layers == "all" else sorted({int(x) % 2 for x in np.atleast_1d(layers)})

    def features(self, seqs, ids=None, ts=(None,), layers=-1, per_residue=False):
        self.calls += 1
        comp = Composition()(list(seqs))
        out = {}
        for t in ts:
            if t is None:
                out["latent"] = comp
                continue
            for l in self.resolve_layers(layers):
                rng = np.random.default_rng(int(1000 * t) + l)
                noise = rng.standard_normal((len(seqs), comp.shape[1])) * comp.std()
                out[f"t{t:g}_layer{l}"] = (comp + t * (l + 1) * 3 * noise).astype(np.float32)
        out["lengths"] = np.array([len(s) for s in seqs])
        return out


@pytest.fixture
def hydrophobic_task(tmp_path, fixture_fasta):
    """A real-sequence binary task: is the protein more hydrophobic than the median?"""
    from lsdkit.data.fasta import read_fasta
    recs = list(read_fasta(fixture_fasta))
    frac = np.array([sum(c in "AILMFVW" for c in r.sequence) / len(r.sequence) for r in recs])
    med = np.median(frac)
    lines = ["id,sequence,label,split"]
    for i, (r, f) in enumerate(zip(recs, frac)):
        split = ("train", "train", "valid", "test")[i % 4]
        lines.append(f"{r.id},{r.sequence},{int(f > med)},{split}")
    path = tmp_path / "hydro.csv"
    path.write_text("\n".join(lines) + "\n")
    return load_custom_task(path, kind="binary", name="hydro")


def test_sweep_keys_latent_then_every_t_layer():
    keys = sweep_keys(FakeRepresenter(), ts=(0.1, 0.5), layers="all")
    assert [k.name for k in keys] == ["latent", "t0.1_layer0", "t0.1_layer1", "t0.5_layer0", "t0.5_layer1"]


def test_wide_featurizer_one_pass_and_blocks():
    rep = FakeRepresenter()
    keys = sweep_keys(rep, ts=(0.1, 0.5))
    wide = WideFeaturizer(rep, keys, "fake")
    X = wide(["ACDEFG", "KKLLMM"])
    assert rep.calls == 1                       # every key from one representation call
    assert X.shape == (2, 20 * len(keys))
    np.testing.assert_allclose(X[:, wide.blocks[Key(None)]], Composition()(["ACDEFG", "KKLLMM"]))


def test_pair_columns_follow_the_pair_layout():
    a = np.arange(12, dtype=float).reshape(2, 6)            # width 6 = two blocks of 3
    X = np.concatenate([a, -a], axis=1)                     # [a*b | |a-b|] stand-in
    cols = key_columns(X, slice(3, 6), 6, "pair_binary")
    np.testing.assert_array_equal(cols, np.concatenate([a[:, 3:6], -a[:, 3:6]], axis=1))


def test_sweep_selects_on_valid_and_scores_test_only_for_selected(hydrophobic_task):
    rep = FakeRepresenter()
    df = sweep_task(rep, hydrophobic_task, "fake", ts=(0.05, 0.9), layers="all",
                    config=ProbeConfig(C_grid=(0.1, 1.0, 10.0)))
    valid = df[(df.split == "valid") & (df.metric == "accuracy")]
    assert set(valid.key) == {"latent", "t0.05_layer0", "t0.05_layer1", "t0.9_layer0", "t0.9_layer1"}
    test = df[df.split == "test"]
    assert set(test.key) == set(df[df.selected].key)            # test only where selected
    chosen = df[df.selected & (df.key != "latent")].key.unique()
    assert len(chosen) == 1
    diff_valid = valid[valid.key != "latent"].set_index("key")["value"]
    assert diff_valid[chosen[0]] == diff_valid.max()             # the valid-best key
    assert chosen[0].startswith("t0.05")                         # little noise wins here
    # the test predictions of the keys scored on test give their test score again
    preds = {}
    again = sweep_task(rep, hydrophobic_task, "fake", ts=(0.05, 0.9), layers="all",
                       config=ProbeConfig(C_grid=(0.1, 1.0, 10.0)), predictions=preds)
    pd.testing.assert_frame_equal(again, df)
    assert set(preds) == {"latent", chosen[0]}
    for key, p in preds.items():
        assert len(p) == len(hydrophobic_task.splits["test"])
        assert p.value("accuracy") == test[(test.key == key) & (test.metric == "accuracy")].value.item()
        assert p.value("auroc") == test[(test.key == key) & (test.metric == "auroc")].value.item()


N_ITEMS = 400
SCORES = {  # row -> (deeploc10, ppi_yeast) accuracy
    "LSD-TN latent": (0.60, 0.70), "LSD-NM latent": (0.65, 0.66), "MLM embedding": (0.80, 0.80),
    "LSD-TN-M latent": (0.62, 0.75),
    "Diffusion on LSD-TN": (0.55, 0.60), "Diffusion on LSD-NM": (0.58, 0.62),
    "Diffusion on MLM": (0.50, 0.55), "Composition": (0.40, 0.50)}


def _preds(correct):
    """Accuracy predictions on N_ITEMS test items, right exactly where ``correct`` is."""
    y = np.zeros(len(correct), int)
    return Predictions(y=y, pred=np.where(correct, 0, 1))


def _nested(acc):
    """The first acc·N items right: a higher accuracy is right on a superset, so every paired
    difference is clearly signed (a clear win or loss)."""
    return np.arange(N_ITEMS) < round(acc * N_ITEMS)


def _study(scores=SCORES, correct=None):
    """A hand-made table and its test predictions keyed (row, task)."""
    rows, preds = [], {}
    for row, accs in scores.items():
        for task, acc in zip(("deeploc10", "ppi_yeast"), accs):
            c = (correct or {}).get((row, task), _nested(acc))
            rows.append(dict(row=row, task=task, metric="accuracy", value=float(np.mean(c)), detail=""))
            preds[row, task] = _preds(c)
    return pd.DataFrame(rows), preds


def _verdicts(table, preds):
    return [f.verdict for f in judge_findings(table, preds, n_boot=300)]


def test_findings_clear_wins_are_reproduced():
    table, preds = _study()
    f1, f2, f3 = judge_findings(table, preds, n_boot=300)
    assert (f1.verdict, f2.verdict, f3.verdict) == ("reproduced",) * 3
    # the evidence gives each paired difference with its interval
    assert "Diffusion on LSD-TN − Diffusion on MLM (deeploc10: +0.050 [+0.0" in f1.evidence
    assert "LSD-TN-M latent − LSD-NM latent" in f3.evidence and "ppi_yeast: +0.090 [" in f3.evidence


def test_findings_clear_loss_is_contradicted():
    scores = {**SCORES, "Diffusion on MLM": (0.50, 0.99)}       # diffusion on MLM beats everything on PPI
    f1, f2, f3 = judge_findings(*_study(scores), n_boot=300)
    assert f1.verdict == "contradicted" and f2.verdict == "contradicted" and f3.verdict == "reproduced"
    assert "ppi_yeast: -0.390 [" in f1.evidence and "1 lost" in f1.evidence


def test_findings_overlapping_intervals_are_inconclusive():
    # diffusion on MLM, PPI: about as accurate as diffusion on LSD-TN/NM, right on other items
    rng = np.random.default_rng(0)
    other = rng.permutation(_nested(0.61))
    table, preds = _study(correct={("Diffusion on MLM", "ppi_yeast"): other})
    d = preds["Diffusion on LSD-TN", "ppi_yeast"].diff(preds["Diffusion on MLM", "ppi_yeast"], "accuracy", n=300)
    assert d.low < 0 < d.high                                   # the interval includes 0
    assert _verdicts(table, preds) == ["inconclusive", "reproduced", "reproduced"]
    # no test predictions at all: no interval, nothing decided
    f1, _, _ = judge_findings(table)
    assert f1.verdict == "inconclusive" and "no interval" in f1.evidence


def test_findings_with_a_missing_task_or_encoder_are_partly_tested():
    table, preds = _study()
    no_ppi = table[table.task != "ppi_yeast"]
    assert _verdicts(no_ppi, preds) == ["reproduced", "reproduced", "partly tested"]    # PPI exception untested
    no_tnm = table[table.row != "LSD-TN-M latent"]
    f3 = judge_findings(no_tnm, preds, n_boot=300)[2]
    assert f3.verdict == "partly tested" and "needs LSD-TN-M latent" in f3.evidence
    no_nm = table[~table.row.str.contains("LSD-NM")]
    assert _verdicts(no_nm, preds) == ["partly tested", "partly tested", "not tested"]
    only = table[table.row.isin(["LSD-TN latent", "Composition"])]
    assert _verdicts(only, preds) == ["not tested"] * 3
    with pytest.raises(ValueError, match="unknown verdict"):
        Finding("x", "not reproduced", "y")                             # the old word is gone
    # a significant loss decides even when a part is missing
    losing = _study({**SCORES, "Diffusion on MLM": (0.50, 0.99)})
    assert _verdicts(losing[0][~losing[0].row.str.contains("LSD-NM")], losing[1])[0] == "contradicted"


def test_most_tasks_rule_needs_a_strict_majority_of_wins():
    tasks = ("t1", "t2", "t3")
    base = {"LSD-TN latent": 0.60, "Diffusion on LSD-TN": 0.50, "Diffusion on LSD-NM": 0.55}

    def f3(nm_latent, tie=()):
        rows, preds = [], {}
        rng = np.random.default_rng(1)
        for i, task in enumerate(tasks):
            for row, acc in {**base, "LSD-NM latent": nm_latent[i]}.items():
                c = rng.permutation(_nested(acc)) if (row, task) in tie else _nested(acc)
                rows.append(dict(row=row, task=task, metric="accuracy", value=c.mean(), detail=""))
                preds[row, task] = _preds(c)
        return judge_findings(pd.DataFrame(rows), preds, n_boot=300)[2]
    assert "2 won, 1 lost" in f3((0.7, 0.7, 0.5)).evidence and f3((0.7, 0.7, 0.5)).verdict == "partly tested"
    assert f3((0.7, 0.5, 0.5)).verdict == "contradicted"                         # 2 of 3 lost
    undecided = f3((0.7, 0.5, 0.6), tie={("LSD-NM latent", "t3")})               # 1 won, 1 lost, 1 open
    assert "1 won, 1 lost, 1 undecided" in undecided.evidence and "-> inconclusive" in undecided.evidence


def test_table_predictions_must_be_this_runs():
    sweep = pd.DataFrame([dict(representation="LSD-TN", task="deeploc10", key="latent", t=np.nan, layer=np.nan,
                               selected=True, fold=np.nan, split="test", metric="accuracy", value=0.5)])
    good = {("LSD-TN", "deeploc10", "latent"): _preds(np.arange(10) < 5)}
    assert table_predictions(sweep, None, good)["LSD-TN latent", "deeploc10"] is good["LSD-TN", "deeploc10", "latent"]
    with pytest.raises(ReportError, match="not this run's"):
        table_predictions(sweep, None, {("LSD-TN", "deeploc10", "latent"): _preds(np.arange(10) < 7)})


def test_comparison_table_from_sweep_rows_and_markdown():
    sweep = pd.DataFrame([
        dict(representation="LSD-TN", task="deeploc10", key="latent", t=np.nan, layer=np.nan, selected=True,
             fold=np.nan, split="test", metric="accuracy", value=0.5),
        dict(representation="LSD-TN", task="deeploc10", key="t0.1_layer2", t=0.1, layer=2, selected=True,
             fold=np.nan, split="test", metric="accuracy", value=0.6),
        dict(representation="LSD-TN", task="deeploc10", key="t0.5_layer2", t=0.5, layer=2, selected=False,
             fold=np.nan, split="valid", metric="accuracy", value=0.9)])
    base = pd.DataFrame([dict(representation="composition", task="deeploc10", t=np.nan, split="test",
                              metric="accuracy", value=0.3)])
    table = comparison_table(sweep, base)
    assert list(table.row) == ["LSD-TN latent", "Diffusion on LSD-TN", "Composition"]
    assert list(table.columns) == ["row", "task", "metric", "value", "ci_low", "ci_high", "detail"]
    assert table.ci_low.isna().all()                                  # no predictions: no interval
    md = to_markdown(table)
    assert "| Diffusion on LSD-TN | 0.600 (t=0.1, layer 2) |" in md
    assert md.splitlines()[0] == "| representation | deeploc10 (accuracy) |"
    # with the test predictions behind each cell: a 95 % bootstrap interval
    preds = {("LSD-TN", "deeploc10", "latent"): _preds(np.arange(400) < 200),
             ("LSD-TN", "deeploc10", "t0.1_layer2"): _preds(np.arange(400) < 240),
             ("composition", "deeploc10", BASELINE_KEY): _preds(np.arange(400) < 120)}
    table = comparison_table(sweep, base, preds)
    assert (table.ci_low < table.value).all() and (table.value < table.ci_high).all()
    diff = table.set_index("row").loc["Diffusion on LSD-TN"]
    assert diff.ci_low == pytest.approx(0.6 - 1.96 * np.sqrt(0.24 / 400), abs=0.01)
    cell = f"| Diffusion on LSD-TN | 0.600 [{diff.ci_low:.3f}, {diff.ci_high:.3f}] (t=0.1, layer 2) |"
    assert cell in to_markdown(table)


def test_floor_comparison_above_below_and_at_the_floor():
    """Every learned row against its task's best baseline: a clear win, a clear loss, an overlap."""
    from lsdkit.report import floor_comparison, floor_markdown
    rng = np.random.default_rng(1)
    scores = {**SCORES, "Dipeptide": (0.62, 0.45)}          # the floor: dipeptide on deeploc10, composition on PPI
    overlap = rng.permutation(_nested(0.63))                 # about as accurate as dipeptide, on other items
    table, preds = _study(scores, correct={("LSD-NM latent", "deeploc10"): overlap})
    floor = floor_comparison(table, preds, n_boot=300)
    got = {(r.row, r.task): r for r in floor.itertuples(index=False)}
    assert set(floor.row) == set(SCORES) - {"Composition"} and set(floor.task) == {"deeploc10", "ppi_yeast"}
    assert (floor[floor.task == "deeploc10"].floor == "Dipeptide").all()
    assert (floor[floor.task == "ppi_yeast"].floor == "Composition").all()
    assert got["MLM embedding", "deeploc10"].verdict == "above the floor"        # 0.80 vs 0.62, nested
    assert got["Diffusion on MLM", "deeploc10"].verdict == "below the floor"     # 0.50 vs 0.62
    assert got["LSD-NM latent", "deeploc10"].verdict == "at the floor"
    assert got["MLM embedding", "deeploc10"].diff == pytest.approx(0.18)
    md = floor_markdown(floor)
    assert "deeploc10: − dipeptide" in md and "+0.180 [" in md and "below the floor" in md
    assert floor_comparison(table[~table.row.isin(["Composition", "Dipeptide"])], preds).empty
