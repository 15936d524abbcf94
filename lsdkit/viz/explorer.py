"""The timestep explorer: a slider over diffusion time t that moves a UMAP and shows the probe score.

:class:`TimestepExplorer` keeps its computation in plain methods (``set_t``) wired with an
explicit ``observe`` callback, never ``interact``, and offers ``static_fallback()``: a plain plotly
figure whose own slider steps through t in saved HTML with no kernel attached.
:func:`explorer_data` gathers what it shows from a study's sweep (notebook 04).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from lsdkit.viz.figures import _categories, _hover, category_colors, protein_labels
from lsdkit.viz.umap import embed_over_t, sample_records


def explorer_data(study, sweep: pd.DataFrame, encoder: str, task: str, n_points: int,
                  random_state: int = 0) -> dict:
    """The :class:`TimestepExplorer` arguments for ``encoder``'s diffusion model on ``task``.

    The layer is the one chosen on validation in ``sweep`` (:func:`lsdkit.sweep.chosen_curve`), the
    score at each t that layer's validation score; the points are ``n_points`` validation proteins
    of ``task`` (drawn with ``random_state``), their pooled features at that layer at every swept t
    mapped by :func:`~lsdkit.viz.umap.embed_over_t` (cached in ``study.cache_dir``).
    Use as ``TimestepExplorer(**explorer_data(...))``.
    """
    from lsdkit.data.tasks import get_task, load_task
    from lsdkit.represent import feature_key
    from lsdkit.sweep import chosen_curve

    name = study.display_name(encoder)
    try:
        layer, score_by_t = chosen_curve(sweep, name, task)
    except KeyError as exc:
        raise ValueError(f"explorer: {exc.args[0]}; add it to `tasks`") from None
    data = load_task(task, study.data_dir)
    records = sample_records(data, n_points, seed=random_state)
    ids, seqs = [r.id for r in records], [r.sequence for r in records]
    feats = study.representer(encoder).features(seqs, ids, ts=list(score_by_t), layers=layer)
    features_by_t = {t: feats[feature_key(t, layer)] for t in score_by_t}
    return dict(features_by_t=None, labels=protein_labels(records, data.classes, task), score_by_t=score_by_t,
                coords_by_t=embed_over_t(features_by_t, random_state=random_state, cache_dir=study.cache_dir),
                color=task, metric=get_task(task).metric, title=f"{name} diffusion, layer {layer}, {task}")


class TimestepExplorer:
    """A slider over diffusion time t that moves a UMAP of the representation and shows the probe score.

    ``features_by_t[t]`` is [N, d] (rows aligned with ``labels``), ``score_by_t[t]`` the probe
    metric at t. UMAPs are computed once up front (``coords_by_t`` may be given instead), each
    initialised from the previous t (kept in ``cache_dir`` when given, :func:`~lsdkit.viz.umap.umap_embed`).
    Widgets: ``slider`` (SelectionSlider over t), ``figure``
    (plotly FigureWidget: UMAP left, score vs t right with the current t marked), ``score``
    (HTML); ``widget`` is the assembled box. ``set_t(t)`` is the callback the slider calls.
    """

    def __init__(self, features_by_t: Mapping[float, np.ndarray] | None, labels: pd.DataFrame,
                 score_by_t: Mapping[float, float], *, color: str, metric: str = "score", title: str = "",
                 random_state: int = 0, coords_by_t: Mapping[float, np.ndarray] | None = None,
                 hover: Sequence[str] | None = None, cache_dir: str | os.PathLike | None = None):
        import ipywidgets as widgets

        if coords_by_t is None:
            if not features_by_t:
                raise ValueError("TimestepExplorer: give features_by_t or coords_by_t")
            coords_by_t = embed_over_t(features_by_t, random_state=random_state, cache_dir=cache_dir)
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
