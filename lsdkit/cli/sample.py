"""``lsdkit sample``: generate sequences with a latent diffusion model (DDIM)."""

from __future__ import annotations

import json

from lsdkit.cli.args import device_name, flag_error, positive_int


def add_commands(sub) -> None:
    p = sub.add_parser("sample", help="generate sequences with a latent diffusion model (DDIM)",
                       description="Sample sequences from a latent diffusion checkpoint with deterministic DDIM "
                                   "steps and print their sanity statistics (lsdkit/sample.py).")
    p.add_argument("--checkpoint", required=True, help="diffusion checkpoint or run directory")
    p.add_argument("--n", type=positive_int, default=16, help="number of sequences (default 16)")
    p.add_argument("--length", type=positive_int, required=True, help="residues per sequence")
    p.add_argument("--steps", type=positive_int, default=50, help="DDIM steps (default 50)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch-size", type=positive_int, default=64)
    p.add_argument("--device", type=device_name, default="auto", help="auto | cpu | cuda (default: cuda when available)")
    p.add_argument("--out", required=True, help="output FASTA (written atomically)")
    p.add_argument("--reference", default=None,
                   help="FASTA for the reference composition (default: the bundled Swiss-Prot 2014 sample)")
    p.set_defaults(func=_cmd_sample)


def _cmd_sample(args) -> int:
    from lsdkit.checkpoint import load_model
    from lsdkit.data.fasta import write_fasta
    from lsdkit.device import resolve_device
    from lsdkit.sample import LengthError, generate, reference_composition, sample_stats
    device = resolve_device(args.device)
    ref = reference_composition(args.reference)
    model = load_model(args.checkpoint, expect_kind="diffusion", map_location=device)
    try:
        seqs = generate(model, args.n, args.length, args.steps, args.seed, args.batch_size, device)
    except LengthError as e:
        raise flag_error("--length", str(e)) from None
    write_fasta(args.out, [(f"sample_{i:05d}", s) for i, s in enumerate(seqs)])
    stats = sample_stats(seqs, ref)
    stats.pop("composition")
    print(f"wrote {len(seqs)} sequences to {args.out}")
    print(json.dumps(stats, indent=1))
    return 0
