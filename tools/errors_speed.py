"""Errors and load times per funnel step and segment (ANALYTICS.md, Errors and speed).

Counted per session, like the drill-down: an error belongs to the funnel step the session
was on when it was shown (the latest step event at or before it); a load belongs to the
step event that carries it. Conversion means reaching the next funnel step later in the
same session.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd

from data.schema import DIMENSIONS, EVENT_DIMENSIONS, PURCHASE_FUNNEL, USER_DIMENSIONS
from tools.charts import bar_chart
from tools.period import Period, period_weeks
from tools.result import Friction, ToolResult, segment_text
from tools.segments import SegmentRules, attach_segments, compare, grouping_flags, grouping_sets, select
from tools.sqltext import lit
from tools.stats import two_proportion_p
from tools.warehouse import Warehouse

SLOW_MS = 3000
ERROR_RATIO = 2.0
P75_RATIO = 1.5
BIN_MS = 100
MAX_BIN = 300


def _step_sessions_cte(period: Period, steps: tuple[str, ...], dims: tuple[str, ...]) -> str:
    """step_sessions: one row per (session, step reached) with its dims, first ts and next-step flag."""
    names = ", ".join(lit(s) for s in steps)
    order = " ".join(f"WHEN {lit(s)} THEN {i}" for i, s in enumerate(steps))
    ev_dims = "".join(f", any_value(e.{d}) AS {d}" for d in dims if d in EVENT_DIMENSIONS)
    user_dims = "".join(f", any_value(u.{d}) AS {d}" for d in dims if d in USER_DIMENSIONS)
    return f"""step_ev AS (SELECT session_id, user_id, ts, event, CASE event {order} END AS k, load_time_ms
                 {''.join(', ' + d for d in dims if d in EVENT_DIMENSIONS)}
                 FROM events WHERE event IN ({names}) AND session_id IS NOT NULL AND {period.where()}),
step_sessions AS (
    SELECT e.session_id, e.k, any_value(e.event) AS step, any_value(e.user_id) AS user_id, min(e.ts) AS ts
           {ev_dims}{user_dims}
    FROM step_ev e LEFT JOIN users u ON u.user_id = e.user_id GROUP BY e.session_id, e.k),
step_conv AS (
    SELECT a.*, EXISTS (SELECT 1 FROM step_ev b WHERE b.session_id = a.session_id AND b.k = a.k + 1
                        AND b.ts >= a.ts) AS converted
    FROM step_sessions a)"""


def errors_sql(period: Period, steps: tuple[str, ...], dims: tuple[str, ...]) -> str:
    """Per step and segment: sessions at the step, sessions with an error there, its commonest code."""
    return f"""WITH {_step_sessions_cte(period, steps, dims)},
errs AS (SELECT session_id, ts, error_code FROM events WHERE event = 'Error Shown' AND {period.where()}
         AND session_id IS NOT NULL),
err_step AS (SELECT e.session_id, s.k, e.error_code FROM errs e ASOF JOIN step_ev s
             ON e.session_id = s.session_id AND e.ts >= s.ts),
err_first AS (SELECT session_id, k, mode(error_code) AS error_code FROM err_step GROUP BY ALL),
joined AS (SELECT c.*, f.session_id IS NOT NULL AS errored, f.error_code
           FROM step_conv c LEFT JOIN err_first f USING (session_id, k))
SELECT step, {', '.join(dims)}, {grouping_flags(dims)},
       count(*) AS n, count(*) FILTER (WHERE errored) AS x,
       count(DISTINCT user_id) FILTER (WHERE errored) AS users,
       count(*) FILTER (WHERE errored AND converted) AS x_conv, count(*) FILTER (WHERE converted) AS n_conv,
       mode(error_code) FILTER (WHERE errored) AS top_error
FROM joined GROUP BY {grouping_sets(dims, True, ('step',))}"""


def loads_sql(period: Period, steps: tuple[str, ...], dims: tuple[str, ...]) -> str:
    """Per step and segment: load-time histogram bins, slow loads, users with slow loads."""
    return f"""WITH {_step_sessions_cte(period, steps, dims)},
loads AS (SELECT c.*, e.load_time_ms FROM step_conv c JOIN step_ev e
          ON e.session_id = c.session_id AND e.k = c.k AND e.ts = c.ts WHERE e.load_time_ms IS NOT NULL)
