"""Atomic file writes and file hashes: the kit's one implementation of each.

Every file or directory the kit writes appears complete or not at all: the content goes to a
temporary file (or directory) beside the target, named ``.<target name>.<random>.tmp`` so a
leftover is recognisable, is flushed and fsynced, and is then moved into place with
``os.replace``. An exception while writing removes the temporary and leaves an existing target
untouched.

* :func:`atomic_write_bytes`, :func:`atomic_write_text`, :func:`atomic_save_npz` - whole contents;
* :func:`atomic_open` - a file handle for streaming writers (FASTA, CSV, downloads, xz);
* :func:`atomic_directory` - a directory built in place of another (checkpoints, caches);
* :func:`sha256_file` - the hex sha256 of a file.

Permissions: created files get ``0o666 & ~umask`` and directories ``0o777 & ~umask``, as
``open``/``mkdir`` would give them (``mkstemp``/``mkdtemp`` alone make them private). Missing
parent directories are created.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

__all__ = ["atomic_open", "atomic_write_bytes", "atomic_write_text", "atomic_save_npz",
           "atomic_directory", "remove_leftovers", "sha256_file"]

_MODES = ("w", "wt", "wb")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _fsync_path(path: str | os.PathLike) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "w", **kw) -> Iterator[IO]:
    """``with atomic_open(path, "w" | "wb", **open_kwargs) as f:`` writes ``f`` to ``path`` atomically.

    ``f`` is a temporary file in ``path``'s folder; when the block ends without an exception it is
    fsynced and replaces ``path``; on an exception it is removed and ``path`` is left as it was.
    A wrapper that closes ``f`` itself (e.g. a text or compression layer) is fine.
    """
    if mode not in _MODES:
        raise ValueError(f"atomic_open: mode must be one of {_MODES}, got {mode!r}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        try:
            f = os.fdopen(fd, mode, **kw)
        except BaseException:
            os.close(fd)
            raise
        with f:
            yield f
        _fsync_path(tmp)       # after close: also right when a wrapper closed f itself
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically; returns the path."""
    with atomic_open(path, "wb") as f:
        f.write(data)
    return Path(path)


def atomic_write_text(path: str | os.PathLike, text: str, encoding: str = "utf-8") -> Path:
    """Write ``text`` to ``path`` atomically (``\\n`` line ends kept as written); returns the path."""
    with atomic_open(path, "w", encoding=encoding, newline="") as f:
        f.write(text)
    return Path(path)


def atomic_save_npz(path: str | os.PathLike, arrays: dict) -> Path:
    """``np.savez`` (uncompressed) of ``arrays`` to ``path`` atomically; returns the path."""
    import numpy as np

    with atomic_open(path, "wb") as f:
        np.savez(f, **arrays)
    return Path(path)


def atomic_save_ragged(path: str | os.PathLike, arrays: list) -> Path:
    """A list of ``[L_i, D]`` arrays as one ``.npz`` (``values`` float32 ``[Σ L_i, D]``, ``offsets``
    int64 ``[n + 1]``), atomically; :func:`load_ragged` reads it back."""
    import numpy as np

    offsets = np.zeros(len(arrays) + 1, dtype=np.int64)
    offsets[1:] = np.cumsum([len(a) for a in arrays])
    return atomic_save_npz(path, {"values": np.concatenate(arrays).astype(np.float32), "offsets": offsets})


def load_ragged(path: str | os.PathLike) -> list:
    """The list of arrays :func:`atomic_save_ragged` wrote."""
    import numpy as np

    with np.load(path) as f:
        values, offsets = f["values"], f["offsets"]
    return [values[offsets[i]:offsets[i + 1]] for i in range(len(offsets) - 1)]


@contextlib.contextmanager
def atomic_directory(path: str | os.PathLike) -> Iterator[Path]:
    """``with atomic_directory(path) as d:`` fill the new directory ``d``; it then becomes ``path``.

    ``d`` is a fresh directory beside ``path``. When the block ends without an exception its files
    are fsynced and it replaces ``path`` (an existing ``path`` is moved aside first and removed
    after, so at every moment ``path`` is the old or the new directory); on an exception ``d`` is
    removed and ``path`` is left as it was.
    """
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{final.name}.", suffix=".tmp"))
    try:
        yield stage
        for folder, _, files in os.walk(stage):
            for name in files:
                _fsync_path(os.path.join(folder, name))
            _fsync_path(folder)
        os.chmod(stage, 0o777 & ~_umask())
        old = None
        if final.exists() or final.is_symlink():
            old = final.with_name(f".{final.name}.{secrets.token_hex(4)}.old")
            os.replace(final, old)
        try:
            os.replace(stage, final)
        except BaseException:
            if old is not None:
                os.replace(old, final)
            raise
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    if old is not None:
        if old.is_dir() and not old.is_symlink():
            shutil.rmtree(old, ignore_errors=True)
        else:
            old.unlink(missing_ok=True)


def remove_leftovers(folder: str | os.PathLike, names: tuple[str, ...] | None = None) -> list[Path]:
    """Remove what killed atomic writes left in ``folder``: the temporaries ``.<name>.<random>.tmp``
    (files or directories) and the moved-aside ``.<name>.<random>.old`` of :func:`atomic_directory`.

    ``names``: only leftovers of these target names, each a glob pattern (e.g. ``"step_*"``);
    default any. Call it only where no other process is writing into ``folder``. Returns what was
    removed.
    """
    import fnmatch
    import re

    folder = Path(folder)
    if not folder.is_dir():
        return []
    leftover = re.compile(r"^\.(?P<name>.+)\.[^.]+\.(tmp|old)$")
    removed = []
    for entry in sorted(folder.iterdir()):
        m = leftover.match(entry.name)
        if not m or (names is not None and not any(fnmatch.fnmatchcase(m["name"], n) for n in names)):
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
        removed.append(entry)
    return removed


def sha256_file(path: str | os.PathLike) -> str:
    """Hex sha256 of the file at ``path`` (streamed)."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()
