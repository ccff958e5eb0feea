"""Errors and load times per funnel step and segment (ANALYTICS.md, Errors and speed).

Counted per session from the session facts: a session is at step j when its funnel level
reaches j; an error belongs to the step of the latest step event at or before it; a load is
the first load of the step's event; converting means reaching step j+1.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Literal

import pandas as pd

from tools.charts import bar_chart
from tools.distinct_users import distinct_users
from tools.format import count, pct
from tools.funnel import NOT_SET, FunnelError, check_scope, downstream_rates
from tools.period import Period, period_weeks
from tools.result import Friction, ToolResult, applied, scope_words, segment_text
from tools.result import facts as facts_of
from tools.segments import SegmentRules, attach_segments, compare, rollup_sql, select
from tools.semantic.eventmap import EventMap, SegmentValue
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


@dataclass(frozen=True)
class ScopedFacts(Facts):
    """Session facts of one segment's sessions (their dimension values are those of their first event), whose
    step rows are those of one step (`step`) or of every step."""

    segment: Mapping[str, SegmentValue] = field(default_factory=dict, compare=False)
    step: str | None = None

    @classmethod
    def of(cls, facts: Facts, segment: Mapping[str, SegmentValue], step: str | None) -> ScopedFacts:
        if step is not None and step not in facts.steps:
            raise FunnelError(f"step {step!r} is not a step of the funnel ({' -> '.join(facts.steps)})")
        return cls(facts.period, facts.emap, facts.steps, facts.dims, facts.table, segment, step)

    def cte(self) -> str:
        return self._narrowed(self.table or f"({self.select_sql()})")

    def evidence_cte(self) -> str:
        return self._narrowed(f"({self.select_sql()})")

    def _narrowed(self, source: str) -> str:
        """`facts AS (...)` over `source`, narrowed to the segment's sessions."""
        where = f" WHERE {segment_condition(self.segment)}" if self.segment else ""
        return f"facts AS (SELECT * FROM {source} scoped{where})"


def steps_cte(facts: ScopedFacts) -> str:
    """step_rows: one row per (session, step j it reached) with err, load, slow (load above the step's
    90th percentile: the data's own scale, whatever unit or speed its pages have) and converted; of one step
    only when the facts are scoped to one.

    Joined on equal level with a row per (level, step at or below it): a hash join, where
    `level >= j` would sort the sessions for a range join (about 3x slower).
    """
    k = len(facts.steps)
    values = ", ".join(f"({level}, {i}, {lit(s)})" for level in range(1, k + 1)
                       for i, s in enumerate(facts.steps[:level], 1) if facts.step in (None, s))
    err = " ".join(f"WHEN {i} THEN error_{i}" for i in range(1, k + 1))
    load = " ".join(f"WHEN {i} THEN load_{i}" for i in range(1, k + 1))
    return (f"step_loads AS (SELECT f.*, s.step, s.j, CASE s.j {err} END AS err, CASE s.j {load} END AS load,"
            f" f.level >= s.j + 1 AS converted FROM facts f"
            f" JOIN (VALUES {values}) s(level, j, step) ON f.level = s.level),"
            f" slow_at AS (SELECT j, quantile_cont(load, {SLOW_QUANTILE}) AS slow_ms FROM step_loads"
            f" WHERE load IS NOT NULL GROUP BY j),"
            f" step_rows AS (SELECT l.*, l.load > a.slow_ms AS slow FROM step_loads l LEFT JOIN slow_at a USING (j))")


def signals_sql(facts: ScopedFacts, dims: tuple[str, ...], evidence: bool = False) -> str:
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


def detect(wh: Warehouse, facts: ScopedFacts, counts: pd.DataFrame, signal: Signal, dims: tuple[str, ...],
           rules: SegmentRules) -> tuple[pd.DataFrame, list[Friction]]:
    """Segments where the signal is significantly more frequent and goes with lower conversion."""
    df = signal_frame(counts, signal)
    if df.empty:
        return df, []
    hits = select(compare(_with_rest(df), worse="higher"),
                  replace(rules, min_relative_gap=signal.min_ratio - 1), key="step")
    gap = _conversion_gap(df)
    hits = hits[hits["step"].map(lambda s: gap.loc[s, "p"] < rules.q
                                 and gap.loc[s, "conv_hit"] < gap.loc[s, "conv_ok"])]
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


