"""Streaming FASTA reading and atomic writing, plain or compressed (``.gz``, ``.xz``, ``.bz2``).

A record is a header line ``>ID optional description`` followed by one or more sequence lines.
:func:`read_fasta` iterates the file line by line (it never holds the whole file), so the
516,371-record Swiss-Prot corpus streams in a few seconds. Every problem with the file raises
:class:`FastaError` naming the file and the line:

* a sequence line before the first header,
* an empty header (``>`` alone),
* a header with no sequence lines (an empty record),
* the same id twice (unless ``unique_ids=False``),
* with ``validate=`` an :class:`~lsdkit.alphabet.Alphabet`: a letter it does not accept
  (the error also carries the record id, the 1-based residue position and the letter),
* with ``max_len=``: a sequence longer than that.

Blank lines are ignored. Windows line ends are accepted.
"""

from __future__ import annotations

import bz2
import contextlib
import gzip
import io
import lzma
import os
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from lsdkit.alphabet import Alphabet, SequenceError
from lsdkit.io import atomic_open

_OPENERS = {".gz": gzip.open, ".xz": lzma.open, ".bz2": bz2.open}


class FastaError(SequenceError):
    """A FASTA file is malformed; ``path`` and ``line`` (1-based) say where."""

    def __init__(self, message: str, *, path: str | os.PathLike | None = None, line: int | None = None,
                 record: str | None = None, position: int | None = None, letter: str | None = None):
        where = f"{path}:{line}: " if line is not None else (f"{path}: " if path is not None else "")
        super().__init__(where + message, record=record, position=position, letter=letter)
        self.path, self.line = (str(path) if path is not None else None), line


@dataclass(frozen=True, slots=True)
class FastaRecord:
    """One FASTA record. Unpacks as ``(id, sequence)``: ``for rid, seq in read_fasta(p)``.

    ``description`` is the header text after the id; ``line`` the header's 1-based line number
    (0 for records not read from a file).
    """

    id: str
    sequence: str
    description: str = ""
    line: int = field(default=0, compare=False)

    def __iter__(self):
        return iter((self.id, self.sequence))


def open_text(path: str | os.PathLike, mode: str = "rt"):
    """Open ``path`` as text, (de)compressing by its suffix: ``.gz`` gzip, ``.xz`` lzma, ``.bz2`` bzip2."""
    path = Path(path)
    opener = _OPENERS.get(path.suffix.lower())
    if "t" not in mode:
        mode += "t"
    if opener is None:
        return open(path, mode, encoding="utf-8", newline=None)
    return opener(path, mode, encoding="utf-8", newline=None)


