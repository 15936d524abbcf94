"""Training throughput: model FLOP/s of one training step vs. the machine's dense-matmul FLOP/s.

Measured in one run, on the same threads:

1. **peak** — fp32 ``torch.mm`` of two n×n matrices (default n = 2048), ``2·n³`` FLOPs each
   (best of 3 per measurement).
2. **model** — ``Trainer.train_step`` (forward, backward, clipping, AdamW) of a preset model on a
   synthetic batch of ``B × L`` real tokens (default ``small`` autoencoder, 32 × 256 = 8192 tokens).

The two are interleaved (matmul, step, matmul, step, ...) and medians reported, so that on a
shared machine both see the same load.

Model FLOPs per step (the usual "6N" count, plus attention)::

    FLOPs = 6 · N_matmul · T  +  12 · n_layers · L · d_model · T

``T`` = real tokens in the batch, ``N_matmul`` = weights of all ``nn.Linear`` layers (embedding
look-ups are not matmuls; biases, norms and element-wise work are not counted), and the attention
term is 3 × (forward QKᵀ and A·V: 2 · 2·L·d_model per token and layer). Utilisation = model
FLOP/s ÷ peak FLOP/s — the fraction of the machine's matmul speed the training step turns into
useful model arithmetic. Target on the 2-core CPU: ≥ 0.40.

Usage: ``python benchmarks/train_throughput.py [--preset small] [--model autoencoder|mlm]
[--batch 32] [--seq-len 256] [--threads N] [--steps 5]``
"""

from __future__ import annotations

import argparse
import tempfile
import time

import torch
from torch import nn

from lsdkit.models.autoencoder import Autoencoder
from lsdkit.models.mlm import MLM
from lsdkit.models.presets import autoencoder_config, mlm_config
from lsdkit.train import TrainConfig, Trainer, seed_everything


def matmul_flops_per_s(n: int = 2048, reps: int = 5) -> float:
    """Best-of-``reps`` fp32 dense matmul rate (FLOP/s) on the current threads."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.mm(a, b)                                  # warm-up
    best = float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - t)
    return 2.0 * n**3 / best


def matmul_weights(model: nn.Module) -> int:
    """N_matmul: the number of weights in the model's nn.Linear layers."""
    return sum(m.weight.numel() for m in model.modules() if isinstance(m, nn.Linear))


def model_flops_per_step(model: nn.Module, tokens: int, seq_len: int) -> float:
    """6·N_matmul·T + 12·n_layers·L·d_model·T (see the module docstring)."""
    c = model.config
    layers = c.n_layers if hasattr(c, "n_layers") else c.n_enc_layers + c.n_dec_layers
    return 6.0 * matmul_weights(model) * tokens + 12.0 * layers * seq_len * c.d_model * tokens


def interleaved(model: nn.Module, batch: dict, steps: int, matmul_n: int, warmup: int = 2):
    """Alternate one timed ``Trainer.train_step`` with one peak-matmul measurement.

    On a shared machine the load changes from second to second; interleaving makes both numbers
    see the same conditions. Returns (step seconds list, peak FLOP/s list).
    """
    cfg = TrainConfig(warmup_steps=1, max_steps=10**6, progress=False, eval_every=0, ckpt_every=0)
    times, peaks = [], []
    with tempfile.TemporaryDirectory() as run_dir:
        trainer = Trainer(model, [batch], None, cfg, run_dir=run_dir)
        for _ in range(warmup):
            trainer.train_step(batch)
        for _ in range(steps):
            peaks.append(matmul_flops_per_s(matmul_n, reps=3))
            t = time.perf_counter()
            trainer.train_step(batch)
            times.append(time.perf_counter() - t)
    return times, peaks


def median(xs):
    return sorted(xs)[len(xs) // 2]


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--preset", default="small")
    p.add_argument("--model", default="autoencoder", choices=["autoencoder", "mlm"])
    p.add_argument("--variant", default="tn")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--seq-len", type=int, default=256)
    p.add_argument("--threads", type=int, default=None, help="default: all cores torch sees")
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--matmul-n", type=int, default=2048)
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    threads = torch.get_num_threads()

    seed_everything(0)
    model = (Autoencoder(autoencoder_config(args.preset, args.variant)) if args.model == "autoencoder"
             else MLM(mlm_config(args.preset)))
    tokens = torch.randint(4, 24, (args.batch, args.seq_len))
    batch = {"tokens": tokens, "mask": torch.ones_like(tokens, dtype=torch.bool)}
    T = args.batch * args.seq_len
    flops = model_flops_per_step(model, T, args.seq_len)
    times, peaks = interleaved(model, batch, args.steps, args.matmul_n)
    sec, peak = median(times), median(peaks)
    rate = flops / sec
    print(f"threads                    {threads}")
    print(f"dense fp32 matmul          {peak / 1e9:8.1f} GFLOP/s   (torch.mm {args.matmul_n}², median over "
          f"{args.steps} measurements interleaved with the steps)")
    name = args.variant if args.model == "autoencoder" else "MLM"
    print(f"model                      {args.model} {args.preset} ({name}), N_matmul = {matmul_weights(model) / 1e6:.2f} M")
    print(f"batch                      {args.batch} × {args.seq_len} = {T} tokens, {flops / 1e9:.1f} GFLOP per step")
    print(f"training step              {sec:8.3f} s   ({T / sec:,.0f} tokens/s, median of {args.steps})")
    print(f"model FLOP rate            {rate / 1e9:8.1f} GFLOP/s")
    print(f"utilisation (model/peak)   {rate / peak:8.3f}   (target >= 0.40; per step: "
          + ", ".join(f"{flops / t / p:.2f}" for t, p in zip(times, peaks)) + ")")


if __name__ == "__main__":
    main()