def _details(wh: Warehouse, facts: ScopedFacts, signal: Signal, hits: pd.DataFrame) -> list[dict]:
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


def downstream(wh: Warehouse, facts: ScopedFacts) -> dict[str, float]:
    """Everyone's session conversion from each step to the last step."""
    k = len(facts.steps)
    reach = ", ".join(f"count(*) FILTER (WHERE level >= {i}) AS n{i}" for i in range(1, k + 1))
    row = wh.query(f"WITH {facts.cte()} SELECT {reach} FROM facts").df.iloc[0]
    return downstream_rates([float(row[f"n{i}"]) for i in range(1, k + 1)], facts.steps)


def errors_and_speed(wh: Warehouse, period: Period, dims: tuple[str, ...] | None = None,
                     rules: SegmentRules = SegmentRules(), facts: Facts | None = None,
                     segment: Mapping[str, SegmentValue] | None = None, step: str | None = None,
                     breakdown: str | None = None) -> ToolResult:
    """Error rates and load times per step of a segment's sessions (one step, or all), optionally per value of a
    dimension, and the segments where they hurt conversion."""
    emap, segment = wh.event_map, segment or {}
    check_scope(emap, segment, breakdown)
    dims = emap.dims if dims is None else dims
    # the session facts of every dimension, materialized: a stored fact shared with scans and other questions
    scoped = ScopedFacts.of(facts or Facts(period, emap).materialize(wh), segment, step)
    counts = attach_segments(wh.query(signals_sql(scoped, dims)).df, dims)
    _, e_findings = detect(wh, scoped, counts, ERRORS, dims, rules)
    _, s_findings = detect(wh, scoped, counts, SLOW, dims, rules)
    findings = e_findings + s_findings
    can = capabilities(emap)
    overview, overall = _overview(wh, scoped, None), _overall(wh, scoped, None).iloc[0]
    by = _overall(wh, scoped, breakdown) if breakdown else None
    if "error rates" not in can:
        overview["error_rate"], overall["error_rate"] = None, None
    scope = applied(period, segment, breakdown, step)
    data = {"overview": overview.to_dict("records"), "applied": scope,
            "facts": facts_of(error_rate=(overall["error_rate"], "rate"), sessions=(overall["sessions"], "count"))}
    table = overview
    if breakdown:
        data["breakdown"] = by
        table = _overview(wh, scoped, breakdown)
    summary = _words(scope, overview, overall, by, findings, can)
    chart = bar_chart(overview["step"], overview["error_rate"], "Error rate per step (sessions)", "error rate") \
        if "error rates" in can else None
    return ToolResult("Errors and speed", summary, table, chart, [signals_sql(scoped, dims, True)], findings, data)


def capabilities(emap: EventMap) -> set[str]:
    """Which of error rates and load times the event map lets this analysis compute."""
    return {what for what, ok in (("error rates", emap.event_of("error") is not None),
                                  ("load times", emap.roles.page_load is not None)) if ok}


def _overview(wh: Warehouse, facts: ScopedFacts, breakdown: str | None) -> pd.DataFrame:
    """Per step (and value of `breakdown`): sessions reaching it, those with an error at it, error rate,
    p75 and p90 of its loads."""
    df = wh.query(f"WITH {facts.cte()}, {steps_cte(facts)} SELECT {_by(breakdown)}step, count(*) AS sessions,"
                  f" count(*) FILTER (WHERE err) AS errors, quantile_cont(load, 0.75) AS p75_ms,"
                  f" quantile_cont(load, {SLOW_QUANTILE}) AS p90_ms FROM step_rows GROUP BY ALL").df
    df["error_rate"] = df["errors"] / df["sessions"]
    df = df[[*([breakdown] if breakdown else []), "step", "sessions", "errors", "error_rate", "p75_ms", "p90_ms"]]
    order = {s: i for i, s in enumerate(facts.steps)}
    keys = ["step", *([breakdown] if breakdown else [])]
    return df.sort_values(keys, key=lambda c: c.map(order) if c.name == "step" else c,
                          kind="stable").reset_index(drop=True)


