"""Errors and load times per funnel step and segment (ANALYTICS.md, Errors and speed).

Counted per session from the session facts: a session is at step j when its funnel level
reaches j; an error belongs to the step of the latest step event at or before it; a load is
the first load of the step's event; converting means reaching step j+1.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

import pandas as pd

from tools.charts import bar_chart
from tools.distinct_users import distinct_users
from tools.funnel import downstream_rates
from tools.period import Period, period_weeks
from tools.result import Friction, ToolResult, segment_text
from tools.segments import SegmentRules, attach_segments, compare, rollup_sql, select
from tools.semantic.eventmap import EventMap
from tools.sessions import Facts, segment_condition
from tools.sqltext import lit
from tools.stats import two_proportion_p
from tools.warehouse import Warehouse

SLOW_QUANTILE = 0.9  # a load is slow above its step's own 90th percentile over the period
P75_RATIO = 1.5
ERROR_RATIO = 2.0


@dataclass(frozen=True)
class Signal:
    """A per-step session flag tested by segment: an error shown, or a slow load."""

    kind: Literal["error_spike", "slow_page"]
    prefix: str     # column prefix in signals_sql
    flag: str       # SQL over a step row: is the session affected?
    present: str    # SQL over a step row: does the session count for this signal at all?
    min_ratio: float


ERRORS = Signal("error_spike", "err", "err", "TRUE", ERROR_RATIO)
SLOW = Signal("slow_page", "slow", "slow", "load IS NOT NULL", 1 + 0.10)
SIGNALS = (ERRORS, SLOW)


def steps_cte(facts: Facts) -> str:
    """step_rows: one row per (session, step j it reached) with err, load, slow (load above the step's
    90th percentile: the data's own scale, whatever unit or speed its pages have) and converted.

    Joined on equal level with a row per (level, step at or below it): a hash join, where
    `level >= j` would sort the sessions for a range join (about 3x slower).
    """
    k = len(facts.steps)
    values = ", ".join(f"({level}, {i}, {lit(s)})" for level in range(1, k + 1)
                       for i, s in enumerate(facts.steps[:level], 1))
    err = " ".join(f"WHEN {i} THEN error_{i}" for i in range(1, k + 1))
    load = " ".join(f"WHEN {i} THEN load_{i}" for i in range(1, k + 1))
    return (f"step_loads AS (SELECT f.*, s.step, s.j, CASE s.j {err} END AS err, CASE s.j {load} END AS load,"
            f" f.level >= s.j + 1 AS converted FROM facts f"
            f" JOIN (VALUES {values}) s(level, j, step) ON f.level = s.level),"
            f" slow_at AS (SELECT j, quantile_cont(load, {SLOW_QUANTILE}) AS slow_ms FROM step_loads"
            f" WHERE load IS NOT NULL GROUP BY j),"
            f" step_rows AS (SELECT l.*, l.load > a.slow_ms AS slow FROM step_loads l LEFT JOIN slow_at a USING (j))")


def signals_sql(facts: Facts, dims: tuple[str, ...], evidence: bool = False) -> str:
    """Per step and segment, for each signal: sessions counted (n), affected (x), and conversions."""
    counts = {}
    for s in SIGNALS:
        counts |= {f"{s.prefix}_n": f"count(*) FILTER (WHERE {s.present})",
                   f"{s.prefix}_x": f"count(*) FILTER (WHERE {s.flag})",
                   f"{s.prefix}_x_conv": f"count(*) FILTER (WHERE {s.flag} AND converted)",
                   f"{s.prefix}_n_conv": f"count(*) FILTER (WHERE {s.present} AND converted)"}
    return (f"WITH {facts.evidence_cte() if evidence else facts.cte()}, {steps_cte(facts)},\n"
            + rollup_sql("step_rows", dims, counts, True, ("step",)).removeprefix("WITH "))


def signal_frame(counts: pd.DataFrame, signal: Signal) -> pd.DataFrame:
    """The columns n, x, x_conv, n_conv of one signal (rows where it has any session)."""
    cols = {f"{signal.prefix}_{c}": c for c in ("n", "x", "x_conv", "n_conv")}
    other = [c for c in counts.columns if c.split("_")[0] in {s.prefix for s in SIGNALS}]
    out = counts.drop(columns=[c for c in other if c not in cols]).rename(columns=cols)
    return out[out["n"] > 0].reset_index(drop=True)


def _with_rest(df: pd.DataFrame) -> pd.DataFrame:
    total = df[df["depth"] == 0].set_index("step")
    return df.assign(n_rest=df["step"].map(total["n"]) - df["n"], x_rest=df["step"].map(total["x"]) - df["x"])


def _conversion_gap(df: pd.DataFrame) -> pd.DataFrame:
    """Per step, over everyone: next-step conversion of affected vs unaffected sessions, and its p-value."""
    t = df[df["depth"] == 0].set_index("step")
    ok_n, ok_x = t["n"] - t["x"], t["n_conv"] - t["x_conv"]
    return pd.DataFrame({"conv_hit": (t["x_conv"] / t["x"]).fillna(0.0), "conv_ok": (ok_x / ok_n).fillna(0.0),
                         "p": two_proportion_p(t["x_conv"], t["x"], ok_x, ok_n)}, index=t.index)


def detect(wh: Warehouse, facts: Facts, counts: pd.DataFrame, signal: Signal, dims: tuple[str, ...],
           rules: SegmentRules) -> tuple[pd.DataFrame, list[Friction]]:
    """Segments where the signal is significantly more frequent and goes with lower conversion."""
    df = signal_frame(counts, signal)
    if df.empty:
        return df, []
    hits = select(compare(_with_rest(df), worse="higher"),
                  replace(rules, min_relative_gap=signal.min_ratio - 1), key="step")
    gap = _conversion_gap(df)
    hits = hits[hits["step"].map(lambda s: gap.loc[s, "p"] < rules.q and gap.loc[s, "conv_hit"] < gap.loc[s, "conv_ok"])]
    if hits.empty:
        return df, []
    steps = facts.steps
    conds = [f"{segment_condition(r.segment)} AND step = {lit(r.step)} AND {signal.flag}" for r in hits.itertuples()]
    users = distinct_users(wh, f"{facts.cte()}, {steps_cte(facts)}", "step_rows", conds, where=signal.flag)
    extra = _details(wh, facts, signal, hits)
    weeks = period_weeks(wh, facts.period)
    down = downstream(wh, facts)
    evidence = signals_sql(facts, dims, evidence=True)
    out = []
    for r, u, more in zip(hits.itertuples(), users, extra):
        g = gap.loc[r.step]
        nxt = steps[min(steps.index(r.step) + 1, len(steps) - 1)]
        if signal is SLOW and not more["p75"] >= P75_RATIO * more["p75_rest"]:
            continue
        effect = r.gap * (g["conv_ok"] - g["conv_hit"])
        out.append(Friction(
            kind=signal.kind, title=_title(signal, r, more), metric="error_rate" if signal is ERRORS else "p75_load_ms",
            step=r.step, segment=r.segment, period=facts.period.label,
            baseline=float(r.rate_rest if signal is ERRORS else more["p75_rest"]),
            observed=float(r.rate if signal is ERRORS else more["p75"]), affected_users=u,
            est_lost_conversions=float(r.n * effect * down[nxt]), p_value=float(r.p_value),
            evidence_sql=evidence + f"\n-- row: step = {lit(r.step)}, {segment_condition(r.segment)}",
            weekly_exposed=float(r.n / weeks), gap=float(effect), downstream_rate=down[nxt],
            detail={**more, "sessions": int(r.n), "affected_sessions": int(r.x), "share": float(r.rate),
                    "share_rest": float(r.rate_rest), "conversion_affected": float(g["conv_hit"]),
                    "conversion_unaffected": float(g["conv_ok"])},
        ))
    return df, out


def _title(signal: Signal, r, more: dict) -> str:
    if signal is ERRORS:
        return f"Errors at {r.step} for {segment_text(r.segment)} ({more['error_code']})"
    return f"{r.step} page is slow for {segment_text(r.segment)}"


def _details(wh: Warehouse, facts: Facts, signal: Signal, hits: pd.DataFrame) -> list[dict]:
    """Commonest error code, or p75 load of segment and rest, for each hit."""
    if signal is ERRORS:
        code = facts.emap.field("error", "code")
        if code is None:
            return [{"error_code": "no error code field mapped"} for _ in range(len(hits))]
        conds = [f"f.error_{facts.steps.index(r.step) + 1} AND "
                 + segment_condition({f"f.{k}": v for k, v in r.segment.items()}) for r in hits.itertuples()]
        cols = ", ".join(f"mode({code.sql('e')}) FILTER (WHERE {c}) AS c{i}" for i, c in enumerate(conds))
        row = wh.query(f"WITH {facts.cte()} SELECT {cols} FROM events e JOIN facts f USING (session_id)"
                       f" WHERE e.event = {lit(facts.emap.event_of('error'))} AND {facts.period.where('e.ts')}"
                       ).df.iloc[0]
        return [{"error_code": str(row[f"c{i}"])} for i in range(len(hits))]
    cols = ", ".join(
        f"quantile_cont(load, 0.75) FILTER (WHERE step = {lit(r.step)} AND {segment_condition(r.segment)}) AS s{i}, "
        f"quantile_cont(load, 0.75) FILTER (WHERE step = {lit(r.step)}"
        f" AND NOT coalesce({segment_condition(r.segment)}, FALSE))"
        f" AS r{i}" for i, r in enumerate(hits.itertuples()))
    row = wh.query(f"WITH {facts.cte()}, {steps_cte(facts)} SELECT {cols} FROM step_rows WHERE load IS NOT NULL"
                   ).df.iloc[0]
    return [{"p75": float(row[f"s{i}"]), "p75_rest": float(row[f"r{i}"])} for i in range(len(hits))]


def downstream(wh: Warehouse, facts: Facts) -> dict[str, float]:
    """Everyone's session conversion from each step to the last step."""
    k = len(facts.steps)
    reach = ", ".join(f"count(*) FILTER (WHERE level >= {i}) AS n{i}" for i in range(1, k + 1))
    row = wh.query(f"WITH {facts.cte()} SELECT {reach} FROM facts").df.iloc[0]
    return downstream_rates([float(row[f"n{i}"]) for i in range(1, k + 1)], facts.steps)


def errors_and_speed(wh: Warehouse, period: Period, dims: tuple[str, ...] | None = None,
                     rules: SegmentRules = SegmentRules(), facts: Facts | None = None) -> ToolResult:
    """Error rates and load times per step and segment, and the segments where they hurt conversion."""
    emap = wh.event_map
    dims = emap.dims if dims is None else dims
    facts = facts or Facts(period, emap, dims=dims)
    counts = attach_segments(wh.query(signals_sql(facts, dims)).df, dims)
    errors, e_findings = detect(wh, facts, counts, ERRORS, dims, rules)
    _, s_findings = detect(wh, facts, counts, SLOW, dims, rules)
    findings = e_findings + s_findings
    overview = _overview(wh, facts, errors)
    can = capabilities(emap)
    has_errors = "error rates" in can
    if not has_errors:
        overview["error_rate"] = None
    summary = (f"Errors and speed (period {period.label}, per session): "
               + "; ".join(f"{r.step}: " + (f"error rate {r.error_rate:.1%}, " if has_errors else "")
                           + (f"p75 load {r.p75_ms:.0f} ms" if r.p75_ms == r.p75_ms else "no load times")
                           for r in overview.itertuples()) + ". ")
    summary += "".join(f"Not computed: {what} (the event map has no {need}). "
                       for what, need in (("error rates", "error role"), ("load times", "page_load role"))
                       if what not in can)
    summary += ("Flagged: " + "; ".join(
        f"{f.title} ({f.observed:.1%} vs {f.baseline:.1%})" if f.kind == "error_spike"
        else f"{f.title} (p75 {f.observed:.0f} ms vs {f.baseline:.0f} ms)" for f in findings[:6])
        if findings else "No segment has significantly more errors or slow pages.")
    chart = bar_chart(overview["step"], overview["error_rate"], "Error rate per step (sessions)", "error rate") \
        if has_errors else None
    return ToolResult("Errors and speed", summary, overview, chart,
                      [signals_sql(facts, dims, True)], findings,
                      {"overview": overview.to_dict("records")})


def capabilities(emap: EventMap) -> set[str]:
    """Which of error rates and load times the event map lets this analysis compute."""
    return {what for what, ok in (("error rates", emap.event_of("error") is not None),
                                  ("load times", emap.roles.page_load is not None)) if ok}


def _overview(wh: Warehouse, facts: Facts, errors: pd.DataFrame) -> pd.DataFrame:
    e = errors[errors["depth"] == 0][["step", "n", "x"]].rename(columns={"n": "sessions", "x": "errors"})
    e["error_rate"] = e["errors"] / e["sessions"]
    p75 = wh.query(f"WITH {facts.cte()}, {steps_cte(facts)} SELECT step, quantile_cont(load, 0.75) AS p75_ms,"
                   f" quantile_cont(load, {SLOW_QUANTILE}) AS p90_ms FROM step_rows WHERE load IS NOT NULL"
                   f" GROUP BY step").df
    order = {s: i for i, s in enumerate(facts.steps)}
    out = e.merge(p75, on="step", how="left")
    return out.sort_values("step", key=lambda s: s.map(order)).reset_index(drop=True)
