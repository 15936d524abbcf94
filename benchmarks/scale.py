"""Compute-optimal sizing on this machine: several encoder sizes, the same wall-clock budget each.

Two measurements, in one run:

1. **sizes** — each candidate size (``d_model:encoder_layers:decoder_layers``; the MLM gets
   ``enc + dec`` layers, as in ``lsdkit.models.presets``) is trained with :func:`lsdkit.train.fit`
   on the Swiss-Prot corpus for ``--minutes`` of wall time (bf16 where native, ``--batch-tokens``
   per step, warm-up then cosine decay sized to the steps a short pilot says fit in the budget) and
   scored by its validation loss at the end (the MLM's masked cross-entropy: the classic scaling
   quantity; ``--model tn|nm`` scores an autoencoder's reconstruction instead). The size with the
   lowest loss is the best use of that budget; it is the one the ``cpu`` study preset uses.
2. **jobs** — for the best size, aggregate training tokens/s of one process using every core
   (``torch.set_num_threads(cores)``) against ``cores`` processes of one thread each running side
   by side (what ``lsdkit reproduce --jobs`` does), measured on synthetic batches of the same size.

Usage: ``python benchmarks/scale.py [--data DIR] [--minutes 3] [--sizes 96:2:1,128:3:1,192:3:2,256:4:2]
[--model mlm] [--batch-tokens 8192] [--limit 100000] [--jobs-steps 6] [--jobs-only SIZE]``. Prints one table row per size
and the jobs ratio; results in RESULTS.md ("Sizing the CPU study").
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import tempfile
import time

import torch

from lsdkit.alphabet import FIRST_RESIDUE, STANDARD
from lsdkit.models.blocks import count_parameters
from lsdkit.models.presets import build_encoder
from lsdkit.train import TrainConfig, Trainer, fit, seed_everything

DEFAULT_SIZES = "96:2:1,128:3:1,192:3:2,256:4:2"


def parse_size(text: str) -> dict:
    """``"128:3:1"`` -> the preset overrides of that size (heads: d_model / 32, at least 2)."""
    try:
        d, enc, dec = (int(x) for x in text.split(":"))
    except ValueError:
        raise SystemExit(f"scale.py: error: size {text!r} is not d_model:encoder_layers:decoder_layers")
    return dict(d_model=d, n_heads=max(2, d // 32), n_enc_layers=enc, n_dec_layers=dec)


def build(model: str, size: dict, max_len: int):
    """A fresh encoder of ``size`` (seeded), overriding the ``small`` preset's dimensions."""
    seed_everything(0)
    size = dict(size)
    if model == "mlm":
        size = dict(d_model=size["d_model"], n_heads=size["n_heads"],
                    n_layers=size["n_enc_layers"] + size["n_dec_layers"])
    return build_encoder(model, "small", max_len=max_len, **size)