def _overall(wh: Warehouse, facts: ScopedFacts, breakdown: str | None) -> pd.DataFrame:
    """Sessions reaching the step in scope (the first step, without one), and of them those with an error at a
    step in scope; per value of `breakdown` (most sessions first), or one row for all of them."""
    # sessions first (a breakdown value is one per session), then counted: one hash table, not two distinct counts
    per_session = (f"SELECT session_id{f', {breakdown}' if breakdown else ''}, bool_or(err) AS err FROM step_rows"
                   " GROUP BY ALL")
    df = wh.query(f"WITH {facts.cte()}, {steps_cte(facts)} SELECT {_by(breakdown)}count(*) AS sessions,"
                  f" count(*) FILTER (WHERE err) AS with_error FROM ({per_session}) s"
                  + (" GROUP BY ALL" if breakdown else "")).df
    df["error_rate"] = (df["with_error"] / df["sessions"]).where(df["sessions"] > 0)
    if not breakdown:
        return df
    return df.sort_values(["sessions", breakdown], ascending=[False, True], kind="stable").reset_index(drop=True)


def _by(breakdown: str | None) -> str:
    """The select-list head of a breakdown's value (an unset one as `(not set)`), or nothing."""
    return f"coalesce({breakdown}::VARCHAR, {lit(NOT_SET)}) AS {breakdown}, " if breakdown else ""


def _words(scope: dict, overview: pd.DataFrame, overall: pd.Series, by: pd.DataFrame | None,
           findings: list[Friction], can: set[str]) -> str:
    """Verdict (share of sessions in scope with an error), per step, per breakdown value, flagged segments; then
    the details: how a segment is flagged."""
    step, dim = scope["step"], scope["breakdown"]
    reached = f"reaching {step}" if step else "entering the funnel"
    if not overall["sessions"]:
        return f"Errors and speed ({scope_words(scope)}): no sessions {reached}."
    errors = "error rates" in can
    sessions = count(overall["sessions"])
    head = (f"{pct(overall['error_rate'])} of {sessions} sessions {reached} hit an error"
            if errors and overall["sessions"] else f"{sessions} sessions {reached}"
            + ("" if errors else "; error rates not computed"))
    text = f"Errors and speed ({scope_words(scope)}): {head}. Per step (of sessions reaching it): " + "; ".join(
        f"{r.step}: " + (f"error rate {pct(r.error_rate)}, " if errors else "")
        + (f"p75 load {count(round(r.p75_ms))} ms" if r.p75_ms == r.p75_ms else "no load times")
        for r in overview.itertuples()) + ". "
    if by is not None and errors:
        text += f"By {dim} (share of its sessions {reached} with an error): " + "; ".join(
            f"{r[dim]} {pct(r['error_rate'])} of {count(r['sessions'])}" for _, r in by.head(10).iterrows()) + \
            (f"; {len(by) - 10} more" if len(by) > 10 else "") + ". "
    text += "".join(f"Not computed: {what} (the event map has no {need}). "
                    for what, need in (("error rates", "error role"), ("load times", "page_load role"))
                    if what not in can)
    text += ("Flagged: " + "; ".join(
        f"{f.title} ({pct(f.observed)} vs {pct(f.baseline)} of sessions)" if f.kind == "error_spike"
        else f"{f.title} (p75 {count(round(f.observed))} ms vs {count(round(f.baseline))} ms)" for f in findings[:6])
        + "." if findings else "No segment has significantly more errors or slow pages.")
    return text + (f"\n\nDetails: a segment is flagged at a step when its share of sessions with an error (at least "
                   f"{ERROR_RATIO:g}x the rest's) or with a slow load (above the step's {SLOW_QUANTILE * 100:.0f}th "
                   f"percentile; p75 at least {P75_RATIO:g}x the rest's) is significantly higher, and such "
                   "sessions convert to the next step significantly less (two-proportion z-tests, "
                   "Benjamini-Hochberg q<0.05).")
