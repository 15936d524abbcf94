"""Cached encoder latents (lsdkit.latents): equal to on-the-fly encoding, reused, invalidated,
never encoded inside a training step, wired into fit / `lsdkit train diffusion`."""

import json

import numpy as np
import pytest
import torch

from lsdkit import cli
from lsdkit.data.batching import SequenceDataset, make_loader
from lsdkit.data.fasta import read_fasta
from lsdkit.latents import CachedLatentLoader, cached_loaders
from lsdkit.models.autoencoder import Autoencoder
from lsdkit.models.diffusion import LatentDiffusion
from lsdkit.models.presets import autoencoder_config
from lsdkit.train import TrainConfig, fit

from conftest import SWISSPROT64

MAX_LEN = 64     # below most fixture lengths (50-300): training crops differ per epoch


def _loader(crop="random", tokens=1024):
    recs = [(r.id, r.sequence) for r in read_fasta(SWISSPROT64)]
    ds = SequenceDataset.from_sequences([r for r, _ in recs], [s for _, s in recs], max_len=MAX_LEN, crop=crop, seed=0)
    return make_loader(ds, tokens, shuffle=crop == "random", seed=0)


def _model(seed=0):
    torch.manual_seed(seed)
    m = LatentDiffusion.from_encoder(Autoencoder(autoencoder_config("tiny", "tnm", max_len=MAX_LEN)), preset="tiny",
                                     n_layers=1)
    m.estimate_latent_stats(_loader("first"))
    return m


class Counting:
    """Counts calls of a model's encoder (and can forbid them)."""

    def __init__(self, model, forbid=False):
        self.calls, self.forbid, real = 0, forbid, model.encoder.encode

        def encode(*a, **kw):
            if self.forbid:
                raise AssertionError("the encoder ran")
            self.calls += 1
            return real(*a, **kw)
        model.encoder.encode = encode


@pytest.mark.parametrize("precision,atol", [("fp32", 1e-6), ("bf16", 2e-3)])
def test_cached_latents_equal_on_the_fly_encoding(tmp_path, precision, atol):
    # every batch of two epochs: same tokens, and the cached latents are what the encoder gives
    # for that batch (fp32: stored float32; bf16: encoded in bf16 autocast, stored float16, and
    # packed in other batches than the training ones)
    model = _model()
    plain, cached = _loader(), CachedLatentLoader(_loader(), model, tmp_path, precision)
    long_items = int((plain.dataset.full_lengths > MAX_LEN).sum())
    for epoch in (0, 1):
        plain.set_epoch(epoch)
        cached.set_epoch(epoch)
        n = 0
        for a, b in zip(plain, cached, strict=True):
            assert torch.equal(a["tokens"], b["tokens"]) and a["ids"] == b["ids"]
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
                z = model.encoder_latents(a["tokens"], a["mask"])
            assert b["latents"].dtype == torch.float32 and b["latents"].shape == z.shape
            assert torch.allclose(b["latents"], z, atol=atol, rtol=atol)
            assert not b["latents"][~b["mask"]].any()
            # the same loss for the same noise
            torch.manual_seed(7)
            want = model.loss(a)[0]
            torch.manual_seed(7)
            got = model.loss(b)[0]
            assert got.item() == pytest.approx(want.item(), rel=1e-5 if precision == "fp32" else 1e-2)
            n += 1
        assert n == len(plain)
        # epoch 0 encodes every item; epoch 1 only the long ones, whose random crop moved
        assert len(cached.store) == len(plain.dataset) + (0 if epoch == 0 else long_items - _same_crops(plain.dataset))
    dtype = np.load(next(cached.path.glob("shard_*")) / "latents.npy", mmap_mode="r").dtype
    assert dtype == (np.float16 if precision == "bf16" else np.float32)


def _same_crops(ds):
    """Long items whose epoch-1 window starts where their epoch-0 window did."""
    starts = {}
    for e in (0, 1):
        ds.set_epoch(e)
        starts[e] = [ds.crop_start(i) for i in range(len(ds))]
    return sum(1 for i in range(len(ds)) if ds.full_lengths[i] > MAX_LEN and starts[0][i] == starts[1][i])


