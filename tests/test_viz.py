"""lsdkit.viz: figures from arrays, saving, UMAP, and the timestep widget driven headless."""

import json
import os

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest

from lsdkit import viz
from lsdkit.alphabet import STANDARD
from lsdkit.sweep import chosen_curve, sweep_curves


# ----------------------------------------------------------------------------- fixtures

@pytest.fixture
def labels():
    """Three proteins of 4 residues with ss3 labels (one ignored residue)."""
    return viz.residue_labels(["p1", "p2", "p3"], ["AKDC", "KKAW", "DEFG"],
                              extra={"ss3": [[0, 0, 1, 2], [2, 2, -1, 0], [1, 1, 1, 2]]},
                              classes={"ss3": ("H", "E", "C")})


def _coords(n, shift=0.0):
    return np.stack([np.arange(n, dtype=np.float32) + shift, -np.arange(n, dtype=np.float32)], axis=1)


# ----------------------------------------------------------------------------- classes, labels

def test_aa_classes_cover_the_twenty_residues_once():
    assert sorted(viz.AA_CLASSES) == sorted(STANDARD)
    assert sorted(viz.RESIDUE_ORDER) == sorted(STANDARD)
    assert set(viz.AA_CLASSES.values()) == {"hydrophobic", "aromatic", "polar", "positive", "negative", "special"}
    assert [viz.aa_class(r) for r in "KdWgX"] == ["positive", "negative", "aromatic", "special", "other"]


def test_residue_labels_rows_and_class_names(labels):
    assert len(labels) == 12
    assert list(labels.columns) == ["protein_id", "position", "residue", "aa_class", "ss3"]
    p2 = labels[labels.protein_id == "p2"]
    assert p2.position.tolist() == [1, 2, 3, 4]
    assert p2.residue.tolist() == list("KKAW")
    assert p2.ss3.tolist() == ["C", "C", "unknown", "H"]
    assert p2.aa_class.tolist() == ["positive", "positive", "hydrophobic", "aromatic"]


def test_residue_labels_errors_name_the_protein():
    with pytest.raises(ValueError, match="ss3 of 'p2' has 3 labels for 4 residues"):
        viz.residue_labels(["p1", "p2"], ["AC", "ACDE"], extra={"ss3": ["HH", "HHE"]})
    with pytest.raises(ValueError, match="'p1' has a class index outside -1..2"):
        viz.residue_labels(["p1"], ["AC"], extra={"ss3": [[0, 3]]}, classes={"ss3": "HEC"})


def test_sample_records_and_protein_labels():
    from types import SimpleNamespace

    recs = [SimpleNamespace(id=f"p{i}", sequence="A" * (i + 1), label=i % 2) for i in range(10)]
    task = SimpleNamespace(splits={"valid": recs, "test": recs[:2]})
    drawn = viz.sample_records(task, 4, seed=3)
    assert [r.id for r in drawn] == [f"p{i}" for i in viz.sample_rows(10, 4, seed=3)]
    assert viz.sample_records(task, 5, split="test") == recs[:2]
    frame = viz.protein_labels(drawn, ("cytoplasm", "nucleus"), "localisation", length=True)
    assert list(frame.columns) == ["protein_id", "localisation", "length"]
    assert frame.localisation.tolist() == [("cytoplasm", "nucleus")[r.label] for r in drawn]
    assert frame.length.tolist() == [len(r.sequence) for r in drawn]
    points = viz.LatentPoints({"LSD-TN": np.zeros((4, 16)), "MLM": np.zeros((4, 32))}, frame, 4, "proteins")
    assert points.summary() == "4 proteins of 4 proteins; latent sizes: {'LSD-TN': 16, 'MLM': 32}"


def test_sample_rows():
    assert viz.sample_rows(5, 10).tolist() == [0, 1, 2, 3, 4]
    a = viz.sample_rows(1000, 50, seed=3)
    assert len(a) == 50 and len(set(a)) == 50 and (np.diff(a) > 0).all()
    assert a.tolist() == viz.sample_rows(1000, 50, seed=3).tolist()


# ----------------------------------------------------------------------------- scatter panels

