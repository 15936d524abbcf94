"""``lsdkit embed``: write representations of a FASTA/CSV file to one ``.npz`` (like ESM's extract).

    lsdkit embed --checkpoint runs/diff --input seqs.fasta --t 0,0.1,0.5 --layer all --out emb.npz

Keys of the output (all rows in input order):

==========================  ================================================================
``ids``                     [N] record ids (str)
``lengths``                 [N] residues per sequence (all; at most ``--max-len`` with ``--long truncate``)
``latent``                  [N, d_z] the encoder latent, mean-pooled over real residues
``t{t}_layer{l}``           [N, d_model] denoiser hidden layer l at level t, pooled (diffusion
                            checkpoints; t written with ``%g``: ``t0.1_layer3``, ``t0_layer6``)
``<key>_residues``          with ``--per-residue``: [Σ lengths, D] every residue, concatenated
``offsets``                 with ``--per-residue``: [N + 1]; sequence i is rows offsets[i]:offsets[i+1]
``meta``                    a JSON string: checkpoint, kind, t values, layers, k, seed, max_len
``label``, ``split``          with ``--task``: [N] each record's label (as text) and split
==========================  ================================================================

Input: FASTA (``.fasta``/``.fa``/…, optionally ``.gz``/``.xz``/``.bz2``) or CSV/TSV with a sequence
column (``sequence`` or ``seq``) and optionally an id column (``id``, ``name``, ``accession``,
``entry``; default ``row1``, ``row2``, …). Bad input stops with a message naming file and record.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from lsdkit.alphabet import ALPHABET, SequenceError
from lsdkit.errors import LsdkitError

from lsdkit.data.tables import ID_COLUMNS, SEQ_COLUMNS  # noqa: E402  (the names the kit recognises)


class InputError(LsdkitError, ValueError):
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
    from lsdkit.data.tables import read_table

    table = read_table(path, sep, error=InputError)
    cols = {c.strip().lower(): i for i, c in enumerate(table.header)}
    seq_col = next((cols[c] for c in SEQ_COLUMNS if c in cols), None)
    if seq_col is None:
        raise InputError(f"{path}: no sequence column (one of {SEQ_COLUMNS}); columns are {table.header}")
    id_col = next((cols[c] for c in ID_COLUMNS if c in cols), None)
    lines = [n for n, _ in table.rows]
    ids = [cells[id_col] for _, cells in table.rows] if id_col is not None else \
        [f"row{i + 1}" for i in range(len(table.rows))]
    seen: dict[str, int] = {}
    for row, rid in zip(lines, ids):
        if not rid:
            raise InputError(f"{path}: line {row}: empty id")
        if rid in seen:
            raise InputError(f"{path}: line {row}: duplicate id {rid!r} (first on line {seen[rid]})")
        seen[rid] = row
    seqs = [cells[seq_col].strip() for _, cells in table.rows]
    for row, rid, s in zip(lines, ids, seqs):
        try:
            ALPHABET.encode(s, record=rid)
        except SequenceError as e:
            raise InputError(f"{path}: line {row}: {e}") from None
    return ids, seqs


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
            "seed": rep.seed, "max_len": rep.max_len, "long": rep.long,
            "pooling": "none" if per_residue else "masked_mean", "keys": keys, "padding_fraction": rep.padding_fraction,
            "windowed": int(sum(n > rep.max_len for n in map(len, seqs))) if rep.long == "window" else 0,
            "cut_to_max_len": int(sum(n > rep.max_len for n in map(len, seqs))) if rep.long == "truncate" else 0}
    out["meta"] = np.array(json.dumps(meta))
    return out
