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

import argparse
import json
import sys
from collections.abc import Iterable, Sequence

import numpy as np
import torch

from lsdkit.alphabet import FIRST_RESIDUE, STANDARD
from lsdkit.schedules import ddim_step, sampling_times

N_STANDARD = len(STANDARD)


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
        raise ValueError(f"sampling needs a diffusion model, got a {model.kind!r} model")
    lengths = [int(length)] * n if np.isscalar(length) else [int(x) for x in length]
    if len(lengths) != n or n < 1:
        raise ValueError(f"need n >= 1 and one length per sample (n={n}, {len(lengths)} lengths)")
    if min(lengths) < 1:
        raise ValueError(f"sequence length must be >= 1, got {min(lengths)}")
    device = torch.device(device) if device else next(model.parameters()).device
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
def composition(seqs: Iterable[str]) -> np.ndarray:
    """Amino-acid frequencies [20] (order ``STANDARD``) over the standard residues of ``seqs``."""
    counts = np.zeros(N_STANDARD, dtype=np.float64)
    lut = np.full(256, -1, dtype=np.int64)
    for i, aa in enumerate(STANDARD):
        lut[ord(aa)] = i
    for s in seqs:
        idx = lut[np.frombuffer(s.upper().encode("ascii", "replace"), dtype=np.uint8)]
        counts += np.bincount(idx[idx >= 0], minlength=N_STANDARD)
    total = counts.sum()
    if total == 0:
        raise ValueError("no standard residues in the sequences: composition is undefined")
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
        raise ValueError(f"reference composition must be {N_STANDARD} non-negative frequencies summing to 1 "
                         f"(order {STANDARD})")
    if not seqs:
        raise ValueError("no sequences to summarise")
    total = sum(len(s) for s in seqs)
    valid = sum(sum(c in STANDARD for c in s.upper()) for s in seqs)
    stats = {"n": len(seqs), "mean_length": total / len(seqs), "valid_fraction": valid / max(total, 1)}
    if valid:
        comp = composition(seqs)
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
    return composition(r.sequence for r in islice(read_fasta(path, unique_ids=False), limit))


# --- CLI -------------------------------------------------------------------------------------------
def add_commands(sub) -> None:
    p = sub.add_parser("sample", help="generate sequences with a latent diffusion model (DDIM)",
                       description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", required=True, help="diffusion checkpoint or run directory")
    p.add_argument("--n", type=int, default=16, help="number of sequences (default 16)")
    p.add_argument("--length", type=int, required=True, help="residues per sequence")
    p.add_argument("--steps", type=int, default=50, help="DDIM steps (default 50)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--device", default=None, help="cpu | cuda (default: cuda when available)")
    p.add_argument("--out", required=True, help="output FASTA (written atomically)")
    p.add_argument("--reference", default=None,
                   help="FASTA for the reference composition (default: the bundled Swiss-Prot 2014 sample)")
    p.set_defaults(func=_cmd_sample)


def _cmd_sample(args: argparse.Namespace) -> int:
    from lsdkit.checkpoint import CheckpointError, load_model
    from lsdkit.data.fasta import write_fasta
    from lsdkit.data.sources import DataError
    if args.n < 1 or args.length < 1 or args.steps < 1:
        print("error: --n, --length and --steps must be >= 1", file=sys.stderr)
        return 2
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    try:
        ref = reference_composition(args.reference)
        model = load_model(args.checkpoint, expect_kind="diffusion", map_location=device)
        seqs = generate(model, args.n, args.length, args.steps, args.seed, args.batch_size, device)
    except (CheckpointError, DataError, OSError, RuntimeError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    write_fasta(args.out, [(f"sample_{i:05d}", s) for i, s in enumerate(seqs)])
    stats = sample_stats(seqs, ref)
    stats.pop("composition")
    print(f"wrote {len(seqs)} sequences to {args.out}")
    print(json.dumps(stats, indent=1))
    return 0
