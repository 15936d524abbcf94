"""``lsdkit embed``: write representations of a FASTA/CSV file to one ``.npz`` (like ESM's extract).

    lsdkit embed --checkpoint runs/diff --input seqs.fasta --t 0,0.1,0.5 --layer all --out emb.npz

Keys of the output (all rows in input order):

==========================  ================================================================
``ids``                     [N] record ids (str)
``lengths``                 [N] residues used per sequence (after ``--max-len``)
``latent``                  [N, d_z] the encoder latent, mean-pooled over real residues
``t{t}_layer{l}``           [N, d_model] denoiser hidden layer l at level t, pooled (diffusion
                            checkpoints; t written with ``%g``: ``t0.1_layer3``, ``t0_layer6``)
``<key>_residues``          with ``--per-residue``: [Σ lengths, D] every residue, concatenated
``offsets``                 with ``--per-residue``: [N + 1]; sequence i is rows offsets[i]:offsets[i+1]
``meta``                    a JSON string: checkpoint, kind, t values, layers, k, seed, max_len
==========================  ================================================================

Input: FASTA (``.fasta``/``.fa``/…, optionally ``.gz``/``.xz``/``.bz2``) or CSV/TSV with a sequence
column (``sequence`` or ``seq``) and optionally an id column (``id``, ``name``, ``accession``,
``entry``; default ``row1``, ``row2``, …). Bad input stops with a message naming file and record.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from lsdkit.alphabet import ALPHABET, SequenceError

ID_COLUMNS = ("id", "name", "accession", "entry")
SEQ_COLUMNS = ("sequence", "seq")


class InputError(ValueError):
    """The input file cannot be used; the message names the file (and record)."""


def read_sequences(path: str | Path) -> tuple[list[str], list[str]]:
    """``(ids, sequences)`` from a FASTA or CSV/TSV file, validated through the alphabet."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    suffixes = [s.lower() for s in path.suffixes]
    if {".csv", ".tsv"} & set(suffixes):
        ids, seqs = _read_table(path, "\t" if ".tsv" in suffixes else ",")
    else:
        from lsdkit.data.fasta import read_fasta
        records = list(read_fasta(path, validate=ALPHABET))
        ids, seqs = [r.id for r in records], [r.sequence for r in records]
    if not seqs:
        raise InputError(f"{path}: no sequences")
    return ids, seqs


def _read_table(path: Path, sep: str) -> tuple[list[str], list[str]]:
    import pandas as pd
    try:
        df = pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
        raise InputError(f"{path}: cannot parse as {'TSV' if sep == chr(9) else 'CSV'} ({e})") from None
    cols = {c.strip().lower(): c for c in df.columns}
    seq_col = next((cols[c] for c in SEQ_COLUMNS if c in cols), None)
    if seq_col is None:
        raise InputError(f"{path}: no sequence column (one of {SEQ_COLUMNS}); columns are {list(df.columns)}")
    id_col = next((cols[c] for c in ID_COLUMNS if c in cols), None)
    ids = [str(x) for x in df[id_col]] if id_col else [f"row{i + 1}" for i in range(len(df))]
    seen: dict[str, int] = {}
    for row, rid in enumerate(ids, 2):
        if not rid:
            raise InputError(f"{path}: line {row}: empty id")
        if rid in seen:
            raise InputError(f"{path}: line {row}: duplicate id {rid!r} (first on line {seen[rid]})")
        seen[rid] = row
    seqs = [str(s).strip() for s in df[seq_col]]
    for row, (rid, s) in enumerate(zip(ids, seqs), 2):
        try:
            ALPHABET.encode(s, record=rid)
        except SequenceError as e:
            raise InputError(f"{path}: line {row}: {e}") from None
    return ids, seqs


def parse_ts(text: str | None) -> list[float]:
    """``"0,0.1,0.5"`` -> [0.0, 0.1, 0.5]; each in [0, 1]."""
    if not text:
        return []
    out = []
    for part in text.split(","):
        try:
            t = float(part)
        except ValueError:
            raise InputError(f"--t: {part!r} is not a number (give e.g. --t 0,0.1,0.5)") from None
        if not 0.0 <= t <= 1.0:
            raise InputError(f"--t: {t} is outside [0, 1]")
        out.append(t)
    return out


