"""Autoencoder: shapes/masking, the loss terms, TokenNorm, NoiseMask, and overfitting 64 sequences."""

import math

import pytest
import torch

from lsdkit.alphabet import ALPHABET
from lsdkit.data.fasta import read_fasta
from lsdkit.models.autoencoder import (BOTTLENECKS, Autoencoder, Bottleneck, NoiseMask, TokenNorm,
                                       kl_divergence, register_bottleneck, weighted_cross_entropy)
from lsdkit.models.presets import autoencoder_config
from lsdkit.train import TrainConfig, Trainer

torch.set_num_threads(1)


def _batch(B=3, L=12, seed=0):
    g = torch.Generator().manual_seed(seed)
    tokens = torch.randint(4, 24, (B, L), generator=g)
    mask = torch.ones(B, L, dtype=torch.bool)
    mask[0, L // 2:] = False
    return {"tokens": tokens.masked_fill(~mask, 0), "mask": mask}


@pytest.mark.parametrize("variant", ["tn", "nm", "tnm", "none"])
def test_shapes_padding_and_determinism(variant):
    torch.manual_seed(0)
    model = Autoencoder(autoencoder_config("tiny", variant))
    b = _batch()
    model.train()
    z = model.encode(b["tokens"], b["mask"])
    assert model.training                           # encode restores the mode
    assert z.shape == (3, 12, 16) and z[0, 6:].abs().max() == 0
    assert torch.equal(z, model.encode(b["tokens"], b["mask"]))   # deterministic even in train mode
    alone = model.encode(b["tokens"][:1, :6], b["mask"][:1, :6])
    assert torch.allclose(alone, z[:1, :6], atol=1e-5)
    assert model.decode(z, b["mask"]).shape == (3, 12, 25)
    loss, metrics = model.loss(b)
    assert loss.ndim == 0 and torch.isfinite(loss)
    assert {"loss", "recon_ce", "kl", "recon_acc"} <= set(metrics)
    assert set(model.validation_metrics(b)) == {"recon_acc", "recon_ce"}


def test_loss_terms_pinned():
    # KL(N(1, 1) || N(0, 1)) = 1/2 per dimension; KL(N(0, e) || N(0, 1)) = (e - 2)/2
    assert kl_divergence(torch.ones(1, 4), torch.zeros(1, 4)).item() == pytest.approx(2.0)
    assert kl_divergence(torch.zeros(1, 1), torch.ones(1, 1)).item() == pytest.approx((math.e - 2) / 2)
    logits = torch.log(torch.tensor([[[0.5, 0.5], [0.9, 0.1]]]))
    targets = torch.tensor([[0, 0]])
    # weights 1 and 3: (ln 2 + 3·(−ln 0.9)) / 4
    got = weighted_cross_entropy(logits, targets, torch.tensor([[1.0, 3.0]]))
    assert got.item() == pytest.approx((math.log(2) - 3 * math.log(0.9)) / 4, rel=1e-6)


def test_token_norm_equalises_each_type():
    torch.manual_seed(0)
    tn = TokenNorm(n_types=25, d_z=4, momentum=0.5).train()
    tokens = torch.randint(4, 8, (8, 50))
    mask = torch.rand(8, 50) < 0.9
    # latents whose distribution depends strongly on the residue type
    z = torch.randn(8, 50, 4) * (tokens[..., None] - 2.0) + 10.0 * tokens[..., None]
    out = tn(z, tokens, mask)
    for a in range(4, 8):
        sel = out[(tokens == a) & mask]
        assert sel.mean(0).abs().max() < 1e-4
        assert torch.allclose(sel.var(0, unbiased=False), torch.ones(4), atol=1e-3)
    assert out[~mask].abs().max() == 0
    # eval: running statistics; after many batches they match the batch statistics
    for _ in range(30):
        tn(z, tokens, mask)
    tn.eval()
    sel = tn(z, tokens, mask)[(tokens == 5) & mask]
    assert sel.mean(0).abs().max() < 1e-3 and torch.allclose(sel.var(0), torch.ones(4), atol=1e-2)
    # a type never seen keeps the identity map (running mean 0, var 1)
    assert torch.allclose(tn.running_mean[20], torch.zeros(4)) and torch.allclose(tn.running_var[20], torch.ones(4))


def test_token_norm_rare_type_uses_running_stats():
    tn = TokenNorm(25, 2, min_count=2).train()
    tokens = torch.tensor([[4, 4, 4, 9]])
    z = torch.tensor([[[1.0, 2.0], [3.0, 4.0], [5.0, 9.0], [7.0, -7.0]]])
    out = tn(z, tokens, torch.ones(1, 4, dtype=torch.bool))
    assert torch.allclose(out[0, 3], torch.tensor([7.0, -7.0]) / math.sqrt(1 + 1e-5))   # one residue of type 9
    assert torch.allclose(tn.running_var[9], torch.ones(2))


def _index_add_stats(z, tokens, mask, V):
    """TokenNorm's statistics as index_add computed them before (the reference)."""
    w = mask.flatten().float()
    t = tokens.flatten()
    zf = z.flatten(0, 1)
    counts = torch.zeros(V).index_add_(0, t, w)
    mean = z.new_zeros(V, z.shape[-1]).index_add(0, t, zf * w[:, None]) / counts.clamp(min=1)[:, None]
    dev = (zf - mean[t]) * w[:, None]
    return counts, mean, z.new_zeros(V, z.shape[-1]).index_add(0, t, dev.pow(2)) / counts.clamp(min=1)[:, None]


def test_token_norm_statistics_equal_index_add():
    torch.manual_seed(0)
    tokens = torch.randint(4, 24, (16, 300))
    mask = torch.rand(16, 300) < 0.8
    z = torch.randn(16, 300, 8) * 3 + tokens[..., None] * 0.5
    got = TokenNorm(25, 8).batch_stats(z, tokens, mask)
    for g, want in zip(got, _index_add_stats(z, tokens, mask, 25)):
        assert torch.allclose(g, want, rtol=1e-5, atol=1e-5)
    with torch.autocast("cpu", dtype=torch.bfloat16):           # fp32 under autocast too
        assert all(g.dtype == torch.float32 for g in TokenNorm(25, 8).batch_stats(z, tokens, mask))


def test_token_norm_training_is_reproducible_with_two_threads(fixture_fasta, tmp_path):
    # index_add (and the scatter-add backward of a gather) made two identical 2-thread runs of
    # `lsdkit train autoencoder --variant tn` differ in the last digits of kl / grad_norm
    import json

    from lsdkit.train import fit, seed_everything
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        curves = []
        for run in range(2):
            seed_everything(0)
            cfg = TrainConfig(max_steps=3, warmup_steps=1, batch_tokens=4096, eval_every=3, ckpt_every=3,
                              log_every=1, progress=False, num_threads=2)
            fit(Autoencoder(autoencoder_config("tiny", "tn")), fixture_fasta, cfg, tmp_path / f"r{run}")
            curves.append((tmp_path / f"r{run}" / "metrics.jsonl").read_text())
    finally:
        torch.set_num_threads(threads)
    rows = [json.loads(ln) for ln in curves[0].splitlines()]
    assert len(rows) == 4 and "kl" in rows[0] and "grad_norm" in rows[0]
    assert curves[0] == curves[1]                          # every metric, every digit


def test_noise_mask_corrupts_only_chosen_positions():
    torch.manual_seed(0)
    nm = NoiseMask(rate=0.3, sigma_min=0.5, sigma_max=1.0).train()
    emb = torch.randn(16, 40, 8)
    tokens = torch.randint(4, 24, (16, 40))
    mask = torch.ones(16, 40, dtype=torch.bool)
    mask[:, 30:] = False
    out, chosen = nm.corrupt(emb, tokens, mask)
    assert not chosen[~mask].any()
    assert torch.equal(out[~chosen], emb[~chosen])
    assert (out[chosen] - emb[chosen]).abs().sum(-1).min() > 0
    assert abs(chosen[mask].float().mean().item() - 0.3) < 0.05
    # variance preserving: the corrupted embeddings keep the scale of the clean ones
    assert out[chosen].pow(2).mean().item() == pytest.approx(emb[chosen].pow(2).mean().item(), rel=0.15)
    nm.eval()
    out, chosen = nm.corrupt(emb, tokens, mask)
    assert torch.equal(out, emb) and not chosen.any()
    with pytest.raises(ValueError, match="sigma_max"):
        NoiseMask(rate=0.2, sigma_max=1.5)


def test_noise_mask_weights_corrupted_positions_in_the_loss():
    """LSD-NM: the reconstruction CE is Σ w_i·CE_i / Σ w_i with w = corrupt_weight at corrupted
    positions, 1 at clean ones, 0 at padding — recomputed here by hand from the model's logits."""
    torch.manual_seed(0)
    model = Autoencoder(autoencoder_config("tiny", "nm", nm_rate=0.5, corrupt_weight=3.0)).train()
    b = _batch(8, 20)
    seen = {}
    model.head.register_forward_hook(lambda mod, inp, out: seen.__setitem__("logits", out.detach()))
    corrupt = model.bottleneck.corrupt

    def spy(emb, tokens, mask):
        out, chosen = corrupt(emb, tokens, mask)
        seen["corrupted"] = chosen
        return out, chosen

    model.bottleneck.corrupt = spy

    def run(weight):
        model.config.corrupt_weight = weight
        torch.manual_seed(1)                       # same corruption and latent noise for every weight
        loss, metrics = model.loss(b)
        ce = -seen["logits"].log_softmax(-1).gather(-1, b["tokens"][..., None]).squeeze(-1)
        return loss, metrics, ce, seen["corrupted"]

    loss, metrics, ce, corrupted = run(3.0)
    mask = b["mask"]
    clean = mask & ~corrupted
    assert corrupted.any() and clean.any() and not corrupted[~mask].any()
    weighted = (3.0 * ce[corrupted].sum() + ce[clean].sum()) / (3.0 * corrupted.sum() + clean.sum())
    plain = ce[mask].mean()
    assert metrics["recon_ce"] == pytest.approx(weighted.item(), rel=1e-5)
    assert loss.item() == pytest.approx(weighted.item() + model.config.kl_weight * metrics["kl"], rel=1e-5)
    assert metrics["recon_ce"] != pytest.approx(plain.item(), rel=1e-4)      # the check tells them apart
    # with corrupt_weight=1 the same draw gives the plain mean over real residues
    _, metrics1, ce1, corrupted1 = run(1.0)
    assert torch.equal(corrupted1, corrupted) and torch.allclose(ce1, ce)
    assert metrics1["recon_ce"] == pytest.approx(plain.item(), rel=1e-5)
    assert 0.0 <= metrics["recon_acc_corrupted"] <= 1.0


def test_bottleneck_registry_is_open():
    @register_bottleneck("halve")
    def _halve(config):
        class Halve(Bottleneck):
            def forward(self, z, tokens, mask):
                return z / 2
        return Halve()

    try:
        torch.manual_seed(0)
        model = Autoencoder(autoencoder_config("tiny", "none", bottleneck="halve"))
        b = _batch()
        torch.manual_seed(0)
        plain = Autoencoder(autoencoder_config("tiny", "none"))
        assert torch.allclose(model.encode(b["tokens"], b["mask"]), plain.encode(b["tokens"], b["mask"]) / 2)
        with pytest.raises(ValueError, match="unknown bottleneck 'nope'"):
            Autoencoder(autoencoder_config("tiny", "none", bottleneck="nope"))
    finally:
        BOTTLENECKS.pop("halve")


def fixture_batches(path, crop=64, batch_size=32):
    recs = list(read_fasta(path))
    tokens, mask = ALPHABET.batch_encode([s[:crop] for _, s in recs], [r for r, _ in recs])
    tokens, mask = torch.from_numpy(tokens), torch.from_numpy(mask)
    return [{"tokens": tokens[i:i + batch_size], "mask": mask[i:i + batch_size]}
            for i in range(0, len(recs), batch_size)], {"tokens": tokens, "mask": mask}


def test_tiny_preset_overfits_64_sequences(fixture_fasta, tmp_path):
    """LSD-NM, tiny preset: 64 Swiss-Prot sequences (first 64 residues) reconstructed > 95 % in 60 steps."""
    batches, everything = fixture_batches(fixture_fasta)
    torch.manual_seed(0)
    model = Autoencoder(autoencoder_config("tiny", "nm"))
    before = model.validation_metrics(everything)["recon_acc"]
    cfg = TrainConfig(lr=3e-3, warmup_steps=10, max_steps=60, eval_every=0, ckpt_every=0, log_every=10,
                      progress=False, num_threads=1)
    Trainer(model, batches, None, cfg, run_dir=tmp_path).fit()
    after = model.validation_metrics(everything)["recon_acc"]
    assert before < 0.15 and after > 0.95
