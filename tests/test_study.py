"""The study end to end on the bundled sample: train-or-load, sweep, table, findings, reruns."""

import re
from pathlib import Path

import pandas as pd
import pytest

from lsdkit.study import Study, study_config


SMALL = dict(encoders=("tn", "mlm"), encoder_steps=6, diffusion_steps=4, batch_tokens=2048, ts=(0.1, 0.6),
             max_train_rows=400, max_valid_rows=100, warmup_steps=2)


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    mp.delenv("LSDKIT_DATA", raising=False)          # the bundled sample: what a fresh machine has
    st = Study(tmp_path_factory.mktemp("study"), study_config("tiny", **SMALL), progress=False)
    st.run()
    yield st
    mp.undo()


def test_run_writes_table_and_findings(study):
    d = study.run_dir
    for f in ("sweep.csv", "sweep.npz", "baselines.csv", "baselines.npz", "table.csv", "table.md", "findings.md"):
        assert (d / f).is_file(), f
    table = pd.read_csv(d / "table.csv")
    assert set(table.row) == {"LSD-TN latent", "MLM embedding", "Diffusion on LSD-TN", "Diffusion on MLM",
                              "Composition", "Dipeptide"}
    assert set(table.task) == {"go_mf_sp14"} and (table.metric == "fmax").all()
    assert table.value.between(0, 1).all()
    diff = table[table.row.str.startswith("Diffusion")]
    assert diff.detail.str.match(r"t=0\.(1|6), layer \d").all()
    # every test score has its bootstrap interval, in the CSV and in the Markdown
    assert ((table.ci_low <= table.value) & (table.value <= table.ci_high)).all()
    assert (table.ci_high - table.ci_low).between(0.001, 0.5).all()
    cells = [c.strip() for line in (d / "table.md").read_text().splitlines()[2:8] for c in line.split("|")[2:-1]]
    assert len(cells) == 6 and all(re.fullmatch(r"0\.\d{3} \[0\.\d{3}, 0\.\d{3}\]( \(t=.*\))?", c) for c in cells)
    md = (d / "findings.md").read_text()
    verdicts = re.findall(r"^\d\. \*\*(.+?)\*\*", md, flags=re.M)
    assert len(verdicts) == 3 and verdicts[0] in ("partly tested", "contradicted")   # finding 1 needs LSD-NM
    assert verdicts[2] == "not tested"                                                 # so does finding 3


def test_rerun_loads_instead_of_training_and_reuses_the_sweep(study):
    before = {p: p.stat().st_mtime_ns for p in study.run_dir.rglob("*.safetensors")}
    sweeps = sorted((study.run_dir / "sweeps").glob("*.csv")) + sorted((study.run_dir / "sweeps").glob("*.npz"))
    mtimes = [p.stat().st_mtime_ns for p in sweeps]
    df = study.sweep()
    assert {p: p.stat().st_mtime_ns for p in study.run_dir.rglob("*.safetensors")} == before
    assert [p.stat().st_mtime_ns for p in sweeps] == mtimes      # read back, not recomputed
    assert set(df.representation) == {"LSD-TN", "MLM"}


def test_a_cached_sweep_without_predictions_is_recomputed(study):
    """A run of an older lsdkit kept its sweeps without test predictions: that sweep is redone."""
    (npz,) = (study.run_dir / "sweeps").glob("tn__*.npz")
    csv = npz.with_suffix(".csv")
    before, mtime = csv.read_text(), csv.stat().st_mtime_ns
    npz.unlink()
    study.sweep_encoder("tn")
    assert npz.is_file() and csv.stat().st_mtime_ns != mtime
    assert csv.read_text() == before                                # the same sweep, now with predictions


def test_reconstruct_and_loss_by_t(study):
    ids, seqs = study.valid_sequences(3)
    assert len(ids) == 3 and all(seqs)
    for name in ("tn", "mlm"):
        rec = study.reconstruct(name, seqs, ids)
        assert [len(r) for r in rec] == [len(s) for s in seqs]
    curve = study.loss_by_t("tn", [0.1, 0.9], n_sequences=4)
    assert list(curve.t) == [0.1, 0.9] and curve["loss"].notna().all()
    again = study.loss_by_t("tn", [0.1, 0.9], n_sequences=4)
    pd.testing.assert_frame_equal(curve, again)                  # seeded noise


def test_unknown_encoder_and_preset_are_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="unknown encoder 'xx'"):
        Study(tmp_path, study_config("tiny", encoders=("xx",)))
    with pytest.raises(ValueError, match="unknown study preset"):
        study_config("huge")


def test_parallel_run_matches_serial(study, tmp_path, monkeypatch):
    """``--jobs 2``: the two encoder pipelines run in worker processes (one torch thread each on a
    2-core machine, as the serial run here) and give the same models and the same table."""
    monkeypatch.delenv("LSDKIT_DATA", raising=False)
    monkeypatch.setattr("os.cpu_count", lambda: 2)      # one thread per worker, as in this process
    par = Study(tmp_path, study_config("tiny", **SMALL), progress=False)
    table = par.run(jobs=2)
    for name in ("tn", "mlm", "diffusion_tn", "diffusion_mlm"):
        a, b = study.metrics(name), par.metrics(name)
        pd.testing.assert_series_equal(a["loss"], b["loss"], rtol=1e-5)
    log = (tmp_path / "logs" / "tn.log").read_text()
    assert "lsdkit.train" in log                       # the worker's training output went to its log
    pd.testing.assert_frame_equal(table, study.table(), rtol=1e-4)


def test_study_passes_warmup_and_time_caps(tmp_path, monkeypatch):
    calls = []

    def fake_fit(model, data, config, run_dir, **kw):
        calls.append(config)
        raise RuntimeError(f"training {Path(run_dir).name} failed")
    monkeypatch.setattr("lsdkit.train.fit", fake_fit)
    cfg = study_config("tiny", max_minutes=3.0, diffusion_minutes=1.5, warmup_steps=7)
    st = Study(tmp_path, cfg, progress=False)
    with pytest.raises(RuntimeError, match="training tn failed"):
        st.autoencoder("tn")
    assert calls[-1].warmup_steps == 7 and calls[-1].max_minutes == 3.0
    with pytest.raises(RuntimeError, match="training diffusion_tn failed"):
        st._train("diffusion_tn", lambda: None, 5, cfg.diffusion_minutes)
    assert calls[-1].max_minutes == 1.5
    assert calls[-1].warmup_steps == 5 and calls[-1].max_steps == 5       # warm-up capped at the budget
