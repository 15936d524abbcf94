"""Support for the browser tests: JupyterLab's lifecycle, notebook preparation, page helpers.

* :func:`browser_unavailable` says why the browser tests cannot run here (no Playwright, no
  Chromium); the tests skip with that reason, or fail with it when ``LSDKIT_REQUIRE_BROWSER=1``
  (CI sets this after ``.ci/install-browser`` succeeded, so a broken install never passes silently).
* :class:`JupyterLab` starts ``python -m jupyterlab`` from this environment on 127.0.0.1, a free
  port and a random token, with its config, data, runtime and settings folders in a temp dir
  (nothing of ``~/.jupyter`` leaks in) and a kernel spec named after the environment, so the
  notebooks run in the project's environment. ``stop()`` asks ``/api/shutdown``, then SIGTERM,
  then SIGKILL, and also ends kernels that outlived the server; it runs in a ``finally``.
* :func:`prepare_notebook` writes a copy of a notebook with its ``parameters`` cell replaced.
* The page helpers drive JupyterLab through ``window.jupyterapp`` (exposed with
  ``--LabApp.expose_app_in_browser``): run all cells, read the cells' outputs from the notebook
  model, find the timestep explorer widget, read its plotly figure, move its slider by keyboard.

Chromium is the Debian package (``/usr/bin/chromium``, or ``$LSDKIT_CHROMIUM``) driven by the
``playwright`` Python package with ``executable_path``; no browser is downloaded.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ARTIFACTS_ENV = "LSDKIT_ARTIFACTS"          # screenshots go to $LSDKIT_ARTIFACTS/browser
REQUIRE_ENV = "LSDKIT_REQUIRE_BROWSER"      # "1": a missing browser fails the test instead of skipping
CHROMIUM_ENV = "LSDKIT_CHROMIUM"
CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome")
# root needs --no-sandbox; the rest keep a closed network quiet and the start fast
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage"]


# --------------------------------------------------------------------------- availability

def chromium_executable() -> str | None:
    """The Chromium binary: ``$LSDKIT_CHROMIUM``, else the first Debian/Ubuntu path that exists."""
    explicit = os.environ.get(CHROMIUM_ENV)
    if explicit:
        return explicit if os.access(explicit, os.X_OK) else None
    return next((p for p in CHROMIUM_CANDIDATES if os.access(p, os.X_OK)), None)


def browser_unavailable() -> str | None:
    """Why the browser tests cannot run here, or None when Playwright and Chromium are present."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the Python package playwright is not installed (pip install 'lsdkit[browser]' or run .ci/install-browser)"
    exe = chromium_executable()
    if exe is None:
        where = os.environ.get(CHROMIUM_ENV) or " or ".join(CHROMIUM_CANDIDATES)
        return (f"Chromium not found at {where} (apt-get install chromium chromium-driver, "
                f"or set {CHROMIUM_ENV})")
    return None


def browser_required() -> bool:
    return os.environ.get(REQUIRE_ENV, "") not in ("", "0", "false", "no")


def artifacts_dir() -> Path:
    """Where screenshots go: ``$LSDKIT_ARTIFACTS/browser``, else ``<repo>/test-artifacts/browser``."""
    base = os.environ.get(ARTIFACTS_ENV)
    out = (Path(base) if base else REPO / "test-artifacts") / "browser"
    out.mkdir(parents=True, exist_ok=True)
    return out


# --------------------------------------------------------------------------- kernel and notebooks

def kernel_name() -> str:
    """A kernel spec name for this environment, e.g. ``lsdkit-venv`` for ``/work/venv``."""
    base = re.sub(r"[^a-z0-9._-]+", "-", Path(sys.prefix).name.lower()).strip(".-") or "env"
    return f"lsdkit-{base}"


def write_kernelspec(data_dir: Path) -> str:
    """Install a kernel spec running this interpreter into ``data_dir/kernels``; returns its name."""
    name = kernel_name()
    spec = {"argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
            "display_name": f"Python ({name}: {sys.prefix})", "language": "python",
            "metadata": {"debugger": False}}
    folder = data_dir / "kernels" / name
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "kernel.json").write_text(json.dumps(spec, indent=1))
    return name


