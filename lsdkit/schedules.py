"""Noise schedules for continuous-time Gaussian diffusion on latents, t ∈ [0, 1].

A variance-preserving (VP) schedule is a pair of functions (α_t, σ_t) with α_t² + σ_t² = 1,
α_0 = 1 (clean) and α_t decreasing towards 0 (pure noise). The forward process is

    z_t = α_t · z_0 + σ_t · ε,        ε ~ N(0, I)                                  (q_sample)

and its signal-to-noise ratio is SNR(t) = α_t² / σ_t², log-SNR λ_t = 2 log(α_t / σ_t).

LSD (arXiv 2503.18551) uses the **cosine** schedule z_t = cos(πt/2)·z_0 + sin(πt/2)·ε.
Schedules are separate objects chosen by name (``get_schedule("cosine")``) so the diffusion
model only stores the name in its config and a user can register another one.

The small functions below convert between the three equivalent network parametrisations
(predict z_0, predict ε, predict v = α_t ε − σ_t z_0; Salimans & Ho 2022) and take one
deterministic DDIM step (Song et al. 2021, η = 0), which is the first-order solver of the
probability-flow ODE. Every function takes ``alpha``/``sigma`` already broadcast to the shape of
the latents, so they are plain algebra and tested alone.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

TimeLike = float | Tensor

# the one default grid of noise levels t for representations and sweeps (Representer.sweep,
# sweep_task, the study presets, `lsdkit sweep --t`)
DEFAULT_TS: tuple[float, ...] = (0.0, 0.1, 0.3, 0.5, 0.7, 0.9)


# -- the forward process and the parametrisations (paper symbols) ---------------------------

def q_sample(z0: Tensor, alpha: Tensor, sigma: Tensor, eps: Tensor) -> Tensor:
    """z_t = α_t z_0 + σ_t ε."""
    return alpha * z0 + sigma * eps


def v_target(z0: Tensor, eps: Tensor, alpha: Tensor, sigma: Tensor) -> Tensor:
    """v = α_t ε − σ_t z_0 (the velocity target)."""
    return alpha * eps - sigma * z0


def z0_from_v(z_t: Tensor, v: Tensor, alpha: Tensor, sigma: Tensor) -> Tensor:
    """ẑ_0 = α_t z_t − σ_t v̂."""
    return alpha * z_t - sigma * v


def eps_from_v(z_t: Tensor, v: Tensor, alpha: Tensor, sigma: Tensor) -> Tensor:
    """ε̂ = σ_t z_t + α_t v̂."""
    return sigma * z_t + alpha * v


def eps_from_z0(z_t: Tensor, z0: Tensor, alpha: Tensor, sigma: Tensor) -> Tensor:
    """ε̂ = (z_t − α_t ẑ_0) / σ_t   (undefined at σ_t = 0, i.e. t = 0: never evaluated there)."""
    return (z_t - alpha * z0) / sigma


def ddim_step(z0_hat: Tensor, eps_hat: Tensor, alpha_s: Tensor, sigma_s: Tensor) -> Tensor:
    """Deterministic DDIM update t → s < t:  z_s = α_s ẑ_0 + σ_s ε̂."""
    return alpha_s * z0_hat + sigma_s * eps_hat


# -- schedules --------------------------------------------------------------------------------

class NoiseSchedule:
    """A VP schedule: subclasses define ``alpha(t)``; σ_t = sqrt(1 − α_t²)."""

    name = "abstract"

    def alpha(self, t: TimeLike) -> Tensor:
        raise NotImplementedError

    def sigma(self, t: TimeLike) -> Tensor:
        a = self.alpha(t)
        return torch.sqrt(torch.clamp(1.0 - a * a, min=0.0))

    def log_snr(self, t: TimeLike) -> Tensor:
        """λ_t = log(α_t² / σ_t²); +inf at t = 0 for schedules with σ_0 = 0."""
        a, s = self.alpha(t), self.sigma(t)
        return 2.0 * (torch.log(a) - torch.log(s))

    def alpha_sigma(self, t: TimeLike) -> tuple[Tensor, Tensor]:
        return self.alpha(t), self.sigma(t)

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


def _as_tensor(t: TimeLike) -> Tensor:
    t = torch.as_tensor(t)
    return t if t.is_floating_point() else t.to(torch.get_default_dtype())


def cosine_alpha(t: Tensor) -> Tensor:
    """α_t = cos(πt/2)."""
    return torch.cos(0.5 * math.pi * t)


def cosine_sigma(t: Tensor) -> Tensor:
    """σ_t = sin(πt/2)."""
    return torch.sin(0.5 * math.pi * t)


def cosine_log_snr(t: Tensor) -> Tensor:
    """λ_t = −2 log tan(πt/2)."""
    return -2.0 * torch.log(torch.tan(0.5 * math.pi * t))


class CosineSchedule(NoiseSchedule):
    """z_t = cos(πt/2) z_0 + sin(πt/2) ε (the LSD schedule); exact α_1 = 0 is clamped to 0."""

    name = "cosine"

    def alpha(self, t: TimeLike) -> Tensor:
        return torch.clamp(cosine_alpha(_as_tensor(t)), min=0.0)

    def sigma(self, t: TimeLike) -> Tensor:
        return torch.clamp(cosine_sigma(_as_tensor(t)), min=0.0)

    def log_snr(self, t: TimeLike) -> Tensor:
        return cosine_log_snr(_as_tensor(t))


def linear_vp_log_alpha(t: Tensor, beta_min: float, beta_max: float) -> Tensor:
    """log α_t = −¼ t² (β_max − β_min) − ½ t β_min  (the VP-SDE of Song et al. 2021)."""
    return -0.25 * t * t * (beta_max - beta_min) - 0.5 * t * beta_min


class LinearVPSchedule(NoiseSchedule):
    """The linear-β VP-SDE schedule (β ∈ [0.1, 20]); α_1 ≈ 0.0066, so t = 1 is nearly pure noise."""

    name = "linear"

    def __init__(self, beta_min: float = 0.1, beta_max: float = 20.0):
        self.beta_min, self.beta_max = beta_min, beta_max

    def alpha(self, t: TimeLike) -> Tensor:
        return torch.exp(linear_vp_log_alpha(_as_tensor(t), self.beta_min, self.beta_max))

    def __repr__(self) -> str:
        return f"LinearVPSchedule(beta_min={self.beta_min}, beta_max={self.beta_max})"


SCHEDULES: dict[str, Callable[[], NoiseSchedule]] = {
    "cosine": CosineSchedule,
    "linear": LinearVPSchedule,
}


def get_schedule(name: str) -> NoiseSchedule:
    """The schedule registered under ``name`` (``SCHEDULES``); a clear error for unknown names."""
    try:
        return SCHEDULES[name]()
    except KeyError:
        raise ValueError(f"unknown noise schedule {name!r}; known: {sorted(SCHEDULES)}") from None


def sampling_times(steps: int, t_max: float = 1.0, t_min: float = 0.0) -> Tensor:
    """The S + 1 times t_max = t_0 > t_1 > … > t_S = t_min of an S-step deterministic sampler."""
    if steps < 1:
        raise ValueError(f"sampler needs at least 1 step, got {steps}")
    if not 0.0 <= t_min < t_max <= 1.0:
        raise ValueError(f"need 0 <= t_min < t_max <= 1, got t_min={t_min}, t_max={t_max}")
    return torch.linspace(t_max, t_min, steps + 1, dtype=torch.float64)
