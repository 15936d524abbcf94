"""Trainer: schedule, resume == uninterrupted, validation isolation, NaN guard, time budget, CLI,
precision (bf16 autocast vs fp32)."""

import json
import math

import pytest
import torch

from lsdkit import device as device_mod
from lsdkit.checkpoint import latest_checkpoint, load_model, load_trainer_state, save_checkpoint
from lsdkit.errors import ArgumentError
from lsdkit.data.batching import SequenceDataset, make_loader
from lsdkit.data.fasta import read_fasta
from lsdkit.models.autoencoder import Autoencoder
from lsdkit.models.presets import autoencoder_config
from lsdkit.cli import main
from lsdkit.train import (RunExists, TrainConfig, Trainer, TrainingDiverged, fit, lr_at, rng_state, seed_everything,
                          set_rng_state)

torch.set_num_threads(1)


class Killed(Exception):
    pass


def _loaders(fasta):
    ids, seqs = zip(*[(r.id, r.sequence) for r in read_fasta(fasta)])
    train = SequenceDataset.from_sequences(ids[:56], seqs[:56], max_len=48, crop="random", seed=0)
    valid = SequenceDataset.from_sequences(ids[56:], seqs[56:], max_len=48, crop="fixed", seed=0)
    return (make_loader(train, 768, shuffle=True, seed=0), make_loader(valid, 768, shuffle=False))


def _cfg(**kw):
    base = dict(lr=2e-3, warmup_steps=3, max_steps=12, eval_every=4, eval_batches=2, ckpt_every=3,
                log_every=1, progress=False, num_threads=1, keep_checkpoints=None)
    base.update(kw)
    return TrainConfig(**base)


def _model():
    seed_everything(0)
    return Autoencoder(autoencoder_config("tiny", "tnm"))   # every random part: noise mask + sampling + TN


