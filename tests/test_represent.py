"""Representations: pooling over real residues, seeded per-sequence noise, sweeps, cache, embed CLI."""

import numpy as np
import pytest
import torch

from lsdkit import cli
from lsdkit.alphabet import ALPHABET, SequenceError
from lsdkit.checkpoint import save_model
from lsdkit.models.autoencoder import Autoencoder
from lsdkit.models.diffusion import LatentDiffusion
from lsdkit.models.presets import autoencoder_config
from lsdkit.represent import Representer, data_hash, feature_key, masked_mean, sequence_noise

SEQS = ["MKTAYIAKQRQISFVKSHFSRQ", "MKV", "ACDEFGHIKLMNPQRSTVWY" * 3, "GGSGGSPLE"]
IDS = ["p1", "p2", "p3", "p4"]


@pytest.fixture(scope="module")
def diffusion():
    """A tiny diffusion model with random (non-zero) adaLN gates, so every layer depends on t."""
    torch.manual_seed(0)
    ae = Autoencoder(autoencoder_config("tiny", "none"))
    m = LatentDiffusion.from_encoder(ae, preset="tiny")
    toks, mask = ALPHABET.batch_encode(SEQS)
    m.estimate_latent_stats([{"tokens": torch.from_numpy(toks), "mask": torch.from_numpy(mask)}])
    with torch.no_grad():
        for p in m.denoiser.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return m.eval()


def rep(model, **kw):
    return Representer(model, device="cpu", **kw)


def test_masked_mean_golden():
    h = torch.tensor([[[1.0, 2.0], [3.0, 4.0], [100.0, 100.0]]])
    torch.testing.assert_close(masked_mean(h, torch.tensor([[True, True, False]])), torch.tensor([[2.0, 3.0]]))


def test_feature_keys():
    assert feature_key(None) == "latent"
    assert feature_key(0.1, 3) == "t0.1_layer3" and feature_key(0.0, 0) == "t0_layer0"


def test_sequence_noise_is_a_function_of_seed_and_sequence():
    a = sequence_noise("MKV", 3, 4, seed=0)
    torch.testing.assert_close(a, sequence_noise("MKV", 3, 4, seed=0), rtol=0, atol=0)
    assert not torch.equal(a, sequence_noise("MKV", 3, 4, seed=1))
    assert not torch.equal(a, sequence_noise("MKI", 3, 4, seed=0))
    assert not torch.equal(a, sequence_noise("MKV", 3, 4, seed=0, draw=1))


def test_representation_is_deterministic_for_a_fixed_seed(diffusion):
    f1 = rep(diffusion, seed=7).features(SEQS, IDS, [0.0, 0.4], "all")
    f2 = rep(diffusion, seed=7).features(SEQS, IDS, [0.0, 0.4], "all")
    f3 = rep(diffusion, seed=8).features(SEQS, IDS, [0.0, 0.4], "all")
    for key in f1:
        np.testing.assert_array_equal(f1[key], f2[key])
    np.testing.assert_array_equal(f1["t0_layer3"], f3["t0_layer3"])     # t = 0: no noise, no seed
    assert not np.allclose(f1["t0.4_layer3"], f3["t0.4_layer3"])
    assert not np.allclose(f1["t0.4_layer3"], f1["t0_layer3"])


def test_pooling_ignores_padding(diffusion):
    """A sequence alone and inside a padded batch (longer neighbour, other order) give the same vector."""
    r = rep(diffusion)
    batch = r.features(SEQS, IDS, [None, 0.0, 0.5], "all")
    for i in (1, 3):
        alone = r.features([SEQS[i]], [IDS[i]], [None, 0.0, 0.5], "all")
        for key in alone:
            if key != "lengths":
                np.testing.assert_allclose(alone[key][0], batch[key][i], atol=1e-5, rtol=0)
    res = r.per_residue(SEQS, IDS, t=0.5, layer=2)
    assert [len(x) for x in res] == [len(s) for s in SEQS]
    np.testing.assert_allclose(np.stack([x.mean(0) for x in res]), batch["t0.5_layer2"], atol=1e-5, rtol=0)