def test_scatter_panels_routes_points_and_switches_colouring(labels):
    coords = {"TN": _coords(12), "MLM": _coords(12, shift=100)}
    fig = viz.scatter_panels(coords, labels, ["aa_class", "ss3"])
    n_class = labels.aa_class.nunique()          # 5 present
    n_ss3 = labels.ss3.nunique()                 # H, E, C, unknown
    assert len(fig.data) == 2 * (n_class + n_ss3)
    # the first colouring is visible, the second hidden; the dropdown toggles them
    visible = [bool(tr.visible) for tr in fig.data]
    assert visible == [True] * (2 * n_class) + [False] * (2 * n_ss3)
    buttons = fig.layout.updatemenus[0].buttons
    assert [b.label for b in buttons] == ["colour: aa_class", "colour: ss3"]
    assert buttons[1].args[0]["visible"] == [False] * (2 * n_class) + [True] * (2 * n_ss3)
    # the 'positive' trace of the MLM panel holds exactly the K residues' coordinates
    pos = [tr for tr in fig.data if tr.name == "positive" and tr.xaxis == "x2"][0]
    rows = np.flatnonzero(labels.aa_class == "positive")
    assert list(pos.x) == (rows + 100.0).tolist()
    assert [tuple(c[:3]) for c in pos.customdata] == [tuple(map(str, labels.iloc[r][["protein_id", "position", "residue"]]))
                                                      for r in rows]
    assert "protein_id: %{customdata[0]}" in pos.hovertemplate
    # a category is listed once in the legend (first panel only)
    assert sum(1 for tr in fig.data if tr.name == "positive" and tr.showlegend) == 1
    # residue categories follow the class order
    res = viz.scatter_panels({"a": _coords(12)}, labels, "residue")
    assert [tr.name for tr in res.data] == [r for r in viz.RESIDUE_ORDER if r in set(labels.residue)]


def test_scatter_panels_checks_shapes(labels):
    with pytest.raises(ValueError, match=r"coords\['TN'\] has shape \(11, 2\), expected \(12, 2\)"):
        viz.scatter_panels({"TN": _coords(11)}, labels, "aa_class")
    with pytest.raises(KeyError, match="no column 'loc'"):
        viz.scatter_panels({"TN": _coords(12)}, labels, "loc")


# ----------------------------------------------------------------------------- other figures

def _sweep_table():
    """A tidy sweep as lsdkit.sweep writes it: every (t, layer) on valid, the latent too, test only
    for selected keys; a cross-validated task with per-fold and mean rows."""
    rows = []
    for rep, base in (("LSD-NM", 0.5), ("MLM", 0.3)):
        rows.append((rep, "deeploc10", "latent", np.nan, np.nan, "valid", "accuracy", base + 0.3, None))
        for t in (0.0, 0.5, 1.0):
            for layer in (0, 1):
                v = base - 0.2 * t + 0.01 * layer
                rows.append((rep, "deeploc10", f"t{t}_layer{layer}", t, layer, "valid", "accuracy", v, None))
                rows.append((rep, "deeploc10", f"t{t}_layer{layer}", t, layer, "valid", "auroc", 0.9, None))
                for fold, dv in (("0", 0.1), ("1", -0.1), ("mean", 0.0)):
                    rows.append((rep, "ppi_yeast", f"t{t}_layer{layer}", t, layer, "valid", "accuracy", base + dv, fold))
        rows.append((rep, "deeploc10", "t0.0_layer1", 0.0, 1, "test", "accuracy", 0.0, None))
    return pd.DataFrame(rows, columns=["representation", "task", "key", "t", "layer", "split", "metric", "value", "fold"])


