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
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from lsdkit.data.sources import (ENV_VAR, SOURCES, DataError, Source, configured_data_dir,
                                 default_data_dir, get_source)
from lsdkit.io import atomic_open, sha256_file

CHUNK = 1 << 20  # 1 MiB


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


def check_table(reports: list[SourceReport]):
    """The reports of :func:`check` as a DataFrame: source, files, size, licence, status (``OK`` or the problems)."""
    import pandas as pd

    return pd.DataFrame([{"source": r.source.name, "files": len(r.source.files),
                          "size": human_size(r.source.total_size), "licence": r.source.licence,
                          "status": "OK" if r.ok else "; ".join(p.describe() for p in r.problems)}
                         for r in reports])


def require_ok(reports: list[SourceReport]) -> None:
    """Raise :class:`DataError` naming every source of ``reports`` that failed its check."""
    failed = [r for r in reports if not r.ok]
    if failed:
        raise DataError(f"data check failed for {', '.join(r.source.name for r in failed)} "
                        f"({'; '.join(p.describe() for r in failed for p in r.problems)}); repair with "
                        "`lsdkit data fetch NAME` or the source's PROVENANCE.md recipe")


def task_table(names: list[str] | None = None, data: str | os.PathLike | None = None):
    """Every registered task (or ``names``) loaded as the probes load it (cross-validated ones at fold 0).

    Returns ``(table, loaded)``: a DataFrame indexed by task with kind, metric, protocol, split sizes,
    number of classes, source and status (``OK`` or ``not available: <why>`` when its source is
    not in the data directory), and ``{name: TaskData}`` of the tasks that loaded.
    """
    import pandas as pd

    from lsdkit.data.tasks import TASKS, load_task, task_folds

    loaded, rows = {}, []
    for name in names or list(TASKS):
        spec = TASKS[name]
        try:
            task = load_task(name, data, fold=task_folds(name)[0])
        except DataError as exc:
            rows.append({"task": name, "source": spec.source, "status": f"not available: {exc}"})
            continue
        loaded[name] = task
        rows.append({"task": name, "kind": spec.kind, "metric": spec.metric, "protocol": spec.protocol,
                     **task.sizes(), "classes": len(task.classes) if task.classes else None,
                     "source": spec.source, "status": "OK"})
    return pd.DataFrame(rows).set_index("task"), loaded


def fetch(source: Source, root: str | os.PathLike, *, timeout: float = 60, log=print) -> list[str]:
    """Download ``source``'s files that have a direct URL into ``root/source.folder``.

    Files already present with the right sha256 are kept. Each download is verified against the
    registry before it replaces anything (:func:`lsdkit.io.atomic_open`). Returns the files that are still
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
    try:
        with atomic_open(target, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as resp:
            h = hashlib.sha256()
            while block := resp.read(CHUNK):
                h.update(block)
                out.write(block)
            if h.hexdigest() != sha256:
                raise DataError(f"downloaded {url} does not match the registry for {target.name} "
                                f"(sha256 mismatch; size {out.tell()} vs expected {size}); nothing was written")
    except urllib.error.HTTPError as exc:
        raise DataError(f"could not download {url}: HTTP {exc.code} {exc.reason}") from None
    except urllib.error.URLError as exc:
        raise DataError(f"could not download {url}: {exc.reason} (is this machine offline?)") from None
    except OSError as exc:
        raise DataError(f"could not download {url} to {target}: {exc}") from None
