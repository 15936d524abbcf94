"""Latent geometry measures on constructed latents with known answers, padding, and `lsdkit geometry`."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from lsdkit import geometry as g
from lsdkit.alphabet import ALPHABET
from lsdkit.cli import main

from conftest import SWISSPROT64

FAST = dict(n_boot=60, knn_task=None)
LETTERS = "ACDEG"


def _proteins(n=60, seed=0, letters=LETTERS, lo=40, hi=90):
    rng = np.random.default_rng(seed)
    return ["".join(rng.choice(list(letters), size=int(rng.integers(lo, hi)))) for _ in range(n)]


def _summary(df, measure, representation=None):
    rows = df[(df["measure"] == measure) & (df["group"] == "all")]
    if representation is not None:
        rows = rows[rows["representation"] == representation]
    assert len(rows) == 1, rows
    return rows.iloc[0]


def test_identical_type_gaussians_are_homogeneous_and_undecodable():
    seqs = _proteins()
    rng = np.random.default_rng(1)
    lat = [rng.normal(size=(len(s), 8)) for s in seqs]        # the same law for every residue type
    df = g.measure(lat, seqs, representation="iid", config=g.GeometryConfig(**FAST))
    hom = _summary(df, "homogeneity")
    assert abs(hom.value) < 0.005 and hom.ci_low < 0.005, hom
    acc, chance = _summary(df, "decodability", "iid"), _summary(df, "decodability", "chance")
    assert abs(acc.value - chance.value) < 0.04 and acc.value < 0.3, (acc.value, chance.value)
    assert acc.n == chance.n and acc.ci_low <= acc.value <= acc.ci_high
    per_type = df[(df["measure"] == "decodability") & (df["group"] != "all")]
    assert sorted(per_type["group"]) == sorted(LETTERS) and per_type["n"].sum() == acc.n
    assert sorted(df[(df["measure"] == "homogeneity") & (df["group"] != "all")]["group"]) == sorted(LETTERS)


def test_separated_type_clusters_are_decodable_and_inhomogeneous():
    seqs = _proteins()
    rng = np.random.default_rng(2)
    centre = {c: 6 * rng.normal(size=8) for c in LETTERS}
    lat = [np.stack([centre[c] for c in s]) + rng.normal(size=(len(s), 8)) for s in seqs]
    df = g.measure(lat, seqs, representation="sep", config=g.GeometryConfig(**FAST))
    assert _summary(df, "decodability", "sep").value > 0.99
    per_type = df[(df["measure"] == "decodability") & (df["group"] != "all")]
    assert (per_type["value"] > 0.97).all(), per_type
    assert _summary(df, "homogeneity").ci_low > 0.1
    # the latent is a function of the residue's own token: own-token R² high, neighbours' ≈ 0
    assert _summary(df, "context_r2_own").value > 0.9
    assert abs(_summary(df, "context_r2_neighbours").value) < 0.05


def test_context_content_of_a_latent_that_encodes_the_previous_residue():
    seqs = _proteins(seed=3)
    rng = np.random.default_rng(3)
    emb = {c: rng.normal(size=6) for c in LETTERS}
    start = rng.normal(size=6)
    lat = [np.stack([start] + [emb[c] for c in s[:-1]]) + 0.1 * rng.normal(size=(len(s), 6)) for s in seqs]
    df = g.measure(lat, seqs, config=g.GeometryConfig(window=2, **FAST))
    assert _summary(df, "context_r2_neighbours").value > 0.9
    assert abs(_summary(df, "context_r2_own").value) < 0.05
    assert _summary(df, "context_r2_both").value > 0.9


def test_isotropic_gaussian_has_effective_rank_d_and_the_standardisation_is_applied():
    d = 12
    seqs = _proteins(n=80, seed=4)
    rng = np.random.default_rng(4)
    lat = [5.0 + 3.0 * rng.normal(size=(len(s), d)) for s in seqs]
    cfg = g.GeometryConfig(top_k=3, **FAST)
    df = g.measure(lat, seqs, mean=np.full(d, 5.0), std=np.full(d, 3.0), config=cfg)
    assert _summary(df, "effective_rank").value == pytest.approx(d, rel=0.02)
    assert _summary(df, "top_variance").value == pytest.approx(3 / d, abs=0.03)
    assert _summary(df, "mean_abs_mean").value < 0.05
    assert _summary(df, "mean_variance").value == pytest.approx(1.0, abs=0.05)
    assert abs(_summary(df, "excess_kurtosis").value) < 0.15
    assert _summary(df, "mean_variance").note.startswith("standardised")
    dims = df[df["measure"] == "dim_variance"]
    assert list(dims["group"]) == [f"dim{j}" for j in range(d)] and (abs(dims["value"] - 1) < 0.1).all()
    raw = g.measure(lat, seqs, config=cfg)                   # no denoiser: the raw latents
    assert _summary(raw, "mean_abs_mean").value == pytest.approx(5.0, abs=0.1)
    assert _summary(raw, "mean_variance").value == pytest.approx(9.0, rel=0.05)
    assert _summary(raw, "effective_rank").value == pytest.approx(d, rel=0.02)
    # a rank-2 cloud in 12 dimensions
    W = rng.normal(size=(2, d))
    flat = [rng.normal(size=(len(s), 2)) @ W for s in seqs]
    assert _summary(g.measure(flat, seqs, config=cfg), "effective_rank").value < 2.0 + 1e-9


def test_padding_never_enters_a_measure():
    seqs = _proteins(n=30, seed=5)
    rng = np.random.default_rng(5)
    lat = [rng.normal(size=(len(s), 4)) + (np.arange(len(s)) % 3)[:, None] for s in seqs]
    L = max(map(len, seqs)) + 7
    padded = np.full((len(seqs), L, 4), np.nan)              # garbage: NaN would poison any sum it entered
    padded[:, ::2] = 1e6
    mask = np.zeros((len(seqs), L), bool)
    for i, z in enumerate(lat):
        padded[i, :len(z)], mask[i, :len(z)] = z, True
    cfg = g.GeometryConfig(**FAST)
    expected = g.measure(lat, seqs, config=cfg)
    got = g.measure(padded, seqs, mask=mask, config=cfg)
    pd.testing.assert_frame_equal(got, expected)
    assert np.isfinite(expected["value"].dropna()).all() and len(expected.dropna(subset=["value"])) == len(expected)
    with pytest.raises(g.GeometryError, match="needs mask="):
        g.measure(padded, seqs, config=cfg)
    with pytest.raises(g.GeometryError, match="protein 2: latents of shape"):
        g.measure([*lat[:2], lat[2][:-1], *lat[3:]], seqs, config=cfg)
    with pytest.raises(g.GeometryError, match="does not match"):
        g.measure(padded, seqs, mask=mask[:, :-1], config=cfg)
    with pytest.raises(g.GeometryError, match="mask= goes with a padded"):
        g.measure(lat, seqs, mask=mask, config=cfg)


def test_tables_and_figures_of_the_measures():
    from lsdkit import viz
    seqs = _proteins(n=30, seed=7)
    rng = np.random.default_rng(7)
    frames = [g.measure([rng.normal(size=(len(s), 3)) * (1 + t) for s in seqs], seqs, representation=f"t={t:g}",
                        key=f"t{t:g}_layer0", t=t, layer=0, config=g.GeometryConfig(**FAST)) for t in (0.0, 0.5)]
    table = g.combine(frames)
    assert (table["representation"] == "chance").sum() == 1                 # the shared reference, kept once
    wide = g.summary_table(table)
    assert list(wide.columns) == ["t=0", "t=0.5", "chance"] and wide.index[0] == "decodability"
    assert wide.loc["decodability", "t=0"].endswith(f"n={int(_summary(table, 'decodability', 't=0').n)}")
    per_type = g.per_group_table(table, "decodability")
    assert list(per_type.index) == sorted(LETTERS) and list(per_type.columns) == ["t=0", "t=0.5"]
    with pytest.raises(g.GeometryError, match="no per-group rows of 'effective_rank'"):
        g.per_group_table(table, "effective_rank")
    bars = viz.geometry_bars(table)
    assert len(bars.data) == len(wide) and list(bars.data[0].x) == ["t=0", "t=0.5", "chance"]
    lines = viz.geometry_by_t_plot(table)
    assert list(lines.data[0].x) == [0.0, 0.5] and any(tr.name == "chance" for tr in lines.data)


def test_knn_agreement_against_composition_and_chance():
    rng = np.random.default_rng(6)
    P = 60
    y = np.repeat([0, 1, 2], P // 3)
    proteins = g.LabelledProteins("toy", "multiclass", [f"p{i}" for i in range(P)], _proteins(P, seed=6), list(y))
    cfg = g.GeometryConfig(k=5, **FAST)
    clustered = np.eye(3)[y] * 10 + rng.normal(size=(P, 3))
    rows = {r.get("representation", "rep"): r for r in g.knn_agreement(clustered, proteins, cfg)}
    assert rows["rep"]["value"] > 0.99 and rows["rep"]["n"] == P and rows["rep"]["unit"] == "proteins"
    assert rows["chance"]["value"] == pytest.approx((P / 3 - 1) / (P - 1))        # same class, random pairs
    assert rows["composition"]["value"] < 0.6                                      # composition is unrelated to y
    noise = g.knn_agreement(rng.normal(size=(P, 3)), proteins, cfg, representation="noise")
    assert len(noise) == 1 and abs(noise[0]["value"] - rows["chance"]["value"]) < 0.15
    multi = g.LabelledProteins("toy", "multilabel", ["a", "b", "c"], ["ACD"] * 3, [(0, 1), (1,), (2,)])
    np.testing.assert_allclose(multi.similarity(), [[1, 0.5, 0], [0.5, 1, 0], [0, 0, 1]])


def test_config_and_knn_task_errors_name_the_problem():
    with pytest.raises(g.GeometryError, match="n_boot=0"):
        g.GeometryConfig(n_boot=0)
    with pytest.raises(g.GeometryError, match="test_fraction=1.5"):
        g.GeometryConfig(test_fraction=1.5)
    with pytest.raises(g.GeometryError, match="ss3.*residue_multiclass"):
        g.labelled_proteins("ss3", 10)


# ----------------------------------------------------------------------------- the command, on tiny checkpoints

@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    """A tiny LSD-TN trained for a few steps, and an (untrained) denoiser on it."""
    from lsdkit.checkpoint import save_model
    from lsdkit.models.diffusion import LatentDiffusion
    from lsdkit.models.presets import build_encoder
    from lsdkit.train import TrainConfig, fit, seed_everything
    root = tmp_path_factory.mktemp("geometry")
    seed_everything(0)
    ae = build_encoder("tn", "tiny")
    fit(ae, str(SWISSPROT64), TrainConfig(max_steps=4, warmup_steps=1, batch_tokens=2048, eval_every=0,
                                          progress=False, num_threads=1, precision="fp32"), root / "ae")
    diff = LatentDiffusion.from_encoder(ae, preset="tiny")
    toks, mask = ALPHABET.batch_encode(["MKTAYIAKQRQISFVKSHFSRQ", "GGSGGSPLEAKLV"])
    diff.estimate_latent_stats([{"tokens": torch.from_numpy(toks), "mask": torch.from_numpy(mask)}])
    return root / "ae", save_model(root / "diff", diff)


GEOMETRY = ["geometry", "--n-proteins", "16", "--limit", "3000", "--n-boot", "20", "--task", "go_mf_sp14",
            "--knn-proteins", "60", "--max-residues", "1500"]


def test_cli_prints_the_table_and_writes_a_tidy_csv(checkpoints, tmp_path, capsys):
    ae, diff = checkpoints
    out = tmp_path / "g.csv"
    assert main([*GEOMETRY, "--checkpoint", str(ae), "--out", str(out)]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed[0] == "| measure | LSD-TN | composition | chance |"
    measures = [line.split(" | ")[0].lstrip("| ") for line in printed[2:]]
    assert measures == ["decodability", "homogeneity", "context_r2_own", "context_r2_neighbours", "context_r2_both",
                        "mean_abs_mean", "mean_variance", "excess_kurtosis", "effective_rank", "top_variance",
                        "knn_agreement"]
    df = pd.read_csv(out)
    assert list(df.columns) == g.COLUMNS
    assert set(df["representation"]) == {"LSD-TN", "chance", "composition"}
    assert (df["n"] > 0).all() and (df["ci_low"] <= df["ci_high"] + 1e-12).all()
    assert _summary(df, "mean_variance").note.startswith("raw")          # an autoencoder has no denoiser stats

    out2 = tmp_path / "g2.csv"
    assert main([*GEOMETRY, "--checkpoint", str(diff), "--out", str(out2), "--t", "0,0.5", "--layer", "1"]) == 0
    head = capsys.readouterr().out.splitlines()[0]
    assert head == ("| measure | LSD-TN | LSD-TN diffusion t=0 | LSD-TN diffusion t=0.5 | composition | chance |")
    df2 = pd.read_csv(out2)
    timed = df2[df2["t"].notna()]
    assert set(timed["t"]) == {0.0, 0.5} and set(timed["layer"]) == {1} and set(timed["key"]) == {"t0_layer1",
                                                                                                "t0.5_layer1"}
    assert _summary(df2, "mean_variance", "LSD-TN").note.startswith("standardised")
    # the latent rows are the same numbers whichever checkpoint carries the encoder (only the standardisation differs)
    for m in ("decodability", "homogeneity", "context_r2_own", "knn_agreement"):
        assert _summary(df2, m, "LSD-TN").value == pytest.approx(_summary(df, m, "LSD-TN").value)


BAD = [(["--n-proteins", "0"], "--n-proteins"), (["--k", "0"], "--k"), (["--n-boot", "-3"], "--n-boot"),
       (["--top-k", "0"], "--top-k"), (["--task", "ss3"], "--task"), (["--task", "bogus"], "--task"),
       (["--t", "1.5"], "--t"), (["--t", "0.5"], "--t"), (["--t", "0.5", "--layer", "99"], "--layer"),
       (["--max-residues", "0"], "--max-residues")]


@pytest.mark.parametrize("extra,flag", BAD, ids=[f"{f}={a[-1]}" for a, f in BAD])
def test_cli_bad_arguments_are_one_line_naming_the_flag(extra, flag, checkpoints, tmp_path, capsys):
    ae, diff = checkpoints
    ckpt = diff if "--layer" in extra else ae
    out = tmp_path / "g.csv"
    assert main([*GEOMETRY, "--checkpoint", str(ckpt), "--out", str(out), *extra]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("lsdkit: error: ") and flag in err[0], err
    assert not out.exists()