def test_sweep_curves_reduce_layers_folds_and_metrics():
    df = _sweep_table()
    c = sweep_curves(df, metric={"deeploc10": "accuracy", "ppi_yeast": "accuracy"})
    nm = c[(c.representation == "LSD-NM") & (c.task == "deeploc10")].set_index("t")["value"]
    assert nm[0.0] == pytest.approx(0.51) and nm[1.0] == pytest.approx(0.31)     # best layer per t
    assert nm[np.isnan(nm.index)].tolist() == [pytest.approx(0.8)]               # the latent, t = NaN
    ppi = c[(c.representation == "MLM") & (c.task == "ppi_yeast")]
    assert ppi["value"].tolist() == [0.3, 0.3, 0.3]                              # fold "mean" rows only
    assert set(c.metric) == {"accuracy"}
    mean = sweep_curves(df, layer="mean", metric={"deeploc10": "accuracy"})
    assert mean[(mean.representation == "MLM") & (mean.t == 0.5)]["value"].item() == pytest.approx(0.205)
    one = sweep_curves(df, layer=0, metric={"deeploc10": "accuracy"})
    assert one[(one.representation == "MLM") & (one.t == 0.5)]["value"].item() == pytest.approx(0.2)
    assert sweep_curves(df, split="test")["value"].tolist() == [0.0, 0.0]
    with pytest.raises(ValueError, match="layer must be"):
        sweep_curves(df, layer="last")
    with pytest.raises(KeyError, match="missing columns"):
        sweep_curves(df.drop(columns="metric"))
    with pytest.raises(ValueError, match="no rows for split 'train'"):
        sweep_curves(df, split="train")


def test_chosen_curve_follows_the_layer_chosen_on_validation():
    df = _sweep_table()
    df["selected"] = df["split"] == "test"            # t=0, layer 1 chosen for both representations
    layer, curve = chosen_curve(df, "LSD-NM", "deeploc10")
    assert layer == 1 and list(curve) == [0.0, 0.5, 1.0]
    assert np.allclose(list(curve.values()), [0.51, 0.41, 0.31])
    with pytest.raises(KeyError, match="task 'ppi_yeast' was not swept for MLM"):
        chosen_curve(df, "MLM", "ppi_yeast")


def test_sweep_plot_panels_lines_and_latent_rows():
    fig = viz.sweep_plot(_sweep_table(), metric={"deeploc10": "accuracy", "ppi_yeast": "accuracy"})
    assert [a.text for a in fig.layout.annotations] == ["deeploc10 (accuracy)", "ppi_yeast (accuracy)"]
    nm = [tr for tr in fig.data if tr.name == "LSD-NM diffusion" and tr.xaxis == "x"][0]
    assert list(nm.x) == [0.0, 0.5, 1.0] and np.allclose(nm.y, [0.51, 0.41, 0.31])
    flat = [tr for tr in fig.data if tr.name == "LSD-NM latent"]
    assert len(flat) == 1 and list(flat[0].x) == [0.0, 1.0] and np.allclose(flat[0].y, [0.8, 0.8])
    assert flat[0].line.dash == "dash"
    assert len(fig.data) == 4 + 2                      # 2 lines + 2 latents in panel 1, 2 lines in panel 2
    assert [tr.showlegend for tr in fig.data].count(True) == 4
    assert "valid split" in fig.layout.title.text


def test_benchmark_bars():
    table = pd.DataFrame({"row": ["MLM embedding", "Diffusion on LSD-NM", "MLM embedding"],
                          "task": ["deeploc10", "deeploc10", "thermostability"],
                          "metric": ["accuracy", "accuracy", "spearman"], "value": [0.5, 0.4, 0.3],
                          "detail": ["", "t=0.1, layer 2", ""]})
    fig = viz.benchmark_bars(table)
    assert [a.text for a in fig.layout.annotations] == ["deeploc10 (accuracy)", "thermostability (spearman)"]
    assert list(fig.data[0].x) == ["MLM embedding", "Diffusion on LSD-NM"] and list(fig.data[0].y) == [0.5, 0.4]
    assert list(fig.data[0].customdata) == ["", "t=0.1, layer 2"]
    assert fig.data[0].error_y.array is None                        # no interval columns: no error bars
    table["ci_low"], table["ci_high"] = [0.45, 0.38, 0.2], [0.52, 0.47, 0.4]
    err = viz.benchmark_bars(table).data[0].error_y
    np.testing.assert_allclose(err.array, [0.02, 0.07])
    np.testing.assert_allclose(err.arrayminus, [0.05, 0.02])


