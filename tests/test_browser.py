"""End-to-end: the notebooks in JupyterLab, in headless Chromium (marker ``browser``).

Each test starts JupyterLab from this environment (127.0.0.1, a free port, a random token, a kernel
named after the environment), opens a copy of a notebook whose ``parameters`` cell carries the CI
parameter set of ``notebooks/params.json``, runs all cells through JupyterLab's own command and
fails on any error output. Then:

* ``04_timestep_sweep``: moves the timestep explorer's slider one step (keyboard on the noUiSlider
  handle) and asserts that the plotly figure's points, its title and the probe score shown all
  change to the new t; screenshots of the widget before and after.
* ``03_latent_geometry``: asserts the UMAP figures are rendered plotly plots with points drawn.

The notebooks' tasks need ``LSDKIT_DATA`` (conftest's ``data_dir`` skips without it; the kernel
inherits it). JupyterLab is shut down in the fixture's teardown (``/api/shutdown``, then
SIGTERM/SIGKILL), also when the test fails. Screenshots go to ``$LSDKIT_ARTIFACTS/browser``
(default ``test-artifacts/browser``) and are printed; on failure also ``<notebook>-failure.png``
and ``<notebook>-failure.log`` (browser console, JupyterLab log tail). Without Playwright or Chromium the tests are skipped
with the reason (``-ra`` prints it); with ``LSDKIT_REQUIRE_BROWSER=1`` (CI after
``.ci/install-browser`` succeeded) that is a failure instead.

The two notebooks share one study run directory per session (03 trains the tiny autoencoders, 04
reuses them and trains the denoisers). Knobs: ``LSDKIT_CI_RUN_DIR`` reuses an existing run
directory (e.g. one left by ``lsdkit notebooks run --params ci``: its models are then loaded, not
trained); ``LSDKIT_BROWSER_PARAMS`` (JSON) overrides CI parameters for a quicker local check of the
interface, e.g. ``{"study_overrides": {"encoder_steps": 10, "diffusion_steps": 10}, "tasks":
["deeploc10"]}`` (``study_overrides`` is merged; other keys apply where a notebook declares them);
``LSDKIT_BROWSER_TIMEOUT`` (seconds, default 1800) bounds Run All per notebook.
Run: ``python -m pytest -m browser -v``.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from pathlib import Path

import pytest

import browser_support as bs

pytestmark = pytest.mark.browser

NOTEBOOKS = bs.REPO / "notebooks"
RUN_TIMEOUT_S = float(os.environ.get("LSDKIT_BROWSER_TIMEOUT", "1800"))   # per notebook, all cells
VIEWPORT = {"width": 1920, "height": 1080}


# --------------------------------------------------------------------------- fixtures

@pytest.fixture(scope="session")
def chromium():
    """Headless Debian Chromium via Playwright; skip (or fail, if required) when unavailable."""
    reason = bs.browser_unavailable()
    if reason:
        if bs.browser_required():
            pytest.fail(f"{bs.REQUIRE_ENV} is set but the browser tests cannot run: {reason}")
        pytest.skip(f"browser test skipped: {reason}")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = bs.launch_chromium(p)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture(scope="session")
def ci_params() -> dict[str, dict]:
    from lsdkit.notebooks import load_params

    return load_params("ci", NOTEBOOKS)


@pytest.fixture
def lab(tmp_path):
    """A JupyterLab server serving ``tmp_path/root``; shut down (and checked gone) at teardown."""
    root = tmp_path / "root"
    root.mkdir()
    server = bs.JupyterLab(root, tmp_path / "lab")
    try:
        server.start()
        yield server
    finally:
        server.stop()
    assert server.proc is None or server.proc.poll() is not None, "JupyterLab is still running after stop()"
    print(f"JupyterLab on port {server.port} stopped via {server.stopped_by} (exit code {server.returncode})")


@pytest.fixture
def page(chromium):
    context = chromium.new_context(viewport=VIEWPORT)
    page = context.new_page()
    page.console_lines = []
    page.on("console", lambda m: page.console_lines.append(f"{m.type}: {m.text}"))
    page.on("pageerror", lambda e: page.console_lines.append(f"pageerror: {e}"))
    try:
        yield page
    finally:
        context.close()


@pytest.fixture
def artifacts(capsys):
    """The artifacts folder and a function that records (and prints) a file written there."""
    out = bs.artifacts_dir()
    written: list[tuple[Path, str]] = []

    def record(path: Path, what: str) -> Path:
        written.append((path, what))
        return path

    record.dir = out
    yield record
    with capsys.disabled():
        for path, what in written:
            print(f"\n  [browser artifact] {path}  ({what})", end="")
        if written:
            print()


# --------------------------------------------------------------------------- helpers

@contextlib.contextmanager
def evidence_on_failure(page, lab, stem: str, artifacts):
    """On any failure: screenshot, console log and JupyterLab log tail into the artifacts."""
    try:
        yield
    except BaseException:
        with contextlib.suppress(Exception):
            page.screenshot(path=str(artifacts.dir / f"{stem}-failure.png"), full_page=False)
            artifacts(artifacts.dir / f"{stem}-failure.png", "the page when the test failed")
        with contextlib.suppress(Exception):
            log = artifacts.dir / f"{stem}-failure.log"
            log.write_text("== browser console\n" + "\n".join(page.console_lines)
                           + f"\n\n== JupyterLab log tail\n{lab.log_tail(80)}\n")
            artifacts(log, "browser console and JupyterLab log")
        raise


def open_and_run(page, lab, ci_params, run_dir: Path, stem: str) -> list[dict]:
    """Copy notebook ``stem`` with CI parameters into the server root, open it, run all cells and
    assert none failed; returns the cell report."""
    params = dict(ci_params[stem])
    if extra := os.environ.get("LSDKIT_BROWSER_PARAMS"):   # a developer's quicker variant, never CI
        from lsdkit.notebooks import parameters_cell

        declared = parameters_cell(NOTEBOOKS / f"{stem}.ipynb")
        for key, value in json.loads(extra).items():
            if key == "study_overrides":
                params[key] = {**params.get(key, {}), **value}
            elif key in declared:
                params[key] = value
        print(f"{stem}: NOTE LSDKIT_BROWSER_PARAMS overrides the CI parameters: {extra}")
    params["run_dir"] = str(run_dir)
    params["figures_dir"] = str(lab.root_dir / "figures")
    bs.prepare_notebook(NOTEBOOKS / f"{stem}.ipynb", lab.root_dir / f"{stem}.ipynb", params, lab.kernel)
    bs.open_notebook(page, lab, f"{stem}.ipynb")
    t0 = time.monotonic()
    ok = bs.run_all_cells(page, RUN_TIMEOUT_S)
    cells = bs.cell_report(page)
    problems = bs.notebook_errors(page, cells)
    assert not problems, f"{stem}: errors after Run All ({time.monotonic() - t0:.0f} s):\n" + "\n\n".join(problems)
    assert ok, f"{stem}: notebook:run-all-cells reported failure but no cell shows an error"
    print(f"{stem}: all {len(cells)} code cells ran in {time.monotonic() - t0:.0f} s")
    return cells


def changed_points(before: dict, after: dict) -> list[str]:
    """Names of the point traces (UMAP panels) whose coordinates differ between two states."""
    out = []
    for a, b in zip(before["traces"], after["traces"]):
        if len(a["x"]) > 1 and (a["x"] != b["x"] or a["y"] != b["y"]):
            out.append(a["name"])
    return out


# --------------------------------------------------------------------------- tests

def test_latent_geometry_umap_renders(data_dir, page, lab, ci_params, study_run_dir, artifacts):
    stem = "03_latent_geometry"
    with evidence_on_failure(page, lab, stem, artifacts):
        open_and_run(page, lab, ci_params, study_run_dir, stem)
        plots = page.locator(".jp-Cell-outputArea .js-plotly-plot")
        plots.first.wait_for(state="attached", timeout=60_000)
        figures = plots.evaluate_all("""(els) => els.map(el => ({
            title: (el.layout && el.layout.title && el.layout.title.text) || '',
            points: (el._fullData || []).reduce((n, t) => n + (t.x ? t.x.length : 0), 0),
            drawn: el.querySelectorAll('.scatterlayer .point').length}))""")
        assert figures, f"{stem}: no plotly figure is rendered in the notebook"
        umaps = [f for f in figures if "UMAP" in f["title"]]
        assert umaps, f"{stem}: no plotly figure titled UMAP among {[f['title'] for f in figures]}"
        for f in umaps:
            assert f["points"] > 0 and f["drawn"] > 0, f"{stem}: UMAP figure {f['title']!r} has no points drawn: {f}"
        print(f"{stem}: {len(umaps)} UMAP figure(s): " + "; ".join(f"{f['title']} ({f['drawn']} points)" for f in umaps))
        shot = artifacts.dir / f"{stem}-umap.png"
        plots.first.screenshot(path=str(shot))
        artifacts(shot, f"the residue UMAP as rendered in JupyterLab ({umaps[0]['drawn']} points)")
        shot = artifacts.dir / f"{stem}-notebook.png"
        page.screenshot(path=str(shot))
        artifacts(shot, "JupyterLab window after Run All")


def test_timestep_slider_updates_figure_and_score(data_dir, page, lab, ci_params, study_run_dir, artifacts):
    stem = "04_timestep_sweep"
    with evidence_on_failure(page, lab, stem, artifacts):
        open_and_run(page, lab, ci_params, study_run_dir, stem)
        boxes = page.locator(bs.EXPLORER)
        boxes.first.wait_for(timeout=60_000)
        assert boxes.count() == 1, f"{stem}: the timestep explorer is displayed {boxes.count()} times (expected once)"
        explorer = boxes.first
        page.wait_for_function("(box) => { const p = box.querySelector('.js-plotly-plot');"
                               " return !!(p && p.data && p.data.length && box.querySelector('.noUi-handle')); }",
                               arg=explorer.element_handle(), timeout=60_000)
        explorer.scroll_into_view_if_needed()
        before = bs.figure_state(explorer)
        assert before["score"], f"{stem}: the explorer shows no score text: {before}"
        shot = artifacts.dir / f"{stem}-explorer-before.png"
        explorer.screenshot(path=str(shot))
        artifacts(shot, f"explorer before moving the slider: t = {before['readout']}, score text {before['score']!r}")

        bs.move_slider(page, explorer, presses=1)
        page.wait_for_function("([box, t]) => (box.querySelector('.widget-readout') || {}).innerText !== t",
                               arg=[explorer.element_handle(), before["readout"]], timeout=10_000)
        # the kernel's callback then updates figure and score: poll until both changed (or 30 s)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            now = bs.figure_state(explorer)
            if now["title"] != before["title"] and now["score"] != before["score"] and changed_points(before, now):
                break
            time.sleep(0.25)
        time.sleep(0.5)   # let plotly finish redrawing before the screenshot
        after = bs.figure_state(explorer)
        shot = artifacts.dir / f"{stem}-explorer-after.png"
        explorer.screenshot(path=str(shot))
        artifacts(shot, f"explorer after one step right: t = {after['readout']}, score text {after['score']!r}")

        moved = f"slider moved t {before['readout']} -> {after['readout']}"
        assert after["readout"] != before["readout"], f"{stem}: the slider did not move ({before['readout']})"
        problems = []
        if after["title"] == before["title"]:
            problems.append(f"the figure title did not change ({before['title']!r})")
        if not changed_points(before, after):
            problems.append("no UMAP point moved in the figure")
        if after["score"] == before["score"]:
            problems.append(f"the probe score shown did not change ({before['score']!r})")
        elif f"t = {after['readout']} " not in after["score"] + " ":
            problems.append(f"the score text {after['score']!r} does not name the slider's t = {after['readout']}")
        assert not problems, f"{stem}: {moved}, but " + "; ".join(problems)
        print(f"{stem}: {moved}; score {before['score']!r} -> {after['score']!r}; "
              f"{len(changed_points(before, after))} point trace(s) moved")
        shot = artifacts.dir / f"{stem}-notebook.png"
        page.screenshot(path=str(shot))
        artifacts(shot, "JupyterLab window at the end of the test")
