"""Plotly figures built by fixed code from tool tables (model output is never executed).

A caller that keeps only findings (the scan) draws nothing: within `without_charts()`, every chart of the
calling thread is None, and Plotly is imported only when a figure is drawn."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import wraps
from typing import TYPE_CHECKING, ParamSpec

import pandas as pd

if TYPE_CHECKING:
    import plotly.graph_objects as go

_LAYOUT = dict(template="plotly_white", margin=dict(l=40, r=20, t=50, b=40), height=360)
_quiet = threading.local()
P = ParamSpec("P")


@contextmanager
def without_charts() -> Iterator[None]:
    """Within this block, chart functions called on this thread return None (building a figure costs more
    than many a query)."""
    _quiet.on = True
    try:
        yield
    finally:
        _quiet.on = False


def _drawn(build: Callable[P, go.Figure]) -> Callable[P, go.Figure | None]:
    @wraps(build)
    def draw(*args: P.args, **kwargs: P.kwargs) -> go.Figure | None:
        return None if getattr(_quiet, "on", False) else build(*args, **kwargs)
    return draw


@_drawn
def funnel_chart(table: pd.DataFrame, title: str = "Funnel") -> go.Figure:
    """Entities reaching each step."""
    import plotly.graph_objects as go

    fig = go.Figure(go.Funnel(y=table["step"], x=table["entities"], textinfo="value+percent initial"))
    return fig.update_layout(title=title, **_LAYOUT)


@_drawn
def bar_chart(labels, values, title: str, value_title: str, baseline: float | None = None) -> go.Figure:
    """Horizontal bars (e.g. a rate per segment), with an optional baseline line."""
    import plotly.graph_objects as go

    fig = go.Figure(go.Bar(x=list(values), y=[str(v) for v in labels], orientation="h"))
    if baseline is not None:
        fig.add_vline(x=baseline, line_dash="dash", annotation_text="baseline")
    return fig.update_layout(title=title, xaxis_title=value_title, **_LAYOUT)


@_drawn
def line_chart(frame: pd.DataFrame, x: str, ys: list[str], title: str, flags: str | None = None) -> go.Figure:
    """Time series, with flagged points (anomalies) marked."""
    import plotly.graph_objects as go

    fig = go.Figure()
    for y in ys:
        fig.add_trace(go.Scatter(x=frame[x], y=frame[y], mode="lines", name=y))
    if flags is not None and frame[flags].any():
        hit = frame[frame[flags]]
        fig.add_trace(go.Scatter(x=hit[x], y=hit[ys[0]], mode="markers", name="anomaly",
                                 marker=dict(size=10, color="crimson")))
    return fig.update_layout(title=title, **_LAYOUT)


@_drawn
def heatmap(frame: pd.DataFrame, title: str) -> go.Figure:
    """A matrix (rows x columns), e.g. cohort retention."""
    import plotly.graph_objects as go

    fig = go.Figure(go.Heatmap(z=frame.to_numpy(), x=[str(c) for c in frame.columns],
                               y=[str(i) for i in frame.index], colorscale="Blues"))
    return fig.update_layout(title=title, **_LAYOUT)


@_drawn
def timeline_chart(lines: list[tuple[str, pd.Series, str, str | None]], title: str) -> go.Figure:
    """Daily rates (label, series indexed by day), each incident's interval [start, end) shaded (end None:
    ongoing, to the last day)."""
    import plotly.graph_objects as go

    fig = go.Figure()
    for label, series, start, end in lines:
        fig.add_trace(go.Scatter(x=series.index, y=series.to_numpy(), mode="lines", name=label))
        fig.add_vrect(x0=start, x1=end or series.index.max(), fillcolor="crimson", opacity=0.12, line_width=0)
    return fig.update_layout(title=title, yaxis_tickformat=".0%", **_LAYOUT)