def test_loss_curves_reads_trainer_metrics(tmp_path):
    path = tmp_path / "metrics.jsonl"
    recs = [{"split": "train", "step": s, "epoch": 0, "loss": 3.0 / s, "recon_ce": 2.0 / s, "kl": 0.1, "lr": 1e-3}
            for s in (1, 2, 3)] + [{"split": "valid", "step": 3, "recon_ce": 0.9, "recon_acc": 0.4}]
    path.write_text("".join(json.dumps(r) + "\n" for r in recs))
    fig = viz.loss_curves({"tn": path, "nm": pd.read_json(path, lines=True)})
    names = [tr.name for tr in fig.data]
    assert names[:4] == ["tn: train loss", "tn: train recon_ce", "tn: train kl", "tn: valid recon_ce"]
    assert len(names) == 8
    assert list(fig.data[0].y) == [3.0, 1.5, 1.0]
    assert fig.data[3].line.dash == "dot"
    acc = viz.loss_curves({"tn": path}, ["recon_acc"], log_y=False)
    assert [tr.name for tr in acc.data] == ["tn: valid recon_acc"]
    with pytest.raises(KeyError, match="no 'step' column"):
        viz.loss_curves({"tn": pd.DataFrame({"loss": [1.0]})})


def test_composition_plot_matches_counts():
    fig = viz.composition_plot({"a": ["AAAC", "A"], "b": ["WW"]})
    a = dict(zip(fig.data[0].x, fig.data[0].y))
    assert a["A"] == pytest.approx(0.8) and a["C"] == pytest.approx(0.2) and a["W"] == 0
    assert list(fig.data[0].x) == viz.RESIDUE_ORDER
    assert dict(zip(fig.data[1].x, fig.data[1].y))["W"] == 1.0


def test_line_by_t_and_tables():
    df = pd.DataFrame({"representation": ["tn", "tn", "nm"], "t": [0.5, 0.1, 0.1], "loss": [2.0, 1.0, 3.0]})
    fig = viz.line_by_t(df, "loss")
    assert [tr.name for tr in fig.data] == ["tn", "nm"] and list(fig.data[0].x) == [0.1, 0.5]
    rec = viz.reconstruction_frame(["p"], ["ACDE"], ["ACKE"])
    assert rec.identity[0] == 0.75 and rec.iloc[0, -1] == "ACkE"
    from types import SimpleNamespace

    finding = SimpleNamespace(claim="c", verdict="partly tested", evidence="z")     # like lsdkit.report.Finding
    fin = viz.findings_frame([("a", "reproduced", "x"), ("b", "inconclusive", "y"), finding])
    assert fin.verdict.tolist() == ["reproduced", "inconclusive", "partly tested"]
    assert fin.finding.tolist() == ["a", "b", "c"]


# ----------------------------------------------------------------------------- saving

