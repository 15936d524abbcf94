"""``lsdkit embed``: representations of a FASTA/CSV file to one ``.npz`` (keys: ``lsdkit/embed.py``)."""

from __future__ import annotations

import json
from pathlib import Path

from lsdkit.cli.args import (add_task_file_arguments, check_task_file_arguments, device_name, flag_error,
                             layer_list, load_task_ref, positive_int, unit_floats)


def add_commands(sub) -> None:
    import argparse

    from lsdkit import embed
    p = sub.add_parser("embed", help="write latent / diffusion representations of sequences to .npz",
                       description=embed.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", required=True, help="autoencoder, mlm or diffusion checkpoint (or run dir)")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--input", help="FASTA or CSV/TSV with a sequence column")
    src.add_argument("--task", help="a task file (CSV/TSV, or FASTA with --labels) or a registered task name: "
                                    "every record's vectors, with its label and split beside them")
    p.add_argument("--data", default=None, help="data directory for a registered --task (default $LSDKIT_DATA)")
    p.add_argument("--out", required=True, help="output .npz (written atomically)")
    p.add_argument("--t", type=unit_floats, default=(), help="diffusion levels, comma separated, e.g. 0,0.1,0.5")
    p.add_argument("--layer", type=layer_list, default=(-1,),
                   help="denoiser layer(s): -1 (last, default), all, or 0,3,6")
    p.add_argument("--per-residue", action="store_true", help="keep every residue instead of pooling")
    p.add_argument("--k", type=positive_int, default=1, help="noise draws averaged per t > 0 (default 1)")
    p.add_argument("--seed", type=int, default=0, help="noise seed (default 0)")
    p.add_argument("--max-tokens", type=positive_int, default=16384, help="tokens per denoiser call")
    p.add_argument("--max-len", type=positive_int, default=None,
                   help="the window (default and upper bound: the model's trained max_len)")
    p.add_argument("--long", choices=("window", "truncate"), default="window",
                   help="longer sequences: overlapping windows (default) or cut to their first --max-len residues")
    p.add_argument("--cache", default=None, help="feature cache directory (re-runs load from it)")
    p.add_argument("--device", type=device_name, default=None, help="auto | cpu | cuda (default: cuda when available)")
    add_task_file_arguments(p)
    p.set_defaults(func=_cmd_embed)


def _cmd_embed(args) -> int:
    from lsdkit.embed import embed, read_sequences
    from lsdkit.represent import LayerError, MaxLenError
    from lsdkit.io import atomic_save_npz
    layers = args.layer if args.layer == "all" else list(args.layer)
    check_task_file_arguments(args, [args.task] if args.task else [])
    if args.task:
        task = task_records(args)
        ids, seqs, labels, splits = zip(*task)
        ids, seqs = list(ids), list(seqs)
    else:
        ids, seqs = read_sequences(args.input)
    try:
        arrays = embed(args.checkpoint, ids, seqs, list(args.t), layers, args.per_residue, k=args.k, seed=args.seed,
                       max_tokens=args.max_tokens, max_len=args.max_len, long=args.long, cache_dir=args.cache, device=args.device)
    except LayerError as e:
        raise flag_error("--layer", str(e)) from None
    except MaxLenError as e:
        raise flag_error("--max-len", str(e)) from None
    if args.task:
        import numpy as np
        arrays["label"], arrays["split"] = np.array(labels, dtype=str), np.array(splits, dtype=str)
    out = Path(args.out)
    atomic_save_npz(out, arrays)
    shapes = ", ".join(f"{k} {list(v.shape)}" for k, v in arrays.items() if k not in ("ids", "meta", "lengths"))
    print(f"wrote {len(ids)} sequences to {out}: {shapes}")
    meta = json.loads(str(arrays["meta"]))
    if meta["cut_to_max_len"]:
        print(f"note: {meta['cut_to_max_len']} sequence(s) longer than max_len were cut to their first residues "
              "(--long truncate; see 'lengths')")
    return 0


def task_records(args) -> list[tuple[str, str, str, str]]:
    """(id, sequence, label text, split) of every record of ``--task``, in split order. Labels as
    text: class names (multilabel: joined by ``--multilabel-sep``), numbers, or per-residue class
    letters."""
    import numpy as np

    from lsdkit.data.tasks import SPLITS, load_task
    task = load_task_ref(args, args.task)
    if isinstance(task, str):
        task = load_task(task, args.data)
    if task.kind == "pair_binary":
        raise flag_error("--task", f"{task.name} is a pair task: embed its sequences with --input")

    def text(label) -> str:
        if task.kind == "regression":
            return repr(float(label))
        if task.kind == "multilabel":
            return args.multilabel_sep.join(task.classes[i] for i in np.flatnonzero(np.asarray(label)))
        if task.kind == "residue_multiclass":
            return "".join("-" if i < 0 else str(task.classes[i])[0] for i in np.asarray(label))
        return str(task.classes[int(label)]) if task.classes else str(label)
    return [(r.id, r.sequence, text(r.label), s) for s in SPLITS for r in task.splits[s]]
