"""The bundled default sample: a few thousand real Swiss-Prot 2014 proteins with their GO terms.

lsdkit ships a small data directory (``lsdkit/data/bundled/``, see :func:`lsdkit.data.sources.
default_data_dir`) so that a fresh machine can run the whole pipeline without downloading
anything. Its one source, ``swissprot2014_sample``, is cut from the full source
``swissprot2014_go_metastudent`` by :func:`make_sample`; the rebuild is reproducible byte for byte:

    lsdkit data make-sample --data /path/to/full/data --to lsdkit/data/bundled

Selection rule (no randomness; a record chosen from the full set is also chosen from any subset
holding it):

1. keep records whose sequence has ``min_len <= len <= max_len`` residues, all of them one of the
   20 standard amino acids;
2. rank them by ``sha256(f"{salt}:{accession}")`` (hex) and keep the ``n`` smallest;
3. write them sorted by accession: ``>ACCESSION`` + one sequence line, and the matching rows of the
   GO annotation table (header ``accession, go_bp, go_mf, go_cc``), both xz-compressed (preset 9).
"""

from __future__ import annotations

import hashlib
import heapq
import lzma
import os
import sys
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from lsdkit.alphabet import STANDARD
from lsdkit.data.fasta import read_fasta

FULL_SOURCE = "swissprot2014_go_metastudent"
FULL_FASTA = "swissprot2014_sequences.fasta.xz"
FULL_GO = "swissprot2014_go_annotations.tsv.xz"
SAMPLE_SOURCE = "swissprot2014_sample"
SAMPLE_FASTA = "swissprot2014_sample.fasta.xz"
SAMPLE_GO = "swissprot2014_sample_go.tsv.xz"
GO_HEADER = "accession\tgo_bp\tgo_mf\tgo_cc"


@dataclass(frozen=True)
class SampleConfig:
    """How the sample is drawn (the defaults made the bundled one)."""

    n: int = 3000
    min_len: int = 30
    max_len: int = 512
    salt: str = "lsdkit-sample-v1"


def selection_key(accession: str, salt: str) -> str:
    """The rank of a record: hex sha256 of ``"{salt}:{accession}"`` (smaller = chosen first)."""
    return hashlib.sha256(f"{salt}:{accession}".encode()).hexdigest()


_STANDARD = frozenset(STANDARD)


def eligible(seq: str, cfg: SampleConfig) -> bool:
    """Length in ``[min_len, max_len]`` and only the 20 standard residues."""
    return cfg.min_len <= len(seq) <= cfg.max_len and not set(seq) - _STANDARD


def select(records: Iterable[tuple[str, str]], cfg: SampleConfig) -> dict[str, str]:
    """The ``cfg.n`` eligible records of smallest :func:`selection_key`, as accession -> sequence."""
    if cfg.n < 1 or cfg.min_len < 1 or cfg.max_len < cfg.min_len:
        raise ValueError(f"bad sample config {cfg}: need n >= 1 and 1 <= min_len <= max_len")
    # a max-heap of the n best so far, via negated keys: (-int(key), accession, sequence)
    heap: list[tuple[int, str, str]] = []
    for acc, seq in records:
        if not eligible(seq, cfg):
            continue
        item = (-int(selection_key(acc, cfg.salt), 16), acc, seq)
        if len(heap) < cfg.n:
            heapq.heappush(heap, item)
        elif item > heap[0]:
            heapq.heapreplace(heap, item)
    if len(heap) < cfg.n:
        raise ValueError(f"only {len(heap)} records are eligible (length {cfg.min_len}..{cfg.max_len}, "
                         f"standard residues), fewer than n={cfg.n}")
    return {acc: seq for _, acc, seq in sorted(heap, key=lambda t: t[1])}


