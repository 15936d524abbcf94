"""Latent diffusion: equations, frozen encoder, training signal, checkpoints, sampler, CLI."""

import json

import numpy as np
import pytest
import torch

from lsdkit import cli
from lsdkit.alphabet import ALPHABET, STANDARD
from lsdkit.checkpoint import CheckpointError, load_model, read_config, save_model
from lsdkit.data.batching import SequenceDataset, make_loader
from lsdkit.data.fasta import read_fasta
from lsdkit.models.autoencoder import Autoencoder
from lsdkit.models.diffusion import (LatentDiffusion, masked_mse, timestep_embedding, v_prediction_loss,
                                     weights_hash, x0_prediction_loss)
from lsdkit.models.mlm import MLM
from lsdkit.models.presets import autoencoder_config, mlm_config
from lsdkit.sample import generate, reference_composition, residue_frequencies, sample_stats, total_variation
from lsdkit.train import TrainConfig, Trainer

from conftest import SWISSPROT64


@pytest.fixture(scope="module")
def records():
    return [(r.id, r.sequence.upper().replace("U", "C")) for r in read_fasta(SWISSPROT64)]


def loader_of(records, max_len=32, tokens=512):
    ds = SequenceDataset.from_sequences([r for r, _ in records], [s for _, s in records], max_len=max_len,
                                        crop="first")
    return make_loader(ds, tokens, shuffle=True, seed=0)


@pytest.fixture(scope="module")
def autoencoder():
    torch.manual_seed(0)
    return Autoencoder(autoencoder_config("tiny", "tn")).eval()


@pytest.fixture(scope="module")
def ae_path(autoencoder, tmp_path_factory):
    return save_model(tmp_path_factory.mktemp("ckpt") / "ae", autoencoder)


def fresh_model(encoder, records, **kw):
    torch.manual_seed(1)
    m = LatentDiffusion.from_encoder(encoder, preset="tiny", **{"n_layers": 1, **kw})
    m.estimate_latent_stats(loader_of(records))
    return m


def batch_of(seqs):
    toks, mask = ALPHABET.batch_encode(seqs)
    return {"tokens": torch.from_numpy(toks), "mask": torch.from_numpy(mask), "ids": list(map(str, range(len(seqs))))}


# --- equations -------------------------------------------------------------------------------------
def test_timestep_embedding_golden():
    e = timestep_embedding(torch.tensor([0.0, 0.5]), 8)
    assert e.shape == (2, 8)
    torch.testing.assert_close(e[0], torch.tensor([1.0] * 4 + [0.0] * 4))
    # frequencies 1, 0.1, 0.01, 0.001 at 1000·t = 500
    want = [np.cos(500.0), np.cos(50.0), np.cos(5.0), np.cos(0.5), np.sin(500.0), np.sin(50.0), np.sin(5.0), np.sin(0.5)]
    torch.testing.assert_close(e[1], torch.tensor(want, dtype=torch.float32), atol=1e-4, rtol=0)


def test_masked_losses_ignore_padding_and_pin_numbers():
    pred, target = torch.zeros(2, 3, 2), torch.ones(2, 3, 2)
    mask = torch.tensor([[True, True, False], [True, False, False]])
    assert masked_mse(pred, target, mask).item() == pytest.approx(1.0)
    pred[0, 2] = 100.0    # a padded position: no effect
    pred[1, 1:] = -7.0
    assert masked_mse(pred, target, mask).item() == pytest.approx(1.0)
    pred[0, 0] = torch.tensor([3.0, 1.0])    # (3-1)² + 0 over 3 residues x 2 dims -> (4 + 5·1) / 6
    assert x0_prediction_loss(pred, target, mask).item() == pytest.approx((4 + 0 + 4 * 1) / 6)
    assert v_prediction_loss(target, target, mask).item() == 0.0


def test_weights_hash_tracks_weights(autoencoder):
    h = weights_hash(autoencoder)
    assert h == weights_hash(autoencoder) and len(h) == 64
    other = Autoencoder(autoencoder_config("tiny", "tn"))
    assert weights_hash(other) != h


# --- the model -------------------------------------------------------------------------------------
def test_standardised_latents_have_unit_statistics(autoencoder, records):
    m = fresh_model(autoencoder, records)
    assert m.stats_ready and m.latent_count.item() == 64 * 32
    zs = [m.clean_latents(b["tokens"], b["mask"])[b["mask"]] for b in loader_of(records)]
    z = torch.cat(zs)
    torch.testing.assert_close(z.mean(0), torch.zeros(16), atol=1e-4, rtol=0)
    torch.testing.assert_close(z.std(0), torch.ones(16), atol=1e-4, rtol=0)


def test_loss_needs_statistics(autoencoder):
    m = LatentDiffusion.from_encoder(autoencoder, preset="tiny")
    with pytest.raises(RuntimeError, match="estimate_latent_stats"):
        m.loss(batch_of(["MKV"]))


def test_loss_falls_and_encoder_stays_frozen(autoencoder, records, tmp_path):
    m = fresh_model(autoencoder, records)
    enc_before = weights_hash(m.encoder)
    val = batch_of([s[:32] for _, s in records[:16]])

    def val_loss():
        torch.manual_seed(123)
        m.eval()
        return m.validation_metrics(val)["loss"]

    before = val_loss()
    cfg = TrainConfig(lr=3e-3, warmup_steps=3, max_steps=30, eval_every=0, ckpt_every=0, log_every=10,
                      progress=False)
    Trainer(m, loader_of(records), None, cfg, run_dir=tmp_path).fit()
    assert not m.encoder.training                        # model.train() leaves the encoder in eval mode
    assert all(not p.requires_grad for p in m.encoder.parameters())
    assert weights_hash(m.encoder) == enc_before         # TokenNorm running stats untouched as well
    after = val_loss()
    assert after < 0.9 * before, (before, after)     # 1.011 -> 0.843 on the reference machine


