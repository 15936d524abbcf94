"""The set-up files agree: environment.yml mirrors pyproject.toml, CI calls the README's test command
and pins the CPU torch wheel, the declared dependencies are the imported ones, and the wheel ships
the notebooks where ``lsdkit.notebooks`` finds them."""

import ast
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _pyproject():
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def _env_pip_requirements() -> list[str]:
    # environment.yml is simple enough to read without PyYAML: the entries under `- pip:`
    lines = (ROOT / "environment.yml").read_text().splitlines()
    start = next(i for i, l in enumerate(lines) if l.strip() == "- pip:")
    reqs = []
    for line in lines[start + 1:]:
        m = re.match(r"\s+- (.+)$", line)
        if not m:
            break
        reqs.append(m.group(1).strip())
    return reqs


def test_environment_yml_mirrors_pyproject():
    project = _pyproject()["project"]
    wanted = set(project["dependencies"]) | set(project["optional-dependencies"]["test"])
    reqs = _env_pip_requirements()
    assert "-e .[test]" in reqs
    assert set(reqs) - {"-e .[test]"} == wanted


def test_python_versions_agree():
    requires = _pyproject()["project"]["requires-python"]
    env = (ROOT / "environment.yml").read_text()
    m = re.search(r"- python=(\d+\.\d+)", env)
    assert m and requires == f">={m.group(1)}"


def _requirement(name: str):
    from packaging.requirements import Requirement

    reqs = [Requirement(r) for r in _pyproject()["project"]["dependencies"]]
    return next(r for r in reqs if r.name == name)


def _ci_constraints() -> dict[str, str]:
    lines = (ROOT / ".ci" / "constraints.txt").read_text().splitlines()
    pins = [ln.split("#")[0].strip() for ln in lines]
    return dict(p.split("==") for p in pins if p)


def test_torch_is_a_range_and_ci_pins_the_cpu_wheel():
    """pyproject admits any torch 2 from 2.4 (a CUDA or conda build fits); CI, and the README's
    install line, pin the CPU wheel that lies on the build machine's disk with a constraints file."""
    torch_req = _requirement("torch")
    assert not any(s.operator in ("==", "===") for s in torch_req.specifier), torch_req
    assert torch_req.specifier.contains("2.13.0") and torch_req.specifier.contains("2.4.0")
    assert not torch_req.specifier.contains("3.0.0")
    assert _ci_constraints()["torch"] == "2.13.0"
    install = re.compile(r"pip install (-q )?-c \.ci/constraints\.txt -e '\.\[test(,[\w-]+)*\]'")
    assert install.search((ROOT / ".ci" / "run").read_text()), ".ci/run must install with the constraints"
    assert install.search((ROOT / "README.md").read_text()), "README's install line must use the constraints"


@pytest.mark.skipif(not os.environ.get("LSDKIT_CI"), reason="checks the CI install (.ci/run sets LSDKIT_CI)")
def test_ci_installed_the_cpu_torch_wheel():
    import torch

    assert torch.__version__ == f"{_ci_constraints()['torch']}+cpu"
    assert torch.version.cuda is None


# declared, but used by something else than an import in the kit
NOT_IMPORTED = {"jupyterlab": "the notebook UI (`jupyter lab notebooks/`)",
                "ipykernel": "the python3 kernel papermill runs the notebooks in",
                "anywidget": "plotly's FigureWidget (lsdkit.viz's timestep explorer) imports it"}
IMPORT_NAMES = {"scikit-learn": "sklearn", "umap-learn": "umap", "ipython": "IPython"}


def _imported_modules() -> set[str]:
    sources = [p.read_text() for p in (ROOT / "lsdkit").rglob("*.py")]
    for nb in (ROOT / "notebooks").glob("*.ipynb"):
        sources += ["".join(c["source"]) for c in json.loads(nb.read_text())["cells"] if c["cell_type"] == "code"]
    found = set()
    for source in sources:
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.Import):
                found |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                found.add(node.module.split(".")[0])
    return found - set(sys.stdlib_module_names) - {"lsdkit"}


def test_declared_dependencies_are_the_imported_ones():
    from packaging.requirements import Requirement

    project = _pyproject()["project"]
    declared = {Requirement(r).name for r in project["dependencies"]}
    modules = {IMPORT_NAMES.get(d, d): d for d in declared}
    extras = {IMPORT_NAMES.get(n, n.replace("-", "_")) for group, reqs in project["optional-dependencies"].items()
              if group not in ("test", "browser") for n in (Requirement(r).name for r in reqs)}
    imported = _imported_modules()
    assert imported - set(modules) - extras == set(), "imported by the kit but not declared in pyproject.toml"
    unused = {d for m, d in modules.items() if m not in imported} - set(NOT_IMPORTED)
    assert unused == set(), "declared in pyproject.toml but never imported (or listed in NOT_IMPORTED)"
    assert set(NOT_IMPORTED) <= declared


