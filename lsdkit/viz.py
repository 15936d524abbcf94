"""Figures for the notebooks: UMAP of latents, sweep plots, loss curves, and the timestep explorer.

Everything here works on arrays and DataFrames, never on models, so each figure can be built
(and tested) from numbers alone. Interactive figures are plotly (hover names the protein and
residue), static ones matplotlib/seaborn. ``setup(figures_dir)`` returns a :class:`FigureSaver`
whose ``show(fig, name)`` displays a figure and, when a figures directory is set (argument or
``$LSDKIT_FIGURES``), also writes it there: plotly as HTML next to one shared ``plotly.min.js``
(works offline, no Chrome/kaleido needed), matplotlib as PNG, tables as HTML + CSV. A headless
notebook run therefore leaves an inspectable report.

The widget (:class:`TimestepExplorer`) keeps its computation in plain methods (``set_t``) wired
with an explicit ``observe`` callback, never ``interact``, and offers ``static_fallback()``: a
plain plotly figure whose own slider steps through t in saved HTML with no kernel attached.
"""

from __future__ import annotations

import os
import tempfile
import warnings
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from lsdkit.alphabet import FIRST_RESIDUE, STANDARD as RESIDUES

FIGURES_ENV = "LSDKIT_FIGURES"

# Physico-chemical classes of the 20 residues (the one place they are defined).
AA_CLASSES: dict[str, str] = {
    **dict.fromkeys("AVLIM", "hydrophobic"),
    **dict.fromkeys("FWY", "aromatic"),
    **dict.fromkeys("STNQ", "polar"),
    **dict.fromkeys("KRH", "positive"),
    **dict.fromkeys("DE", "negative"),
    **dict.fromkeys("CGP", "special"),
}
SS3_NAMES = {"H": "helix", "E": "strand", "C": "coil"}
# residues listed class by class, so legends and bar charts group similar residues
RESIDUE_ORDER = [r for cls in dict.fromkeys(AA_CLASSES.values()) for r in AA_CLASSES if AA_CLASSES[r] == cls]
_CATEGORY_ORDER = {"residue": RESIDUE_ORDER + ["X"], "aa_class": list(dict.fromkeys(AA_CLASSES.values())),
                   "ss3": ["H", "E", "C"]}


def aa_class(residue: str) -> str:
    """The physico-chemical class of a one-letter residue ('other' for X and anything else)."""
    return AA_CLASSES.get(residue.upper(), "other")


# --------------------------------------------------------------------------- saving / showing

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

        if isinstance(fig, TimestepExplorer):  # a live widget: nothing to save (save static_fallback())
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
    matplotlib figure / axes / seaborn grid -> ``.png``; DataFrame or Styler -> ``.html`` + ``.csv``.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if isinstance(fig, go.Figure):  # FigureWidget is a BaseFigure, not a Figure: convert
        return [_save_plotly(fig, out, name)]
    if isinstance(fig, TimestepExplorer):
        return [_save_plotly(fig.static_fallback(), out, name)]
    if hasattr(fig, "to_plotly_json") and hasattr(fig, "layout"):
        return [_save_plotly(go.Figure(fig), out, name)]
    if isinstance(fig, pd.DataFrame) or type(fig).__name__ == "Styler":
        frame = fig if isinstance(fig, pd.DataFrame) else fig.data
        html = fig.to_html()
        return [_write_text(out / f"{name}.html", html), _write_text(out / f"{name}.csv", frame.to_csv())]
    mpl = _matplotlib_figure(fig)
    if mpl is not None:
        path = out / f"{name}.png"
        with _atomic(path) as tmp:
            mpl.savefig(tmp, format="png", dpi=120, bbox_inches="tight")
        return [path]
    raise TypeError(f"save_figure({name!r}): cannot save an object of type {type(fig).__name__}")


def _save_plotly(fig: go.Figure, out: Path, name: str) -> Path:
    bundle = out / "plotly.min.js"
    if not bundle.exists():
        from plotly.offline import get_plotlyjs
        _write_text(bundle, get_plotlyjs())
    return _write_text(out / f"{name}.html", fig.to_html(include_plotlyjs="directory", full_html=True))


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


