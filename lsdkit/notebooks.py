"""Run the numbered notebooks headless with papermill: the batch reproduction of the study.

``run_notebooks(out_dir, params="ci")`` executes ``notebooks/NN_*.ipynb`` in order, each with its
parameter set from ``notebooks/params.json`` (``"ci"``: minutes on CPU; ``"full"``: the study),
and writes into ``out_dir``::

    out_dir/
        00_data.ipynb ...      executed copies (outputs included)
        figures/               every figure the notebooks showed: *.html (one shared plotly.min.js), *.png, tables
        run/                   the shared run directory (models trained by 01/02, reused by 03-05)
        README.md              what ran, how long it took, which figures it made

The runner injects ``figures_dir`` and ``run_dir`` into every notebook that declares them in its
``parameters`` cell. On the first failing cell it stops with :class:`NotebookError`, which names
the notebook, the cell and the error; the executed copy up to that cell is kept.

Command: ``lsdkit notebooks run --params ci|full --out DIR [--only 00_data ...]``.
"""

from __future__ import annotations

import ast
import json
import os
import sys
import sysconfig
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from lsdkit.errors import LsdkitError
from lsdkit.io import atomic_write_text

PARAM_SETS = ("ci", "full")
PARAMS_FILE = "params.json"
INJECTED = ("figures_dir", "run_dir")   # set by the runner, never by params.json
KERNEL = "python3"
SHARE = Path("share", "lsdkit", "notebooks")   # where a wheel installs them (pyproject: tool.setuptools.data-files)


class NotebookError(LsdkitError, RuntimeError):
    """A notebook failed (or could not start); the message names the notebook and the cell."""

    def __init__(self, message: str, *, notebook: str, cell_index: int | None = None,
                 output: Path | None = None):
        super().__init__(message)
        self.notebook, self.cell_index, self.output = notebook, cell_index, output


@dataclass
class NotebookRun:
    """One executed notebook: its executed copy, wall time and the figures it wrote."""

    name: str
    output: Path
    seconds: float
    figures: list[Path] = field(default_factory=list)


def checkout_notebooks_dir() -> Path:
    """``notebooks/`` beside the ``lsdkit`` package: there in a source checkout (or editable install)."""
    return Path(__file__).resolve().parents[1] / "notebooks"


def installed_notebooks_dirs() -> list[Path]:
    """Where an install puts the notebooks' copy: ``<prefix>/share/lsdkit/notebooks`` for the
    environment's data prefix, the user scheme (``pip install --user``) and ``sys.prefix``."""
    roots = [sysconfig.get_path("data"), sys.prefix]
    try:
        roots.insert(1, sysconfig.get_path("data", f"{os.name}_user"))
    except KeyError:            # no user scheme on this platform
        pass
    return list(dict.fromkeys(Path(root) / SHARE for root in roots))


def notebooks_dir(explicit: str | os.PathLike | None = None) -> Path:
    """The folder of numbered notebooks: ``explicit``; else the source checkout's ``notebooks/``;
    else the copy installed with the package (:func:`installed_notebooks_dirs`)."""
    if explicit is not None:
        if not Path(explicit).is_dir():
            raise NotebookError(f"no notebooks folder at {explicit}", notebook="-")
        return Path(explicit)
    looked = [checkout_notebooks_dir(), *installed_notebooks_dirs()]
    for path in looked:
        if (path / PARAMS_FILE).is_file():
            return path
    raise NotebookError(f"no notebooks folder (looked in {', '.join(map(str, looked))}): install lsdkit "
                        "(pip install lsdkit, or pip install -e . in a checkout) or pass --notebooks DIR",
                        notebook="-")


def list_notebooks(directory: str | os.PathLike | None = None) -> list[Path]:
    """The numbered notebooks ``NN_name.ipynb``, in order."""
    return sorted(notebooks_dir(directory).glob("[0-9][0-9]_*.ipynb"))


def parameters_cell(path: str | os.PathLike) -> dict[str, object]:
    """The names and default values assigned in a notebook's ``parameters``-tagged cell.

    Raises :class:`NotebookError` unless there is exactly one such cell of plain assignments.
    """
    import nbformat

    nb = nbformat.read(path, as_version=4)
    name = Path(path).stem
    cells = [c for c in nb.cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    if len(cells) != 1:
        raise NotebookError(f"{name}: expected exactly one cell tagged 'parameters', found {len(cells)}",
                            notebook=name)
    values = {}
    for node in ast.parse(cells[0].source).body:
        if not (isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name)):
            raise NotebookError(f"{name}: the parameters cell must hold only `name = literal` lines "
                                f"(line {node.lineno})", notebook=name)
        try:
            values[node.targets[0].id] = ast.literal_eval(node.value)
        except ValueError:
            raise NotebookError(f"{name}: parameter {node.targets[0].id!r} (line {node.lineno}) is not a literal",
                                notebook=name) from None
    return values


