"""How much padding does length-bucketed batching save on the Swiss-Prot corpus?

For each ``max_len`` and token budget this prints the padding fraction (padded slots / all slots
over one epoch of the training split) of

* ``TokenBudgetBatchSampler`` (shuffle, sort inside windows, pack ``B * L_max <= max_tokens``), and
* naive batching: the same token budget, but batches cut from a random order without sorting,

and their ratio, all measured in this run. Also the corpus load time and the sampler's time to
lay out one epoch.

    python benchmarks/padding.py [--data DIR] [--limit N] [--cache-dir DIR]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from lsdkit.data.corpus import (Corpus, CorpusConfig, TokenBudgetBatchSampler, pack_batches,
                                padding_fraction_of)


def naive_padding(lengths: np.ndarray, max_tokens: int, seed: int = 0) -> float:
    """Padding of token-budget batches cut from a random order (no length sorting)."""
    order = np.random.default_rng(seed).permutation(len(lengths))
    return padding_fraction_of(pack_batches(order, lengths, max_tokens), lengths)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", help="data directory (default: $LSDKIT_DATA)")
    ap.add_argument("--fasta", help="another FASTA instead of Swiss-Prot 2014")
    ap.add_argument("--limit", type=int, help="use only the first N records")
    ap.add_argument("--cache-dir", help="keep the encoded corpus here between runs")
    ap.add_argument("--max-tokens", type=int, nargs="+", default=[4096, 8192, 16384])
    ap.add_argument("--max-len", type=int, nargs="+", default=[512, 1024])
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)

    t0 = time.perf_counter()
    cfg = CorpusConfig(fasta=args.fasta, limit=args.limit, cache_dir=args.cache_dir, max_len=max(args.max_len))
    corpus = Corpus.load(cfg, args.data)
    load_s = time.perf_counter() - t0
    train = corpus.split("train")
    print(corpus.summary())
    print(f"load + encode + filter: {load_s:.1f} s ({'cache ' + args.cache_dir if args.cache_dir else 'no cache'})")
    print(f"{'max_len':>7} {'max_tokens':>10} {'batches':>8} {'mean B':>7} {'bucketed':>9} {'naive':>7} "
          f"{'naive/bucketed':>14} {'epoch layout':>12}")
    for max_len in args.max_len:
        lengths = np.minimum(train.full_lengths, max_len)
        for max_tokens in args.max_tokens:
            if max_tokens < max_len:
                print(f"{max_len:>7} {max_tokens:>10}  skipped: budget smaller than max_len")
                continue
            t0 = time.perf_counter()
            sampler = TokenBudgetBatchSampler(lengths, max_tokens, seed=args.seed)
            n_batches = len(sampler.epoch_batches())
            layout_s = time.perf_counter() - t0
            bucketed, naive = sampler.padding_fraction(), naive_padding(lengths, max_tokens, args.seed)
            print(f"{max_len:>7} {max_tokens:>10} {n_batches:>8} {len(lengths) / n_batches:>7.1f} "
                  f"{bucketed:>9.2%} {naive:>7.2%} {naive / max(bucketed, 1e-12):>13.1f}x {layout_s:>11.1f}s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
