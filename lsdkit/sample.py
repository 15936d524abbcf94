"""Sampling sequences from a latent diffusion model, and sanity statistics of the samples.

    z_1 ~ N(0, I)  ─► S deterministic DDIM steps (η = 0; the probability-flow ODE, first order)
        ─► ẑ₀ ─► un-standardise ─► the encoder's decoder (autoencoder) or LM head (MLM) ─► argmax

Noise comes from a CPU ``torch.Generator`` seeded with ``seed``, so the same seed gives the same
sequences on any device and in any batch size. Positions whose argmax is not one of the 20
standard residues (X or a special token) are written as ``X``; :func:`sample_stats` reports their
fraction and the total-variation distance between the samples' amino-acid composition and a
reference composition (by default that of the bundled Swiss-Prot 2014 sample).

CLI::

    lsdkit sample --checkpoint runs/diff --n 100 --length 120 --steps 50 --seed 0 --out samples.fasta
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import torch

from lsdkit.alphabet import FIRST_RESIDUE, STANDARD
from lsdkit.device import resolve_device
from lsdkit.errors import ArgumentError
from lsdkit.schedules import ddim_step, sampling_times

N_STANDARD = len(STANDARD)


class LengthError(ArgumentError):
    """A sample length beyond the length the model was trained on."""


@torch.no_grad()
def ddim_sample(model, z1: torch.Tensor, mask: torch.Tensor, steps: int) -> torch.Tensor:
    """Run S DDIM steps t = 1 → 0 from z_1; returns the standardised ẑ₀ (zero at padding)."""
    ts = sampling_times(steps).to(torch.float32)
    z, keep = z1, mask[..., None]
    for t, s in zip(ts[:-1], ts[1:]):
        tb = t.expand(z.shape[0]).to(z.device)
        z0_hat, eps_hat = model.predict(z, tb, mask)
        if s == 0:
            z = z0_hat
        else:
            z = ddim_step(z0_hat, eps_hat, model.schedule.alpha(s).to(z.device), model.schedule.sigma(s).to(z.device))
        z = z.masked_fill(~keep, 0.0)
    return z


def tokens_to_sequence(tokens: Iterable[int]) -> str:
    """Token ids -> residue string with every non-standard token (X, specials) written as X."""
    out = []
    for t in tokens:
        k = int(t) - FIRST_RESIDUE
        out.append(STANDARD[k] if 0 <= k < N_STANDARD else "X")
    return "".join(out)


@torch.no_grad()
def generate(model, n: int, length: int | Sequence[int], steps: int = 50, seed: int = 0,
             batch_size: int = 64, device: str | torch.device | None = None) -> list[str]:
    """``n`` sequences of the given length(s) (an int, or one length per sample)."""
    if model.kind != "diffusion":
        raise ArgumentError(f"sampling needs a diffusion model, got a {model.kind!r} model")
    lengths = [int(length)] * n if np.isscalar(length) else [int(x) for x in length]
    if len(lengths) != n or n < 1:
        raise ArgumentError(f"need n >= 1 and one length per sample (n={n}, {len(lengths)} lengths)")
    if min(lengths) < 1:
        raise ArgumentError(f"sequence length must be >= 1, got {min(lengths)}")
    trained = getattr(model.config, "max_len", None)
    if trained is not None and max(lengths) > trained:
        raise LengthError(f"length {max(lengths)} is beyond the model's trained max_len {trained}: the denoiser "
                          f"and decoder never saw longer sequences (give at most {trained})")
    device = resolve_device(device) if device else next(model.parameters()).device
    model = model.to(device).eval()
    d_z = model.config.d_z
    gen = torch.Generator().manual_seed(int(seed))
    noise = [torch.randn(L, d_z, generator=gen) for L in lengths]   # drawn up front: batch-size free
    seqs: list[str] = []
    for a in range(0, n, batch_size):
        lens = lengths[a:a + batch_size]
        L = max(lens)
        z1 = torch.zeros(len(lens), L, d_z)
        for i, e in enumerate(noise[a:a + batch_size]):
            z1[i, : len(e)] = e
        mask = torch.arange(L)[None, :] < torch.tensor(lens)[:, None]
        z1, mask = z1.to(device), mask.to(device)
        z0 = ddim_sample(model, z1, mask, steps)
        toks = model.decode_logits(z0, mask).argmax(-1).cpu()
        seqs += [tokens_to_sequence(toks[i, :Li].tolist()) for i, Li in enumerate(lens)]
    return seqs


# --- statistics --------------------------------------------------------------------------------------
def residue_frequencies(seqs) -> np.ndarray:
    """Amino-acid frequencies [20] (order ``STANDARD``) over the standard residues of ``seqs``:
    residue strings (a pair of strings counts both; case ignored), or an integer array of
    alphabet tokens (e.g. a corpus's token buffer). X, other letters and special tokens are not counted."""
    if isinstance(seqs, np.ndarray) and np.issubdtype(seqs.dtype, np.integer):
        counts = np.bincount(seqs.ravel(), minlength=FIRST_RESIDUE + N_STANDARD)
        counts = counts[FIRST_RESIDUE:FIRST_RESIDUE + N_STANDARD].astype(np.float64)
    else:
        counts = np.zeros(N_STANDARD, dtype=np.float64)
        lut = np.full(256, -1, dtype=np.int64)
        for i, aa in enumerate(STANDARD):
            lut[ord(aa)] = i
        for v in seqs:
            for s in (v if isinstance(v, tuple) else (v,)):
                idx = lut[np.frombuffer(s.upper().encode("ascii", "replace"), dtype=np.uint8)]
                counts += np.bincount(idx[idx >= 0], minlength=N_STANDARD)
    total = counts.sum()
    if total == 0:
        raise ArgumentError("no standard residues in the sequences: residue frequencies are undefined")
    return counts / total



def total_variation(p: np.ndarray, q: np.ndarray) -> float:
    """TV(p, q) = ½ Σ_a |p_a − q_a|  (0 = identical, 1 = disjoint)."""
    return 0.5 * float(np.abs(np.asarray(p, float) - np.asarray(q, float)).sum())


def sample_stats(seqs: Sequence[str], reference_composition) -> dict:
    """Sanity statistics of generated sequences against a reference composition [20] or dict.

    Returns ``n``, ``mean_length``, ``valid_fraction`` (residues that are one of the 20 standard
    amino acids), ``tv_distance`` (composition of the valid residues vs the reference) and
    ``composition`` (letter -> frequency).
    """
    if isinstance(reference_composition, dict):
        reference_composition = [reference_composition.get(a, 0.0) for a in STANDARD]
    ref = np.asarray(reference_composition, dtype=np.float64)
    if ref.shape != (N_STANDARD,) or ref.min() < 0 or not np.isclose(ref.sum(), 1.0, atol=1e-6):
        raise ArgumentError(f"reference composition must be {N_STANDARD} non-negative frequencies summing to 1 "
                         f"(order {STANDARD})")
    if not seqs:
        raise ArgumentError("no sequences to summarise")
    total = sum(len(s) for s in seqs)
    valid = sum(sum(c in STANDARD for c in s.upper()) for s in seqs)
    stats = {"n": len(seqs), "mean_length": total / len(seqs), "valid_fraction": valid / max(total, 1)}
    if valid:
        comp = residue_frequencies(seqs)
        stats.update(tv_distance=total_variation(comp, ref),
                     composition={a: float(f) for a, f in zip(STANDARD, comp)})
    else:
        stats.update(tv_distance=1.0, composition={})
    return stats


def reference_composition(fasta: str | None = None, limit: int | None = None) -> np.ndarray:
    """Composition of ``fasta`` (its first ``limit`` records), by default of the bundled Swiss-Prot 2014
    sample: 3,000 proteins chosen by a hash of the accession, so unbiased by file order (the head of
    the full corpus file is not)."""
    from itertools import islice

    from lsdkit.data.bundle import SAMPLE_FASTA, SAMPLE_SOURCE
    from lsdkit.data.fasta import read_fasta
    from lsdkit.data.sources import default_data_dir
    path = fasta or default_data_dir() / SAMPLE_SOURCE / SAMPLE_FASTA
    return residue_frequencies(r.sequence for r in islice(read_fasta(path, unique_ids=False), limit))
