"""Showing figures in a notebook and saving them: HTML for plotly, PNG for matplotlib, HTML + CSV for tables.

``setup(figures_dir)`` returns a :class:`FigureSaver` whose ``show(fig, name)`` displays a figure
and, when a figures directory is set (argument or ``$LSDKIT_FIGURES``), also writes it there:
plotly as HTML next to one shared ``plotly.min.js`` (works offline, no Chrome/kaleido needed),
matplotlib as PNG, tables as HTML + CSV. A headless notebook run therefore leaves an inspectable
report. Every file is written atomically (:mod:`lsdkit.io`).
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import plotly.graph_objects as go

from lsdkit.io import atomic_open, atomic_write_text

FIGURES_ENV = "LSDKIT_FIGURES"


def _is_explorer(obj) -> bool:
    from lsdkit.viz.explorer import TimestepExplorer   # explorer imports the figure builders, not this module
    return isinstance(obj, TimestepExplorer)


class FigureSaver:
    """Displays figures in a notebook and, if ``figures_dir`` is set, saves each one there.

    ``prefix`` (e.g. the notebook name) starts every file name, so figures of several notebooks
    can share one directory and one ``plotly.min.js``.
    """

    def __init__(self, figures_dir: str | os.PathLike | None = None, prefix: str = ""):
        value = figures_dir if figures_dir is not None else os.environ.get(FIGURES_ENV) or None
        self.figures_dir = Path(value) if value else None
        self.prefix = prefix
        self.saved: list[Path] = []

    def save(self, fig, name: str) -> list[Path]:
        if self.figures_dir is None:
            return []
        paths = save_figure(fig, self.figures_dir, f"{self.prefix}{name}")
        self.saved.extend(paths)
        return paths

    def show(self, fig, name: str) -> None:
        """Display ``fig`` (plotly, matplotlib, seaborn grid, DataFrame/Styler, widget) and save it.

        Returns None, so a ``figs.show(...)`` ending a cell is not displayed a second time.
        """
        from IPython.display import display

        if _is_explorer(fig):  # a live widget: nothing to save (save static_fallback())
            display(fig.widget)
            return
        paths = self.save(fig, name)
        mpl = _matplotlib_figure(fig)
        if mpl is not None:
            import matplotlib.pyplot as plt
            display(mpl)
            plt.close(mpl)
        else:
            display(fig)
        if paths:
            print("saved " + ", ".join(p.name for p in paths))


def setup(figures_dir: str | os.PathLike | None = None, prefix: str = "",
          renderer: str = "plotly_mimetype+notebook_connected") -> FigureSaver:
    """Notebook set-up: plotly renderer, seaborn theme, wide table cells; returns the :class:`FigureSaver`.

    The default renderer gives JupyterLab its native plotly output and a plain-HTML copy for
    ``nbconvert --to html`` (plotly 6+ otherwise drops figures there, plotly.py#5365).
    """
    import plotly.io as pio
    import seaborn as sns

    pio.renderers.default = renderer
    sns.set_theme(style="whitegrid", context="notebook")
    pd.set_option("display.max_colwidth", 200)     # findings and evidence are sentences
    return FigureSaver(figures_dir, prefix)


def save_figure(fig, out_dir: str | os.PathLike, name: str) -> list[Path]:
    """Write ``fig`` to ``out_dir/name.<ext>`` atomically and return the paths written.

    plotly -> ``.html`` referencing ``plotly.min.js`` in the same directory (written once);
    matplotlib figure / axes / seaborn grid -> ``.png``; DataFrame or Styler -> ``.html`` + ``.csv``;
    the timestep explorer -> its :meth:`~lsdkit.viz.explorer.TimestepExplorer.static_fallback`.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if isinstance(fig, go.Figure):  # FigureWidget is a BaseFigure, not a Figure: convert
        return [_save_plotly(fig, out, name)]
    if _is_explorer(fig):
        return [_save_plotly(fig.static_fallback(), out, name)]
    if hasattr(fig, "to_plotly_json") and hasattr(fig, "layout"):
        return [_save_plotly(go.Figure(fig), out, name)]
    if isinstance(fig, pd.DataFrame) or type(fig).__name__ == "Styler":
        frame = fig if isinstance(fig, pd.DataFrame) else fig.data
        html = fig.to_html()
        return [atomic_write_text(out / f"{name}.html", html), atomic_write_text(out / f"{name}.csv", frame.to_csv())]
    mpl = _matplotlib_figure(fig)
    if mpl is not None:
        path = out / f"{name}.png"
        with atomic_open(path, "wb") as f:
            mpl.savefig(f, format="png", dpi=120, bbox_inches="tight")
        return [path]
    raise TypeError(f"save_figure({name!r}): cannot save an object of type {type(fig).__name__}")


def _save_plotly(fig: go.Figure, out: Path, name: str) -> Path:
    bundle = out / "plotly.min.js"
    if not bundle.exists():
        from plotly.offline import get_plotlyjs
        atomic_write_text(bundle, get_plotlyjs())
    return atomic_write_text(out / f"{name}.html", fig.to_html(include_plotlyjs="directory", full_html=True))


def _matplotlib_figure(obj):
    """The matplotlib Figure behind a Figure, Axes or seaborn grid, else None."""
    try:
        from matplotlib.axes import Axes
        from matplotlib.figure import Figure
    except ImportError:  # pragma: no cover - matplotlib is a dependency
        return None
    if isinstance(obj, Figure):
        return obj
    if isinstance(obj, Axes):
        return obj.figure
    fig = getattr(obj, "figure", None) or getattr(obj, "fig", None)  # seaborn FacetGrid/JointGrid
    return fig if isinstance(fig, Figure) else None