class _atomic:
    """Context manager yielding a temp path beside ``path``; renamed onto it on success."""

    def __init__(self, path: Path):
        self.path = path

    def __enter__(self) -> str:
        fd, self.tmp = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.", suffix=".tmp")
        os.close(fd)
        return self.tmp

    def __exit__(self, exc_type, *_):
        if exc_type is None:
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(self.tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the usual file mode
            os.replace(self.tmp, self.path)
        elif os.path.exists(self.tmp):
            os.unlink(self.tmp)


def _write_text(path: Path, text: str) -> Path:
    with _atomic(path) as tmp:
        Path(tmp).write_text(text, encoding="utf-8")
    return path


# --------------------------------------------------------------------------- UMAP

def umap_embed(X, *, random_state: int = 0, dedupe: bool = True, decimals: int = 4,
               n_neighbors: int = 15, min_dist: float = 0.1, metric: str = "euclidean",
               init: str | np.ndarray = "spectral") -> np.ndarray:
    """2-D UMAP of the rows of ``X`` [N, d], reproducible for a given ``random_state``.

    With ``dedupe`` the rows are quantised to ``decimals`` digits of their overall scale and
    only distinct rows are embedded (duplicates break UMAP's determinism, umap#1277; LSD-TN
    latents have many); duplicates get their representative's coordinates. ``init`` may be an
    [N, 2] array (e.g. the embedding at a neighbouring timestep) to keep successive maps aligned.
    """
    X = np.asarray(X, dtype=np.float32)
    if X.ndim != 2:
        raise ValueError(f"umap_embed: expected a 2-D array [N, d], got shape {X.shape}")
    if not np.isfinite(X).all():
        bad = int(np.flatnonzero(~np.isfinite(X).all(axis=1))[0])
        raise ValueError(f"umap_embed: row {bad} contains NaN or infinity")
    if dedupe:
        scale = float(np.abs(X).max()) or 1.0
        _, first, inverse = np.unique(np.round(X / scale, decimals), axis=0, return_index=True,
                                      return_inverse=True)
        inverse = inverse.reshape(-1)
    else:
        first, inverse = np.arange(len(X)), np.arange(len(X))
    rows = X[first]
    if len(rows) < 4:
        raise ValueError(f"umap_embed: need at least 4 distinct rows, got {len(rows)} (of {len(X)})")
    if isinstance(init, np.ndarray):
        if init.shape != (len(X), 2):
            raise ValueError(f"umap_embed: init must have shape {(len(X), 2)}, got {init.shape}")
        init = np.asarray(init, dtype=np.float64)[first]
    import umap  # slow import (numba); only when needed

    reducer = umap.UMAP(n_components=2, n_neighbors=min(n_neighbors, len(rows) - 1), min_dist=min_dist,
                        metric=metric, init=init, random_state=random_state, n_jobs=1)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*n_jobs.*overridden.*")
        warnings.filterwarnings("ignore", message=".*Spectral initialisation failed.*")
        emb = reducer.fit_transform(rows)
    return np.asarray(emb, dtype=np.float32)[inverse]


def align_to(Y: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """``Y`` [N, 2] rotated/reflected, scaled and shifted onto ``reference`` (orthogonal Procrustes),
    so successive UMAPs of the same points do not jump around."""
    from scipy.linalg import orthogonal_procrustes

    mu_y, mu_r = Y.mean(0), reference.mean(0)
    Yc, Rc = Y - mu_y, reference - mu_r
    R, _ = orthogonal_procrustes(Yc, Rc)
    scale = np.linalg.norm(Rc) / max(np.linalg.norm(Yc), 1e-12)
    return (Yc @ R * scale + mu_r).astype(np.float32)


def embed_over_t(features_by_t: Mapping[float, np.ndarray], *, random_state: int = 0,
                 **kwargs) -> dict[float, np.ndarray]:
    """UMAP at each t (ascending), each initialised from the previous map and aligned to it
    (:func:`align_to`) so points move smoothly as t changes."""
    coords: dict[float, np.ndarray] = {}
    prev = None
    for t in sorted(features_by_t):
        emb = umap_embed(features_by_t[t], random_state=random_state,
                         init=prev if prev is not None else "spectral", **kwargs)
        coords[t] = emb if prev is None else align_to(emb, prev)
        prev = coords[t]
    return coords


def sample_rows(n: int, max_rows: int, seed: int = 0) -> np.ndarray:
    """Sorted indices of at most ``max_rows`` of ``n`` rows, drawn without replacement."""
    if n <= max_rows:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=max_rows, replace=False))


def residue_labels(ids: Sequence[str], sequences: Sequence[str],
                   extra: Mapping[str, Sequence[Sequence]] | None = None,
                   classes: Mapping[str, Sequence[str]] | None = None) -> pd.DataFrame:
    """One row per residue: protein_id, position (1-based), residue, aa_class, and each per-residue
    label of ``extra`` (``extra[name][k]`` is a string or array as long as sequence k).

    If ``classes[name]`` is given, integer labels of that column are class indices and are mapped
    to the class names, ``-1`` (ignored residue) to ``"unknown"``; e.g. the ss3 task's labels.
    """
    columns: dict[str, list] = {"protein_id": [], "position": [], "residue": [], "aa_class": []}
    for name in extra or {}:
        columns[name] = []
    for k, (pid, seq) in enumerate(zip(ids, sequences, strict=True)):
        columns["protein_id"] += [pid] * len(seq)
        columns["position"] += range(1, len(seq) + 1)
        columns["residue"] += list(seq)
        columns["aa_class"] += [aa_class(r) for r in seq]
        for name, labels in (extra or {}).items():
            lab = labels[k]
            if len(lab) != len(seq):
                raise ValueError(f"residue_labels: {name} of {pid!r} has {len(lab)} labels for {len(seq)} residues")
            if classes and name in classes:
                names = np.asarray(list(classes[name]) + ["unknown"], dtype=object)
                idx = np.asarray(lab, dtype=np.int64)
                if ((idx < -1) | (idx >= len(names) - 1)).any():
                    raise ValueError(f"residue_labels: {name} of {pid!r} has a class index outside "
                                     f"-1..{len(names) - 2}")
                lab = names[idx]                 # -1 -> the last entry, "unknown"
            columns[name] += list(lab)
    return pd.DataFrame(columns)