def prepare_notebook(src: Path, dest: Path, params: dict | None = None, kernel: str | None = None) -> Path:
    """Copy notebook ``src`` to ``dest`` without outputs, with ``params`` replacing the defaults in
    its ``parameters`` cell (which must exist if ``params`` is given) and ``kernel`` as its kernel."""
    import nbformat

    nb = nbformat.read(src, as_version=4)
    if params:
        cells = [c for c in nb.cells if "parameters" in c.get("metadata", {}).get("tags", [])]
        if len(cells) != 1:
            raise ValueError(f"{src.name}: expected one cell tagged 'parameters', found {len(cells)}")
        lines = [cells[0].source.rstrip(), "", "# browser test: CI parameters"]
        lines += [f"{k} = {v!r}" for k, v in params.items()]
        cells[0].source = "\n".join(lines) + "\n"
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    nb.metadata.pop("widgets", None)
    if kernel is not None:
        nb.metadata["kernelspec"] = {"name": kernel, "display_name": f"Python ({kernel})", "language": "python"}
    dest.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, dest)
    return dest


# --------------------------------------------------------------------------- the server

def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# User settings for the test profile: render every cell (so the DOM has every output), no news.
_USER_SETTINGS = {
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {"fetchNews": "false",
                                                                         "checkForUpdates": False},
}


