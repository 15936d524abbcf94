"""Training throughput in fp32 and bf16: tokens/s, utilisation against the matching matmul peak, and
the bf16/fp32 speed ratio.

Measured in one run, on the same threads:

1. **peaks** — ``torch.mm`` of two n×n matrices (default n = 2048), ``2·n³`` FLOPs each, in fp32
   and in bf16 (best of 3 per measurement).
2. **steps** — ``Trainer.train_step`` (forward, backward, clipping, AdamW) of a preset model on a
   synthetic batch of ``B × L`` real tokens (default ``small`` autoencoder, 32 × 256 = 8192 tokens),
   once with ``TrainConfig(precision="fp32")`` and once with ``precision="bf16"`` (bf16 autocast;
   weights, optimizer and loss in fp32). Both trainers start from the same weights.

Everything is interleaved (fp32 matmul, fp32 step, bf16 matmul, bf16 step, ...) and medians
reported, so that on a shared machine all four see the same load. With one thread the times are
process CPU times (other processes on shared cores do not distort them), otherwise wall times.

Model FLOPs per step (the usual "6N" count, plus attention)::

    FLOPs = 6 · N_matmul · T  +  12 · n_layers · L · d_model · T

``T`` = real tokens in the batch, ``N_matmul`` = weights of all ``nn.Linear`` layers (embedding
look-ups are not matmuls; biases, norms and element-wise work are not counted), and the attention
term is 3 × (forward QKᵀ and A·V: 2 · 2·L·d_model per token and layer). Utilisation = model
FLOP/s ÷ the peak of the step's precision — the fraction of the machine's matmul speed in that
precision the training step turns into useful model arithmetic (fp32 target on the 2-core CPU:
≥ 0.40). The speed ratio is fp32 step time ÷ bf16 step time (goal ≥ 1.5 on a CPU with AMX-BF16).

Usage: ``python benchmarks/train_throughput.py [--preset small] [--model autoencoder|mlm]
[--batch 32] [--seq-len 256] [--threads N] [--steps 5]``
"""

from __future__ import annotations

import argparse
import copy
import tempfile
import time

import torch
from torch import nn

from lsdkit.device import cpu_has_native_bf16
from lsdkit.models.autoencoder import Autoencoder
from lsdkit.models.mlm import MLM
from lsdkit.models.presets import autoencoder_config, mlm_config
from lsdkit.train import TrainConfig, Trainer, seed_everything

PRECISIONS = ("fp32", "bf16")
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}


def matmul_flops_per_s(n: int = 2048, reps: int = 5, dtype: torch.dtype = torch.float32,
                       clock=time.perf_counter) -> float:
    """Best-of-``reps`` dense matmul rate (FLOP/s) in ``dtype`` on the current threads."""
    a, b = torch.randn(n, n).to(dtype), torch.randn(n, n).to(dtype)
    torch.mm(a, b)                                  # warm-up
    best = float("inf")
    for _ in range(reps):
        t = clock()
        torch.mm(a, b)
        best = min(best, clock() - t)
    return 2.0 * n**3 / best


def matmul_weights(model: nn.Module) -> int:
    """N_matmul: the number of weights in the model's nn.Linear layers."""
    return sum(m.weight.numel() for m in model.modules() if isinstance(m, nn.Linear))


def model_flops_per_step(model: nn.Module, tokens: int, seq_len: int) -> float:
    """6·N_matmul·T + 12·n_layers·L·d_model·T (see the module docstring)."""
    c = model.config
    layers = c.n_layers if hasattr(c, "n_layers") else c.n_enc_layers + c.n_dec_layers
    return 6.0 * matmul_weights(model) * tokens + 12.0 * layers * seq_len * c.d_model * tokens


def interleaved(model: nn.Module, batch: dict, steps: int, matmul_n: int, warmup: int = 2,
                clock=time.perf_counter) -> dict:
    """Per precision: step seconds and matmul-peak FLOP/s lists, measured alternately.

    On a shared machine the load changes from second to second; interleaving makes all numbers
    see the same conditions. Each precision trains its own copy of ``model`` (same weights).
    """
    out = {p: {"times": [], "peaks": []} for p in PRECISIONS}
    with tempfile.TemporaryDirectory() as run_dir:
        trainers = {}
        for p in PRECISIONS:
            cfg = TrainConfig(warmup_steps=1, max_steps=10**6, progress=False, eval_every=0, ckpt_every=0,
                              precision=p)
            trainers[p] = Trainer(copy.deepcopy(model), [batch], None, cfg, run_dir=f"{run_dir}/{p}")
        for _ in range(warmup):
            for p in PRECISIONS:
                trainers[p].train_step(batch)
        for _ in range(steps):
            for p in PRECISIONS:
                out[p]["peaks"].append(matmul_flops_per_s(matmul_n, reps=3, dtype=DTYPES[p], clock=clock))
                t = clock()
                trainers[p].train_step(batch)
                out[p]["times"].append(clock() - t)
    return out


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
    clock = time.process_time if threads == 1 else time.perf_counter

    seed_everything(0)
    model = (Autoencoder(autoencoder_config(args.preset, args.variant)) if args.model == "autoencoder"
             else MLM(mlm_config(args.preset)))
    tokens = torch.randint(4, 24, (args.batch, args.seq_len))
    batch = {"tokens": tokens, "mask": torch.ones_like(tokens, dtype=torch.bool)}
    T = args.batch * args.seq_len
    flops = model_flops_per_step(model, T, args.seq_len)
    res = interleaved(model, batch, args.steps, args.matmul_n, clock=clock)
    name = args.variant if args.model == "autoencoder" else "MLM"
    print(f"threads                    {threads} ({'process CPU' if clock is time.process_time else 'wall'} times; "
          f"native bf16 CPU: {cpu_has_native_bf16()})")
    print(f"model                      {args.model} {args.preset} ({name}), N_matmul = {matmul_weights(model) / 1e6:.2f} M")
    print(f"batch                      {args.batch} × {args.seq_len} = {T} tokens, {flops / 1e9:.1f} GFLOP per step")
    sec = {}
    for prec in PRECISIONS:
        times, peaks = res[prec]["times"], res[prec]["peaks"]
        sec[prec], peak = median(times), median(peaks)
        rate = flops / sec[prec]
        print(f"{prec}: dense matmul         {peak / 1e9:8.1f} GFLOP/s   (torch.mm {args.matmul_n}², median of "
              f"{args.steps}, interleaved with the steps)")
        print(f"{prec}: training step        {sec[prec]:8.3f} s   ({T / sec[prec]:,.0f} tokens/s, "
              f"median of {args.steps})")
        print(f"{prec}: model FLOP rate      {rate / 1e9:8.1f} GFLOP/s")
        print(f"{prec}: utilisation          {rate / peak:8.3f}   (model / {prec} peak; per step: "
              + ", ".join(f"{flops / t / q:.2f}" for t, q in zip(times, peaks)) + ")")
    ratios = [f / b for f, b in zip(res["fp32"]["times"], res["bf16"]["times"])]
    print(f"bf16/fp32 speed ratio      {sec['fp32'] / sec['bf16']:8.2f}   (fp32 step time / bf16 step time; "
          "goal >= 1.5; per round: " + ", ".join(f"{r:.2f}" for r in ratios) + ")")


if __name__ == "__main__":
    main()
