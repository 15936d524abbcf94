"""``lsdkit geometry``: the latent-geometry measures of a checkpoint (Markdown table, tidy CSV)."""

from __future__ import annotations

import sys
from pathlib import Path

from lsdkit.cli.args import device_name, flag_error, names, positive_int, unit_floats


def knn_tasks() -> list[str]:
    from lsdkit.data.tasks import TASKS
    return ["auto", "none", *(n for n, s in TASKS.items() if s.kind in ("multiclass", "binary", "multilabel"))]


def add_commands(sub) -> None:
    from lsdkit.geometry import GeometryConfig
    d = GeometryConfig()
    p = sub.add_parser("geometry", help="measure the geometry of a checkpoint's per-residue latents",
                       description="Residue-type decodability, homogeneity (MMD), context content (ridge R²), "
                                   "shape (moments, effective rank, top-k variance) and protein neighbourhoods "
                                   "(kNN label agreement vs composition) on held-out proteins of the corpus, "
                                   "each with a bootstrap interval over proteins (lsdkit/geometry.py). Prints a "
                                   "Markdown table and writes a tidy CSV.")
    p.add_argument("--checkpoint", required=True, help="autoencoder, mlm or diffusion checkpoint (or run dir)")
    p.add_argument("--data", default=None, help="data directory (default $LSDKIT_DATA, else the bundled sample)")
    p.add_argument("--out", default="geometry.csv", help="tidy CSV to write (default geometry.csv)")
    p.add_argument("--n-proteins", type=positive_int, default=d.n_proteins,
                   help="held-out proteins (corpus validation split)")
    p.add_argument("--max-residues", type=positive_int, default=d.max_residues, help="residues drawn for the measures")
    p.add_argument("--limit", type=positive_int, default=d.corpus_limit, help="corpus records read to find them")
    p.add_argument("--task", type=names(knn_tasks, "task"), default=("auto",),
                   help="labelled task of the kNN measure: auto (deeploc10 if the data has it, else go_mf_sp14), "
                        "none, or a multiclass/multilabel task")
    p.add_argument("--knn-proteins", type=positive_int, default=d.knn_proteins)
    p.add_argument("--k", type=positive_int, default=d.k, help=f"neighbours (default {d.k})")
    p.add_argument("--top-k", type=positive_int, default=d.top_k, help=f"principal components (default {d.top_k})")
    p.add_argument("--n-boot", type=positive_int, default=d.n_boot, help=f"bootstrap resamples (default {d.n_boot})")
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--t", type=unit_floats, default=(), help="diffusion checkpoints: also the denoiser's hidden "
                                                            "states at these levels, e.g. 0,0.3,0.6")
    p.add_argument("--layer", type=int, default=-1, help="denoiser layer for --t (default -1, the last)")
    p.add_argument("--device", type=device_name, default=None, help="auto | cpu | cuda")
    p.set_defaults(func=_cmd_geometry)


def _cmd_geometry(args) -> int:
    from lsdkit.geometry import GeometryConfig, combine, geometry_along_t, geometry_table, heldout_sequences
    from lsdkit.geometry import markdown, representation_name, summary_table
    from lsdkit.io import atomic_write_text
    from lsdkit.represent import LayerError, Representer

    if len(args.task) != 1:
        raise flag_error("--task", f"give one task, got {len(args.task)}")
    task = None if args.task[0] == "none" else args.task[0]
    rep = Representer(args.checkpoint, device=args.device, progress=False)
    if args.t and rep.kind != "diffusion":
        raise flag_error("--t", f"{rep.kind} checkpoints have no diffusion levels; give a diffusion checkpoint")
    if args.t:
        try:
            rep.resolve_layers(args.layer)
        except LayerError as e:
            raise flag_error("--layer", str(e)) from None
    cfg = GeometryConfig(n_proteins=args.n_proteins, max_residues=args.max_residues, corpus_limit=args.limit,
                         knn_task=task, knn_proteins=args.knn_proteins, k=args.k, top_k=args.top_k,
                         n_boot=args.n_boot, seed=args.seed)
    ids, seqs = heldout_sequences(cfg.n_proteins, rep.max_len, args.data, cfg.corpus_limit)
    name = representation_name(rep.model)
    df = geometry_table({name: rep}, ids, seqs, cfg, args.data)
    if args.t:
        df = combine([df, geometry_along_t(rep, args.t, args.layer, ids, seqs, cfg, args.data,
                                           name=f"{name} diffusion").table])
    print(markdown(summary_table(df)))
    out = Path(args.out)
    atomic_write_text(out, df.to_csv(index=False))
    print(f"wrote {len(df)} rows to {out} ({len(ids)} held-out proteins)", file=sys.stderr)
    return 0