def test_stacking_t_values_changes_nothing(diffusion):
    ts = [0.0, 0.1, 0.5, 1.0]
    stacked = rep(diffusion, max_tokens=10**6)
    one_by_one = rep(diffusion, t_stack=1, max_tokens=64)
    a, b = stacked.features(SEQS, IDS, ts, "all"), one_by_one.features(SEQS, IDS, ts, "all")
    for key in a:
        np.testing.assert_allclose(a[key], b[key], atol=1e-5, rtol=0)
    assert stacked.counters["encoder_batches"] == 1 and stacked.counters["denoiser_calls"] == 1
    assert one_by_one.counters["denoiser_calls"] == 4 * one_by_one.counters["encoder_batches"]


def test_noise_draws_are_averaged(diffusion):
    k1 = rep(diffusion).features(SEQS, IDS, [0.0, 0.6], -1)
    k3 = rep(diffusion, k=3).features(SEQS, IDS, [0.0, 0.6], -1)
    np.testing.assert_allclose(k1["t0_layer3"], k3["t0_layer3"], atol=1e-6)
    assert not np.allclose(k1["t0.6_layer3"], k3["t0.6_layer3"])


def test_cache_hit_returns_identical_arrays_without_recomputing(diffusion, tmp_path):
    r = rep(diffusion, cache_dir=tmp_path)
    first = r.sweep(SEQS, IDS, ts=[0.1, 0.5], layers=[1, 3])
    assert r.counters["cache_writes"] == 5 and r.counters["denoiser_calls"] == 1
    again = rep(diffusion, cache_dir=tmp_path)
    second = again.sweep(SEQS, IDS, ts=[0.1, 0.5], layers=[1, 3])
    assert again.counters["cache_hits"] == 5
    assert again.counters["encoder_batches"] == 0 and again.counters["denoiser_calls"] == 0
    for key in first:
        np.testing.assert_array_equal(first[key], second[key])
    again.sweep(SEQS, IDS, ts=[0.1, 0.9], layers=[1, 3])             # only the new t is computed
    assert again.counters["cache_writes"] == 2
    rep(diffusion, cache_dir=tmp_path, seed=1).sweep(SEQS, IDS, ts=[0.1], layers=[1])
    other_data = rep(diffusion, cache_dir=tmp_path)
    other_data.features(SEQS[:2], IDS[:2], [0.1], [1])
    assert other_data.counters["cache_hits"] == 0
    assert data_hash(IDS, SEQS) != data_hash(IDS[::-1], SEQS)


def test_per_residue_cache_roundtrip(diffusion, tmp_path):
    a = rep(diffusion, cache_dir=tmp_path).per_residue(SEQS, IDS, t=0.3, layer=0)
    r = rep(diffusion, cache_dir=tmp_path)
    b = r.per_residue(SEQS, IDS, t=0.3, layer=0)
    assert r.counters["cache_hits"] == 1
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)


def test_autoencoder_checkpoint_latent_and_featurizer(tmp_path):
    torch.manual_seed(0)
    ae = Autoencoder(autoencoder_config("tiny", "tn")).eval()
    path = save_model(tmp_path / "ae", ae)
    r = Representer(path, device="cpu")
    assert r.kind == "autoencoder" and r.n_layers == 0
    feats = r.featurize(SEQS, IDS)
    toks, mask = ALPHABET.batch_encode(SEQS)
    with torch.no_grad():
        want = masked_mean(ae.encode(torch.from_numpy(toks), torch.from_numpy(mask)), torch.from_numpy(mask))
    np.testing.assert_allclose(feats, want.numpy(), atol=1e-5)
    f = r.featurizer()
    assert f.name == "latent" and f(SEQS).shape == (4, 16) and [x.shape for x in f.residues(SEQS[:2])] == [(22, 16), (3, 16)]
    with pytest.raises(ValueError, match="no diffusion levels"):
        r.features(SEQS, IDS, [0.1])