# --------------------------------------------------------------------------- scatter panels

DEFAULT_HOVER = ("protein_id", "position", "residue", "aa_class", "ss3")


def category_colors(column: str, categories: Sequence[str]) -> dict[str, str]:
    """A fixed colour per category (same colour in every panel and figure for that column)."""
    import plotly.colors as pc

    palette = pc.qualitative.Plotly if len(categories) <= 10 else pc.qualitative.Alphabet
    if len(categories) > len(palette):
        palette = pc.sample_colorscale("Turbo", [i / max(1, len(categories) - 1) for i in range(len(categories))])
    return {c: palette[i] for i, c in enumerate(categories)}


def _categories(column: str, values: pd.Series) -> list[str]:
    present = set(values)
    order = [c for c in _CATEGORY_ORDER.get(column, []) if c in present]
    return order + sorted(present - set(order))


def _hover(labels: pd.DataFrame, hover: Sequence[str] | None):
    cols = [c for c in (hover or DEFAULT_HOVER) if c in labels.columns]
    template = "<br>".join(f"{c}: %{{customdata[{i}]}}" for i, c in enumerate(cols)) + "<extra>%{fullData.name}</extra>"
    return labels[cols].astype(str).to_numpy(), template


def scatter_panels(coords: Mapping[str, np.ndarray], labels: pd.DataFrame, color: str | Sequence[str],
                   *, hover: Sequence[str] | None = None, title: str = "", marker_size: int = 4) -> go.Figure:
    """Side-by-side 2-D scatter panels (one per entry of ``coords``, each [N, 2]) sharing ``labels``.

    Points are coloured by the categorical column ``color``; with several columns a dropdown
    switches the colouring (plain plotly, works in saved HTML). Hover shows ``hover`` columns.
    """
    colors = [color] if isinstance(color, str) else list(color)
    names = list(coords)
    for name in names:
        if np.shape(coords[name]) != (len(labels), 2):
            raise ValueError(f"scatter_panels: coords[{name!r}] has shape {np.shape(coords[name])}, "
                             f"expected {(len(labels), 2)} (one row per label row)")
    for col in colors:
        if col not in labels.columns:
            raise KeyError(f"scatter_panels: no column {col!r} in labels (columns: {list(labels.columns)})")
    customdata, template = _hover(labels, hover)
    fig = make_subplots(rows=1, cols=len(names), subplot_titles=names, horizontal_spacing=0.03)
    owner = []
    for ci, col in enumerate(colors):
        values = labels[col].fillna("unknown").astype(str)
        cats = _categories(col, values)
        cmap = category_colors(col, cats)
        for pi, name in enumerate(names):
            xy = np.asarray(coords[name])
            for cat in cats:
                m = (values == cat).to_numpy()
                fig.add_trace(go.Scatter(
                    x=xy[m, 0], y=xy[m, 1], mode="markers", name=cat, legendgroup=f"{col}:{cat}",
                    showlegend=pi == 0, visible=ci == 0, customdata=customdata[m], hovertemplate=template,
                    marker=dict(color=cmap[cat], size=marker_size, opacity=0.75)), row=1, col=pi + 1)
                owner.append(ci)
    fig.update_xaxes(showticklabels=False, title_text="UMAP 1")
    fig.update_yaxes(showticklabels=False)
    fig.update_yaxes(title_text="UMAP 2", col=1)
    fig.update_layout(title=title, legend_title_text=colors[0], height=450, width=max(500, 380 * len(names) + 150),
                      template="plotly_white")
    if len(colors) > 1:
        buttons = [dict(label=f"colour: {col}", method="update",
                        args=[{"visible": [o == ci for o in owner]}, {"legend.title.text": col}])
                   for ci, col in enumerate(colors)]
        fig.update_layout(updatemenus=[dict(buttons=buttons, x=1.0, y=1.2, xanchor="right", yanchor="top")],
                          margin=dict(t=110))
    return fig