def synthetic_batch(tokens: int, seq_len: int) -> dict:
    g = torch.Generator().manual_seed(0)
    b = max(1, tokens // seq_len)
    x = torch.randint(FIRST_RESIDUE, FIRST_RESIDUE + len(STANDARD), (b, seq_len), generator=g)
    return {"tokens": x, "mask": torch.ones(b, seq_len, dtype=torch.bool)}


def seconds_per_step(model, batch_tokens: int, seq_len: int, steps: int = 3) -> float:
    """Wall seconds of one training step (after one warm-up step) on a synthetic batch."""
    trainer = Trainer(model, [], None, TrainConfig(warmup_steps=1, progress=False),
                      run_dir=tempfile.mkdtemp(prefix="lsdkit-scale-"))
    batch = synthetic_batch(batch_tokens, seq_len)
    trainer.train_step(batch)
    t = time.perf_counter()
    for _ in range(steps):
        trainer.train_step(batch)
    return (time.perf_counter() - t) / steps


def train_size(args, text: str) -> dict:
    size = parse_size(text)
    pilot = seconds_per_step(build(args.model, size, args.max_len), args.batch_tokens, 256)
    steps = max(10, int(args.minutes * 60 / pilot))
    model = build(args.model, size, args.max_len)
    cfg = TrainConfig(lr=args.lr, warmup_steps=max(1, steps // 20), max_steps=steps, max_minutes=args.minutes,
                      batch_tokens=args.batch_tokens, eval_every=steps, eval_batches=args.eval_batches,
                      ckpt_every=0, keep_checkpoints=1, log_every=10, progress=False)
    t = time.time()
    with tempfile.TemporaryDirectory(prefix="lsdkit-scale-") as run_dir:
        result = fit(model, args.data, cfg, run_dir, limit=args.limit)
    wall = time.time() - t
    key = "val_masked_ce" if args.model == "mlm" else "val_recon_ce"
    loss = result.metrics.get(key, float("nan"))
    tokens = result.step * args.batch_tokens
    return {"size": text, "params": count_parameters(model), "steps": result.step, "tokens": tokens,
            "tokens_per_param": tokens / count_parameters(model), "wall_s": wall, "val_loss": loss}


def _throughput_worker(model: str, size: dict, max_len: int, batch_tokens: int, steps: int, threads: int,
                       start, queue) -> None:
    torch.set_num_threads(threads)
    m = build(model, size, max_len)
    trainer = Trainer(m, [], None, TrainConfig(warmup_steps=1, progress=False),
                      run_dir=tempfile.mkdtemp(prefix="lsdkit-scale-"))
    batch = synthetic_batch(batch_tokens, 256)
    trainer.train_step(batch)
    start.wait()                       # every process starts timing together
    t = time.perf_counter()
    for _ in range(steps):
        trainer.train_step(batch)
    queue.put(steps * batch["mask"].sum().item() / (time.perf_counter() - t))


def aggregate_tokens_per_s(args, size: dict, processes: int, threads: int) -> float:
    ctx = mp.get_context("spawn")
    start, queue = ctx.Barrier(processes), ctx.Queue()
    procs = [ctx.Process(target=_throughput_worker, args=(args.model, size, args.max_len, args.batch_tokens,
                                                           args.jobs_steps, threads, start, queue))
             for _ in range(processes)]
    for p in procs:
        p.start()
    rates = [queue.get() for _ in procs]
    for p in procs:
        p.join()
    return sum(rates)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default=os.environ.get("LSDKIT_DATA"), help="data directory (default $LSDKIT_DATA)")
    p.add_argument("--minutes", type=float, default=3.0, help="wall-clock budget per size")
    p.add_argument("--sizes", default=DEFAULT_SIZES)
    p.add_argument("--model", default="mlm", choices=["mlm", "tn", "nm", "tnm"])
    p.add_argument("--max-len", type=int, default=512)
    p.add_argument("--batch-tokens", type=int, default=8192)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--limit", type=int, default=100_000, help="first N corpus records")
    p.add_argument("--eval-batches", type=int, default=20)
    p.add_argument("--jobs-steps", type=int, default=6, help="steps per process in the jobs measurement (0: skip)")
    p.add_argument("--jobs-only", metavar="SIZE", default=None,
                   help="skip the sizes: only the jobs measurement, for this size (e.g. 96:2:1)")
    args = p.parse_args(argv)
    cores = os.cpu_count() or 1
    torch.set_num_threads(cores)
    print(f"# {cores} cores; {args.model}; {args.minutes:g} min per size; {args.batch_tokens} tokens per step; "
          f"corpus: first {args.limit} records of {args.data or 'the bundled sample'}")
    if not args.jobs_only:
        print("| size (d_model:enc:dec) | params | steps | tokens | tokens/param | val loss |")
        print("|---|---|---|---|---|---|")
    rows = [{"size": args.jobs_only, "val_loss": 0.0}] if args.jobs_only else []
    for text in [] if args.jobs_only else args.sizes.split(","):
        r = train_size(args, text)
        rows.append(r)
        print(f"| {r['size']} | {r['params'] / 1e6:.2f} M | {r['steps']} | {r['tokens'] / 1e6:.2f} M | "
              f"{r['tokens_per_param']:.1f} | {r['val_loss']:.4f} |", flush=True)
    best = min(rows, key=lambda r: r["val_loss"])
    if not args.jobs_only:
        print(f"best for {args.minutes:g} min: {best['size']} (val loss {best['val_loss']:.4f})")
    if args.jobs_steps and cores > 1:
        size = parse_size(best["size"])
        one = aggregate_tokens_per_s(args, size, 1, cores)
        many = aggregate_tokens_per_s(args, size, cores, 1)
        print(f"jobs: 1 process x {cores} threads {one:,.0f} tokens/s; {cores} processes x 1 thread "
              f"{many:,.0f} tokens/s (sum); ratio {many / one:.2f}")


if __name__ == "__main__":
    main()
