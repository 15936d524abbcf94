"""Figure builders: plotly / matplotlib figures and display tables from arrays and DataFrames.

Nothing here touches a model: every figure is built (and tested) from numbers alone. Interactive
figures are plotly (hover names the protein and residue), static ones matplotlib. Residue classes
(:data:`AA_CLASSES`) and the per-residue label table (:func:`residue_labels`) live here because
they decide how points are coloured.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from lsdkit.alphabet import STANDARD as RESIDUES
from lsdkit.sample import residue_frequencies

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


def protein_labels(records: Sequence, classes: Sequence[str], column: str, *, length: bool = False) -> pd.DataFrame:
    """One row per protein record (``id``, ``sequence``, class-index ``label``): protein_id, the class
    name in ``column`` and, with ``length``, the sequence length."""
    frame = {"protein_id": [r.id for r in records], column: [classes[r.label] for r in records]}
    if length:
        frame["length"] = [len(r.sequence) for r in records]
    return pd.DataFrame(frame)


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


# --------------------------------------------------------------------------- other figures

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


def sweep_plot(df: pd.DataFrame, *, split: str = "valid", metric: Mapping[str, str] | None = None,
               layer: int | str = "best", title: str | None = None, wrap: int = 3) -> go.Figure:
    """Probe score against t: one panel per (task, metric), one line per representation.

    ``df`` is the tidy sweep table; see :func:`lsdkit.sweep.sweep_curves` for ``split``/``metric``/
    ``layer``. The default split is ``valid`` because a sweep scores every (t, layer) on validation and
    only the chosen one on test. Rows without t (the encoder's own latent) are dashed horizontal lines.
    """
    from lsdkit.sweep import sweep_curves

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


def learning_curve_plot(df: pd.DataFrame, title: str = "Probe score vs training tokens (validation split)"):
    """Learning curves (matplotlib, so a run directory gets a PNG): one panel per task, a line per
    latent space (``tokens`` on a log axis) and each feature baseline (rows without ``tokens``) as a
    horizontal line, so a reader sees whether and where a curve crosses the composition floor.

    ``df``: :meth:`lsdkit.study.Study.learning_curve` rows (representation, task, metric, value,
    tokens)."""
    import matplotlib.pyplot as plt

    tasks = list(dict.fromkeys(df["task"]))
    fig, axes = plt.subplots(1, len(tasks), figsize=(5.2 * len(tasks), 3.8), squeeze=False)
    learned = df.dropna(subset=["tokens"]) if "tokens" in df.columns else df.iloc[:0]
    floors = df[df["tokens"].isna()] if "tokens" in df.columns else df
    for ax, task in zip(axes[0], tasks):
        d = learned[learned["task"] == task]
        for rep, r in d.groupby("representation", sort=False):
            r = r.sort_values("tokens")
            ax.plot(r["tokens"], r["value"], marker="o", label=rep)
        for style, (rep, r) in zip(("--", ":", "-."), floors[floors["task"] == task].groupby("representation", sort=False)):
            ax.axhline(float(r["value"].iloc[0]), color="0.3", linestyle=style, linewidth=1.2, label=rep)
        if len(d):
            ax.set_xscale("log")
        metric = df.loc[df["task"] == task, "metric"].iloc[0]
        ax.set(title=task, xlabel="training tokens", ylabel=f"{metric} (valid)")
        ax.legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def benchmark_bars(table: pd.DataFrame, title: str = "Comparison (test split)", wrap: int = 3) -> go.Figure:
    """The comparison table (long: row, task, metric, value[, ci_low, ci_high, detail]) as bars, one
    panel per task; the interval, where the table has one, as error bars."""
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
        error = (dict(type="data", symmetric=False, array=d["ci_high"] - d["value"],
                      arrayminus=d["value"] - d["ci_low"]) if {"ci_low", "ci_high"} <= set(d.columns) else None)
        fig.add_trace(go.Bar(x=d.index, y=d["value"], marker_color=[cmap[r] for r in d.index], showlegend=False,
                             customdata=detail, name=task, error_y=error,
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
    """The paper's findings as a table: finding, verdict (reproduced / contradicted / inconclusive /
    partly tested / not tested: :func:`lsdkit.report.judge_findings`), evidence. Each item is a
    ``(claim, verdict, evidence)`` tuple or an object with those attributes."""
    rows = []
    for f in findings:
        claim, verdict, evidence = (f.claim, f.verdict, f.evidence) if hasattr(f, "claim") else f
        rows.append({"finding": claim, "verdict": verdict, "evidence": evidence})
    return pd.DataFrame(rows, columns=["finding", "verdict", "evidence"])


def sample_stats_frame(samples: Mapping[str, Sequence[str]], reference) -> pd.DataFrame:
    """One row per model of :func:`lsdkit.sample.sample_stats` of its generated sequences against the
    ``reference`` composition (n, mean_length, valid_fraction, tv_distance; the composition left out)."""
    from lsdkit.sample import sample_stats

    return pd.DataFrame({name: {k: v for k, v in sample_stats(seqs, reference).items() if k != "composition"}
                         for name, seqs in samples.items()}).T