def test_bad_requests_raise_clear_errors(diffusion):
    r = rep(diffusion)
    with pytest.raises(ValueError, match="outside"):
        r.features(SEQS, IDS, [1.5])
    with pytest.raises(ValueError, match="layer 9 does not exist"):
        r.features(SEQS, IDS, [0.1], 9)
    with pytest.raises(SequenceError, match="'bad'.*position 3"):
        r.features(["MK1V"], ["bad"], [0.1])
    with pytest.raises(ValueError, match="2 ids but 4"):
        r.features(SEQS, IDS[:2])
    with pytest.raises(ValueError, match="returns one"):
        r.pooled(SEQS, IDS, 0.1, "all")
    assert r.featurizer(0.1, -1).name == "t0.1_layer3"


def test_long_sequences_are_cut_to_max_len_when_asked(diffusion):
    r = rep(diffusion, max_len=10, long="truncate")
    f = r.features(SEQS, IDS, [None])
    assert f["lengths"].tolist() == [10, 3, 10, 9]
    np.testing.assert_allclose(f["latent"][0], r.features([SEQS[0][:10]], ["x"])["latent"][0], atol=1e-5)


@pytest.mark.parametrize("length,width", [(5, 10), (10, 10), (11, 10), (22, 10), (60, 10), (61, 7), (100, 1)])
def test_windows_own_every_residue_once_from_the_most_central_window(length, width):
    from lsdkit.represent import windows
    ws = windows(length, width)
    owner = np.full(length, -1)
    for k, (start, a, b) in enumerate(ws):
        assert 0 <= start and start + min(width, length) <= length and 0 <= a < b <= min(width, length)
        assert (owner[start + a:start + b] == -1).all()
        owner[start + a:start + b] = k
    assert (owner >= 0).all()
    centres = np.array([start + min(width, length) / 2 for start, _, _ in ws])
    for p in range(length):      # no window covering p has its centre nearer than the owner's (ties allowed)
        covering = [k for k, (start, _, _) in enumerate(ws) if start <= p < start + width]
        best = min(abs(p + 0.5 - centres[k]) for k in covering)
        assert abs(p + 0.5 - centres[owner[p]]) <= best + 0.5


def test_long_sequences_are_windowed_not_truncated(diffusion, capsys):
    """Each residue's features come from the window where it is most central, computed exactly as
    that window alone would be (noise included); the pooled vector is the mean of those rows."""
    from lsdkit.represent import windows
    r = rep(diffusion, max_len=10)
    res = r.features(SEQS, IDS, [None, 0.5], 2, per_residue=True)
    assert "2 of 4 sequences are longer than the window of 10" in capsys.readouterr().err
    pooled = r.features(SEQS, IDS, [None, 0.5], 2)
    assert pooled["lengths"].tolist() == [len(s) for s in SEQS]
    for key in ("latent", "t0.5_layer2"):
        for i, s in enumerate(SEQS):
            rows = res[key][i]
            assert rows.shape[0] == len(s)
            np.testing.assert_allclose(pooled[key][i], rows.mean(0), atol=1e-5)
            for start, a, b in windows(len(s), 10):
                alone = r.features([s[start:start + 10]], ["w"], [None, 0.5], 2, per_residue=True)[key][0]
                np.testing.assert_allclose(rows[start + a:start + b], alone[a:b], atol=1e-5)
    assert r.counters["windowed"] == 4


# --- lsdkit embed ------------------------------------------------------------------------------------
def test_embed_cli(diffusion, tmp_path, capsys):
    ckpt = save_model(tmp_path / "d", diffusion)
    fasta = tmp_path / "in.fasta"
    fasta.write_text("".join(f">{i}\n{s}\n" for i, s in zip(IDS, SEQS)))
    out = tmp_path / "emb.npz"
    assert cli.main(["embed", "--checkpoint", str(ckpt), "--input", str(fasta), "--t", "0,0.5",
                     "--layer", "all", "--out", str(out)]) == 0
    with np.load(out) as f:
        assert f["ids"].tolist() == IDS and f["lengths"].tolist() == [len(s) for s in SEQS]
        assert f["latent"].shape == (4, 16) and f["t0.5_layer3"].shape == (4, 64)
        direct = rep(diffusion).features(SEQS, IDS, [0.5], 3)["t0.5_layer3"]
        np.testing.assert_allclose(f["t0.5_layer3"], direct, atol=1e-6)
    csv = tmp_path / "in.csv"
    csv.write_text("name,sequence\n" + "".join(f"{i},{s}\n" for i, s in zip(IDS, SEQS)))
    assert cli.main(["embed", "--checkpoint", str(ckpt), "--input", str(csv), "--per-residue",
                     "--t", "0.2", "--out", str(out)]) == 0
    with np.load(out) as f:
        assert f["offsets"].tolist() == [0, 22, 25, 85, 94]
        assert f["latent_residues"].shape == (94, 16) and f["t0.2_layer3_residues"].shape == (94, 64)