def go_rows(path: Path, accessions: set[str]) -> dict[str, str]:
    """The GO table's lines (without newline) for ``accessions``; checks the header."""
    rows: dict[str, str] = {}
    with lzma.open(path, "rt", encoding="ascii") as fh:
        header = fh.readline().rstrip("\n")
        if header != GO_HEADER:
            raise ValueError(f"{path}: header {header!r}, expected {GO_HEADER!r}")
        for line in fh:
            acc = line.split("\t", 1)[0]
            if acc in accessions:
                rows[acc] = line.rstrip("\n")
    missing = sorted(accessions - rows.keys())
    if missing:
        raise ValueError(f"{path}: no GO row for {len(missing)} sampled accession(s), e.g. {missing[:3]}")
    return rows


def write_xz(path: Path, text: str) -> None:
    """Write ``text`` xz-compressed (preset 9, CRC64), atomically (temp file + os.replace)."""
    data = lzma.compress(text.encode("ascii"), format=lzma.FORMAT_XZ, check=lzma.CHECK_CRC64, preset=9)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.chmod(tmp, 0o644)   # mkstemp makes 0600; the bundled files are world-readable
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def make_sample(full_dir: Path, out_dir: Path, cfg: SampleConfig = SampleConfig()) -> dict[str, Path]:
    """Cut the sample from ``full_dir/swissprot2014_go_metastudent`` into ``out_dir/swissprot2014_sample``.

    Returns ``{filename: path}`` of the two files written.
    """
    src = Path(full_dir) / FULL_SOURCE
    for name in (FULL_FASTA, FULL_GO):
        if not (src / name).is_file():
            raise FileNotFoundError(f"full source file {src / name} not found (source {FULL_SOURCE!r})")
    chosen = select(read_fasta(src / FULL_FASTA), cfg)   # read_fasta rejects duplicate ids
    rows = go_rows(src / FULL_GO, set(chosen))
    dest = Path(out_dir) / SAMPLE_SOURCE
    fasta = "".join(f">{acc}\n{seq}\n" for acc, seq in chosen.items())
    table = GO_HEADER + "\n" + "".join(rows[acc] + "\n" for acc in chosen)
    write_xz(dest / SAMPLE_FASTA, fasta)
    write_xz(dest / SAMPLE_GO, table)
    return {SAMPLE_FASTA: dest / SAMPLE_FASTA, SAMPLE_GO: dest / SAMPLE_GO}


# -- command line (registered under `lsdkit data` by lsdkit.data.sources) -------------------------

def add_make_sample_command(data_sub) -> None:
    p = data_sub.add_parser(
        "make-sample", help="rebuild the bundled Swiss-Prot sample from the full source",
        description="Cut the bundled sample from swissprot2014_go_metastudent (see lsdkit/data/bundle.py "
                    "for the selection rule). Rebuild the shipped one with: "
                    "lsdkit data make-sample --data FULL_DATA_DIR --to lsdkit/data/bundled")
    p.add_argument("--data", help="data directory holding swissprot2014_go_metastudent "
                                  "(default: $LSDKIT_DATA)")
    p.add_argument("--to", required=True, help="output data directory (swissprot2014_sample/ is made in it)")
    d = SampleConfig()
    p.add_argument("--n", type=int, default=d.n, help=f"number of sequences (default {d.n})")
    p.add_argument("--min-len", type=int, default=d.min_len, help=f"default {d.min_len}")
    p.add_argument("--max-len", type=int, default=d.max_len, help=f"default {d.max_len}")
    p.add_argument("--salt", default=d.salt, help=f"selection salt (default {d.salt!r})")
    p.set_defaults(func=_cmd_make_sample)


def _cmd_make_sample(args) -> int:
    from lsdkit.data.manage import sha256_file
    from lsdkit.data.sources import DataError, data_dir

    try:
        full = data_dir(args.data)
        cfg = SampleConfig(n=args.n, min_len=args.min_len, max_len=args.max_len, salt=args.salt)
        written = make_sample(full, Path(args.to), cfg)
    except (DataError, FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for name, path in written.items():
        print(f"{sha256_file(path)}  {path.stat().st_size:>9}  {path}")
    return 0