def test_cache_is_reused_and_invalidated_by_another_encoder(tmp_path):
    model = _model()
    first = CachedLatentLoader(_loader(), model, tmp_path, "fp32")
    first.set_epoch(0)
    want = [b["latents"] for b in first]
    assert first.counters["encoded_windows"] == 64
    # a second loader over the same cache: no encoder call at all
    Counting(model, forbid=True)
    again = CachedLatentLoader(_loader(), model, tmp_path, "fp32")
    again.set_epoch(0)
    got = [b["latents"] for b in again]
    assert again.path == first.path and again.counters["encoded_windows"] == 0
    assert all(torch.equal(a, b) for a, b in zip(want, got))
    # another encoder (other weights), another precision or other data: another store, encoded afresh
    other = _model(seed=1)
    spy = Counting(other)
    fresh = CachedLatentLoader(_loader(), other, tmp_path, "fp32")
    fresh.set_epoch(0)
    list(fresh)
    assert fresh.path != first.path and spy.calls > 0 and fresh.counters["encoded_windows"] == 64
    assert CachedLatentLoader(_loader(), model, tmp_path, "bf16").path != first.path
    # batching is not content: the same windows under another token budget share the store
    assert CachedLatentLoader(_loader(tokens=2048), model, tmp_path, "fp32").path == first.path
    assert CachedLatentLoader(_loader("fixed"), model, tmp_path, "fp32").path != first.path
    spec = json.loads((fresh.path / "spec.json").read_text())
    assert spec["encoder_hash"] != json.loads((first.path / "spec.json").read_text())["encoder_hash"]


def test_only_the_run_s_batches_are_encoded(tmp_path):
    # max_batches: a 3-step run encodes the windows of 3 batches, not the corpus
    model = _model()
    loader = CachedLatentLoader(_loader(), model, tmp_path, "fp32", max_batches=3)
    loader.set_epoch(0)
    it = iter(loader)
    seen = [next(it) for _ in range(3)]
    assert loader.counters["encoded_windows"] == sum(len(b["ids"]) for b in seen) < 64


def test_fit_trains_on_cached_latents_with_the_uncached_curve(tmp_path):
    # fit's default for a denoiser: latents cached under the run directory; the encoder runs only
    # outside the training steps, and in fp32 the loss curve is the one of encoding in every step
    cfg = TrainConfig(max_steps=8, warmup_steps=2, batch_tokens=1024, eval_every=4, eval_batches=2, ckpt_every=4,
                      log_every=1, progress=False, num_threads=1, precision="fp32")
    curves = {}
    for cache in (True, False):
        torch.manual_seed(0)
        model = LatentDiffusion.from_encoder(Autoencoder(autoencoder_config("tiny", "tnm", max_len=MAX_LEN)),
                                             preset="tiny", n_layers=1).use_latent_cache(cache)
        spy = Counting(model)
        in_step, real_loss = [False], model.loss

        def loss(batch, _real=real_loss, _spy=spy):
            in_step[0] = True
            calls = _spy.calls
            try:
                return _real(batch)
            finally:
                in_step[0] = False
                if cache:
                    assert _spy.calls == calls, "the encoder ran inside a training step"
        model.loss = loss
        run = tmp_path / f"cache_{cache}"
        fit(model, (_loader(), _loader("fixed")), cfg, run)
        rows = [json.loads(ln) for ln in (run / "metrics.jsonl").read_text().splitlines()]
        curves[cache] = [(r["split"], r["step"], r["loss"]) for r in rows]
        assert (run / "latent_cache").is_dir() == cache
    assert curves[True] == curves[False]
    # resumed with a larger budget: the cache is reused for what it holds, extended for the rest
    torch.manual_seed(0)
    model = LatentDiffusion.from_encoder(Autoencoder(autoencoder_config("tiny", "tnm", max_len=MAX_LEN)),
                                         preset="tiny", n_layers=1)
    result = fit(model, (_loader(), _loader("fixed")), TrainConfig(**{**cfg.__dict__, "max_steps": 10}),
                 tmp_path / "cache_True", resume=True)
    assert result.step == 10 and result.resumed_from.name == "step_000008"


def test_cached_loaders_leave_plain_batch_lists_alone(tmp_path):
    model = _model()
    batches = [next(iter(_loader("first")))]
    train, valid = cached_loaders(model, batches, None, tmp_path, TrainConfig(precision="fp32"))
    assert train is batches and valid is None


def test_cli_latent_cache_flag(tmp_path):
    torch.manual_seed(0)
    from lsdkit.checkpoint import save_model
    ae = save_model(tmp_path / "ae", Autoencoder(autoencoder_config("tiny", "tn")))
    common = ["train", "diffusion", "--latents", str(ae), "--preset", "tiny", "--data", str(SWISSPROT64),
              "--max-steps", "2", "--batch-tokens", "2048", "--eval-every", "0", "--no-progress",
              "--warmup-steps", "1", "--threads", "1"]
    assert cli.main([*common, "--out", str(tmp_path / "d1")]) == 0
    assert any((tmp_path / "d1" / "latent_cache").glob("*/shard_*"))          # default: under --out
    assert cli.main([*common, "--out", str(tmp_path / "d2"), "--latent-cache", str(tmp_path / "lc")]) == 0
    assert any((tmp_path / "lc").glob("*/shard_*")) and not (tmp_path / "d2" / "latent_cache").exists()
    assert cli.main([*common, "--out", str(tmp_path / "d3"), "--no-latent-cache"]) == 0
    assert not (tmp_path / "d3" / "latent_cache").exists()
