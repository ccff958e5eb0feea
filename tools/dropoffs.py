"""Drop-off drill-down: for every funnel step, the segments that convert significantly worse."""

from __future__ import annotations

from dataclasses import replace

import pandas as pd

from data.schema import DIMENSIONS
from tools.charts import bar_chart
from tools.funnel import FunnelSpec, known_events, levels_sql, step_counts_sql
from tools.period import period_weeks
from tools.result import Friction, ToolResult, segment_text
from tools.segments import SegmentRules, attach_segments, compare, grouping_flags, grouping_sets, select
from tools.warehouse import Warehouse


def segment_step_counts(wh: Warehouse, spec: FunnelSpec, dims: tuple[str, ...], pairs: bool = True
                        ) -> tuple[pd.DataFrame, str]:
    """Entities reaching each step for every segment (grouping sets); row with depth 0 = everyone."""
    k = len(spec.steps)
    reach = ", ".join(f"count(*) FILTER (WHERE level >= {i}) AS n{i}" for i in range(1, k + 1))
    users = ", ".join(f"count(DISTINCT user_id) FILTER (WHERE level >= {i}) AS u{i}" for i in range(1, k + 1))
    sql = (f"WITH levels AS ({levels_sql(spec, dims)})\n"
           f"SELECT {', '.join(dims)}, {grouping_flags(dims)}, {reach}, {users} FROM levels "
           f"GROUP BY {grouping_sets(dims, pairs)}")
    return attach_segments(wh.query(sql).df, dims), sql


def step_tests(counts: pd.DataFrame, steps: tuple[str, ...]) -> pd.DataFrame:
    """One row per (step k >= 2, segment): n entered step k-1, x reached step k, versus the rest."""
    total = counts[counts["depth"] == 0].iloc[0]
    rows = []
    for i in range(2, len(steps) + 1):
        part = pd.DataFrame({
            "step": steps[i - 1], "segment": counts["segment"], "depth": counts["depth"],
            "n": counts[f"n{i - 1}"], "x": counts[f"n{i}"], "users": counts[f"u{i - 1}"],
        })
        part["n_rest"] = total[f"n{i - 1}"] - part["n"]
        part["x_rest"] = total[f"n{i}"] - part["x"]
        rows.append(part)
    return compare(pd.concat(rows, ignore_index=True), worse="lower")


def downstream_rates(counts: pd.DataFrame, steps: tuple[str, ...]) -> dict[str, float]:
    """For each step, the product of everyone's later step conversions (reaching the last step)."""
    total = counts[counts["depth"] == 0].iloc[0]
    n = [float(total[f"n{i}"]) for i in range(1, len(steps) + 1)]
    out = {}
    for i, step in enumerate(steps):
        rate = 1.0
        for j in range(i + 1, len(steps)):
            rate *= n[j] / n[j - 1] if n[j - 1] else 0.0
        out[step] = rate
    return out


def dropoffs(wh: Warehouse, spec: FunnelSpec, dims: tuple[str, ...] = DIMENSIONS, pairs: bool = True,
             rules: SegmentRules = SegmentRules()) -> ToolResult:
    """Segments whose step conversion is significantly worse than the rest, ranked by users lost."""
    spec.validate(known_events(wh))
    counts, sql = segment_step_counts(wh, spec, dims, pairs)
    if counts[counts["depth"] == 0].empty or counts.loc[counts["depth"] == 0, "n1"].iloc[0] == 0:
        return ToolResult("Drop-offs", f"No one entered {spec.steps[0]} in period {spec.period.label}.", sql=[sql])
    hits = select(step_tests(counts, spec.steps), rules, key="step")
    downstream = downstream_rates(counts, spec.steps)
    weeks = period_weeks(wh, spec.period)
    findings = [_finding(row, spec, downstream, weeks) for row in hits.itertuples()]
    table = pd.DataFrame([{
        "step": f.step, "segment": segment_text(f.segment), "entered_previous": f.detail["entered"],
        "conversion": f.observed, "rest": f.baseline, "lost": round(f.detail["lost"]),
        "p_value": f.p_value} for f in findings])
    if findings:
        top = findings[0]
        summary = (f"{len(findings)} segment(s) convert significantly worse (BH q<{rules.q}, gap>="
                   f"{rules.min_relative_gap:.0%}, n>={rules.min_support}). Worst: "
                   + "; ".join(f"{f.step} for {segment_text(f.segment)}: {f.observed:.1%} vs {f.baseline:.1%} "
                               f"({round(f.detail['lost'])} {spec.entity} lost)" for f in findings[:5]))
        chart = bar_chart([f"{segment_text(f.segment)} @ {f.step}" for f in findings[:10]],
                          [f.observed for f in findings[:10]], "Step conversion of flagged segments",
                          "step conversion", baseline=top.baseline)
    else:
        summary, chart = f"No segment converts significantly worse at any step (period {spec.period.label}).", None
    return ToolResult("Drop-offs", summary, table, chart, [sql], findings)


def _finding(row, spec: FunnelSpec, downstream: dict[str, float], weeks: float) -> Friction:
    k = spec.steps.index(row.step)
    evidence = step_counts_sql(replace(spec, where=dict(row.segment)))
    return Friction(
        kind="funnel_dropoff",
        title=f"{spec.steps[k - 1]} -> {row.step} conversion is low for {segment_text(row.segment)}",
        metric="step_conversion", step=row.step, segment=row.segment, period=spec.period.label,
        baseline=float(row.rate_rest), observed=float(row.rate), affected_users=int(row.users),
        est_lost_conversions=float(row.lost * downstream[row.step]), p_value=float(row.p_value),
        evidence_sql=evidence, weekly_exposed=float(row.n / weeks), gap=float(row.gap),
        downstream_rate=downstream[row.step],
        detail={"lost": float(row.lost), "entered": int(row.n), "converted": int(row.x),
                "q_value": float(row.q_value), "previous_step": spec.steps[k - 1],
                "entity": spec.entity},
    )