def load_params(param_set: str, directory: str | os.PathLike | None = None) -> dict[str, dict]:
    """``{notebook name: parameters}`` of ``param_set`` from ``notebooks/params.json``.

    The set maps each notebook name to its parameters; its optional ``"_all"`` entry gives values
    for every notebook that declares that parameter (a notebook's own entry wins). Each name is
    checked against the notebook's parameters cell: papermill would silently ignore a typo.
    """
    if param_set not in PARAM_SETS:
        raise ValueError(f"unknown parameter set {param_set!r}; choose one of {PARAM_SETS}")
    folder = notebooks_dir(directory)
    try:
        table = json.loads((folder / PARAMS_FILE).read_text())
    except FileNotFoundError:
        raise NotebookError(f"missing {folder / PARAMS_FILE}", notebook="-") from None
    except json.JSONDecodeError as exc:
        raise NotebookError(f"{folder / PARAMS_FILE} is not valid JSON: {exc}", notebook="-") from None
    sets = table.get(param_set)
    if not isinstance(sets, dict):
        raise NotebookError(f"{folder / PARAMS_FILE} has no {param_set!r} parameter set", notebook="-")
    common = sets.get("_all", {})
    notebooks = list_notebooks(folder)
    if stray := sorted(set(sets) - {nb.stem for nb in notebooks} - {"_all"}):
        raise NotebookError(f"{PARAMS_FILE}: the {param_set!r} set names no notebook {stray}", notebook="-")
    out, used = {}, set()
    for nb in notebooks:
        if nb.stem not in sets:
            raise NotebookError(f"{PARAMS_FILE}: the {param_set!r} set has no entry for {nb.stem}", notebook=nb.stem)
        declared = parameters_cell(nb)
        own = sets[nb.stem]
        if unknown := sorted(set(own) - set(declared)):
            raise NotebookError(f"{PARAMS_FILE}: {param_set}/{nb.stem} sets {unknown}, which the notebook's "
                                f"parameters cell does not declare ({sorted(declared)})", notebook=nb.stem)
        params = {k: v for k, v in common.items() if k in declared} | own
        used |= set(params)
        if injected := sorted(set(params) & set(INJECTED)):
            raise NotebookError(f"{PARAMS_FILE}: {param_set}/{nb.stem} sets {injected}; the runner sets those",
                                notebook=nb.stem)
        out[nb.stem] = params
    if unused := sorted(set(common) - used):
        raise NotebookError(f"{PARAMS_FILE}: {param_set}/_all sets {unused}, which no notebook declares", notebook="-")
    return out


def _select(notebooks: list[Path], only: Iterable[str] | None) -> list[Path]:
    if not only:
        return notebooks
    chosen = []
    for want in only:
        hits = [nb for nb in notebooks if nb.stem == want or nb.stem.startswith(f"{want}_") or nb.name == want]
        if len(hits) != 1:
            raise NotebookError(f"--only {want!r} matches {len(hits)} notebooks; known: "
                                f"{', '.join(nb.stem for nb in notebooks)}", notebook=want)
        chosen.append(hits[0])
    return sorted(set(chosen))


def _failure(exc, name: str, output: Path) -> NotebookError:
    """Turn papermill's execution error into a message naming notebook, cell and error."""
    first = next((ln for ln in (exc.source or "").splitlines() if ln.strip()), "")
    count = f"In [{exc.exec_count}]" if exc.exec_count is not None else "not executed"
    msg = (f"notebook {name} failed at cell {exc.cell_index} ({count}; starts `{first[:80]}`): "
           f"{exc.ename}: {exc.evalue}\n  executed copy with the traceback: {output}")
    return NotebookError(msg, notebook=name, cell_index=exc.cell_index, output=output)


def _write_summary(out: Path, param_set: str, runs: list[NotebookRun], failed: str | None) -> None:
    lines = [f"# lsdkit notebooks ({param_set} parameters)", "",
             "| notebook | seconds | figures |", "|---|---|---|"]
    for r in runs:
        figs = ", ".join(f"[{p.name}](figures/{p.name})" for p in r.figures) or "-"
        lines.append(f"| [{r.name}]({r.output.name}) | {r.seconds:.0f} | {figs} |")
    if failed:
        lines += ["", f"**Stopped:** {failed}"]
    atomic_write_text(out / "README.md", "\n".join(lines) + "\n")