@pytest.mark.parametrize("content, args, message", [
    ("id,seq\np1,MKV\np1,MKI\n", [], "line 3: duplicate id 'p1'"),
    ("id,protein\np1,MKV\n", [], "no sequence column"),
    ("id,seq\np1,MK-V\n", [], "line 2: record 'p1': position 3"),
    ("id,seq\np1,MKV\n", ["--t", "0.1,x"], "'x' is not a number"),
    ("id,seq\np1,MKV\n", ["--layer", "last"], "--layer"),
    ("id,seq\np1,MKV\n", ["--t", "0.1", "--layer", "12"], "layer 12 does not exist"),
])
def test_embed_cli_errors(diffusion, tmp_path, capsys, content, args, message):
    ckpt = save_model(tmp_path / "d", diffusion)
    csv = tmp_path / "in.csv"
    csv.write_text(content)
    rc = cli.main(["embed", "--checkpoint", str(ckpt), "--input", str(csv), "--out", str(tmp_path / "o.npz"), *args])
    assert rc == 2 and message in capsys.readouterr().err
    assert not (tmp_path / "o.npz").exists()


def test_per_residue_task_with_sequences_longer_than_the_window(diffusion):
    """A per-residue task whose proteins are longer than the model's window: every residue gets its
    features (overlapping windows), so the probe sees one row per labelled residue."""
    from lsdkit.data.tasks import Record, TaskData, TaskSpec
    from lsdkit.probe import task_arrays
    rng = np.random.default_rng(0)
    residues = "ACDEFGHIKLMNPQRSTVWY"

    def record(name, n):
        seq = "".join(rng.choice(list(residues), n))
        return Record(name, seq, rng.integers(0, 3, n).astype(np.int8))
    splits = {s: [record(f"{s}{i}", n) for i, n in enumerate((25, 9, 31))] for s in ("train", "valid", "test")}
    spec = TaskSpec(name="toy_ss", source="", kind="residue_multiclass", metric="accuracy", protocol="toy",
                    description="")
    task = TaskData(spec=spec, splits=splits, classes=("H", "E", "C"))
    X, Y = task_arrays(task, rep(diffusion, max_len=10).featurizer(0.5, 1))
    assert X["test"].shape == (25 + 9 + 31, 64) and len(Y["test"]) == 65


def test_embed_a_task_writes_labels_and_splits(diffusion, tmp_path):
    ckpt = save_model(tmp_path / "d", diffusion)
    task = tmp_path / "t.csv"
    records = [(f"{i}_{k}", s, "nucleus" if k % 2 else "cytoplasm", ("train", "valid", "test")[k % 3])
               for k, (i, s) in enumerate(zip(IDS * 3, SEQS * 3))]
    task.write_text("entry,seq,where,split\n" + "".join(",".join(r) + "\n" for r in records))
    out = tmp_path / "e.npz"
    assert cli.main(["embed", "--checkpoint", str(ckpt), "--task", str(task), "--label-col", "where",
                     "--out", str(out)]) == 0
    with np.load(out) as f:
        assert len(f["ids"]) == 12 and set(f["split"]) == {"train", "valid", "test"}
        assert set(f["label"]) == {"nucleus", "cytoplasm"} and f["latent"].shape == (12, 16)
        by_id = dict(zip(f["ids"], f["label"]))
    assert by_id["p2_1"] == "nucleus" and by_id["p1_0"] == "cytoplasm"
    assert cli.main(["embed", "--checkpoint", str(ckpt), "--input", str(task), "--label-col", "where",
                     "--out", str(out)]) == 2
