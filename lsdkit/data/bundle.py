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
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from lsdkit.alphabet import STANDARD
from lsdkit.data.fasta import read_fasta
from lsdkit.errors import LsdkitError
from lsdkit.io import atomic_write_bytes

FULL_SOURCE = "swissprot2014_go_metastudent"
FULL_FASTA = "swissprot2014_sequences.fasta.xz"
FULL_GO = "swissprot2014_go_annotations.tsv.xz"
SAMPLE_SOURCE = "swissprot2014_sample"
SAMPLE_FASTA = "swissprot2014_sample.fasta.xz"
SAMPLE_GO = "swissprot2014_sample_go.tsv.xz"
GO_HEADER = "accession\tgo_bp\tgo_mf\tgo_cc"


class SampleError(LsdkitError, ValueError):
    """The sample cannot be cut as asked (config, too few eligible records, a missing source file)."""


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
        raise SampleError(f"bad sample config {cfg}: need n >= 1 and 1 <= min_len <= max_len")
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
        raise SampleError(f"only {len(heap)} records are eligible (length {cfg.min_len}..{cfg.max_len}, "
                         f"standard residues), fewer than n={cfg.n}")
    return {acc: seq for _, acc, seq in sorted(heap, key=lambda t: t[1])}


def go_rows(path: Path, accessions: set[str]) -> dict[str, str]:
    """The GO table's lines (without newline) for ``accessions``; checks the header."""
    rows: dict[str, str] = {}
    with lzma.open(path, "rt", encoding="ascii") as fh:
        header = fh.readline().rstrip("\n")
        if header != GO_HEADER:
            raise SampleError(f"{path}: header {header!r}, expected {GO_HEADER!r}")
        for line in fh:
            acc = line.split("\t", 1)[0]
            if acc in accessions:
                rows[acc] = line.rstrip("\n")
    missing = sorted(accessions - rows.keys())
    if missing:
        raise SampleError(f"{path}: no GO row for {len(missing)} sampled accession(s), e.g. {missing[:3]}")
    return rows


def write_xz(path: Path, text: str) -> None:
    """Write ``text`` xz-compressed (preset 9, CRC64), atomically (:func:`lsdkit.io.atomic_write_bytes`)."""
    atomic_write_bytes(path, lzma.compress(text.encode("ascii"), format=lzma.FORMAT_XZ,
                                           check=lzma.CHECK_CRC64, preset=9))


def make_sample(full_dir: Path, out_dir: Path, cfg: SampleConfig = SampleConfig()) -> dict[str, Path]:
    """Cut the sample from ``full_dir/swissprot2014_go_metastudent`` into ``out_dir/swissprot2014_sample``.

    Returns ``{filename: path}`` of the two files written.
    """
    src = Path(full_dir) / FULL_SOURCE
    for name in (FULL_FASTA, FULL_GO):
        if not (src / name).is_file():
            raise SampleError(f"full source file {src / name} not found (source {FULL_SOURCE!r})")
    chosen = select(read_fasta(src / FULL_FASTA), cfg)   # read_fasta rejects duplicate ids
    rows = go_rows(src / FULL_GO, set(chosen))
    dest = Path(out_dir) / SAMPLE_SOURCE
    fasta = "".join(f">{acc}\n{seq}\n" for acc, seq in chosen.items())
    table = GO_HEADER + "\n" + "".join(rows[acc] + "\n" for acc in chosen)
    write_xz(dest / SAMPLE_FASTA, fasta)
    write_xz(dest / SAMPLE_GO, table)
    return {SAMPLE_FASTA: dest / SAMPLE_FASTA, SAMPLE_GO: dest / SAMPLE_GO}