SELECT step, {', '.join(dims)}, {grouping_flags(dims)},
       count(*) AS n, count(*) FILTER (WHERE load_time_ms > {SLOW_MS}) AS x,
       count(DISTINCT user_id) FILTER (WHERE load_time_ms > {SLOW_MS}) AS users,
       count(*) FILTER (WHERE load_time_ms > {SLOW_MS} AND converted) AS x_conv,
       count(*) FILTER (WHERE converted) AS n_conv,
       histogram(least(load_time_ms // {BIN_MS}, {MAX_BIN})) AS bins
FROM loads GROUP BY {grouping_sets(dims, True, ('step',))}"""


def _rest(df: pd.DataFrame) -> pd.DataFrame:
    """Add n_rest / x_rest from the everyone row of the same step."""
    total = df[df["depth"] == 0].set_index("step")
    out = df.copy()
    out["n_rest"] = out["step"].map(total["n"]) - out["n"]
    out["x_rest"] = out["step"].map(total["x"]) - out["x"]
    return out


def _p75(hist: dict) -> float:
    """75th percentile (ms, bin midpoint) of a {bin: count} histogram."""
    if not hist:
        return float("nan")
    bins = np.array(sorted(hist))
    counts = np.array([hist[b] for b in bins], dtype=float)
    idx = np.searchsorted(np.cumsum(counts), 0.75 * counts.sum())
    return float((bins[min(idx, bins.size - 1)] + 0.5) * BIN_MS)


def _p75_rest(seg: dict, total: dict) -> float:
    return _p75({b: total.get(b, 0) - seg.get(b, 0) for b in total if total.get(b, 0) - seg.get(b, 0) > 0})


def _conversion_gap(df: pd.DataFrame) -> pd.DataFrame:
    """Per step: conversion of affected (x) vs unaffected sessions of everyone, and its p-value."""
    total = df[df["depth"] == 0].set_index("step")
    conv_hit = total["x_conv"] / total["x"].replace(0, np.nan)
    conv_ok = (total["n_conv"] - total["x_conv"]) / (total["n"] - total["x"]).replace(0, np.nan)
    p = two_proportion_p(total["x_conv"], total["x"], total["n_conv"] - total["x_conv"], total["n"] - total["x"])
    return pd.DataFrame({"conv_hit": conv_hit.fillna(0), "conv_ok": conv_ok.fillna(0), "p": p}, index=total.index)


def _downstream(wh: Warehouse, period: Period, steps: tuple[str, ...]) -> dict[str, float]:
    """Everyone's session conversion from each step to the last step."""
    counts = wh.query(
        f"SELECT event, count(DISTINCT session_id) AS n FROM events WHERE event IN ({', '.join(lit(s) for s in steps)})"
        f" AND {period.where()} GROUP BY event").df.set_index("event")["n"]
    n = [float(counts.get(s, 0)) for s in steps]
    return {s: (n[-1] / n[i] if n[i] else 0.0) for i, s in enumerate(steps)}


def errors_and_speed(wh: Warehouse, period: Period, steps: tuple[str, ...] = PURCHASE_FUNNEL,
                     dims: tuple[str, ...] = DIMENSIONS, rules: SegmentRules = SegmentRules()) -> ToolResult:
    """Error rates and load times per step and segment, and the segments where they hurt conversion."""
    e_sql, l_sql = errors_sql(period, steps, dims), loads_sql(period, steps, dims)
    errors = attach_segments(wh.query(e_sql).df, dims)
    loads = attach_segments(wh.query(l_sql).df, dims)
    weeks = period_weeks(wh, period)
    downstream = _downstream(wh, period, steps)
    findings = _error_findings(errors, rules, weeks, downstream, period, e_sql, steps)
    findings += _slow_findings(loads, rules, weeks, downstream, period, l_sql, steps)
    overview = _overview(errors, loads)
    summary = (f"Errors and speed (period {period.label}, per session): "
               + "; ".join(f"{r.step}: error rate {r.error_rate:.1%}, p75 load {r.p75_ms:.0f} ms"
                           for r in overview.itertuples()) + ". ")
    summary += ("Flagged: " + "; ".join(f"{f.title} ({f.observed:.1%} vs {f.baseline:.1%})" if f.kind == "error_spike"
                                        else f"{f.title} (p75 {f.observed:.0f} ms vs {f.baseline:.0f} ms)"
                                        for f in findings[:6])
                if findings else "No segment has significantly more errors or slow pages.")
    chart = bar_chart(overview["step"], overview["error_rate"], "Error rate per step (sessions)", "error rate")
    return ToolResult("Errors and speed", summary, overview, chart, [e_sql, l_sql], findings,
                      {"overview": overview.to_dict("records")})


def _overview(errors: pd.DataFrame, loads: pd.DataFrame) -> pd.DataFrame:
    e = errors[errors["depth"] == 0][["step", "n", "x", "top_error"]].rename(columns={"n": "sessions", "x": "errors"})
    e["error_rate"] = e["errors"] / e["sessions"]
    l0 = loads[loads["depth"] == 0][["step", "bins", "n", "x"]]
    l0 = l0.assign(p75_ms=l0["bins"].map(_p75), slow_share=l0["x"] / l0["n"])[["step", "p75_ms", "slow_share"]]
    return e.merge(l0, on="step", how="left").fillna({"p75_ms": 0.0, "slow_share": 0.0})


def _error_findings(df: pd.DataFrame, rules: SegmentRules, weeks: float, downstream: dict[str, float],
                    period: Period, sql: str, steps: tuple[str, ...]) -> list[Friction]:
    if df.empty:
        return []
    tested = compare(_rest(df), worse="higher")
    hits = select(tested, replace(rules, min_relative_gap=ERROR_RATIO - 1), key="step")
    gap = _conversion_gap(df)
    out = []
    for row in hits.itertuples():
        g = gap.loc[row.step]
        if not (g["p"] < rules.q and g["conv_hit"] < g["conv_ok"]):
            continue
        nxt = steps[min(steps.index(row.step) + 1, len(steps) - 1)]
        lost = row.lost * (g["conv_ok"] - g["conv_hit"]) * downstream.get(nxt, 1.0)
        out.append(Friction(
            kind="error_spike", title=f"Errors at {row.step} for {segment_text(row.segment)} ({row.top_error})",
            metric="error_rate", step=row.step, segment=row.segment, period=period.label,
            baseline=float(row.rate_rest), observed=float(row.rate), affected_users=int(row.users),
            est_lost_conversions=float(lost), p_value=float(row.p_value), evidence_sql=sql,
            weekly_exposed=float(row.n / weeks), gap=float(row.gap * (g["conv_ok"] - g["conv_hit"])),
            downstream_rate=downstream.get(nxt, 1.0),
            detail={"error_code": row.top_error, "sessions": int(row.n), "errored_sessions": int(row.x),
                    "conversion_after_error": float(g["conv_hit"]), "conversion_without_error": float(g["conv_ok"])},
        ))
    return out


def _slow_findings(df: pd.DataFrame, rules: SegmentRules, weeks: float, downstream: dict[str, float],
                   period: Period, sql: str, steps: tuple[str, ...]) -> list[Friction]:
    if df.empty:
        return []
    tested = compare(_rest(df), worse="higher")
    hits = select(tested, rules, key="step")
    totals = df[df["depth"] == 0].set_index("step")["bins"]
    gap = _conversion_gap(df)
    out = []
    for row in hits.itertuples():
        p75, p75_rest = _p75(row.bins), _p75_rest(row.bins, totals[row.step])
        g = gap.loc[row.step]
        if not (p75 >= P75_RATIO * p75_rest and g["p"] < rules.q and g["conv_hit"] < g["conv_ok"]):
            continue
        nxt = steps[min(steps.index(row.step) + 1, len(steps) - 1)]
        lost = row.lost * (g["conv_ok"] - g["conv_hit"]) * downstream.get(nxt, 1.0)
        out.append(Friction(
            kind="slow_page", title=f"{row.step} page is slow for {segment_text(row.segment)}",
            metric="p75_load_ms", step=row.step, segment=row.segment, period=period.label,
            baseline=p75_rest, observed=p75, affected_users=int(row.users), est_lost_conversions=float(lost),
            p_value=float(row.p_value), evidence_sql=sql, weekly_exposed=float(row.n / weeks),
            gap=float(row.gap * (g["conv_ok"] - g["conv_hit"])), downstream_rate=downstream.get(nxt, 1.0),
            detail={"slow_share": float(row.rate), "slow_share_rest": float(row.rate_rest), "loads": int(row.n),
                    "conversion_after_slow": float(g["conv_hit"]), "conversion_after_fast": float(g["conv_ok"])},
        ))
    return out