def test_results_keep_each_number_beside_its_command():
    """RESULTS.md holds the measured tables, each section with the command that produced it; the
    README links its sections (GitHub's heading anchors) instead of repeating the numbers."""
    results = (ROOT / "RESULTS.md").read_text()
    sections = re.split(r"^## ", results, flags=re.M)[1:]
    assert sections
    slugs = set()
    for section in sections:
        heading = section.splitlines()[0]
        slugs.add(re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-"))
        assert "|---|" in section, f"RESULTS.md section {heading!r} has no table"
        command = r"(^|`)(lsdkit \w+|python benchmarks/\w+\.py)"       # the kit's commands and its benchmarks
        assert re.search(command, section, re.M), f"RESULTS.md section {heading!r} names no command"
    readme = (ROOT / "README.md").read_text()
    anchors = re.findall(r"\(RESULTS\.md#([\w-]+)\)", readme)
    assert anchors and set(anchors) <= slugs
    assert "| LSD-TN latent |" not in readme and "| deeploc10 | accuracy |" not in readme


# --- the wheel carries the notebooks ------------------------------------------------------------
SHARE = "share/lsdkit/notebooks"


def _shipped_notebook_files() -> list[str]:
    return sorted(p.name for p in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")) + ["params.json"]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """A wheel built offline (no build isolation, no dependencies) from a copy of the sources."""
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    for name in ("lsdkit", "notebooks"):
        shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__", ".ipynb_checkpoints"))
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
                           "-q", str(src), "-w", str(tmp / "dist")], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    return next((tmp / "dist").glob("lsdkit-*.whl"))


def test_wheel_ships_the_notebooks_and_their_parameters(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    data = re.compile(rf"lsdkit-[^/]+\.data/data/{SHARE}/([^/]+)$")
    shipped = sorted(m.group(1) for n in names if (m := data.match(n)))
    assert set(_shipped_notebook_files()) <= set(shipped), shipped
    assert "lsdkit/notebooks.py" in names and "lsdkit/data/bundled/README.md" in names
    assert not any(".ipynb_checkpoints" in n for n in names)


def test_notebooks_dir_finds_the_installed_copy(wheel, tmp_path, monkeypatch):
    """Installed from the wheel (pip's own placement) into a prefix, with no source checkout beside the
    package: ``lsdkit notebooks run`` still finds the notebooks and their parameter sets."""
    import sysconfig

    from lsdkit import notebooks as nbrun

    prefix = tmp_path / "prefix"
    done = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "--no-compile", "-q",
                           "--ignore-installed",              # never uninstall the environment's own lsdkit
                           "--prefix", str(prefix), str(wheel)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    installed = prefix / SHARE
    assert set(_shipped_notebook_files()) <= {p.name for p in installed.iterdir()}

    assert nbrun.notebooks_dir() == nbrun.checkout_notebooks_dir() == ROOT / "notebooks"   # checkout first
    get_path = sysconfig.get_path
    monkeypatch.setattr(nbrun, "checkout_notebooks_dir", lambda: tmp_path / "no-checkout" / "notebooks")
    monkeypatch.setattr(sys, "prefix", str(tmp_path / "elsewhere"))
    monkeypatch.setattr(sysconfig, "get_path", lambda name, *a, **kw: str(prefix) if name == "data"
                        else get_path(name, *a, **kw))
    assert nbrun.notebooks_dir() == installed
    assert [p.name for p in nbrun.list_notebooks()] == _shipped_notebook_files()[:-1]
    assert (installed / "params.json").read_text() == (ROOT / "notebooks" / "params.json").read_text()
    assert set(nbrun.load_params("ci")) == {p.stem for p in nbrun.list_notebooks()}
    shutil.rmtree(installed)
    with pytest.raises(nbrun.NotebookError, match=f"no notebooks folder \\(looked in .*{SHARE}"):
        nbrun.notebooks_dir()


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    m = re.search(r"<!-- test-command -->\s*```(?:bash|sh)?\n(.+?)\n```", readme, re.S)
    assert m, "README.md must give the test command in a fenced block after <!-- test-command -->"
    command = m.group(1).strip().splitlines()[-1].strip()
    assert command in (ROOT / ".ci" / "run").read_text()
