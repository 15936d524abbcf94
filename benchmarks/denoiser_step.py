"""Denoiser training step with the frozen encoder inside it (before) vs on cached latents (after).

    python benchmarks/denoiser_step.py [--presets tiny,small] [--threads 1] [--steps 5] [--precision auto]

For each preset: an autoencoder (LSD-TN, random weights: speed does not depend on them) and the
diffusion model on its latents (``LatentDiffusion.from_encoder``, the preset's denoiser), one
synthetic batch of ``B × L`` real tokens (tiny 32 × 128, small 32 × 256), and two trainers from
the same weights, timed alternately:

* **before** - ``Trainer.train_step(batch)``: the step encodes the batch (frozen encoder forward,
  no grad), then the denoiser's forward, backward and AdamW - what every step paid before
  :mod:`lsdkit.latents`;
* **after** - ``Trainer.train_step(batch + cached "latents")``: the denoiser's work only (the
  latents are what :class:`~lsdkit.latents.CachedLatentLoader` reads from disk);
* **encode** - the one-off cost the cache pays per batch of windows: ``encoder_latents`` of the
  batch under the run's precision (timed alone; in a run it happens once per window, so it is
  amortised over every epoch and rerun that reuses the window).

Prints the medians, ``before / after`` (the speed-up of a step on a cached window) and
``before / (after + encode)`` (the first epoch, when every window is encoded once: the cache can
only win there by the encoder running in inference batches). With one thread the times are
process CPU times (other processes on shared cores do not distort them), otherwise wall times.
"""

from __future__ import annotations

import argparse
import copy
import tempfile
import time

import torch

from lsdkit.device import autocast, resolve_device, resolve_precision
from lsdkit.models.autoencoder import Autoencoder
from lsdkit.models.diffusion import LatentDiffusion
from lsdkit.models.presets import autoencoder_config
from lsdkit.train import TrainConfig, Trainer, seed_everything

SHAPES = {"tiny": (32, 128), "small": (32, 256), "base": (16, 1024)}


def median(xs):
    return sorted(xs)[len(xs) // 2]


def measure(preset: str, steps: int, precision: str, clock) -> dict:
    B, L = SHAPES[preset]
    seed_everything(0)
    model = LatentDiffusion.from_encoder(Autoencoder(autoencoder_config(preset, "tn")), preset=preset)
    tokens = torch.randint(4, 24, (B, L))
    batch = {"tokens": tokens, "mask": torch.ones_like(tokens, dtype=torch.bool)}
    model.estimate_latent_stats([batch])
    device = resolve_device("auto")
    prec = resolve_precision(precision, device)
    cfg = TrainConfig(warmup_steps=1, max_steps=10**6, progress=False, eval_every=0, ckpt_every=0, precision=prec)

    def encode():
        with torch.no_grad(), autocast(device, prec):
            return model.encoder_latents(batch["tokens"].to(device), batch["mask"].to(device)).cpu()

    with tempfile.TemporaryDirectory() as run_dir:
        before = Trainer(copy.deepcopy(model), [batch], None, cfg, run_dir=f"{run_dir}/before")
        after = Trainer(copy.deepcopy(model), [batch], None, cfg, run_dir=f"{run_dir}/after")
        model.to(device)
        cached = {**batch, "latents": encode()}
        calls = [0]
        real = after.model.encoder.encode

        def counted(*a, **kw):
            calls[0] += 1
            return real(*a, **kw)
        after.model.encoder.encode = counted
        times = {"before": [], "after": [], "encode": []}
        for _ in range(2):                               # warm-up
            before.train_step(batch)
            after.train_step(cached)
        for _ in range(steps):
            for name, fn in (("before", lambda: before.train_step(batch)),
                             ("after", lambda: after.train_step(cached)), ("encode", encode)):
                t = clock()
                fn()
                if device.type == "cuda":
                    torch.cuda.synchronize()
                times[name].append(clock() - t)
        assert calls[0] == 0, "the encoder ran inside a cached step"
    return {"B": B, "L": L, "precision": prec, **{k: median(v) for k, v in times.items()}}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--presets", default="tiny,small", help="comma-separated: tiny, small, base")
    p.add_argument("--threads", type=int, default=None, help="default: all cores torch sees")
    p.add_argument("--steps", type=int, default=5, help="timed rounds (medians)")
    p.add_argument("--precision", default="auto", choices=["auto", "bf16", "fp32"])
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    threads = torch.get_num_threads()
    clock = time.process_time if threads == 1 else time.perf_counter
    print(f"threads {threads} ({'process CPU' if clock is time.process_time else 'wall'} times, "
          f"median of {args.steps} interleaved rounds)")
    print("| preset | batch | precision | before: encoder in step (s) | after: cached latents (s) | "
          "encode once (s) | before / after | before / (after + encode) |")
    print("|---|---|---|---|---|---|---|---|")
    for preset in [x.strip() for x in args.presets.split(",") if x.strip()]:
        r = measure(preset, args.steps, args.precision, clock)
        print(f"| {preset} | {r['B']} × {r['L']} | {r['precision']} | {r['before']:.3f} | {r['after']:.3f} | "
              f"{r['encode']:.3f} | {r['before'] / r['after']:.2f} | {r['before'] / (r['after'] + r['encode']):.2f} |",
              flush=True)


if __name__ == "__main__":
    main()
