"""Cost of a K-point timestep sweep relative to K bare denoiser passes, and the padding it pays.

    python benchmarks/sweep_cost.py [--n 300] [--k 11] [--preset tiny] [--max-tokens 8192] [--threads 1]

Measures, on ``--n`` real Swiss-Prot sequences (the corpus under ``LSDKIT_DATA``, else the bundled
sample) and a diffusion model of the given preset (random weights: speed does not depend on them):

* ``T_sweep``  - ``Representer.sweep``: encoder once per batch, K noised copies stacked, the
  denoiser once per stack, every (t, layer) pooled; no cache.
* ``T_pass``   - one bare ``denoiser(z_t, t, mask)`` forward over the same sequences, batched by
  the same token budget with inputs prepared beforehand (the floor a sweep cannot beat).
* ``T_stacked`` - the sweep's own denoiser calls (its batches and stacking), bare.
* ``T_single`` - ``Representer.features`` at one t (encoder + one denoiser pass + pooling).

and prints ``T_sweep / (K · T_pass)`` (target <= 1.1: the sweep's own overhead - encoder, noise,
pooling all layers - is at most 10 % of its denoiser work), ``T_sweep / (K · T_single)`` (what a
sweep saves over K separate runs) and the padding fraction of the sweep's batches (target < 10 %).
Times are the minimum over ``--repeats`` interleaved rounds, all in this one process; on a CPU
with one thread they are process CPU times (other processes on shared cores do not distort
them), otherwise wall times.
"""

from __future__ import annotations

import argparse
import time
from itertools import islice

import numpy as np
import torch

from lsdkit.alphabet import ALPHABET
from lsdkit.data.batching import TokenBudgetBatchSampler, collate
from lsdkit.data.fasta import read_fasta
from lsdkit.data.sources import corpus_fasta
from lsdkit.models.autoencoder import Autoencoder
from lsdkit.models.diffusion import LatentDiffusion
from lsdkit.models.presets import autoencoder_config
from lsdkit.represent import Representer


def load_sequences(n: int, max_len: int) -> list[str]:
    records = islice(read_fasta(corpus_fasta(), unique_ids=False), n)
    return [ALPHABET.clean(r.sequence, record=r.id)[:max_len] for r in records]


def timed(fn, clock) -> float:
    t0 = clock()
    fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return clock() - t0


def interleaved_min(fns: dict, repeats: int, clock=time.perf_counter) -> dict:
    """Minimum time of each function over ``repeats`` rounds, the functions alternating within a
    round so that load from other processes hits all of them alike."""
    best = {name: float("inf") for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            best[name] = min(best[name], timed(fn, clock))
    return best


def denoiser_inputs(model, seqs, max_tokens, k, device):
    """Denoiser inputs (z_t, t, mask) on the device, laid out as :class:`Representer` lays out a
    k-point sweep: batches of ``max_tokens / k`` slots, each stacked k times (k = 1: one plain
    single-t pass with ``max_tokens``-slot batches). Returns the inputs and the padding fraction."""
    lengths = np.array([len(s) for s in seqs])
    sampler = TokenBudgetBatchSampler(lengths, max(max_tokens // k, int(lengths.max())), shuffle=False)
    gen = torch.Generator().manual_seed(0)
    out = []
    for idx in sampler:
        b = collate([("", ALPHABET.encode(seqs[i])) for i in idx])
        B, L = b["tokens"].shape
        z = torch.randn(k * B, L, model.config.d_z, generator=gen)
        out.append((z.to(device), torch.full((k * B,), 0.5, device=device), b["mask"].repeat(k, 1).to(device)))
    return out, sampler.padding_fraction()


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=300, help="sequences (default 300)")
    ap.add_argument("--k", type=int, default=11, help="timesteps in the sweep (default 11: 0, 0.1, ..., 1)")
    ap.add_argument("--preset", default="tiny", choices=["tiny", "small", "base"])
    ap.add_argument("--max-len", type=int, default=256)
    ap.add_argument("--max-tokens", type=int, default=8192, help="token slots per batch / denoiser call")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default=None)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))

    seqs = load_sequences(args.n, args.max_len)
    torch.manual_seed(0)
    ae = Autoencoder(autoencoder_config(args.preset, "none", max_len=args.max_len))
    model = LatentDiffusion.from_encoder(ae, preset=args.preset).to(device).eval()
    model.latent_count.fill_(1.0)                      # statistics: identity (speed only)
    ts = [float(x) for x in np.linspace(0.0, 1.0, args.k)]
    ids = [f"s{i}" for i in range(len(seqs))]

    sweep_rep = Representer(model, max_tokens=args.max_tokens, device=device)
    single_rep = Representer(model, max_tokens=args.max_tokens, device=device)
    single_inputs, single_padding = denoiser_inputs(model, seqs, args.max_tokens, 1, device)
    stacked_inputs, _ = denoiser_inputs(model, seqs, args.max_tokens, args.k, device)

    @torch.no_grad()
    def bare(inputs):
        for z, t, mask in inputs:
            model.denoiser(z, t, mask)

    sweep_rep.sweep(seqs, ids, ts=ts[:2], layers="all")   # warm-up (allocator, kernels)
    sweep_rep.counters.clear()
    # on a CPU with one thread, process CPU time: immune to other processes sharing the cores
    cpu_clock = device.type == "cpu" and torch.get_num_threads() == 1
    clock = time.process_time if cpu_clock else time.perf_counter
    best = interleaved_min({"sweep": lambda: sweep_rep.sweep(seqs, ids, ts=ts, layers="all"),
                            "pass": lambda: bare(single_inputs), "stacked": lambda: bare(stacked_inputs),
                            "single": lambda: single_rep.features(seqs, ids, [0.5], "all")}, args.repeats, clock)
    t_sweep, t_pass, t_stacked, t_single = best["sweep"], best["pass"], best["stacked"], best["single"]
    calls = sweep_rep.counters["denoiser_calls"] // args.repeats

    tokens = sum(len(s) for s in seqs)
    print(f"device {device}, threads {torch.get_num_threads()}, preset {args.preset}: {len(seqs)} sequences, "
          f"{tokens} residues (mean length {tokens / len(seqs):.0f}), K = {args.k} timesteps, "
          f"{model.config.n_layers + 1} layers pooled")
    print(f"T_sweep {t_sweep:.3f} s ({calls} denoiser calls) | T_pass {t_pass:.3f} s | "
          f"T_stacked {t_stacked:.3f} s | T_single {t_single:.3f} s  (min of {args.repeats}, "
          f"{'process CPU time' if cpu_clock else 'wall time'})")
    ratio = t_sweep / (args.k * t_pass)
    print(f"sweep / (K x bare denoiser pass) = {ratio:.3f}   (target <= 1.1: {'OK' if ratio <= 1.1 else 'MISSED'})")
    print(f"sweep / (the sweep's own denoiser calls, bare) = {t_sweep / t_stacked:.3f}   "
          "(the sweep's overhead: encoder, noise, pooling every layer)")
    print(f"sweep / (K x single-t representation) = {t_sweep / (args.k * t_single):.3f}")
    pad = sweep_rep.padding_fraction
    print(f"padding fraction of the sweep's batches: {pad:.2%} (target < 10 %: {'OK' if pad < 0.10 else 'MISSED'}); "
          f"of a single-t pass's batches: {single_padding:.2%}")


if __name__ == "__main__":
    main()
