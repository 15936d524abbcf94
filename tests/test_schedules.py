"""Noise schedules and the parametrisation / DDIM algebra, tested alone (diffusers style)."""

import math

import pytest
import torch

from lsdkit.schedules import (
    SCHEDULES, CosineSchedule, LinearVPSchedule, ddim_step, eps_from_v, eps_from_z0, get_schedule,
    q_sample, sampling_times, v_target, z0_from_v,
)

T = torch.linspace(0, 1, 101, dtype=torch.float64)


@pytest.mark.parametrize("name", sorted(SCHEDULES))
def test_variance_preserving_and_monotone(name):
    s = get_schedule(name)
    a, sig = s.alpha(T), s.sigma(T)
    torch.testing.assert_close(a * a + sig * sig, torch.ones_like(T), atol=1e-12, rtol=0)
    assert (a[1:] < a[:-1]).all() and (sig[1:] > sig[:-1]).all()
    lam = s.log_snr(T[1:-1])
    assert (lam[1:] < lam[:-1]).all()
    assert a[0] == 1.0 and sig[0] == 0.0


def test_cosine_endpoints_and_golden_values():
    s = CosineSchedule()
    assert s.alpha(0.0).item() == 1.0 and s.sigma(0.0).item() == 0.0
    assert s.alpha(1.0).item() == pytest.approx(0.0, abs=1e-7) and s.sigma(1.0).item() == 1.0
    # float32 input at t = 1 must not give a (tiny) negative alpha
    assert s.alpha(torch.tensor(1.0, dtype=torch.float32)).item() >= 0.0
    t = torch.tensor([0.25, 0.5, 0.75], dtype=torch.float64)
    torch.testing.assert_close(s.alpha(t), torch.tensor([0.9238795325112867, 0.7071067811865476,
                                                         0.3826834323650898], dtype=torch.float64))
    torch.testing.assert_close(s.sigma(t), torch.tensor([0.3826834323650898, 0.7071067811865476,
                                                         0.9238795325112867], dtype=torch.float64))
    torch.testing.assert_close(s.log_snr(t), torch.tensor([1.7627471740390859, 0.0, -1.7627471740390859],
                                                          dtype=torch.float64))
    assert s.log_snr(0.0).item() == math.inf


def test_linear_schedule_golden():
    s = LinearVPSchedule()
    assert s.alpha(1.0).item() == pytest.approx(math.exp(-0.25 * 19.9 - 0.05), rel=1e-6)
    assert s.alpha(0.5).item() == pytest.approx(math.exp(-0.25 * 0.25 * 19.9 - 0.025), rel=1e-6)


def test_unknown_schedule_names_the_choices():
    with pytest.raises(ValueError, match="unknown noise schedule 'sqrt'.*cosine"):
        get_schedule("sqrt")


def test_parametrisations_are_consistent():
    g = torch.Generator().manual_seed(0)
    z0, eps = torch.randn(4, 7, 3, generator=g, dtype=torch.float64), torch.randn(4, 7, 3, generator=g,
                                                                                  dtype=torch.float64)
    s = CosineSchedule()
    t = torch.tensor([0.1, 0.4, 0.7, 0.95], dtype=torch.float64)[:, None, None]
    a, sig = s.alpha(t), s.sigma(t)
    zt = q_sample(z0, a, sig, eps)
    v = v_target(z0, eps, a, sig)
    torch.testing.assert_close(z0_from_v(zt, v, a, sig), z0)
    torch.testing.assert_close(eps_from_v(zt, v, a, sig), eps)
    torch.testing.assert_close(eps_from_z0(zt, z0, a, sig), eps)


def test_sampling_times():
    torch.testing.assert_close(sampling_times(4), torch.tensor([1.0, 0.75, 0.5, 0.25, 0.0], dtype=torch.float64))
    with pytest.raises(ValueError, match="at least 1 step"):
        sampling_times(0)


def _ddim(denoise_z0, z1, steps, schedule=CosineSchedule()):
    """Full deterministic loop with an analytic x0-predictor ``denoise_z0(z_t, alpha, sigma)``."""
    z = z1
    ts = sampling_times(steps)
    for t, s in zip(ts[:-1], ts[1:]):
        a, sig = schedule.alpha(t), schedule.sigma(t)
        z0_hat = denoise_z0(z, a, sig)
        z = ddim_step(z0_hat, eps_from_z0(z, z0_hat, a, sig), schedule.alpha(s), schedule.sigma(s))
    return z


def test_ddim_point_mass_is_exact_in_any_number_of_steps():
    c = torch.tensor([0.3, -1.2, 2.0], dtype=torch.float64)
    z1 = torch.randn(5, 3, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    for steps in (1, 3, 10):
        torch.testing.assert_close(_ddim(lambda z, a, s: c.expand_as(z), z1, steps), c.expand_as(z1))


def test_ddim_gaussian_data_follows_probability_flow():
    """For data N(0, s²) the exact x0-predictor is α s² z_t / (α² s² + σ²) and the ODE maps z_1 to s·z_1."""
    sd = 0.5
    z1 = torch.randn(1000, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    oracle = lambda z, a, s: a * sd**2 * z / (a * a * sd**2 + s * s)  # noqa: E731
    err = {n: (_ddim(oracle, z1, n) / (sd * z1) - 1).abs().max().item() for n in (50, 200)}
    assert err[200] < 1e-2 and 3.5 < err[50] / err[200] < 4.5   # first-order solver: error ∝ 1/steps
    # golden number from this seeded run (diffusers style)
    assert _ddim(oracle, z1, 200).abs().sum().item() == pytest.approx(389.96766, abs=1e-4)
