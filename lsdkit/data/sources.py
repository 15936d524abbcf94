"""Data directory and the registry of data sources (files, sha256, licence, how to obtain).

The data directory is the one setting: ``LSDKIT_DATA`` or an explicit argument.
"""

from __future__ import annotations

import os
from pathlib import Path

ENV_VAR = "LSDKIT_DATA"


class DataError(RuntimeError):
    """A data directory or source file is missing, corrupt or malformed; the message says which."""


def data_dir(explicit: str | os.PathLike | None = None) -> Path:
    """The data directory: ``explicit`` if given, else ``$LSDKIT_DATA``; it must exist."""
    value = explicit if explicit is not None else os.environ.get(ENV_VAR)
    if not value:
        raise DataError(f"no data directory: pass one explicitly (--data DIR) or set {ENV_VAR}")
    path = Path(value).expanduser()
    if not path.is_dir():
        raise DataError(f"data directory {str(path)!r} does not exist or is not a directory")
    return path


def add_commands(sub) -> None:  # filled in with `data check`
    pass
