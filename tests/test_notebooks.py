"""The numbered notebooks: committed stripped, thin, parameterised; the papermill runner; a CI run."""

import ast
import json
import os
import shutil
from pathlib import Path

import nbformat
import pytest

from lsdkit import notebooks as nbrun

EXPECTED = ["00_data", "01_autoencoders", "02_latent_diffusion", "03_latent_geometry", "04_timestep_sweep",
            "05_benchmark"]
NOTEBOOKS = nbrun.list_notebooks()


def _code_cells(path):
    return [c for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code"]


def test_the_six_notebooks_are_there():
    assert [p.stem for p in NOTEBOOKS] == EXPECTED


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_committed_with_outputs_stripped(path, tmp_path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, \
                f"{path.name} cell {i} has outputs: run `lsdkit notebooks strip`"
        assert not {"execution", "papermill"} & set(cell.metadata), f"{path.name} cell {i} has execution metadata"
    assert not {"widgets", "papermill"} & set(nb.metadata), f"{path.name} has widget/papermill metadata"
    copy = tmp_path / path.name
    shutil.copy(path, copy)
    assert nbrun.strip_outputs(copy) is False            # stripping changes nothing


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_one_parameters_cell_that_papermill_understands(path):
    from papermill.translators import PythonTranslator

    cells = _code_cells(path)
    tagged = [c for c in cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1 and cells[0] is tagged[0], "the first code cell, and only it, is tagged 'parameters'"
    declared = nbrun.parameters_cell(path)
    assert "figures_dir" in declared and declared["figures_dir"] is None
    # papermill's own parser (--help-notebook, type inference) must read every line
    inspected = PythonTranslator.inspect(tagged[0])
    assert [p.name for p in inspected] == list(declared)
    assert all(p.help for p in inspected), "every parameter has a comment saying what it is"


MAX_CELL_LINES = 12          # code lines per cell, comments and blank lines not counted (parameters cell exempt)
# data-frame manipulation belongs in lsdkit (a reduction next to its data); a cell calls and displays
FRAME_OPERATIONS = (".groupby(", ".merge(", ".pivot", ".melt(", ".apply(", ".agg(", ".aggregate(",
                    ".transform(", ".query(", ".loc[", ".iloc[", ".at[", ".iat[", "pd.concat", ".concat(",
                    ".set_index(", ".reset_index(", ".sort_values(", ".dropna(", ".fillna(", ".drop(",
                    ".assign(", ".stack(", ".unstack(", ".explode(", ".value_counts(", ".isin(", ".where(")


def _code_lines(source: str) -> list[str]:
    return [line for line in source.splitlines() if line.strip() and not line.strip().startswith("#")]


def _is_mask(node: ast.AST) -> bool:
    """A subscript selecting rows by a condition: ``df[df["x"] > 0]``, ``df[a & b]``, ``df[~m]``."""
    return isinstance(node, ast.Subscript) and any(
        isinstance(n, ast.Compare) or (isinstance(n, ast.BinOp) and isinstance(n.op, (ast.BitAnd, ast.BitOr)))
        or (isinstance(n, ast.UnaryOp) and isinstance(n.op, ast.Invert)) for n in ast.walk(node.slice))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_cells_call_and_display(path):
    """Cells are short and hold no data-frame manipulation: the helpers in lsdkit compute, a cell calls
    one and displays the result, and the markdown around it explains."""
    for i, cell in enumerate(_code_cells(path)[1:], 1):
        lines = _code_lines(cell.source)
        assert len(lines) <= MAX_CELL_LINES, \
            f"{path.name} code cell {i} has {len(lines)} code lines (at most {MAX_CELL_LINES}): move the logic into lsdkit"
        code = "\n".join(line.split("  #")[0] for line in lines)
        found = [op for op in FRAME_OPERATIONS if op in code]
        assert not found, f"{path.name} code cell {i} manipulates a data frame ({', '.join(found)}): move it into lsdkit"
        masks = [ast.unparse(n) for n in ast.walk(ast.parse(cell.source)) if _is_mask(n)]
        assert not masks, f"{path.name} code cell {i} selects rows by a condition ({masks[0]}): move it into lsdkit"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebooks_stay_thin(path):
    """No model or metric code in a notebook: no function, class or lambda definitions, no torch."""
    for i, cell in enumerate(_code_cells(path)):
        tree = ast.parse(cell.source)
        for node in ast.walk(tree):
            assert not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)), \
                f"{path.name} cell {i} defines {type(node).__name__}: move it into lsdkit"
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                names = [a.name for a in node.names] + [getattr(node, "module", None) or ""]
                assert not any(n.split(".")[0] == "torch" for n in names), f"{path.name} cell {i} imports torch"


@pytest.mark.parametrize("param_set", nbrun.PARAM_SETS)
def test_parameter_sets_cover_every_notebook(param_set):
    sets = nbrun.load_params(param_set)
    assert list(sets) == EXPECTED
    assert sets["01_autoencoders"]["study_preset"] == ("tiny" if param_set == "ci" else "cpu")   # from _all
    assert "study_preset" not in sets["00_data"]          # _all only reaches notebooks that declare it


# ----------------------------------------------------------------------------- the runner, on toy notebooks

def _toy(folder: Path, name: str, body: str, params: str = "figures_dir = None  # where figures go\nx = 1  # a number"):
    nb = nbformat.v4.new_notebook(metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                           "language": "python"}})
    nb.cells = [nbformat.v4.new_code_cell(params, metadata={"tags": ["parameters"]}),
                nbformat.v4.new_markdown_cell("text"), nbformat.v4.new_code_cell(body)]
    nbformat.write(nb, folder / f"{name}.ipynb")