def umap_panels(latents: Mapping[str, np.ndarray], labels: pd.DataFrame, color: str | Sequence[str], *,
                random_state: int = 0, hover: Sequence[str] | None = None, title: str = "") -> go.Figure:
    """UMAP of each space (``latents[name]`` is [N, d], rows aligned with ``labels``), side by side,
    coloured by ``color`` (columns missing from ``labels`` are left out; several -> dropdown)."""
    colors = [color] if isinstance(color, str) else [c for c in color if c in labels.columns]
    coords = {name: umap_embed(X, random_state=random_state) for name, X in latents.items()}
    return scatter_panels(coords, labels, colors, hover=hover, title=title)


def residue_umap(latents: Mapping[str, np.ndarray], labels: pd.DataFrame,
                 color: str | Sequence[str] = ("residue", "aa_class", "ss3"), *, random_state: int = 0,
                 hover: Sequence[str] | None = None, title: str = "Residue latents (UMAP)") -> go.Figure:
    """:func:`umap_panels` of per-residue latents, coloured by residue type, class and ss3."""
    return umap_panels(latents, labels, color, random_state=random_state, hover=hover, title=title)


# --------------------------------------------------------------------------- other figures

def residue_frequencies(sequences) -> np.ndarray:
    """Frequencies [20] of the standard residues (``STANDARD`` order) in residue strings (a pair of
    strings counts both), or in an integer array of alphabet tokens (e.g. a corpus's token buffer;
    specials and X are not counted)."""
    from lsdkit.sample import composition

    if isinstance(sequences, np.ndarray) and np.issubdtype(sequences.dtype, np.integer):
        counts = np.bincount(sequences.ravel(), minlength=FIRST_RESIDUE + len(RESIDUES))
        counts = counts[FIRST_RESIDUE:FIRST_RESIDUE + len(RESIDUES)].astype(np.float64)
        if counts.sum() == 0:
            raise ValueError("residue_frequencies: no standard residue tokens")
        return counts / counts.sum()
    return composition(s for v in sequences for s in (v if isinstance(v, tuple) else (v,)))


def composition_plot(sequences: Mapping[str, Iterable[str] | np.ndarray], title: str = "Residue composition") -> go.Figure:
    """Grouped bars of residue frequency (standard residues, grouped by class), one colour per
    dataset; each value is residue strings or a token array (see :func:`residue_frequencies`)."""
    frame = pd.DataFrame({name: residue_frequencies(seqs) for name, seqs in sequences.items()},
                         index=list(RESIDUES)).loc[RESIDUE_ORDER]
    fig = go.Figure([go.Bar(x=frame.index, y=frame[name], name=name,
                            customdata=[aa_class(r) for r in frame.index],
                            hovertemplate="%{x} (%{customdata}): %{y:.3f}<extra>" + name + "</extra>")
                     for name in frame.columns])
    fig.update_layout(barmode="group", title=title, xaxis_title="residue (grouped by class)",
                      yaxis_title="frequency", template="plotly_white", height=380)
    return fig


def composition_heatmap(sequences: Mapping[str, Iterable[str] | np.ndarray], reference: str,
                        title: str = "Residue enrichment vs the corpus") -> go.Figure:
    """log2(frequency / reference frequency) per residue (columns) and dataset (rows), clipped to ±2."""
    if reference not in sequences:
        raise KeyError(f"composition_heatmap: reference {reference!r} is not one of {list(sequences)}")
    freqs = pd.DataFrame({name: residue_frequencies(seqs) for name, seqs in sequences.items()},
                         index=list(RESIDUES)).loc[RESIDUE_ORDER]
    with np.errstate(divide="ignore"):
        ratio = np.log2(freqs.div(freqs[reference], axis=0)).T.clip(-2, 2)
    fig = go.Figure(go.Heatmap(z=ratio.to_numpy(), x=ratio.columns, y=ratio.index, zmid=0, zmin=-2, zmax=2,
                               colorscale="RdBu_r", colorbar=dict(title="log2 ratio"),
                               customdata=freqs.T.to_numpy(),
                               hovertemplate="%{y}, %{x}: %{customdata:.3f} (log2 ratio %{z:.2f})<extra></extra>"))
    fig.update_layout(title=title, template="plotly_white", height=160 + 26 * len(ratio), width=850,
                      xaxis_title="residue (grouped by class)", yaxis_autorange="reversed")
    return fig


def sequence_lengths(values) -> np.ndarray:
    """Lengths from an int array (returned as is) or from sequences; a pair counts both proteins."""
    if isinstance(values, np.ndarray) and np.issubdtype(values.dtype, np.integer):
        return values
    out = []
    for v in values:
        out += [len(x) for x in v] if isinstance(v, tuple) else [len(v)]
    return np.asarray(out, dtype=np.int64)


