"""The one base class of every error a user can cause.

Every user-facing error class in the kit derives from :class:`LsdkitError` (bad residue letters,
malformed files, missing data, a checkpoint from another model, a diverged run, a bad command-line
argument, ...). The ``lsdkit`` command turns an ``LsdkitError`` into one line on stderr and exit code
2; any other exception is a bug and keeps its traceback.
"""

from __future__ import annotations


class LsdkitError(Exception):
    """Base class of the kit's user-facing errors; the message names the record/file/flag and the problem."""


class ArgumentError(LsdkitError, ValueError):
    """A bad argument to a command or a library entry point; the message names the flag or parameter."""
