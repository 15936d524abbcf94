"""Checking, listing and fetching the data sources: ``lsdkit data check | list | fetch``.

``check`` compares each file of a source with the registry (:data:`lsdkit.data.sources.SOURCES`):
present, same size, same sha256 (``--quick``: sizes only). Which sources it checks:

* by default, the sources whose folder is present in the data directory - a machine holds the
  sources it uses, so an absent one is listed as absent but is not an error;
* ``--source NAME ...``: exactly those (absent = MISSING, an error);
* ``--all``: every source except the bundled sample, which ships inside lsdkit.

The exit status is 0 only when every checked source is OK (1 otherwise, 2 for a usage error).
With neither ``--data`` nor ``LSDKIT_DATA``, the bundled data directory is checked.

``fetch`` downloads the files that have a direct URL (verified against the registry's sha256,
written atomically) and prints the recipe for the rest.
"""

from __future__ import annotations

import hashlib
import os
import sys
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from lsdkit.data.sources import (ENV_VAR, SOURCES, DataError, Source, configured_data_dir,
                                 default_data_dir, get_source)

CHUNK = 1 << 20  # 1 MiB


def sha256_file(path: str | os.PathLike, chunk_size: int = CHUNK) -> str:
    """Hex sha256 of a file, streamed in ``chunk_size`` blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk_size):
            h.update(block)
    return h.hexdigest()


def human_size(n: int) -> str:
    """A byte count in decimal units: ``443.4 KB``, ``56.0 MB``."""
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    raise AssertionError


@dataclass(frozen=True)
class FileProblem:
    """One file that is missing or differs from the registry."""

    filename: str
    missing: bool = False
    size: int | None = None
    expected_size: int | None = None
    sha256_mismatch: bool = False

    def describe(self) -> str:
        if self.missing:
            return f"MISSING {self.filename}"
        what = "sha256 mismatch; " if self.sha256_mismatch else ""
        return f"CORRUPT {self.filename} ({what}size {self.size} vs expected {self.expected_size})"


@dataclass(frozen=True)
class SourceReport:
    """The result of checking one source in one data directory."""

    source: Source
    folder: Path
    problems: tuple[FileProblem, ...]

    @property
    def ok(self) -> bool:
        return not self.problems

    def line(self) -> str:
        if self.ok:
            n = len(self.source.files)
            return f"{self.source.name:<36} OK ({n} file{'s' * (n != 1)}, {human_size(self.source.total_size)})"
        if not self.folder.is_dir():
            return f"{self.source.name:<36} MISSING folder {self.folder}"
        return f"{self.source.name:<36} " + "; ".join(p.describe() for p in self.problems)


def check_source(source: Source, root: Path, quick: bool = False) -> SourceReport:
    """Check every registered file of ``source`` under ``root/source.folder``."""
    folder = Path(root) / source.folder
    problems = []
    for name, expected_sha in source.files.items():
        f = folder / name
        if not f.is_file():
            problems.append(FileProblem(name, missing=True))
            continue
        size, expected = f.stat().st_size, source.sizes[name]
        if size != expected:   # a different size is a different sha256: no need to hash
            problems.append(FileProblem(name, size=size, expected_size=expected, sha256_mismatch=not quick))
        elif not quick and sha256_file(f) != expected_sha:
            problems.append(FileProblem(name, size=size, expected_size=expected, sha256_mismatch=True))
    return SourceReport(source, folder, tuple(problems))


def sources_to_check(root: Path, names: list[str] | None = None, everything: bool = False) -> list[Source]:
    """``names`` if given; else every non-bundled source (``everything``) plus the present ones."""
    if names:
        return [get_source(n) for n in names]
    present = [s for s in SOURCES.values() if (root / s.folder).is_dir()]
    if everything:
        return [s for s in SOURCES.values() if not s.bundled or s in present]
    return present


def check(root: str | os.PathLike, names: list[str] | None = None, *, everything: bool = False,
          quick: bool = False) -> list[SourceReport]:
    """Check the chosen sources of the data directory ``root`` (see the module docstring)."""
    root = Path(root)
    return [check_source(s, root, quick) for s in sources_to_check(root, names, everything)]


def fetch(source: Source, root: str | os.PathLike, *, timeout: float = 60, log=print) -> list[str]:
    """Download ``source``'s files that have a direct URL into ``root/source.folder``.

    Files already present with the right sha256 are kept. Each download is verified against the
    registry before it replaces anything (temp file + os.replace). Returns the files that are still
    missing because they have no direct URL (the caller prints ``source.obtain`` for them); raises
    :class:`DataError` when a download fails or does not match.
    """
    folder = Path(root) / source.folder
    left = []
    for name, expected in source.files.items():
        target = folder / name
        if target.is_file() and sha256_file(target) == expected:
            log(f"  {name}: already present (sha256 OK)")
            continue
        url = source.urls.get(name)
        if url is None:
            left.append(name)
            continue
        log(f"  {name}: downloading {url}")
        folder.mkdir(parents=True, exist_ok=True)
        _download(url, target, expected, source.sizes[name], timeout)
    return left


def _download(url: str, target: Path, sha256: str, size: int, timeout: float) -> None:
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    try:
        h = hashlib.sha256()
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as resp:
            while block := resp.read(CHUNK):
                h.update(block)
                out.write(block)
        got = os.path.getsize(tmp)
        if h.hexdigest() != sha256:
            raise DataError(f"downloaded {url} does not match the registry for {target.name} "
                            f"(sha256 mismatch; size {got} vs expected {size}); nothing was written")
        os.chmod(tmp, 0o644)   # mkstemp makes 0600
        os.replace(tmp, target)
    except urllib.error.HTTPError as exc:
        raise DataError(f"could not download {url}: HTTP {exc.code} {exc.reason}") from None
    except urllib.error.URLError as exc:
        raise DataError(f"could not download {url}: {exc.reason} (is this machine offline?)") from None
    except OSError as exc:
        raise DataError(f"could not download {url} to {target}: {exc}") from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


# -- command line ----------------------------------------------------------------------------------

def add_commands(data_sub) -> None:
    """Register ``list``, ``check`` and ``fetch`` under ``lsdkit data``."""
    p = data_sub.add_parser("list", help="the registered sources: name, licence, size, description")
    p.set_defaults(func=_cmd_list)

    p = data_sub.add_parser(
        "check", help="verify the sources of a data directory (sizes and sha256)",
        description="Verify the sources of a data directory against the registry. By default the "
                    "sources present are checked; absent ones are listed, not errors. Exit 0 only "
                    "when every checked source is OK.")
    p.add_argument("--data", help=f"data directory (default: ${ENV_VAR}, else the bundled one)")
    p.add_argument("--source", nargs="+", metavar="NAME", help="check exactly these sources (absent = error)")
    p.add_argument("--all", action="store_true", dest="everything",
                   help="require every source except the bundled sample")
    p.add_argument("--quick", action="store_true", help="compare sizes only (no sha256)")
    p.set_defaults(func=_cmd_check)

    p = data_sub.add_parser("fetch", help="download a source where a direct URL exists, else print the recipe")
    p.add_argument("name", help="source name (see `lsdkit data list`)")
    p.add_argument("--to", help=f"data directory to fill (default: ${ENV_VAR})")
    p.set_defaults(func=_cmd_fetch)


def _cmd_list(args) -> int:
    for s in SOURCES.values():
        print(f"{s.name:<36} {human_size(s.total_size):>9}  {s.licence}")
        print(f"{'':<36} {'':>9}  {s.description}{' (bundled with lsdkit)' if s.bundled else ''}")
    return 0


def _cmd_check(args) -> int:
    try:
        root = configured_data_dir(args.data)
        if root is None:
            root = default_data_dir()
            print(f"no data directory given (--data or {ENV_VAR}): checking the bundled one")
        reports = check(root, args.source, everything=args.everything, quick=args.quick)
    except DataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not reports:
        print(f"no known source in {root}: is this a data directory? (`lsdkit data list`)")
        return 1
    print(f"data directory {root} ({'sizes only' if args.quick else 'sizes and sha256'})")
    for r in reports:
        print(r.line())
    checked = {r.source.name for r in reports}
    absent = [s.name for s in SOURCES.values() if s.name not in checked and not s.bundled]
    if absent and not args.source:
        print(f"absent (not required): {', '.join(absent)}")
    bad = [r.source.name for r in reports if not r.ok]
    print(f"{len(reports) - len(bad)} of {len(reports)} sources OK" + (f"; failed: {', '.join(bad)}" if bad else ""))
    return 1 if bad else 0


def _cmd_fetch(args) -> int:
    try:
        src = get_source(args.name)
        root = Path(args.to) if args.to else configured_data_dir(None)
        if root is None:
            raise DataError(f"say where to put it: --to DIR (or set {ENV_VAR})")
    except DataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"fetching {src.name} into {root / src.folder}")
    try:
        left = fetch(src, root)
    except DataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        print(f"how to obtain {src.name} by hand (on a machine with internet):\n  {src.obtain}")
        return 1
    if not left:
        print(f"{src.name}: all {len(src.files)} files present and verified")
        return 0
    print(f"{src.name}: no direct download for {len(left)} file(s): {', '.join(left)}")
    print(f"how to obtain them (on a machine with internet):\n  {src.obtain}")
    print(f"licence: {src.licence}\nthen verify with: lsdkit data check --data {root} --source {src.name}")
    return 1