def test_save_figure_kinds(tmp_path):
    import matplotlib.pyplot as plt

    fig = go.Figure(go.Scatter(x=[1], y=[2]))
    html = viz.save_figure(fig, tmp_path, "a")
    viz.save_figure(go.FigureWidget(fig) if _has_anywidget() else fig, tmp_path, "b")
    assert html == [tmp_path / "a.html"]
    assert 'src="plotly.min.js"' in html[0].read_text()
    assert (tmp_path / "plotly.min.js").stat().st_size > 1_000_000    # one shared bundle, offline
    mfig, ax = plt.subplots()
    ax.plot([0, 1])
    png = viz.save_figure(ax, tmp_path, "c")
    plt.close(mfig)
    assert png[0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    table = viz.save_figure(pd.DataFrame({"x": [1]}), tmp_path, "d")
    assert [p.name for p in table] == ["d.html", "d.csv"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.html", "b.html", "c.png", "d.csv", "d.html",
                                                          "plotly.min.js"]           # no temp files left
    assert oct(html[0].stat().st_mode & 0o777) != oct(0o600)
    with pytest.raises(TypeError, match="save_figure\\('e'\\): cannot save an object of type int"):
        viz.save_figure(3, tmp_path, "e")


def test_figure_saver_directory_from_env(tmp_path, monkeypatch, capsys):
    fig = go.Figure()
    monkeypatch.delenv(viz.FIGURES_ENV, raising=False)
    assert viz.FigureSaver().save(fig, "x") == []                    # no directory: nothing written
    monkeypatch.setenv(viz.FIGURES_ENV, str(tmp_path / "env"))
    saver = viz.setup(prefix="00_data-")
    saver.show(fig, "lengths")
    assert (tmp_path / "env" / "00_data-lengths.html").is_file()
    assert "saved 00_data-lengths.html" in capsys.readouterr().out
    explicit = viz.FigureSaver(tmp_path / "arg")                     # an argument wins over the env var
    explicit.save(fig, "y")
    assert explicit.saved == [tmp_path / "arg" / "y.html"]


# ----------------------------------------------------------------------------- the widget

def _has_anywidget():
    try:
        go.FigureWidget()
        return True
    except ImportError:
        return False


needs_figurewidget = pytest.mark.skipif(not _has_anywidget(),
                                        reason="plotly's FigureWidget needs the anywidget package")


@pytest.fixture
def explorer(labels):
    coords = {0.0: _coords(12), 0.5: _coords(12, shift=10), 1.0: _coords(12, shift=20)}
    return viz.TimestepExplorer(None, labels, {0.0: 0.61, 0.5: 0.72, 1.0: 0.33}, color="ss3",
                                coords_by_t=coords, metric="accuracy", title="deeploc10")


@needs_figurewidget
def test_explorer_slider_moves_points_and_score(explorer, labels):
    assert [o[1] for o in explorer.slider.options] == [0.0, 0.5, 1.0]
    assert "accuracy = <b>0.6100</b>" in explorer.score.value
    helix = np.flatnonzero(labels.ss3 == "H")
    h0 = [tr for tr in explorer.figure.data if tr.name == "H"][0]
    assert list(h0.x) == helix.astype(float).tolist()

    explorer.slider.value = 0.5                    # what a user's drag does: the observe callback fires
    h = [tr for tr in explorer.figure.data if tr.name == "H"][0]
    assert list(h.x) == (helix + 10.0).tolist() and list(h.y) == (-helix.astype(float)).tolist()
    assert explorer.score.value == "t = 0.5 &nbsp; accuracy = <b>0.7200</b>"
    marker = explorer.figure.data[-1]
    assert list(marker.x) == [0.5] and list(marker.y) == [0.72]
    assert explorer.figure.layout.title.text == "deeploc10 — t = 0.5, accuracy = 0.7200"
    assert explorer.current_t == 0.5

    explorer.set_t(1.0)                            # the callback itself keeps the slider in sync
    assert explorer.slider.value == 1.0 and "0.3300" in explorer.score.value
    with pytest.raises(KeyError, match="t=0.25 is not one of"):
        explorer.set_t(0.25)


@needs_figurewidget
def test_explorer_static_fallback_has_frames_and_slider(explorer, labels):
    fig = explorer.static_fallback()
    assert isinstance(fig, go.Figure) and not isinstance(fig, go.FigureWidget)
    assert [f.name for f in fig.frames] == ["0", "0.5", "1"]
    steps = fig.layout.sliders[0].steps
    assert [s.label for s in steps] == ["0", "0.5", "1"] and list(steps[1].args[0]) == ["0.5"]
    n = len(explorer.categories)
    frame = fig.frames[2]
    assert list(frame.traces) == list(range(n)) + [n + 1]
    helix = np.flatnonzero(labels.ss3 == "H")
    k = explorer.categories.index("H")
    assert list(frame.data[k].x) == (helix + 20.0).tolist()
    assert list(frame.data[-1].y) == [0.33] and frame.layout.title.text.endswith("accuracy = 0.3300")
    assert len(fig.to_plotly_json()["frames"]) == 3          # frames travel with the saved figure


@needs_figurewidget
def test_explorer_validates_inputs(labels):
    with pytest.raises(KeyError, match="no score for t=0.5"):
        viz.TimestepExplorer(None, labels, {0.0: 1.0}, color="ss3", coords_by_t={0.0: _coords(12), 0.5: _coords(12)})
    with pytest.raises(ValueError, match=r"t=0 have shape \(3, 2\)"):
        viz.TimestepExplorer(None, labels, {0.0: 1.0}, color="ss3", coords_by_t={0.0: _coords(3)})
    with pytest.raises(KeyError, match="no column 'loc'"):
        viz.TimestepExplorer(None, labels, {0.0: 1.0}, color="loc", coords_by_t={0.0: _coords(12)})


# ----------------------------------------------------------------------------- UMAP (pays numba's JIT once)

@pytest.fixture(scope="module")
def blobs():
    rng = np.random.default_rng(0)
    X = np.concatenate([rng.normal(size=(60, 8)), rng.normal(size=(60, 8)) + 6.0]).astype(np.float32)
    X[1:60:4] = X[0]               # exact duplicates inside the first blob, as TN latents have
    X[2] = X[0] + 1e-7             # and a near-duplicate
    return X


@pytest.mark.slow
def test_umap_embed_reproducible_dedupes_and_separates(blobs):
    a = viz.umap_embed(blobs, random_state=0)
    b = viz.umap_embed(blobs, random_state=0)
    assert a.shape == (120, 2) and a.dtype == np.float32
    assert np.array_equal(a, b)
    assert np.array_equal(a[1:60:4], np.repeat(a[:1], 15, axis=0))     # duplicates share a point
    assert np.array_equal(a[2], a[0])                                       # so does the near-duplicate
    # the two blobs stay apart: every point's nearest other point is in its own blob
    d = np.linalg.norm(a[:, None] - a[None], axis=-1) + np.eye(120) * 1e9
    d[np.equal(blobs[:, None], blobs[None]).all(-1)] = 1e9                  # ignore exact duplicates
    blob = np.repeat([0, 1], 60)
    assert (blob[d.argmin(1)] == blob).all()


def test_umap_embed_caches_by_input_and_parameters(tmp_path, monkeypatch):
    from lsdkit.viz import umap as vumap

    calls = []

    def fake_fit(rows, *, init, random_state, n_neighbors, min_dist, metric):
        calls.append((len(rows), random_state, n_neighbors))
        return (rows[:, :2] * (random_state + 1) + n_neighbors).astype(np.float32)

    def no_fit(rows, **kw):
        raise AssertionError("umap was fitted although the embedding is cached")

    X = np.random.default_rng(0).normal(size=(30, 5)).astype(np.float32)
    cache = tmp_path / "cache"
    monkeypatch.setattr(vumap, "_fit", fake_fit)
    first = viz.umap_embed(X, cache_dir=cache)
    assert len(calls) == 1 and first.shape == (30, 2) and first.dtype == np.float32
    [stored] = cache.iterdir()
    assert stored.name.startswith("umap_") and stored.suffix == ".npz"        # no temp file left beside it

    monkeypatch.setattr(vumap, "_fit", no_fit)                                 # the second call loads
    assert np.array_equal(viz.umap_embed(X, cache_dir=cache), first)
    assert np.array_equal(viz.umap_embed(X.astype(np.float64), cache_dir=cache), first)   # same values, same key

    monkeypatch.setattr(vumap, "_fit", fake_fit)                               # other params or data: a miss
    viz.umap_embed(X, cache_dir=cache, random_state=1)
    viz.umap_embed(X, cache_dir=cache, n_neighbors=5)
    viz.umap_embed(X, cache_dir=cache, init=first)
    viz.umap_embed(X + 1, cache_dir=cache)
    viz.umap_embed(X, cache_dir=cache, dedupe=False)
    assert len(calls) == 6 and len(list(cache.iterdir())) == 6
    viz.umap_embed(X)                                                          # no cache_dir: always fits
    assert len(calls) == 7 and len(list(cache.iterdir())) == 6

    stored.write_bytes(b"damaged")                                             # a damaged entry is recomputed
    assert np.array_equal(viz.umap_embed(X, cache_dir=cache), first) and len(calls) == 8
    monkeypatch.setattr(vumap, "_fit", no_fit)
    assert np.array_equal(viz.umap_embed(X, cache_dir=cache), first)          # and written again
    coords = viz.embed_over_t({0.0: X, 1.0: X}, cache_dir=cache)    # t=1 starts from the t=0 map: cached above
    assert np.array_equal(coords[0.0], first)


@pytest.mark.slow
def test_umap_embed_errors_and_init(blobs):
    with pytest.raises(ValueError, match="need at least 4 distinct rows, got 2"):
        viz.umap_embed(np.array([[0.0, 1.0]] * 5 + [[1.0, 0.0]]))
    with pytest.raises(ValueError, match="row 3 contains NaN"):
        viz.umap_embed(np.where(np.arange(6)[:, None] == 3, np.nan, np.ones((6, 2))))
    with pytest.raises(ValueError, match="2-D array"):
        viz.umap_embed(np.ones(5))
    with pytest.raises(ValueError, match="init must have shape"):
        viz.umap_embed(blobs, init=np.zeros((3, 2)))
    coords = viz.embed_over_t({0.0: blobs, 1.0: blobs + 0.01})
    assert sorted(coords) == [0.0, 1.0] and coords[1.0].shape == (120, 2)


@pytest.mark.slow
@needs_figurewidget
def test_residue_umap_and_explorer_from_features(blobs):
    lab = pd.DataFrame({"protein_id": [f"p{i // 10}" for i in range(120)], "position": np.arange(120) % 10 + 1,
                        "residue": list("AKDWGEFCRS" * 12)})
    lab["aa_class"] = lab.residue.map(viz.aa_class)
    fig = viz.residue_umap({"TN": blobs, "NM": blobs * 2}, lab)             # ss3 absent: skipped
    assert [b.label for b in fig.layout.updatemenus[0].buttons] == ["colour: residue", "colour: aa_class"]
    ex = viz.TimestepExplorer({0.0: blobs, 0.5: blobs * 1.5}, lab, {0.0: 0.9, 0.5: 0.8}, color="aa_class")
    ex.slider.value = 0.5
    assert ex.coords[0.5].shape == (120, 2) and "0.8000" in ex.score.value


def test_residue_frequencies_from_tokens_and_heatmap():
    from lsdkit.alphabet import ALPHABET

    tokens = np.concatenate([ALPHABET.encode("AAAC"), ALPHABET.encode("XA"), [0, 0]]).astype(np.uint8)
    freq = viz.residue_frequencies(tokens)                  # X and padding not counted
    assert freq[STANDARD.index("A")] == pytest.approx(0.8) and freq.sum() == pytest.approx(1.0)
    assert np.allclose(freq, viz.residue_frequencies(["AAAC", "A"]))
    fig = viz.composition_heatmap({"corpus": ["ACDE"], "task": ["AACD"]}, reference="corpus")
    z = pd.DataFrame(fig.data[0].z, index=fig.data[0].y, columns=fig.data[0].x)
    assert z.loc["corpus"].abs().max() == 0
    assert z.loc["task", "A"] == pytest.approx(1.0) and z.loc["task", "E"] == -2   # log2(0) clipped
    with pytest.raises(KeyError, match="reference 'x'"):
        viz.composition_heatmap({"a": ["A"]}, reference="x")


def test_lengths_from_arrays_sequences_and_pairs():
    assert viz.sequence_lengths(["AC", ("ACD", "A")]).tolist() == [2, 3, 1]
    arr = np.array([5, 10])
    assert viz.sequence_lengths(arr) is arr
    table = viz.length_summary({"a": np.array([10, 20, 30, 600]), "b": ["ACDE"]}, max_len=512)
    assert table.loc["a", "sequences"] == 4 and table.loc["a", "median"] == 25 and table.loc["a", "> 512"] == 0.25
    assert table.loc["b", "max"] == 4
    import matplotlib.pyplot as plt
    fig = viz.length_plot({"a": arr, "b": ["ACD", ("AC", "A")]}, max_len=8)
    assert fig.axes[0].get_xscale() == "log"
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == ["a", "b"]
    plt.close(fig)


def test_align_to_undoes_rotation_scale_and_shift():
    rng = np.random.default_rng(1)
    ref = rng.normal(size=(50, 2)).astype(np.float32)
    theta = 0.7
    rot = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    moved = (ref @ rot) * 3.0 + np.array([10.0, -4.0])
    assert np.allclose(viz.align_to(moved, ref), ref, atol=1e-4)
    flipped = ref * np.array([-1.0, 1.0])                        # a reflection is undone too
    assert np.allclose(viz.align_to(flipped, ref), ref, atol=1e-4)


@needs_figurewidget
def test_explorer_axes_cover_every_t(explorer):
    xr = explorer.static_fallback().layout.xaxis.range
    assert xr[0] < 0 and xr[1] > 31                             # coords span 0..11 at t=0 and 20..31 at t=1