def length_summary(lengths: Mapping[str, Sequence], max_len: int | None = None) -> pd.DataFrame:
    """Per dataset: count, median, 5th/95th percentile, max and (with ``max_len``) the fraction longer."""
    rows = {}
    for name, values in lengths.items():
        n = sequence_lengths(values)
        row = {"sequences": len(n), "median": float(np.median(n)) if len(n) else np.nan,
               "p5": float(np.percentile(n, 5)) if len(n) else np.nan,
               "p95": float(np.percentile(n, 95)) if len(n) else np.nan, "max": int(n.max()) if len(n) else 0}
        if max_len is not None:
            row[f"> {max_len}"] = float((n > max_len).mean()) if len(n) else np.nan
        rows[name] = row
    return pd.DataFrame.from_dict(rows, orient="index")


def length_plot(lengths: Mapping[str, Sequence], max_len: int | None = None, title: str = "Sequence lengths"):
    """Static (matplotlib) box plot of sequence length per dataset (whiskers 5-95 %, log x), with a
    dashed line at ``max_len``; values are length arrays or sequences (see :func:`sequence_lengths`)."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 0.9 + 0.38 * len(lengths)))
    boxes = ax.boxplot([sequence_lengths(v) for v in lengths.values()], orientation="horizontal", whis=(5, 95),
                       showfliers=False, tick_labels=list(lengths), patch_artist=True, widths=0.6,
                       medianprops=dict(color="black"))
    for patch, colour in zip(boxes["boxes"], plt.get_cmap("viridis")(np.linspace(0.15, 0.85, len(lengths)))):
        patch.set_facecolor(colour)
    ax.set_xscale("log")
    ax.invert_yaxis()                      # first dataset on top
    if max_len is not None:
        ax.axvline(max_len, color="crimson", linestyle="--", linewidth=1)
        ax.text(max_len, 0.4, f" max_len {max_len}", color="crimson", va="bottom", fontsize=9)
    ax.set_title(title)
    ax.set_xlabel("length")
    fig.tight_layout()
    return fig


def _is_loss(column: str) -> bool:
    return "loss" in column or column.endswith("_ce") or column == "kl"


def loss_curves(metrics: Mapping[str, pd.DataFrame | str | os.PathLike], columns: Sequence[str] | None = None,
                *, x: str = "step", title: str = "Training curves", log_y: bool = True) -> go.Figure:
    """One panel per model: a line per (split, column) against ``x``.

    ``metrics[name]`` is a DataFrame or a ``metrics.jsonl`` path (the trainer's records: ``split``,
    ``step``, metrics). ``columns`` default: the loss-like ones (``*loss*``, ``*_ce``, ``kl``).
    """
    frames = {name: (m if isinstance(m, pd.DataFrame) else pd.read_json(m, lines=True)) for name, m in metrics.items()}
    fig = make_subplots(rows=1, cols=len(frames), subplot_titles=list(frames), horizontal_spacing=0.06)
    for pi, (name, df) in enumerate(frames.items()):
        if x not in df.columns:
            raise KeyError(f"loss_curves: metrics of {name!r} have no {x!r} column (columns: {list(df.columns)})")
        split = df["split"] if "split" in df.columns else pd.Series("", index=df.index)
        cols = [c for c in (columns or [c for c in df.columns if _is_loss(c)])
                if c in df.columns and pd.api.types.is_numeric_dtype(df[c])]
        for sp in dict.fromkeys(split):
            for col in cols:
                d = df.loc[split == sp, [x, col]].dropna()
                if d.empty:
                    continue
                fig.add_trace(go.Scatter(x=d[x], y=d[col], mode="lines+markers" if len(d) < 30 else "lines",
                                         name=f"{name}: {sp} {col}".replace("  ", " "), legendgroup=name,
                                         line=dict(dash="dot" if sp == "valid" else "solid")), row=1, col=pi + 1)
        fig.update_xaxes(title_text=x, row=1, col=pi + 1)
    if log_y:
        fig.update_yaxes(type="log")
    fig.update_layout(title=title, template="plotly_white", height=380, width=max(500, 380 * len(frames) + 250))
    return fig


def line_by_t(df: pd.DataFrame, y: str, *, group: str = "representation", x: str = "t",
              title: str = "", y_title: str | None = None) -> go.Figure:
    """A line per ``group`` of ``y`` against ``x`` (e.g. diffusion loss by t per latent space)."""
    fig = go.Figure()
    for name, d in df.sort_values(x).groupby(group, sort=False):
        fig.add_trace(go.Scatter(x=d[x], y=d[y], mode="lines+markers", name=str(name)))
    fig.update_layout(title=title, xaxis_title=x, yaxis_title=y_title or y, template="plotly_white", height=380)
    return fig


def sweep_curves(df: pd.DataFrame, *, split: str = "valid", metric: Mapping[str, str] | None = None,
                 layer: int | str = "best") -> pd.DataFrame:
    """The sweep table reduced to one value per (representation, task, metric, t).

    ``df`` is the tidy sweep (representation, task, t, split, metric, value[, layer, fold]). Keeps
    ``split`` rows, fold-less or fold ``"mean"`` rows, and for each task only ``metric[task]`` if
    given. Several layers per t: ``layer="best"`` takes the best layer (on this split), ``"mean"``
    their mean, an int that layer. Rows without t (the latent) are kept with t = NaN.
    """
    need = {"representation", "task", "t", "split", "metric", "value"}
    if missing := need - set(df.columns):
        raise KeyError(f"sweep_curves: missing columns {sorted(missing)}")
    d = df[df["split"] == split]
    if "fold" in d.columns:
        d = d[d["fold"].isna() | (d["fold"].astype(str) == "mean")]
    if metric is not None:
        d = d[d["metric"] == d["task"].map(metric)]
    if isinstance(layer, (int, np.integer)) and "layer" in d.columns:
        d = d[d["t"].isna() | (d["layer"] == layer)]
    elif layer not in ("best", "mean") and not isinstance(layer, (int, np.integer)):
        raise ValueError(f"sweep_curves: layer must be 'best', 'mean' or an int, got {layer!r}")
    if d.empty:
        raise ValueError(f"sweep_curves: no rows for split {split!r}")
    keys = ["representation", "task", "metric"]
    how = "max" if layer == "best" else "mean"
    timed = d.dropna(subset=["t"]).groupby(keys + ["t"], as_index=False, sort=False)["value"].agg(how)
    untimed = d[d["t"].isna()].groupby(keys, as_index=False, sort=False)["value"].mean().assign(t=np.nan)
    return pd.concat([timed, untimed[timed.columns]], ignore_index=True)


def sweep_plot(df: pd.DataFrame, *, split: str = "valid", metric: Mapping[str, str] | None = None,
               layer: int | str = "best", title: str | None = None, wrap: int = 3) -> go.Figure:
    """Probe score against t: one panel per (task, metric), one line per representation.

    ``df`` is the tidy sweep table; see :func:`sweep_curves` for ``split``/``metric``/``layer``.
    The default split is ``valid`` because a sweep scores every (t, layer) on validation and only
    the chosen one on test. Rows without t (the encoder's own latent) are dashed horizontal lines.
    """
    c = sweep_curves(df, split=split, metric=metric, layer=layer)
    panels = list(dict.fromkeys(zip(c["task"], c["metric"])))
    ncols = min(wrap, len(panels))
    nrows = -(-len(panels) // ncols)
    fig = make_subplots(rows=nrows, cols=ncols, subplot_titles=[f"{t} ({m})" for t, m in panels],
                        vertical_spacing=min(0.5 / nrows, 0.15) if nrows > 1 else 0.1)
    reps = list(dict.fromkeys(c["representation"]))
    cmap = category_colors("representation", reps)
    shown = set()
    for k, (task, met) in enumerate(panels):
        row, col = k // ncols + 1, k % ncols + 1
        d = c[(c["task"] == task) & (c["metric"] == met)]
        ts = d["t"].dropna()
        span = [float(ts.min()), float(ts.max())] if len(ts) else [0.0, 1.0]
        for rep in reps:
            r = d[d["representation"] == rep]
            timed, untimed = r.dropna(subset=["t"]).sort_values("t"), r[r["t"].isna()]
            if len(timed):
                fig.add_trace(go.Scatter(x=timed["t"], y=timed["value"], mode="lines+markers", name=f"{rep} diffusion",
                                         legendgroup=f"{rep} diffusion", showlegend=f"{rep} diffusion" not in shown,
                                         line=dict(color=cmap[rep]),
                                         hovertemplate=f"{rep} diffusion<br>t=%{{x:.3f}}<br>{met}=%{{y:.4f}}<extra>{task}</extra>"),
                              row=row, col=col)
                shown.add(f"{rep} diffusion")
            if len(untimed):
                v = float(untimed["value"].iloc[0])
                fig.add_trace(go.Scatter(x=span, y=[v, v], mode="lines", name=f"{rep} latent",
                                         legendgroup=f"{rep} latent", showlegend=f"{rep} latent" not in shown,
                                         line=dict(color=cmap[rep], dash="dash"),
                                         hovertemplate=f"{rep} latent (no t)<br>{met}={v:.4f}<extra>{task}</extra>"),
                              row=row, col=col)
                shown.add(f"{rep} latent")
        fig.update_xaxes(title_text="t", row=row, col=col)
    fig.update_layout(title=title or f"Probe score vs diffusion time t ({split} split)", template="plotly_white",
                      height=320 * nrows + 80, width=360 * ncols + 250)
    return fig


def benchmark_bars(table: pd.DataFrame, title: str = "Comparison (test split)", wrap: int = 3) -> go.Figure:
    """The comparison table (long: row, task, metric, value[, detail]) as bars, one panel per task."""
    tasks = list(dict.fromkeys(table["task"]))
    ncols = min(wrap, len(tasks))
    nrows = -(-len(tasks) // ncols)
    metric = {t: table.loc[table["task"] == t, "metric"].iloc[0] for t in tasks}
    fig = make_subplots(rows=nrows, cols=ncols, subplot_titles=[f"{t} ({metric[t]})" for t in tasks],
                        vertical_spacing=min(0.6 / nrows, 0.2) if nrows > 1 else 0.1)
    rows = list(dict.fromkeys(table["row"]))
    cmap = category_colors("row", rows)
    for k, task in enumerate(tasks):
        d = table[table["task"] == task].set_index("row").reindex([r for r in rows if r in set(table.loc[table["task"] == task, "row"])])
        detail = d["detail"].fillna("").astype(str) if "detail" in d.columns else pd.Series("", index=d.index)
        fig.add_trace(go.Bar(x=d.index, y=d["value"], marker_color=[cmap[r] for r in d.index], showlegend=False,
                             customdata=detail, name=task,
                             hovertemplate="%{x}: %{y:.4f} %{customdata}<extra>" + task + "</extra>"),
                      row=k // ncols + 1, col=k % ncols + 1)
    fig.update_xaxes(showticklabels=False)
    fig.update_layout(title=title, template="plotly_white", height=330 * nrows + 60, width=360 * ncols + 100)
    return fig


def reconstruction_frame(ids: Sequence[str], originals: Sequence[str], decoded: Sequence[str]) -> pd.DataFrame:
    """Original vs decoded sequence per protein, with identity and mismatches shown in lower case."""
    rows = []
    for pid, a, b in zip(ids, originals, decoded, strict=True):
        n = min(len(a), len(b))
        same = sum(x == y for x, y in zip(a[:n], b[:n]))
        marked = "".join(y if x == y else y.lower() for x, y in zip(a[:n], b[:n])) + b[n:]
        rows.append({"protein_id": pid, "length": len(a), "identity": same / max(len(a), 1),
                     "original": a, "decoded (mismatch lower-case)": marked})
    return pd.DataFrame(rows)


def findings_frame(findings: Iterable) -> pd.DataFrame:
    """The paper's findings as a table: finding, reproduced (yes / no / not tested), evidence.
    Each item is a ``(claim, reproduced, evidence)`` tuple or an object with those attributes."""
    mark = {True: "yes", False: "no", None: "not tested"}
    rows = []
    for f in findings:
        claim, ok, evidence = (f.claim, f.reproduced, f.evidence) if hasattr(f, "claim") else f
        rows.append({"finding": claim, "reproduced": mark[ok], "evidence": evidence})
    return pd.DataFrame(rows, columns=["finding", "reproduced", "evidence"])


# --------------------------------------------------------------------------- timestep widget

class TimestepExplorer:
    """A slider over diffusion time t that moves a UMAP of the representation and shows the probe score.

    ``features_by_t[t]`` is [N, d] (rows aligned with ``labels``), ``score_by_t[t]`` the probe
    metric at t. UMAPs are computed once up front (``coords_by_t`` may be given instead), each
    initialised from the previous t. Widgets: ``slider`` (SelectionSlider over t), ``figure``
    (plotly FigureWidget: UMAP left, score vs t right with the current t marked), ``score``
    (HTML); ``widget`` is the assembled box. ``set_t(t)`` is the callback the slider calls.
    """

    def __init__(self, features_by_t: Mapping[float, np.ndarray] | None, labels: pd.DataFrame,
                 score_by_t: Mapping[float, float], *, color: str, metric: str = "score", title: str = "",
                 random_state: int = 0, coords_by_t: Mapping[float, np.ndarray] | None = None,
                 hover: Sequence[str] | None = None):
        import ipywidgets as widgets

        if coords_by_t is None:
            if not features_by_t:
                raise ValueError("TimestepExplorer: give features_by_t or coords_by_t")
            coords_by_t = embed_over_t(features_by_t, random_state=random_state)
        self.ts = sorted(float(t) for t in coords_by_t)
        self.coords = {float(t): np.asarray(c) for t, c in coords_by_t.items()}
        self.scores = {float(t): float(s) for t, s in score_by_t.items()}
        for t in self.ts:
            if self.coords[t].shape != (len(labels), 2):
                raise ValueError(f"TimestepExplorer: coordinates at t={t:g} have shape {self.coords[t].shape}, "
                                 f"expected {(len(labels), 2)}")
            if t not in self.scores:
                raise KeyError(f"TimestepExplorer: no score for t={t:g}")
        if color not in labels.columns:
            raise KeyError(f"TimestepExplorer: no column {color!r} in labels")
        self.labels, self.color, self.metric, self.title = labels, color, metric, title
        values = labels[color].fillna("unknown").astype(str)
        self.categories = _categories(color, values)
        self._masks = [(values == c).to_numpy() for c in self.categories]
        self._hover = _hover(labels, hover)

        self.slider = widgets.SelectionSlider(options=[(f"{t:g}", t) for t in self.ts], value=self.ts[0],
                                              description="t", continuous_update=False,
                                              layout=widgets.Layout(width="500px"))
        self.score = widgets.HTML()
        self.figure = go.FigureWidget(self._base_figure(self.ts[0]))
        self.slider.observe(self._on_slider, names="value")
        self.widget = widgets.VBox([self.slider, self.score, self.figure])
        self.set_t(self.ts[0])

    def _score_text(self, t: float) -> str:
        return f"t = {t:g} &nbsp; {self.metric} = <b>{self.scores[t]:.4f}</b>"

    def _point_traces(self, t: float) -> list[dict]:
        xy = self.coords[t]
        return [dict(x=xy[m, 0], y=xy[m, 1]) for m in self._masks]

    def _base_figure(self, t: float) -> go.Figure:
        customdata, template = self._hover
        cmap = category_colors(self.color, self.categories)
        fig = make_subplots(rows=1, cols=2, column_widths=[0.65, 0.35], subplot_titles=["UMAP", f"{self.metric} vs t"])
        for cat, m, xy in zip(self.categories, self._masks, self._point_traces(t)):
            fig.add_trace(go.Scatter(mode="markers", name=cat, customdata=customdata[m], hovertemplate=template,
                                     marker=dict(color=cmap[cat], size=5, opacity=0.8), **xy), row=1, col=1)
        fig.add_trace(go.Scatter(x=self.ts, y=[self.scores[s] for s in self.ts], mode="lines+markers",
                                 name=self.metric, line=dict(color="grey"), showlegend=False), row=1, col=2)
        fig.add_trace(go.Scatter(x=[t], y=[self.scores[t]], mode="markers", name="current t", showlegend=False,
                                 marker=dict(color="crimson", size=14, symbol="circle-open", line=dict(width=3))),
                      row=1, col=2)
        allxy = np.concatenate([self.coords[s] for s in self.ts])      # one range for every t
        lo, hi = allxy.min(0), allxy.max(0)
        pad = 0.05 * np.maximum(hi - lo, 1e-6)
        fig.update_xaxes(showticklabels=False, range=[lo[0] - pad[0], hi[0] + pad[0]], row=1, col=1)
        fig.update_yaxes(showticklabels=False, range=[lo[1] - pad[1], hi[1] + pad[1]], row=1, col=1)
        fig.update_xaxes(title_text="t", row=1, col=2)
        fig.update_layout(title=self._title(t), legend_title_text=self.color, template="plotly_white",
                          height=460, width=950)
        return fig

    def _title(self, t: float) -> str:
        head = f"{self.title} — " if self.title else ""
        return f"{head}t = {t:g}, {self.metric} = {self.scores[t]:.4f}"

    def _on_slider(self, change) -> None:
        self.set_t(change["new"])

    def set_t(self, t: float) -> None:
        """Show timestep ``t``: move the points, the marker on the score curve, and the score text."""
        t = float(t)
        if t not in self.coords:
            raise KeyError(f"TimestepExplorer: t={t:g} is not one of {self.ts}")
        n = len(self.categories)
        with self.figure.batch_update():
            for trace, xy in zip(self.figure.data[:n], self._point_traces(t)):
                trace.x, trace.y = xy["x"], xy["y"]
            self.figure.data[n + 1].x, self.figure.data[n + 1].y = [t], [self.scores[t]]
            self.figure.layout.title.text = self._title(t)
        self.score.value = self._score_text(t)
        self.current_t = t
        if self.slider.value != t:
            self.slider.value = t

    def static_fallback(self) -> go.Figure:
        """The same view as a plain figure with plotly's own slider (frames over t): it works in a
        saved notebook or HTML file with no kernel."""
        fig = self._base_figure(self.ts[0])
        n = len(self.categories)
        fig.frames = [go.Frame(name=f"{t:g}", traces=list(range(n)) + [n + 1],
                               data=[go.Scatter(**xy) for xy in self._point_traces(t)]
                               + [go.Scatter(x=[t], y=[self.scores[t]])],
                               layout=go.Layout(title_text=self._title(t)))
                      for t in self.ts]
        steps = [dict(label=f"{t:g}", method="animate",
                      args=[[f"{t:g}"], {"mode": "immediate", "frame": {"duration": 0, "redraw": True},
                                         "transition": {"duration": 0}}]) for t in self.ts]
        fig.update_layout(sliders=[dict(active=0, steps=steps, currentvalue={"prefix": "t = "}, pad={"t": 40})])
        return fig

    def _repr_mimebundle_(self, **kwargs):
        return self.widget._repr_mimebundle_(**kwargs)
