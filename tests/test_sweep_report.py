"""Timestep sweeps (one pass, selection on valid only) and the comparison table / findings."""

import numpy as np
import pandas as pd
import pytest

from lsdkit.baselines import Composition
from lsdkit.data.tasks import load_custom_task
from lsdkit.probe import ProbeConfig
from lsdkit.report import Finding, comparison_table, judge_findings, to_markdown
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


def _table():
    rows = []
    scores = {  # row -> (task_a, ppi_yeast)
        "LSD-TN latent": (0.60, 0.70), "LSD-NM latent": (0.65, 0.66), "MLM embedding": (0.80, 0.80),
        "LSD-TN-M latent": (0.62, 0.75),
        "Diffusion on LSD-TN": (0.55, 0.60), "Diffusion on LSD-NM": (0.58, 0.62),
        "Diffusion on MLM": (0.50, 0.55), "Composition": (0.40, 0.50)}
    for row, (a, p) in scores.items():
        rows += [dict(row=row, task="deeploc10", metric="accuracy", value=a, detail=""),
                 dict(row=row, task="ppi_yeast", metric="accuracy", value=p, detail="")]
    return pd.DataFrame(rows)


def test_findings_on_a_hand_made_table():
    f1, f2, f3 = judge_findings(_table())
    assert f1.reproduced is True and "deeploc10: 0.550 > 0.500" in f1.evidence
    assert f2.reproduced is True
    assert f3.reproduced is True and "PPI" in f3.evidence


def test_findings_fail_and_untested():
    t = _table()
    t.loc[(t.row == "Diffusion on MLM") & (t.task == "ppi_yeast"), "value"] = 0.99
    f1, f2, _ = judge_findings(t)
    assert f1.reproduced is False and f2.reproduced is False
    only = t[t.row.isin(["LSD-TN latent", "Composition"])]
    assert [f.reproduced for f in judge_findings(only)] == [None, None, None]
    assert Finding("x", None, "y").verdict() == "not tested"


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
    md = to_markdown(table)
    assert "| Diffusion on LSD-TN | 0.600 (t=0.1, layer 2) |" in md
    assert md.splitlines()[0] == "| representation | deeploc10 (accuracy) |"
