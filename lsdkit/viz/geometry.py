"""Figures of the latent-geometry measures (:mod:`lsdkit.geometry`): bars per representation, lines
along t, and the timestep explorer over a denoiser's residue states."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from lsdkit.viz.figures import category_colors

REFERENCES = ("composition", "chance")


def _summary_rows(table: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    from lsdkit.geometry import SUMMARY_ORDER
    s = table[table["group"] == "all"]
    present = set(s["measure"])
    return s, [m for m in SUMMARY_ORDER if m in present] + sorted(present - set(SUMMARY_ORDER))


def _grid(measures: list[str], wrap: int):
    ncols = min(wrap, len(measures))
    nrows = -(-len(measures) // ncols)
    fig = make_subplots(rows=nrows, cols=ncols, subplot_titles=measures,
                        vertical_spacing=min(0.4 / nrows, 0.12) if nrows > 1 else 0.1)
    return fig, ncols, nrows


def _error(d: pd.DataFrame) -> dict:
    return dict(type="data", symmetric=False, array=(d["ci_high"] - d["value"]).to_numpy(),
                arrayminus=(d["value"] - d["ci_low"]).to_numpy())


def geometry_bars(table: pd.DataFrame, title: str = "Latent geometry (held-out proteins; 95 % bootstrap intervals)",
                  wrap: int = 4) -> go.Figure:
    """One panel per summary measure of :func:`lsdkit.geometry.geometry_table`, a bar per
    representation (and the composition / chance references where they exist) with its interval."""
    s, measures = _summary_rows(table)
    reps = list(dict.fromkeys(r for r in s["representation"] if r not in REFERENCES))
    reps += [r for r in REFERENCES if r in set(s["representation"])]
    cmap = category_colors("representation", reps)
    fig, ncols, nrows = _grid(measures, wrap)
    for k, m in enumerate(measures):
        d = s[s["measure"] == m]
        d = d.iloc[np.argsort([reps.index(r) for r in d["representation"]], kind="stable")]
        fig.add_trace(go.Bar(x=d["representation"], y=d["value"], error_y=_error(d), showlegend=False,
                             marker_color=[cmap[r] for r in d["representation"]],
                             customdata=np.stack([d["n"], d["note"].fillna("")], 1),
                             hovertemplate="%{x}<br>%{y:.4f}<br>n=%{customdata[0]}<br>%{customdata[1]}<extra></extra>"),
                      row=k // ncols + 1, col=k % ncols + 1)
    fig.update_layout(title=title, template="plotly_white", height=300 * nrows + 80, width=300 * ncols + 100)
    return fig


def geometry_by_t_plot(table: pd.DataFrame, title: str = "Geometry of the denoiser's hidden states along t",
                       wrap: int = 4) -> go.Figure:
    """One panel per summary measure of :func:`lsdkit.geometry.geometry_along_t`: the measure (with
    its interval as error bars) against t; the references (chance, composition) dashed."""
    s, measures = _summary_rows(table)
    fig, ncols, nrows = _grid(measures, wrap)
    span = [float(s["t"].min()), float(s["t"].max())] if s["t"].notna().any() else [0.0, 1.0]
    cmap = category_colors("representation", ["denoiser", *REFERENCES])
    shown = set()
    for k, m in enumerate(measures):
        row, col = k // ncols + 1, k % ncols + 1
        d = s[s["measure"] == m]
        timed = d[d["t"].notna() & ~d["representation"].isin(REFERENCES)].sort_values("t")
        fig.add_trace(go.Scatter(x=timed["t"], y=timed["value"], error_y=_error(timed), mode="lines+markers",
                                 name="denoiser", legendgroup="denoiser", showlegend="denoiser" not in shown,
                                 line=dict(color=cmap["denoiser"])), row=row, col=col)
        shown.add("denoiser")
        for ref in REFERENCES:
            r = d[d["representation"] == ref]
            if len(r):
                v = float(r["value"].iloc[0])
                fig.add_trace(go.Scatter(x=span, y=[v, v], mode="lines", name=ref, legendgroup=ref,
                                         showlegend=ref not in shown, line=dict(color=cmap[ref], dash="dash")),
                              row=row, col=col)
                shown.add(ref)
        fig.update_xaxes(title_text="t", row=row, col=col)
    fig.update_layout(title=title, template="plotly_white", height=300 * nrows + 80, width=300 * ncols + 200)
    return fig


def geometry_explorer(along, measure: str = "decodability", random_state: int = 0,
                      cache_dir: str | os.PathLike | None = None):
    """A :class:`~lsdkit.viz.explorer.TimestepExplorer` over ``along`` (a
    :class:`lsdkit.geometry.GeometryAlongT`): UMAP of the drawn residues' hidden states at each t,
    coloured by residue type, with ``measure`` (its summary value) against t beside it."""
    from lsdkit.viz.explorer import TimestepExplorer
    s = along.table[(along.table["group"] == "all") & (along.table["measure"] == measure) & along.table["t"].notna()]
    if not len(s):
        raise ValueError(f"geometry_explorer: no {measure!r} rows along t; measures: "
                         f"{sorted(set(along.table['measure']))}")
    score = dict(zip(s["t"].astype(float), s["value"].astype(float)))
    return TimestepExplorer(along.residues_by_t, along.labels, score, color="residue", metric=measure,
                            title=f"{along.name}, layer {along.layer}, residues", random_state=random_state,
                            hover=("protein_id", "position", "residue"), cache_dir=cache_dir)