def read_fasta(path: str | os.PathLike | TextIO, *, unique_ids: bool = True, validate: Alphabet | None = None,
               max_len: int | None = None) -> Iterator[FastaRecord]:
    """Yield the records of a FASTA file one at a time (see the module docstring for the rules).

    ``path`` is a file name, or an open text handle (e.g. a zip member wrapped in
    ``io.TextIOWrapper``; errors then name its ``name`` attribute; it is not closed here).
    The sequence is returned as written (whitespace at line ends removed, case kept);
    ``validate`` only checks it. Use ``Alphabet.encode`` to get tokens.
    """
    if isinstance(path, (str, os.PathLike)):
        path = Path(path)
        if not path.is_file():
            raise FastaError("no such FASTA file", path=path)
        opened = open_text(path)
    else:
        opened = contextlib.nullcontext(path)
        path = getattr(path, "name", "<stream>")
    seen: dict[str, int] | None = {} if unique_ids else None
    header: tuple[str, str, int] | None = None   # (id, description, line)
    chunks: list[str] = []
    starts: list[tuple[int, int]] = []            # (offset in sequence, line number) per sequence line
    n_res, lineno = 0, 0

    def finish() -> FastaRecord:
        rid, desc, hline = header
        if not chunks:
            raise FastaError(f"record {rid!r} has no sequence (empty record)", path=path, line=hline,
                             record=rid)
        seq = "".join(chunks)
        if max_len is not None and len(seq) - seq.endswith("*") > max_len:
            raise FastaError(f"record {rid!r}: sequence has {len(seq)} residues, more than "
                             f"max_len={max_len}", path=path, line=hline, record=rid,
                             position=max_len + 1, letter=seq[max_len])
        if validate is not None:
            try:
                validate.encode(seq, record=rid)
            except SequenceError as e:
                line = hline if e.position is None else _line_of(starts, e.position - 1)
                raise FastaError(str(e), path=path, line=line, record=rid, position=e.position,
                                 letter=e.letter) from None
        return FastaRecord(rid, seq, desc, hline)

    with opened as handle:
        try:
            for lineno, raw in enumerate(handle, 1):
                line = raw.strip()
                if not line:
                    continue
                if line[0] == ">":
                    if header is not None:
                        yield finish()
                    parts = line[1:].split(None, 1)
                    if not parts:
                        raise FastaError("empty header ('>' with no id)", path=path, line=lineno)
                    rid = parts[0]
                    if seen is not None:
                        if rid in seen:
                            raise FastaError(f"duplicate id {rid!r} (first seen on line {seen[rid]})",
                                             path=path, line=lineno, record=rid)
                        seen[rid] = lineno
                    header = (rid, parts[1] if len(parts) > 1 else "", lineno)
                    chunks, starts, n_res = [], [], 0
                else:
                    if header is None:
                        raise FastaError("sequence line before the first '>' header", path=path,
                                         line=lineno)
                    chunks.append(line)
                    starts.append((n_res, lineno))
                    n_res += len(line)
        except UnicodeDecodeError as e:
            raise FastaError(f"not a UTF-8 text file ({e.reason})", path=path,
                             line=lineno + 1) from None
        except (OSError, EOFError, lzma.LZMAError, zlib.error) as e:
            raise FastaError(f"cannot read ({e})", path=path, line=lineno + 1) from None
    if header is None:
        raise FastaError("no FASTA records in file", path=path)
    yield finish()


def _line_of(starts: list[tuple[int, int]], offset: int) -> int:
    """The file line holding residue ``offset`` (0-based) of a record, from its line starts."""
    line = starts[0][1] if starts else 0
    for start, lno in starts:
        if start > offset:
            break
        line = lno
    return line


def write_fasta(path: str | os.PathLike, records: Iterable[FastaRecord | tuple[str, str]], *,
                line_width: int | None = 60) -> int:
    """Write records atomically (:func:`lsdkit.io.atomic_open`); returns the count.

    ``records`` are :class:`FastaRecord`, ``(id, sequence)`` or ``(id, sequence, description)``.
    ``line_width=None`` writes each sequence on one line. Compression follows the suffix of ``path``. An id that is empty or contains
    whitespace, or an empty sequence, raises :class:`FastaError` and leaves ``path`` untouched.
    """
    path = Path(path)
    if line_width is not None and line_width < 1:
        raise ValueError(f"line_width must be >= 1 or None, got {line_width}")
    n = 0
    with atomic_open(path, "wb") as raw, _text_writer(raw, path) as out:
        for n, rec in enumerate(records, 1):
            rid, seq, desc = (rec.id, rec.sequence, rec.description) if isinstance(rec, FastaRecord) \
                else (*rec, "")[:3]
            if not rid or any(c.isspace() for c in rid):
                raise FastaError(f"record #{n}: id {rid!r} is empty or contains whitespace",
                                 path=path, record=rid)
            if not seq or any(c.isspace() for c in seq):
                raise FastaError(f"record {rid!r}: sequence is empty or contains whitespace",
                                 path=path, record=rid)
            out.write(f">{rid} {desc}\n" if desc else f">{rid}\n")
            step = line_width or len(seq)
            out.write("\n".join(seq[i:i + step] for i in range(0, len(seq), step)))
            out.write("\n")
    return n


def _text_writer(raw, path: Path) -> TextIO:
    """A UTF-8 text layer over the binary handle ``raw``, compressing by ``path``'s suffix."""
    opener = _OPENERS.get(path.suffix.lower())
    if opener is None:
        return io.TextIOWrapper(raw, encoding="utf-8")
    return opener(raw, "wt", encoding="utf-8")


__all__ = ["FastaError", "FastaRecord", "open_text", "read_fasta", "write_fasta"]