@pytest.fixture
def toys(tmp_path):
    folder = tmp_path / "nbs"
    folder.mkdir()
    _toy(folder, "00_ok", "from lsdkit import viz\nimport plotly.graph_objects as go\n"
                          "viz.setup(figures_dir, prefix='00_ok-').show(go.Figure(go.Bar(y=[x])), 'bar')\n"
                          "print('x is', x)")
    _toy(folder, "01_fails", "y = x + 1\nraise ValueError(f'boom {y}')")
    (folder / "params.json").write_text(json.dumps({
        "ci": {"_all": {"x": 5}, "00_ok": {}, "01_fails": {"x": 41}},
        "full": {"00_ok": {}, "01_fails": {}}}))
    return folder


def test_run_writes_copies_figures_and_stops_at_the_failing_cell(toys, tmp_path):
    out = tmp_path / "out"
    with pytest.raises(nbrun.NotebookError) as err:
        nbrun.run_notebooks(out, "ci", notebooks=toys)
    msg = str(err.value)
    assert msg.startswith("notebook 01_fails failed at cell 3 (In [3]; starts `y = x + 1`): ValueError: boom 42")
    assert err.value.notebook == "01_fails" and err.value.cell_index == 3
    assert err.value.output == out / "01_fails.ipynb" and err.value.output.is_file()
    done = nbformat.read(out / "00_ok.ipynb", as_version=4)
    injected = [c for c in done.cells if "injected-parameters" in c.metadata.get("tags", [])][0]
    assert f"figures_dir = \"{out / 'figures'}\"" in injected.source and "x = 5" in injected.source
    assert "x is 5" in "".join(o.get("text", "") for o in done.cells[-1].outputs)
    assert (out / "figures" / "00_ok-bar.html").is_file() and (out / "figures" / "plotly.min.js").is_file()
    summary = (out / "README.md").read_text()
    assert "[00_ok](00_ok.ipynb)" in summary and "00_ok-bar.html" in summary and "**Stopped:** notebook 01_fails" in summary


def test_cli_runs_only_the_chosen_notebook(toys, tmp_path, capsys):
    from lsdkit.cli import main

    out = tmp_path / "b"
    assert main(["notebooks", "run", "--params", "ci", "--out", str(out), "--notebooks", str(toys),
                 "--only", "01"]) == 1
    assert "error: notebook 01_fails failed at cell 3" in capsys.readouterr().out
    assert sorted(p.name for p in out.glob("*.ipynb")) == ["01_fails.ipynb"]
    assert main(["notebooks", "run", "--out", str(out), "--notebooks", str(toys), "--only", "07"]) == 2
    assert "--only '07' matches 0 notebooks; known: 00_ok, 01_fails" in capsys.readouterr().err


def test_params_file_errors(toys):
    table = json.loads((toys / "params.json").read_text())
    table["ci"]["00_ok"] = {"y": 1}
    (toys / "params.json").write_text(json.dumps(table))
    with pytest.raises(nbrun.NotebookError, match=r"ci/00_ok sets \['y'\], which the notebook's parameters cell"):
        nbrun.load_params("ci", toys)
    table["ci"]["00_ok"] = {"figures_dir": "/x"}
    (toys / "params.json").write_text(json.dumps(table))
    with pytest.raises(nbrun.NotebookError, match="the runner sets those"):
        nbrun.load_params("ci", toys)
    del table["full"]["01_fails"]
    (toys / "params.json").write_text(json.dumps(table))
    with pytest.raises(nbrun.NotebookError, match="the 'full' set has no entry for 01_fails"):
        nbrun.load_params("full", toys)
    with pytest.raises(ValueError, match="unknown parameter set 'fast'"):
        nbrun.load_params("fast", toys)


def test_parameters_cell_must_be_literal_assignments(tmp_path):
    _toy(tmp_path, "00_bad", "pass", params="import os\nx = 1")
    with pytest.raises(nbrun.NotebookError, match="only `name = literal` lines"):
        nbrun.parameters_cell(tmp_path / "00_bad.ipynb")


def test_strip_outputs(toys):
    path = toys / "00_ok.ipynb"
    nb = nbformat.read(path, as_version=4)
    nb.cells[2].outputs = [nbformat.v4.new_output("stream", name="stdout", text="x is 1\n")]
    nb.cells[2].execution_count = 4
    nb.cells[2].metadata["execution"] = {"iopub.execute_input": "2025-01-01"}
    nb.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {}}
    nbformat.write(nb, path)
    assert nbrun.strip_outputs(path) is True
    nb = nbformat.read(path, as_version=4)
    assert nb.cells[2].outputs == [] and nb.cells[2].execution_count is None
    assert "execution" not in nb.cells[2].metadata and "widgets" not in nb.metadata
    assert nb.cells[0].metadata["tags"] == ["parameters"]               # tags survive
    assert nbrun.strip_outputs(path) is False


# ----------------------------------------------------------------------------- the real notebooks, CI parameters

@pytest.mark.notebooks
@pytest.mark.skipif(not os.environ.get("LSDKIT_DATA"), reason="the notebooks' tasks need LSDKIT_DATA (CI sets it)")
def test_notebooks_execute_with_ci_parameters(study_run_dir, artifacts_dir):
    out = artifacts_dir / "notebooks-ci"      # executed copies + figures, left for inspection
    try:
        runs = nbrun.run_notebooks(out, "ci", run_dir=study_run_dir, log_output=False)
    except nbrun.NotebookError as exc:
        pytest.fail(str(exc), pytrace=False)
    assert [r.name for r in runs] == EXPECTED
    assert all(r.figures for r in runs), "every notebook saves at least one figure"
