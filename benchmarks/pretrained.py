"""How fast are the pretrained featurizers (NEAR, UniRep) on this machine, and what does bf16 cost?

On the first ``--n`` training proteins of a registered task (default metal-ion binding) this prints,
for each model, the time per residue of

* fp32 and bf16 (NEAR: autocast; UniRep: the two recurrent matrix products in bf16, cell state and
  gates in fp32), their ratio, and the agreement of the pooled vectors (cosine similarity, min and
  mean over proteins; largest absolute difference);
* UniRep only: the default batching (up to 256 sequences a step) against a 16,384-token budget
  (about 30 sequences of 500 residues a step), both fp32: the recurrence runs one step per residue,
  so the batch is what the matrix products see.

All in one run, so the ratios compare like with like on a shared machine.

    python benchmarks/pretrained.py [--data DIR] [--task NAME] [--n 200] [--models near,unirep]
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def timed(fn, seqs) -> tuple[np.ndarray, float]:
    t0 = time.perf_counter()
    out = np.asarray(fn(seqs), np.float32)
    return out, time.perf_counter() - t0


def agreement(a: np.ndarray, b: np.ndarray) -> str:
    cos = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    return f"cosine min {cos.min():.5f} mean {cos.mean():.6f}; max |diff| {np.abs(a - b).max():.4f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=None, help="data directory (default $LSDKIT_DATA)")
    ap.add_argument("--task", default="metal_ion_binding")
    ap.add_argument("--n", type=int, default=200, help="training proteins to encode")
    ap.add_argument("--models", default="near,unirep")
    args = ap.parse_args()

    import torch

    from lsdkit.baselines import UniRep
    from lsdkit.data.tasks import load_task
    from lsdkit.pretrained import PretrainedFeaturizer

    seqs = load_task(args.task, args.data).sequences("train")[: args.n]
    n_res = sum(map(len, seqs))
    print(f"{len(seqs)} proteins of {args.task} (train), {n_res} residues, {torch.get_num_threads()} threads")

    def per_res(seconds: float) -> str:
        return f"{1e6 * seconds / n_res:7.1f} µs/residue"

    for model in args.models.split(","):
        if model == "near":
            make = {p: PretrainedFeaturizer("near", cache_dir=None, precision=p, progress=False) for p in ("fp32", "bf16")}
        elif model == "unirep":
            make = {p: UniRep(device="cpu", precision=p) for p in ("fp32", "bf16")}
        else:
            raise SystemExit(f"unknown model {model!r}: near | unirep")
        make["fp32"](seqs[:4])                                  # warm-up (weights, kernels)
        out = {p: timed(f, seqs) for p, f in make.items()}
        (x32, t32), (x16, t16) = out["fp32"], out["bf16"]
        print(f"\n{model}\n  fp32 {per_res(t32)}\n  bf16 {per_res(t16)}   fp32/bf16 time ratio {t32 / t16:.2f}")
        print(f"  bf16 vs fp32 pooled vectors: {agreement(x32, x16)}")
        if model == "unirep":
            small = UniRep(device="cpu", precision="fp32", max_batch=10**6)
            small.max_tokens = 16384
            y, ts = timed(lambda s: np.stack([h.mean(0) for h in small.hidden(s)]), seqs)
            print(f"  fp32, 16,384-token batches {per_res(ts)}   its time / default batching {ts / t32:.2f}"
                  f"   (same vectors: {agreement(x32, y)})")


if __name__ == "__main__":
    main()