def _losses(run_dir, split="train", key="loss"):
    rows = [json.loads(ln) for ln in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return {r["step"]: r[key] for r in rows if r["split"] == split}


def test_lr_schedule_pinned():
    cfg = TrainConfig(lr=1e-3, warmup_steps=10, max_steps=110, min_lr_ratio=0.1)
    assert lr_at(0, cfg) == pytest.approx(1e-4)
    assert lr_at(9, cfg) == pytest.approx(1e-3)
    assert lr_at(60, cfg) == pytest.approx(1e-3 * (0.1 + 0.9 * 0.5))      # half way down the cosine
    assert lr_at(110, cfg) == pytest.approx(1e-4) and lr_at(500, cfg) == pytest.approx(1e-4)


def test_rng_state_round_trip():
    import random

    import numpy as np
    seed_everything(3)
    state = json.loads(json.dumps(rng_state()))        # survives JSON
    a = (torch.rand(3), np.random.rand(3), random.random())
    set_rng_state(state)
    b = (torch.rand(3), np.random.rand(3), random.random())
    assert torch.equal(a[0], b[0]) and (a[1] == b[1]).all() and a[2] == b[2]


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_resume_equals_uninterrupted(fixture_fasta, tmp_path, precision):
    # uninterrupted: 12 steps over ~2.5 epochs, validation every 4 steps
    full = tmp_path / "full"
    model_a = _model()
    train, valid = _loaders(fixture_fasta)
    Trainer(model_a, train, valid, _cfg(precision=precision), run_dir=full).fit()

    # the same run killed inside step 8 (after the step-6 checkpoint), then resumed
    part = tmp_path / "part"
    model_b = _model()
    calls, real_loss = [0], model_b.loss

    def dying_loss(batch):
        calls[0] += 1
        if calls[0] == 8:
            raise Killed()
        return real_loss(batch)

    model_b.loss = dying_loss
    train, valid = _loaders(fixture_fasta)
    with pytest.raises(Killed):
        Trainer(model_b, train, valid, _cfg(precision=precision), run_dir=part).fit()
    assert latest_checkpoint(part).name == "step_000006"
    assert max(_losses(part)) == 7                      # step 7 was logged before the kill

    model_c = Autoencoder(autoencoder_config("tiny", "tnm"))   # other init: resume must overwrite it
    train, valid = _loaders(fixture_fasta)
    trainer = Trainer(model_c, train, valid, _cfg(precision=precision), run_dir=part, resume=True)
    assert trainer.step == 6 and trainer.resumed_from.name == "step_000006"
    trainer.fit()

    assert _losses(part) == _losses(full)               # exactly the same curve, every step
    assert _losses(part, "valid", "recon_acc") == _losses(full, "valid", "recon_acc")
    for (k, a), b in zip(model_a.state_dict().items(), model_c.state_dict().values()):
        assert torch.equal(a, b), k
    state = load_trainer_state(part)
    assert state["step"] == 12 and state["num_threads"] == 1 and len(state["rng"]) == 1
    assert state["precision"] == precision and state["train_config"]["precision"] == precision


def test_bf16_and_fp32_loss_curves_agree(fixture_fasta, tmp_path):
    # bf16 autocast (matmuls in bf16, weights/optimizer/loss in fp32) follows the fp32 curve: over
    # 20 steps of the tiny model, the mean loss of the last 5 steps differs by less than 2 % (relative)
    curves = {}
    for precision in ("fp32", "bf16"):
        train, valid = _loaders(fixture_fasta)
        run = tmp_path / precision
        Trainer(_model(), train, valid, _cfg(max_steps=20, eval_every=20, ckpt_every=20, precision=precision),
                run_dir=run).fit()
        curves[precision] = _losses(run)
    assert curves["fp32"] != curves["bf16"]                    # bf16 really ran
    last = {p: sum(c[s] for s in range(16, 21)) / 5 for p, c in curves.items()}
    assert curves["fp32"][20] < 0.9 * curves["fp32"][1]        # and the run learns something
    assert abs(last["bf16"] - last["fp32"]) / last["fp32"] < 0.02, last
    # validation (under the same autocast): reconstruction CE within 2 % as well (accuracy is an
    # argmax over near-uniform logits this early and swings by several points between the two)
    val = {p: _losses(tmp_path / p, "valid", "recon_ce")[20] for p in curves}
    assert abs(val["bf16"] - val["fp32"]) / val["fp32"] < 0.02, val


def test_precision_rule(monkeypatch):
    assert TrainConfig().precision == "auto"
    for native, want in ((True, "bf16"), (False, "fp32")):
        monkeypatch.setattr(device_mod, "cpu_has_native_bf16", lambda: native)
        assert device_mod.resolve_precision("auto", "cpu") == want
    assert device_mod.resolve_precision("fp32", "cpu") == "fp32"
    assert device_mod.resolve_precision("bf16", "cpu") == "bf16"
    with pytest.raises(ArgumentError, match="precision 'fp16'"):
        Trainer(_model(), [], None, _cfg(precision="fp16"))


def test_checkpoint_from_before_precision_resumes(fixture_fasta, tmp_path):
    # a checkpoint written before TrainConfig.precision (train_config with `amp`, no precision in
    # the trainer state) still resumes; on a CPU it was fp32
    train, valid = _loaders(fixture_fasta)
    model = _model()
    trainer = Trainer(model, train, valid, _cfg(max_steps=3, precision="fp32"), run_dir=tmp_path)
    trainer.fit()
    state = load_trainer_state(tmp_path)
    del state["precision"]
    state["train_config"].pop("precision")
    state["train_config"]["amp"] = True
    save_checkpoint(tmp_path, 3, model, state)
    train, valid = _loaders(fixture_fasta)
    resumed = Trainer(_model(), train, valid, _cfg(max_steps=5, precision="fp32"), run_dir=tmp_path, resume=True)
    assert resumed.step == 3 and resumed.precision == "fp32"
    resumed.fit()
    assert resumed.step == 5 and max(_losses(tmp_path)) == 5


def test_validation_leaves_training_rng_alone(fixture_fasta, tmp_path):
    curves = []
    for eval_every in (0, 2):
        train, valid = _loaders(fixture_fasta)
        run = tmp_path / f"e{eval_every}"
        Trainer(_model(), train, valid, _cfg(max_steps=6, eval_every=eval_every), run_dir=run).fit()
        curves.append(_losses(run))
    assert curves[0] == curves[1]


def test_nan_guard_keeps_last_good_checkpoint(tmp_path):
    model = _model()
    batch = {"tokens": torch.randint(4, 24, (4, 16)), "mask": torch.ones(4, 16, dtype=torch.bool)}
    calls, real_loss = [0], model.loss

    def loss(b):
        calls[0] += 1
        value, metrics = real_loss(b)
        return (value * float("nan") if calls[0] == 5 else value), metrics

    model.loss = loss
    with pytest.raises(TrainingDiverged, match="diverged at step 5: loss is nan.*step_000004"):
        Trainer(model, [batch], None, _cfg(ckpt_every=2, eval_every=0), run_dir=tmp_path).fit()
    assert latest_checkpoint(tmp_path).name == "step_000004"
    saved = load_model(tmp_path)
    assert all(torch.isfinite(p).all() for p in saved.parameters())
    # the diverged step changed no parameter (buffers such as TokenNorm statistics may have moved)
    assert all(torch.equal(a, b) for a, b in zip(saved.parameters(), model.parameters()))


def test_time_budget_and_frozen_parameters(tmp_path):
    model = _model()
    model.encoder.requires_grad_(False)
    frozen = {k: v.clone() for k, v in model.encoder.state_dict().items()}
    batch = {"tokens": torch.randint(4, 24, (4, 16)), "mask": torch.ones(4, 16, dtype=torch.bool)}
    trainer = Trainer(model, [batch], None, _cfg(max_minutes=0.0, eval_every=0), run_dir=tmp_path)
    trainer.fit()
    assert trainer.step == 1 and latest_checkpoint(tmp_path).name == "step_000001"
    assert all(torch.equal(v, model.encoder.state_dict()[k]) for k, v in frozen.items())
    assert not math.isnan(_losses(tmp_path)[1])


def test_time_budget_stop_ends_with_a_validation(fixture_fasta, tmp_path):
    # a --max-minutes stop between scheduled validations still validates the model it saves
    train, valid = _loaders(fixture_fasta)
    trainer = Trainer(_model(), train, valid, _cfg(max_minutes=0.0, eval_every=4), run_dir=tmp_path)
    last = trainer.fit()
    assert trainer.step == 1
    assert list(_losses(tmp_path, "valid", "recon_acc")) == [1]
    assert 0 <= last["val_recon_acc"] <= 1


def test_cli_train_and_resume(fixture_fasta, tmp_path, capsys):
    common = ["--preset", "tiny", "--data", str(fixture_fasta), "--out", str(tmp_path / "run"),
              "--batch-tokens", "2048", "--eval-every", "2", "--ckpt-every", "2", "--no-progress",
              "--threads", "1", "--warmup-steps", "1"]
    assert main(["train", "autoencoder", "--variant", "tnm", "--max-steps", "2", *common]) == 0
    assert main(["train", "autoencoder", "--variant", "tnm", "--max-steps", "3", "--resume", *common]) == 0
    out = capsys.readouterr().out
    assert "resumed from" in out and "step 3" in out
    model = load_model(tmp_path / "run", expect_kind="autoencoder", expect_config={"bottleneck": "tn+nm"})
    assert model.config.d_model == 64
    assert main(["train", "mlm", "--max-steps", "1", *common[:4], "--out", str(tmp_path / "mlm"), *common[6:]]) == 0
    assert main(["train", "mlm", "--max-steps", "2", "--resume", *common]) == 2
    assert "holds a 'autoencoder' model, not 'mlm'" in capsys.readouterr().err
    assert main(["presets"]) == 0 and "| tiny | autoencoder | 64 |" in capsys.readouterr().out


def test_fit_is_what_the_command_runs(fixture_fasta, tmp_path):
    # the library entry point and `lsdkit train` give the same run: same losses, same weights
    cfg = TrainConfig(max_steps=3, warmup_steps=1, batch_tokens=2048, eval_every=3, ckpt_every=3, progress=False,
                      num_threads=1)
    seed_everything(0)
    result = fit(Autoencoder(autoencoder_config("tiny", "nm")), fixture_fasta, cfg, tmp_path / "lib")
    assert result.step == 3 and result.checkpoint == latest_checkpoint(tmp_path / "lib")
    assert main(["train", "autoencoder", "--variant", "nm", "--preset", "tiny", "--data", str(fixture_fasta),
                 "--out", str(tmp_path / "cli"), "--max-steps", "3", "--warmup-steps", "1", "--batch-tokens", "2048",
                 "--eval-every", "3", "--ckpt-every", "3", "--threads", "1", "--no-progress"]) == 0
    assert _losses(tmp_path / "lib", "train", "loss") == _losses(tmp_path / "cli", "train", "loss")
    a, b = load_model(tmp_path / "lib"), load_model(tmp_path / "cli")
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


def test_milestone_checkpoints_are_written_and_never_pruned(fixture_fasta, tmp_path):
    """Learning-curve milestones: checkpointed even between the regular ones, and kept although
    ``keep_checkpoints`` prunes every other old step directory."""
    train, valid = _loaders(fixture_fasta)
    seed_everything(0)
    cfg = _cfg(max_steps=9, ckpt_every=4, keep_checkpoints=1, milestones=(1, 3))
    Trainer(_model(), train, valid, cfg, run_dir=tmp_path).fit()
    assert sorted(p.name for p in tmp_path.glob("step_*")) == ["step_000001", "step_000003", "step_000009"]
    assert latest_checkpoint(tmp_path).name == "step_000009"
    assert load_trainer_state(tmp_path / "step_000003")["step"] == 3


# --- faults: an existing run, a diverged validation, stale staging, an empty corpus ------------------
def _strict_json_lines(path):
    def refuse(name):
        raise ValueError(f"bare {name} in {path}")
    return [json.loads(ln, parse_constant=refuse) for ln in path.read_text().splitlines()]


def test_validation_nan_is_a_divergence_naming_the_last_validated_checkpoint(fixture_fasta, tmp_path):
    train, valid = _loaders(fixture_fasta)
    model = _model()
    trainer = Trainer(model, train, valid, _cfg(ckpt_every=2, eval_every=4), run_dir=tmp_path)
    real = model.validation_metrics

    def validation_metrics(batch):                       # validations at steps 4 (finite) and 8 (NaN)
        out = real(batch)
        return {k: (float("nan") if trainer.step >= 8 and k == "recon_ce" else v) for k, v in out.items()}

    model.validation_metrics = validation_metrics
    with pytest.raises(TrainingDiverged) as info:
        trainer.fit()
    msg = str(info.value)
    assert "diverged at step 8: validation recon_ce is nan" in msg
    assert f"the newest whose validation was finite, is {tmp_path / 'step_000004'}" in msg
    assert "later step_000006: not validated" in msg and "good checkpoint step_000006" not in msg
    assert sorted(p.name for p in tmp_path.glob("step_*")) == ["step_000002", "step_000004", "step_000006"]
    rows = _strict_json_lines(tmp_path / "metrics.jsonl")           # valid JSON: null, never a bare NaN
    bad = [r for r in rows if r["split"] == "valid" and r["step"] == 8]
    assert len(bad) == 1 and bad[0]["recon_ce"] is None and bad[0]["recon_acc"] is not None


def test_write_metrics_never_writes_a_bare_nan(tmp_path):
    trainer = Trainer(_model(), [], None, _cfg(), run_dir=tmp_path)
    trainer._write_metrics({"split": "train", "step": 1, "loss": float("inf"), "kl": float("nan"), "acc": 0.5})
    assert _strict_json_lines(tmp_path / "metrics.jsonl") == [
        {"split": "train", "step": 1, "loss": None, "kl": None, "acc": 0.5}]


@pytest.mark.parametrize("bad", [dict(max_steps=0), dict(max_steps=-5), dict(lr=0.0), dict(lr=float("nan")),
                                 dict(log_every=0), dict(batch_tokens=0), dict(keep_checkpoints=0),
                                 dict(max_minutes=-1.0)])
def test_train_config_refuses_values_no_run_can_use(bad):
    field = next(iter(bad))
    with pytest.raises(ArgumentError, match=rf"TrainConfig\.{field}: expected"):
        TrainConfig(**bad)


TRAIN_FAST = ["--preset", "tiny", "--batch-tokens", "2048", "--eval-every", "2", "--ckpt-every", "2",
              "--no-progress", "--threads", "1", "--warmup-steps", "1", "--max-steps", "2", "--log-every", "1"]


def _train(out, data, *extra):
    return main(["train", "autoencoder", "--variant", "nm", "--data", str(data), "--out", str(out),
                 *TRAIN_FAST, *extra])


def _snapshot(folder):
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_rerun_into_an_existing_run_is_refused_then_overwritten(fixture_fasta, tmp_path, capsys):
    run = tmp_path / "run"
    assert _train(run, fixture_fasta) == 0
    before = _snapshot(run)
    capsys.readouterr()
    assert _train(run, fixture_fasta) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("lsdkit: error: ") and str(run) in err[0]
    assert "--resume" in err[0] and "--overwrite" in err[0] and "metrics.jsonl" in err[0]
    assert _snapshot(run) == before                                  # nothing touched
    # the library path refuses too; resume=True (what the study calls) still continues
    seed_everything(0)
    with pytest.raises(RunExists, match="--resume"):
        fit(Autoencoder(autoencoder_config("tiny", "nm")), fixture_fasta, TrainConfig(max_steps=2), run)
    (run / "notes.txt").write_text("mine")
    assert _train(run, fixture_fasta, "--overwrite", "--max-steps", "3") == 0
    out = capsys.readouterr().out
    assert "--overwrite: cleared" in out
    steps = [r["step"] for r in _strict_json_lines(run / "metrics.jsonl") if r["split"] == "train"]
    assert steps == [1, 2, 3] and (run / "notes.txt").read_text() == "mine"     # the old lines are gone
    assert [p.name for p in run.glob("step_*")] and latest_checkpoint(run).name == "step_000003"


def test_stale_staging_directories_are_removed_on_the_next_start(fixture_fasta, tmp_path, capsys):
    run = tmp_path / "run"
    assert _train(run, fixture_fasta) == 0
    stale = [run / ".step_000004.k3j_x9az.tmp", run / ".step_000002.ab12cd34.old"]
    for d in stale:
        d.mkdir()
        (d / "model.safetensors").write_bytes(b"half")
    (run / ".latest.zz9_q1.tmp").write_text("step_")
    keep = run / ".hidden_user_dir"
    keep.mkdir()
    assert _train(run, fixture_fasta, "--resume", "--max-steps", "4") == 0
    assert "removed 3 leftover(s) of an interrupted checkpoint write" in capsys.readouterr().out
    assert not any(d.exists() for d in stale) and not (run / ".latest.zz9_q1.tmp").exists() and keep.is_dir()
    assert latest_checkpoint(run).name == "step_000004"


def test_corpus_of_only_too_short_records_names_the_filter(tmp_path, capsys):
    short = tmp_path / "short.fasta"
    short.write_text("".join(f">s{i}\nMKVLA{'ACDEF'[i % 5]}\n" for i in range(12)))
    assert _train(tmp_path / "run", short) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no training sequences left" in err[0]
    assert "of 12 records read, 12 shorter than min_len=30" in err[0] and str(short) in err[0]
    assert not (tmp_path / "run" / "metrics.jsonl").exists()


def test_corpus_summary_is_printed_when_training_starts(fixture_fasta, tmp_path, capsys):
    assert _train(tmp_path / "run", fixture_fasta) == 0
    lines = [ln for ln in capsys.readouterr().out.splitlines() if "corpus:" in ln]
    assert len(lines) == 1
    assert "64 records read" in lines[0] and "kept" in lines[0] and "cropped to it" in lines[0]
    assert "shorter than min_len=30" in lines[0] and str(fixture_fasta) in lines[0]