class JupyterLab:
    """A JupyterLab server on 127.0.0.1 serving ``root_dir``; use as a context manager.

    ``home`` (a temp dir) holds its config/data/runtime/settings folders and ``jupyter.log``.
    """

    def __init__(self, root_dir: Path, home: Path, *, env: dict | None = None, start_timeout: float = 90.0):
        self.root_dir, self.home = Path(root_dir), Path(home)
        self.token = secrets.token_hex(16)
        self.port: int | None = None
        self.proc: subprocess.Popen | None = None
        self.extra_env = dict(env or {})
        self.start_timeout = start_timeout
        self.log_path = self.home / "jupyter.log"
        self.kernel = None
        self.returncode: int | None = None
        self.stopped_by: str | None = None

    # ---- lifecycle
    def __enter__(self) -> JupyterLab:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def _environment(self) -> dict:
        dirs = {name: self.home / name for name in ("config", "data", "runtime", "ipython", "settings", "workspaces")}
        for d in dirs.values():
            d.mkdir(parents=True, exist_ok=True)
        self.kernel = write_kernelspec(dirs["data"])
        for rel, value in _USER_SETTINGS.items():
            path = dirs["settings"] / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(value))
        env = dict(os.environ)
        env.update(JUPYTER_CONFIG_DIR=str(dirs["config"]), JUPYTER_DATA_DIR=str(dirs["data"]),
                   JUPYTER_RUNTIME_DIR=str(dirs["runtime"]), IPYTHONDIR=str(dirs["ipython"]),
                   JUPYTER_PLATFORM_DIRS="0", PYTHONUNBUFFERED="1", MPLBACKEND="Agg")
        env.pop("JUPYTER_PATH", None)
        env.update(self.extra_env)
        self._dirs = dirs
        return env

    def _command(self) -> list[str]:
        return [sys.executable, "-m", "jupyterlab", "--no-browser",
                "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={self.port}", "--ServerApp.port_retries=0",
                f"--IdentityProvider.token={self.token}", f"--ServerApp.root_dir={self.root_dir}",
                "--LabApp.expose_app_in_browser=True",
                f"--LabApp.user_settings_dir={self._dirs['settings']}",
                f"--LabApp.workspaces_dir={self._dirs['workspaces']}",
                f"--MappingKernelManager.default_kernel_name={self.kernel}",
                "--LanguageServerManager.autodetect=False"] + (["--allow-root"] if os.geteuid() == 0 else [])

    def start(self) -> None:
        env = self._environment()
        for attempt in range(3):   # the free port can be taken between probe and bind: retry
            self.port = free_port()
            with open(self.log_path, "ab") as log:
                self.proc = subprocess.Popen(self._command(), cwd=self.root_dir, env=env, stdout=log,
                                             stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                             start_new_session=True)
            if self._wait_ready():
                return
            if "already in use" in self.log_tail() and attempt < 2:
                self.proc = None
                continue
            code = self.proc.poll()
            why = (f"exited with code {code}" if code is not None
                   else f"did not answer /api/status within {self.start_timeout:.0f} s")
            raise RuntimeError(f"JupyterLab {why}; log tail ({self.log_path}):\n{self.log_tail()}")

    def _wait_ready(self) -> bool:
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            try:
                with urllib.request.urlopen(self.url("api/status"), timeout=2) as r:
                    if r.status == 200:
                        return True
            except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
                pass
            time.sleep(0.25)
        return False

    def url(self, path: str = "lab") -> str:
        sep = "&" if "?" in path else "?"
        return f"http://127.0.0.1:{self.port}/{path.lstrip('/')}{sep}token={self.token}"

    def _descendants(self) -> list[int]:
        """PIDs of the server's descendants (kernels run in sessions of their own), from /proc."""
        children: dict[int, list[int]] = {}
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue
            children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
        out, todo = [], [self.proc.pid]
        while todo:
            kids = children.get(todo.pop(), [])
            out += kids
            todo += kids
        return out

    def stop(self, timeout: float = 20.0) -> None:
        """Shut down cleanly (``POST /api/shutdown``), else SIGTERM, else SIGKILL; end leftover kernels."""
        proc = self.proc
        if proc is None or proc.poll() is not None:
            self.returncode = proc.returncode if proc is not None else None
            return
        children = self._descendants()            # kernels run in sessions of their own: remember them
        try:
            req = urllib.request.Request(self.url("api/shutdown"), method="POST", data=b"",
                                         headers={"Authorization": f"token {self.token}"})
            urllib.request.urlopen(req, timeout=5).close()
            proc.wait(timeout)
            self.stopped_by = "api/shutdown"
        except (urllib.error.URLError, OSError, subprocess.TimeoutExpired):
            try:
                proc.terminate()
                proc.wait(10)
                self.stopped_by = "SIGTERM"
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)
                self.stopped_by = "SIGKILL"
        try:   # anything of the server's process group that is still alive
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        for pid in children:
            try:
                os.kill(pid, signal.SIGKILL)
                self.stopped_by += f" (+killed leftover pid {pid})"
            except (ProcessLookupError, PermissionError):
                pass
        self.returncode = proc.returncode

    def log_tail(self, n: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except FileNotFoundError:
            return "(no log)"


# --------------------------------------------------------------------------- page helpers

def launch_chromium(playwright):
    """Headless Debian Chromium through Playwright (Playwright gives it a fresh profile dir)."""
    return playwright.chromium.launch(executable_path=chromium_executable(), headless=True, args=CHROMIUM_ARGS)


def open_notebook(page, lab: JupyterLab, name: str, timeout_s: float = 120.0) -> None:
    """Open ``name`` (relative to the server root) and wait until its kernel is connected and idle."""
    page.goto(lab.url(f"lab/tree/{name}"), wait_until="domcontentloaded")
    page.wait_for_function(
        """(name) => {
            const app = window.jupyterapp;
            const w = app && app.shell && app.shell.currentWidget;
            if (!w || !w.context || !w.content || w.context.path !== name) return false;
            const k = w.sessionContext && w.sessionContext.session && w.sessionContext.session.kernel;
            return !!(k && k.connectionStatus === 'connected' && k.status === 'idle');
        }""", arg=name, timeout=timeout_s * 1000, polling=250)
    page.evaluate("() => window.jupyterapp.shell.collapseLeft()")   # the file browser: room for wide figures


def run_all_cells(page, timeout_s: float) -> bool:
    """Run all cells with JupyterLab's ``notebook:run-all-cells`` command and wait for it to finish.

    Returns the command's result (False when a cell raised: JupyterLab then stops the run).
    """
    page.evaluate("""() => {
        window.__lsdkitRun = {done: false};
        window.jupyterapp.commands.execute('notebook:run-all-cells').then(
            ok => { window.__lsdkitRun = {done: true, ok: ok}; },
            err => { window.__lsdkitRun = {done: true, ok: false, error: String(err)}; });
    }""")
    page.wait_for_function("() => window.__lsdkitRun.done", timeout=timeout_s * 1000, polling=500)
    page.wait_for_function("""() => {
        const k = window.jupyterapp.shell.currentWidget.sessionContext.session.kernel;
        return k.status === 'idle';
    }""", timeout=60_000, polling=250)
    state = page.evaluate("() => window.__lsdkitRun")
    if state.get("error"):
        raise RuntimeError(f"notebook:run-all-cells failed in the page: {state['error']}")
    return bool(state.get("ok"))


def cell_report(page) -> list[dict]:
    """Every code cell of the current notebook: index, execution count, source head and outputs
    (type, stream name, error name/value, text head, mime types), read from the notebook model."""
    return page.evaluate("""() => {
        const panel = window.jupyterapp.shell.currentWidget;
        const out = [];
        panel.content.widgets.forEach((cell, i) => {
            const m = cell.model;
            if (m.type !== 'code') return;
            const text = t => (typeof t === 'string' ? t : (t || []).join(''));
            out.push({index: i, count: m.executionCount, source: m.sharedModel.getSource(),
                      outputs: m.outputs.toJSON().map(o => ({
                          type: o.output_type, name: o.name || null, ename: o.ename || null,
                          evalue: o.evalue || null, traceback: (o.traceback || []).join('\\n').slice(-3000),
                          text: text(o.text).slice(-3000), mimes: o.data ? Object.keys(o.data) : []}))});
        });
        return out;
    }""")


_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_DOM_ERRORS = ("Error displaying widget", "Failed to load model class", "Error rendering", "Could not create view",
               "Javascript Error")


def notebook_errors(page, cells: list[dict]) -> list[str]:
    """Problems to fail on: error outputs, tracebacks on stderr, code cells that did not run, and
    widget/renderer error messages shown in the page."""
    problems = []
    for c in cells:
        head = next((ln for ln in c["source"].splitlines() if ln.strip()), "")[:70]
        where = f"cell {c['index']} (`{head}`)"
        if c["source"].strip() and c["count"] is None:
            problems.append(f"{where} was not executed")
        for o in c["outputs"]:
            if o["type"] == "error":
                tb = _ANSI.sub("", o["traceback"])
                problems.append(f"{where} raised {o['ename']}: {o['evalue']}\n{tb}")
            elif o["type"] == "stream" and o["name"] == "stderr" and "Traceback (most recent call last)" in o["text"]:
                problems.append(f"{where} printed a traceback on stderr:\n{o['text']}")
    shown = page.evaluate("""(needles) => Array.from(document.querySelectorAll('.jp-OutputArea-output'))
        .map(e => e.innerText).filter(t => needles.some(n => t.includes(n)))""", list(_DOM_ERRORS))
    problems += [f"the page shows an output error: {t[:500]}" for t in shown]
    return problems


# The timestep explorer: the widget box holding a slider and a plotly figure.
EXPLORER = ".widget-vbox:has(> .widget-slider):has(.js-plotly-plot)"


def figure_state(explorer) -> dict:
    """The explorer's plotly figure (the rendered ``.js-plotly-plot`` element's data and title),
    the score text and the slider's readout."""
    return explorer.evaluate("""(box) => {
        const plot = box.querySelector('.js-plotly-plot');
        // _fullData: the traces as drawn (typed-array payloads {dtype, bdata} decoded)
        const traces = (plot && (plot._fullData || plot.data)) || [];
        const arr = v => Array.from(v || [], Number);
        const html = box.querySelector('.widget-html-content');   // the HTML widget with the score
        const readout = box.querySelector('.widget-readout');
        return {
            traces: traces.map(t => ({name: t.name || null, x: arr(t.x), y: arr(t.y)})),
            title: (plot && plot.layout && plot.layout.title && plot.layout.title.text) || null,
            score: html ? html.innerText.replace(/\\s+/g, ' ').trim() : null,   // &nbsp; and runs of spaces -> one space
            readout: readout ? readout.innerText.trim() : null,
            handle: (box.querySelector('.noUi-handle') || {}).getAttribute ?
                    box.querySelector('.noUi-handle').getAttribute('aria-valuenow') : null,
            svg_points: plot ? plot.querySelectorAll('.scatterlayer .point').length : 0,
        };
    }""")


def move_slider(page, explorer, presses: int = 1, key: str = "ArrowRight") -> None:
    """Move the explorer's noUiSlider handle by keyboard (focus the handle, press ``key``)."""
    handle = explorer.locator(".noUi-handle").first
    handle.scroll_into_view_if_needed()
    handle.focus()
    for _ in range(presses):
        page.keyboard.press(key)