def parse_layers(text: str) -> int | str | list[int]:
    """``"all"``, ``"-1"`` or ``"0,3,6"``."""
    if text == "all":
        return "all"
    try:
        return [int(x) for x in text.split(",")]
    except ValueError:
        raise InputError(f"--layer: {text!r} is not 'all', an integer or a comma list of integers") from None


def embed(checkpoint: str, ids: list[str], seqs: list[str], ts: list[float], layers="all",
          per_residue: bool = False, **representer_kw) -> dict:
    """The arrays :func:`main` writes (see the module docstring for the keys)."""
    from lsdkit.represent import Representer, feature_key
    rep = Representer(checkpoint, **representer_kw)
    if ts and rep.kind != "diffusion":
        raise InputError(f"--t: {checkpoint} holds a {rep.kind!r} model; levels t apply only to diffusion "
                         "checkpoints (leave out --t to get the latent)")
    layer_list = rep.resolve_layers(layers) if ts else []
    feats = rep.features(seqs, ids, [None, *ts], layer_list or -1, per_residue=per_residue)
    out = {"ids": np.array(ids, dtype=str), "lengths": feats["lengths"]}
    keys = [feature_key(None)] + [feature_key(t, l) for t in ts for l in layer_list]
    for key in keys:
        if per_residue:
            out[f"{key}_residues"] = np.concatenate(feats[key]).astype(np.float32)
        else:
            out[key] = feats[key]
    if per_residue:
        out["offsets"] = np.concatenate([[0], np.cumsum(feats["lengths"])]).astype(np.int64)
    meta = {"checkpoint": str(checkpoint), "kind": rep.kind, "t": ts, "layers": layer_list, "k": rep.k,
            "seed": rep.seed, "max_len": rep.max_len, "pooling": "none" if per_residue else "masked_mean",
            "keys": keys, "padding_fraction": rep.padding_fraction,
            "cut_to_max_len": int(sum(n > rep.max_len for n in map(len, seqs)))}
    out["meta"] = np.array(json.dumps(meta))
    return out


def add_commands(sub) -> None:
    p = sub.add_parser("embed", help="write latent / diffusion representations of sequences to .npz",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", required=True, help="autoencoder, mlm or diffusion checkpoint (or run dir)")
    p.add_argument("--input", required=True, help="FASTA or CSV/TSV with a sequence column")
    p.add_argument("--out", required=True, help="output .npz (written atomically)")
    p.add_argument("--t", default=None, help="diffusion levels, comma separated, e.g. 0,0.1,0.5")
    p.add_argument("--layer", default="-1", help="denoiser layer(s): -1 (last, default), all, or 0,3,6")
    p.add_argument("--per-residue", action="store_true", help="keep every residue instead of pooling")
    p.add_argument("--k", type=int, default=1, help="noise draws averaged per t > 0 (default 1)")
    p.add_argument("--seed", type=int, default=0, help="noise seed (default 0)")
    p.add_argument("--max-tokens", type=int, default=16384, help="tokens per denoiser call")
    p.add_argument("--max-len", type=int, default=None, help="cut longer sequences (default: the model's max_len)")
    p.add_argument("--cache", default=None, help="feature cache directory (re-runs load from it)")
    p.add_argument("--device", default=None, help="cpu | cuda (default: cuda when available)")
    p.set_defaults(func=_cmd_embed)


def _cmd_embed(args: argparse.Namespace) -> int:
    from lsdkit.checkpoint import CheckpointError
    from lsdkit.represent import save_npz_atomic
    try:
        ts, layers = parse_ts(args.t), parse_layers(args.layer)
        ids, seqs = read_sequences(args.input)
        arrays = embed(args.checkpoint, ids, seqs, ts, layers, args.per_residue, k=args.k, seed=args.seed,
                       max_tokens=args.max_tokens, max_len=args.max_len, cache_dir=args.cache,
                       device=args.device)
    except (CheckpointError, SequenceError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    save_npz_atomic(out, arrays)
    shapes = ", ".join(f"{k} {list(v.shape)}" for k, v in arrays.items() if k not in ("ids", "meta", "lengths"))
    print(f"wrote {len(ids)} sequences to {out}: {shapes}")
    cut = json.loads(str(arrays["meta"]))["cut_to_max_len"]
    if cut:
        print(f"note: {cut} sequence(s) longer than max_len were cut to their first residues "
              "(see 'lengths'; raise --max-len to keep more)")
    return 0