def run_notebooks(out_dir: str | os.PathLike, params: str = "ci", only: Sequence[str] | None = None, *,
                  notebooks: str | os.PathLike | None = None, run_dir: str | os.PathLike | None = None,
                  kernel_name: str = KERNEL, log_output: bool = False,
                  cell_timeout: float | None = None) -> list[NotebookRun]:
    """Execute the numbered notebooks in order with parameter set ``params`` into ``out_dir``.

    ``only``: notebook names or number prefixes (``["00", "03_latent_geometry"]``). ``run_dir``:
    where models are trained/loaded (default ``out_dir/run``; point the full set at a persistent
    folder to reuse trained models). Raises :class:`NotebookError` on the first failing cell.
    """
    import papermill as pm
    from papermill.exceptions import PapermillExecutionError

    out = Path(out_dir).resolve()
    figures = out / "figures"
    run = Path(run_dir).resolve() if run_dir is not None else out / "run"
    sets = load_params(params, notebooks)
    selected = _select(list_notebooks(notebooks), only)
    out.mkdir(parents=True, exist_ok=True)
    runs: list[NotebookRun] = []
    env_before = os.environ.get("TQDM_MININTERVAL")
    os.environ.setdefault("TQDM_MININTERVAL", "10")   # headless: fewer progress-bar updates in the saved copies
    try:
        for nb in selected:
            declared = parameters_cell(nb)
            values = dict(sets[nb.stem])
            values.update({k: v for k, v in (("figures_dir", str(figures)), ("run_dir", str(run))) if k in declared})
            target = out / nb.name
            started = time.time()      # figures written from now on are this notebook's (also on re-runs)
            print(f"[notebooks] {nb.stem}: running with {params} parameters", flush=True)
            t0 = time.perf_counter()
            try:
                pm.execute_notebook(str(nb), str(target), parameters=values, kernel_name=kernel_name,
                                    cwd=str(out), log_output=log_output, progress_bar=False,
                                    execution_timeout=cell_timeout)
            except PapermillExecutionError as exc:
                err = _failure(exc, nb.stem, target)
                _write_summary(out, params, runs, str(err))
                raise err from None
            except Exception as exc:  # kernel died, timeout, missing kernel ...
                err = NotebookError(f"notebook {nb.stem} could not be executed: {type(exc).__name__}: {exc}\n"
                                    f"  executed copy (partial): {target}", notebook=nb.stem, output=target)
                _write_summary(out, params, runs, str(err))
                raise err from exc
            made = sorted(p for p in figures.glob("*") if p.name != "plotly.min.js"
                          and p.stat().st_mtime >= started) if figures.is_dir() else []
            runs.append(NotebookRun(nb.stem, target, time.perf_counter() - t0, made))
            print(f"[notebooks] {nb.stem}: done in {runs[-1].seconds:.0f} s, {len(made)} figure file(s)", flush=True)
            _write_summary(out, params, runs, None)
    finally:
        if env_before is None:
            os.environ.pop("TQDM_MININTERVAL", None)
    return runs


def strip_outputs(path: str | os.PathLike) -> bool:
    """Remove outputs, execution counts and widget state from a notebook in place; True if it changed."""
    import nbformat

    path = Path(path)
    nb = nbformat.read(path, as_version=4)
    before = nbformat.writes(nb)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
        for key in ("execution", "collapsed", "scrolled", "papermill"):
            cell.metadata.pop(key, None)
    for key in ("widgets", "papermill"):
        nb.metadata.pop(key, None)
    after = nbformat.writes(nb)
    if after != before:
        atomic_write_text(path, after)
    return after != before


# --- inside a notebook ----------------------------------------------------------------------------
def open_study(notebook: str, run_dir=None, study_preset: str = "tiny", study_overrides: dict | None = None,
               data_dir=None, figures_dir=None, pretrained=None):
    """The set-up cell of the study notebooks (01-05), from their parameters.

    Sets up figures (:func:`lsdkit.viz.setup`, file names prefixed ``"<notebook>-"``), opens the
    :class:`~lsdkit.study.Study` in ``run_dir`` (default ``lsdkit-run``) with the preset and
    overrides, prints the run directory and the latent spaces, and returns ``(figs, study)``.
    ``pretrained``: pretrained models (``near``, ``esm2:PATH``) whose embeddings join the kit's
    latent spaces (``StudyConfig.pretrained``: their denoisers are trained and swept alike).
    """
    from lsdkit import viz
    from lsdkit.study import Study, study_config

    figs = viz.setup(figures_dir, prefix=f"{notebook}-")
    overrides = dict(study_overrides or {})
    if pretrained:
        overrides["pretrained"] = tuple(pretrained)
    study = Study(run_dir or "lsdkit-run", study_config(study_preset, **overrides), data_dir=data_dir)
    print(f"run directory: {study.run_dir}; latent spaces: {[study.display_name(e) for e in study.latent_spaces]}")
    return figs, study
