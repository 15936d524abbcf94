"""The set-up files agree: environment.yml mirrors pyproject.toml, CI calls the README's test command."""

import re
import tomllib
from pathlib import Path

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


def test_torch_is_pinned_to_the_cpu_wheel_on_disk():
    assert "torch==2.13.0" in _pyproject()["project"]["dependencies"]


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    m = re.search(r"<!-- test-command -->\s*```(?:bash|sh)?\n(.+?)\n```", readme, re.S)
    assert m, "README.md must give the test command in a fenced block after <!-- test-command -->"
    command = m.group(1).strip().splitlines()[-1].strip()
    assert command in (ROOT / ".ci" / "run").read_text()