@pytest.mark.parametrize("prediction", ["v", "x0"])
def test_checkpoint_roundtrip_restores_encoder(ae_path, autoencoder, records, tmp_path, prediction):
    m = LatentDiffusion.from_encoder(ae_path, preset="tiny", prediction=prediction)
    m.estimate_latent_stats(loader_of(records))
    assert m.config.encoder_path == str(ae_path.resolve())
    assert m.config.encoder_hash == weights_hash(autoencoder)
    save_model(tmp_path / "d", m)
    back = load_model(tmp_path / "d", expect_kind="diffusion")
    assert back.config == m.config
    assert weights_hash(back.encoder) == weights_hash(autoencoder)
    torch.testing.assert_close(back.latent_std, m.latent_std)
    b = batch_of(["MKTAYIAKQRQISFVKSHF", "MKV"])
    t = torch.tensor([0.3, 0.7])
    z = back.clean_latents(b["tokens"], b["mask"])
    for x, y in zip(back.predict(z, t, b["mask"]), m.predict(z, t, b["mask"])):
        torch.testing.assert_close(x, y)


def test_tampered_encoder_is_refused(ae_path, records, tmp_path):
    m = LatentDiffusion.from_encoder(ae_path, preset="tiny")
    m.estimate_latent_stats(loader_of(records))
    with torch.no_grad():
        m.encoder.to_latent.weight.add_(1.0)
    save_model(tmp_path / "d", m)
    with pytest.raises(CheckpointError, match="encoder_hash"):
        load_model(tmp_path / "d")


def test_encoder_must_be_autoencoder_or_mlm(ae_path, records, tmp_path):
    m = fresh_model(load_model(ae_path), records)
    save_model(tmp_path / "d", m)
    with pytest.raises(CheckpointError, match="autoencoder or mlm"):
        LatentDiffusion.from_encoder(tmp_path / "d")


# --- sampling -------------------------------------------------------------------------------------
def test_sampler_returns_valid_sequences_of_the_asked_length(autoencoder, records):
    m = fresh_model(autoencoder, records)
    seqs = generate(m, 5, 17, steps=4, seed=3, batch_size=2)
    assert len(seqs) == 5 and all(len(s) == 17 and set(s) <= set(STANDARD + "X") for s in seqs)
    assert generate(m, 5, 17, steps=4, seed=3, batch_size=5) == seqs     # batch size does not matter
    mixed = generate(m, 3, [5, 9, 30], steps=2, seed=0)
    assert [len(s) for s in mixed] == [5, 9, 30]


def test_mlm_latents_decode_through_the_lm_head(records):
    torch.manual_seed(0)
    m = fresh_model(MLM(mlm_config("tiny")), records)
    assert all(len(s) == 11 for s in generate(m, 2, 11, steps=2))
    m.encoder.head = None
    with pytest.raises(RuntimeError, match="no decoder"):
        generate(m, 1, 5, steps=1)


def test_sample_stats_golden():
    comp = residue_frequencies(["AAAA", "ACXX"])
    assert comp[STANDARD.index("A")] == pytest.approx(5 / 6) and comp[STANDARD.index("C")] == pytest.approx(1 / 6)
    uniform = np.full(20, 0.05)
    s = sample_stats(["AAAA", "ACXX"], uniform)
    assert s["valid_fraction"] == pytest.approx(6 / 8) and s["mean_length"] == 4.0
    assert s["tv_distance"] == pytest.approx(0.5 * (5 / 6 - 0.05 + 1 / 6 - 0.05 + 18 * 0.05))
    assert total_variation(uniform, uniform) == 0.0
    with pytest.raises(ValueError, match="20 non-negative"):
        sample_stats(["AAAA"], [0.5, 0.5])


def test_default_reference_is_the_bundled_swissprot_sample():
    ref = reference_composition()
    assert ref.sum() == pytest.approx(1.0) and STANDARD[int(ref.argmax())] == "L"
    assert ref[STANDARD.index("L")] == pytest.approx(0.0977, abs=5e-4)
    assert ref[STANDARD.index("W")] == pytest.approx(0.0109, abs=5e-4)


# --- command line ----------------------------------------------------------------------------------
def test_cli_train_diffusion_then_sample(ae_path, tmp_path, capsys):
    run = tmp_path / "diff"
    rc = cli.main(["train", "diffusion", "--latents", str(ae_path), "--preset", "tiny", "--data", str(SWISSPROT64),
                   "--out", str(run), "--max-steps", "3", "--batch-tokens", "2048", "--eval-every", "0",
                   "--no-progress", "--warmup-steps", "1"])
    assert rc == 0
    cfg = read_config(run)
    assert cfg["kind"] == "diffusion" and cfg["config"]["encoder_path"] == str(ae_path.resolve())
    out = tmp_path / "s.fasta"
    rc = cli.main(["sample", "--checkpoint", str(run), "--n", "3", "--length", "12", "--steps", "3",
                   "--out", str(out), "--reference", str(SWISSPROT64)])
    assert rc == 0
    got = [r.sequence for r in read_fasta(out)]
    assert len(got) == 3 and all(len(s) == 12 for s in got)
    printed = capsys.readouterr().out
    stats = json.loads(printed[printed.index("{"):])
    assert 0.0 <= stats["tv_distance"] <= 1.0 and stats["n"] == 3
    assert cli.main(["sample", "--checkpoint", str(ae_path), "--n", "1", "--length", "5", "--out",
                     str(tmp_path / "x.fasta"), "--reference", str(SWISSPROT64)]) == 2
    assert "not 'diffusion'" in capsys.readouterr().err
