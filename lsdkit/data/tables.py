"""CSV/TSV tables: the kit's one reader (task files, bring-your-own tasks, ``lsdkit embed`` inputs).

:func:`read_table` reads a delimited text file (plain, ``.gz``, ``.xz``, ``.bz2``, or an open text
handle such as a zip member) into a :class:`Table`: the header as written and every non-blank
row as ``(line, cells)`` with the cells as written (callers strip or lower-case as their format
says; :meth:`Table.records` gives ``{column: cell}`` dicts). The delimiter is given, or chosen by the name (``.tsv``/``.tab``: tab, ``.csv``:
comma) and otherwise by the header (tab if it holds one). Every problem (missing or empty file,
not UTF-8, a row whose field count differs from the header's) raises ``error`` (default
:class:`~lsdkit.data.sources.DataError`) naming the file and line.
"""

from __future__ import annotations

import contextlib
import csv
import lzma
import os
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from lsdkit.data.fasta import open_text
from lsdkit.data.sources import DataError

_COMPRESSED = {".gz", ".xz", ".bz2"}
# column names the kit recognises (case-insensitive), first match wins: ``lsdkit embed`` inputs and custom tasks
ID_COLUMNS = ("id", "name", "accession", "entry")
SEQ_COLUMNS = ("sequence", "seq")


@dataclass(frozen=True)
class Table:
    """A read table: ``header`` (column names as written) and ``rows`` of ``(line, cells)``."""

    path: str
    header: list[str]
    rows: list[tuple[int, list[str]]]

    def records(self) -> list[dict[str, str]]:
        """The rows as ``{column: cell}`` dicts (like ``csv.DictReader``)."""
        return [dict(zip(self.header, cells)) for _, cells in self.rows]


def _name_delimiter(name: str) -> str | None:
    suffixes = [s.lower() for s in Path(name).suffixes]
    if suffixes and suffixes[-1] in _COMPRESSED:
        suffixes = suffixes[:-1]
    ext = suffixes[-1] if suffixes else ""
    return "\t" if ext in (".tsv", ".tab") else ("," if ext == ".csv" else None)


def read_table(path: str | os.PathLike | TextIO, delimiter: str | None = None, *,
               columns: Sequence[str] | None = None, error: type[Exception] = DataError) -> Table:
    """Read a CSV/TSV file (or open text handle) with a header line, or with ``columns`` naming the
    columns of a file without one. See the module docstring for the rules."""
    if isinstance(path, (str, os.PathLike)):
        where = str(path)
        if not Path(path).is_file():
            raise error(f"{where}: no such file")
        opened = open_text(path)
    else:
        where = str(getattr(path, "name", "<stream>"))
        opened = contextlib.nullcontext(path)
    line = 0
    try:
        with opened as fh:
            lines = iter(fh)
            first = next(lines, None)
            if first is None:
                raise error(f"{where}: empty file")
            first = first.removeprefix("\ufeff")
            if delimiter is None:
                delimiter = _name_delimiter(where) or ("\t" if "\t" in first else ",")
            reader = csv.reader(_chain(first, lines), delimiter=delimiter)
            header = list(columns) if columns is not None else next(reader)
            rows = []
            for row in reader:
                line = reader.line_num
                if not any(c.strip() for c in row):
                    continue
                if len(row) != len(header):
                    raise error(f"{where}:{line}: {len(row)} fields, the header has {len(header)}")
                rows.append((line, row))
    except UnicodeDecodeError as e:
        raise error(f"{where}: not a UTF-8 text file ({e.reason})") from None
    except csv.Error as e:
        raise error(f"{where}:{line + 1}: {e}") from None
    except (OSError, EOFError, lzma.LZMAError, zlib.error) as e:
        raise error(f"{where}: cannot read ({e})") from None
    return Table(where, header, rows)


def _chain(first: str, rest):
    yield first
    yield from rest


__all__ = ["ID_COLUMNS", "SEQ_COLUMNS", "Table", "read_table"]
