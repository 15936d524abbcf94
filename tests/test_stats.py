"""Bootstrap intervals over test items (lsdkit.stats), checked against hand computations."""

import numpy as np
import pytest

from lsdkit.probe import auroc
from lsdkit.stats import (Interval, bootstrap_ci, paired_bootstrap_diff, percentile_interval, replicates,
                          resample_indices)

CORRECT = np.array([1, 0, 1, 1, 0], dtype=float)        # a tiny accuracy vector: 0.6


def test_bootstrap_interval_by_hand():
    """Five resamples drawn as documented; level 0.5 puts the percentiles on order statistics 1 and 3
    (positions 0.25·4 and 0.75·4), level 0.8 between them (positions 0.4 and 3.6)."""
    rng = np.random.default_rng(7)
    draws = [rng.integers(0, 5, size=5) for _ in range(5)]
    means = sorted(CORRECT[d].mean() for d in draws)
    ci = bootstrap_ci(np.mean, CORRECT, n=5, seed=7, level=0.5)
    assert ci == Interval(0.6, means[1], means[3])
    ci = bootstrap_ci(np.mean, CORRECT, n=5, seed=7, level=0.8)
    assert ci.low == pytest.approx(means[0] + 0.4 * (means[1] - means[0]))
    assert ci.high == pytest.approx(means[3] + 0.6 * (means[4] - means[3]))
    assert [d.tolist() for d in resample_indices(5, n=5, seed=7)] == [d.tolist() for d in draws]


def test_percentile_interval_of_fixed_replicates():
    reps = np.arange(101) / 100                      # 0.00 .. 1.00: the q-quantile is q itself
    assert percentile_interval(0.5, reps, level=0.9) == pytest.approx(Interval(0.5, 0.05, 0.95))
    assert percentile_interval(0.5, np.r_[reps, np.nan]) == percentile_interval(0.5, reps)   # NaN left out
    assert np.isnan(percentile_interval(0.5, [np.nan]).low)
    with pytest.raises(ValueError, match="level"):
        percentile_interval(0.5, reps, level=95)


def test_interval_width_matches_the_binomial_standard_error():
    x = np.r_[np.ones(200), np.zeros(200)]           # accuracy 0.5 on 400 items: se = 0.025
    ci = bootstrap_ci(np.mean, x, n=2000, seed=0)
    assert ci.value == 0.5 and ci.low == pytest.approx(0.5 - 1.96 * 0.025, abs=0.006)
    assert ci.high == pytest.approx(0.5 + 1.96 * 0.025, abs=0.006)


def test_paired_bootstrap_identical_inputs_give_exactly_zero():
    rng = np.random.default_rng(0)
    y, s = rng.integers(0, 2, 60), rng.random(60)
    assert paired_bootstrap_diff(np.mean, CORRECT, CORRECT.copy()) == Interval(0.0, 0.0, 0.0)
    assert paired_bootstrap_diff(auroc, (y, s), (y, s.copy()), n=200) == Interval(0.0, 0.0, 0.0)


def test_paired_bootstrap_uses_the_same_resamples_for_both():
    """b is a's correctness with 10 of 100 items flipped to wrong: every resample's difference is
    the share of flipped items drawn, never below 0; unpaired intervals would overlap."""
    a = np.ones(100)
    b = a.copy()
    b[:10] = 0
    d = paired_bootstrap_diff(np.mean, a, b, n=500, seed=1)
    assert d.value == pytest.approx(0.1) and d.low > 0.04 and d.high < 0.17
    ra, rb = replicates(np.mean, a, n=500, seed=1), replicates(np.mean, b, n=500, seed=1)
    np.testing.assert_allclose(np.quantile(ra - rb, [0.025, 0.975]), [d.low, d.high])
    with pytest.raises(ValueError, match="same test items"):
        paired_bootstrap_diff(np.mean, a, b[:50])


def test_strata_keep_their_size_and_units_stay_whole():
    strata = np.array([0, 0, 0, 1, 1, 1, 1])
    units = np.array([0, 0, 1, 2, 3, 3, 4])            # unit 0 has two rows, unit 3 two
    for idx in resample_indices(7, n=30, seed=3, strata=strata):
        assert (strata[idx] == 0).sum() == 3 and (strata[idx] == 1).sum() == 4
    for idx in resample_indices(7, n=30, seed=3, strata=strata, units=units):
        counts = np.bincount(idx, minlength=7)
        assert counts[0] == counts[1] and counts[4] == counts[5]        # both rows of a unit, or neither
        assert (np.bincount(units[idx], minlength=5)[[0, 1]] // [2, 1]).sum() == 2   # 2 units from stratum 0
    with pytest.raises(ValueError, match="spans two strata"):
        next(resample_indices(3, strata=[0, 0, 1], units=[0, 1, 1]))


def test_undefined_replicates_are_left_out():
    y, s = np.array([0, 1, 0, 1]), np.array([0.1, 0.9, 0.2, 0.8])    # some resamples have one class only
    reps = replicates(auroc, y, s, n=200, seed=0)
    assert np.isnan(reps).any() and bootstrap_ci(auroc, y, s, n=200).low == 1.0


def test_interval_format():
    assert Interval(0.3664, 0.3411, 0.3923).format() == "0.366 [0.341, 0.392]"
    assert Interval(0.012, -0.004, 0.027).format(signed=True) == "+0.012 [-0.004, +0.027]"
    assert Interval(0.5, np.nan, np.nan).format() == "0.500"
    assert Interval(0.1, 0.05, 0.2).above_zero and Interval(-0.1, -0.2, -0.05).below_zero
    assert not Interval(0.0, -0.1, 0.1).above_zero and not Interval(0.0, -0.1, 0.1).below_zero


def test_the_docstring_example():
    assert bootstrap_ci(np.mean, np.array([1, 1, 0, 1, 0, 1, 1, 1])).format() == "0.750 [0.375, 1.000]"
