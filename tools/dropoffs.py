"""Drop-off drill-down: for every funnel step, the segments that convert significantly worse."""

from __future__ import annotations

from dataclasses import dataclass, replace

import pandas as pd

from tools.charts import bar_chart
from tools.distinct_users import distinct_users
from tools.funnel import FunnelSpec, downstream_rates, known_events, levels_sql, step_counts_sql
from tools.period import period_weeks
from tools.result import Friction, ToolResult, segment_text
from tools.segments import SegmentRules, attach_segments, compare, rollup_sql, select
from tools.semantic.eventmap import EventMap
from tools.sessions import Facts, segment_condition
from tools.warehouse import Warehouse


@dataclass(frozen=True)
class Levels:
    """Where per-entity funnel levels come from: a CTE named `levels` (entity, user_id, level, dims)."""

    cte: str
    evidence_cte: str
    steps: tuple[str, ...]
    entity: str

    @classmethod
    def of(cls, spec: FunnelSpec, emap: EventMap, dims: tuple[str, ...], facts: Facts | None = None,
           level_column: str = "level") -> Levels:
        """Users: the windowed funnel. Sessions: the session facts (shared by the scan)."""
        if spec.entity == "users":
            sql = f"levels AS ({levels_sql(spec, emap, dims)})"
            return cls(sql, sql, spec.steps, "users")
        facts = facts or Facts(spec.period, emap, spec.steps, dims)
        body = (f"levels AS (SELECT session_id AS entity, user_id{''.join(', ' + d for d in dims)},"
                f" {level_column} AS level FROM facts)")
        return cls(f"{facts.cte()},\n{body}", f"{facts.evidence_cte()},\n{body}", spec.steps, "sessions")


def segment_step_counts(wh: Warehouse, levels: Levels, dims: tuple[str, ...], pairs: bool = True
                        ) -> tuple[pd.DataFrame, str]:
    """Entities reaching each step for every segment (grouping sets); row with depth 0 = everyone."""
    reach = {f"n{i}": f"count(*) FILTER (WHERE level >= {i})" for i in range(1, len(levels.steps) + 1)}
    body = rollup_sql("levels", dims, reach, pairs).removeprefix("WITH ")
    return (attach_segments(wh.query(f"WITH {levels.cte},\n{body}").df, dims),
            f"WITH {levels.evidence_cte},\n{body}")


def step_tests(counts: pd.DataFrame, steps: tuple[str, ...]) -> pd.DataFrame:
    """One row per (step k >= 2, segment): n entered step k-1, x reached step k, versus the rest."""
    total = counts[counts["depth"] == 0].iloc[0]
    rows = []
    for i in range(2, len(steps) + 1):
        part = pd.DataFrame({
            "step": steps[i - 1], "segment": counts["segment"], "depth": counts["depth"], "seg_key": counts["seg_key"],
            "n": counts[f"n{i - 1}"], "x": counts[f"n{i}"],
        })
        part["n_rest"] = total[f"n{i - 1}"] - part["n"]
        part["x_rest"] = total[f"n{i}"] - part["x"]
        rows.append(part)
    return compare(pd.concat(rows, ignore_index=True), worse="lower")


def drill_down(wh: Warehouse, levels: Levels, spec: FunnelSpec, dims: tuple[str, ...], pairs: bool,
               rules: SegmentRules) -> tuple[list[Friction], str]:
    """Findings for the segments converting significantly worse at some step, ranked by entities lost."""
    counts, sql = segment_step_counts(wh, levels, dims, pairs)
    everyone = counts[counts["depth"] == 0]
    if everyone.empty or pd.isna(everyone["n1"].iloc[0]) or everyone["n1"].iloc[0] == 0:
        return [], sql
    hits = select(step_tests(counts, levels.steps), rules, key="step")
    total = everyone.iloc[0]
    downstream = downstream_rates([float(total[f"n{i}"]) for i in range(1, len(levels.steps) + 1)], levels.steps)
    weeks = period_weeks(wh, spec.period)
    users = distinct_users_of(wh, levels, hits)
    return [_finding(row, spec, wh.event_map, levels, downstream, weeks, u)
            for row, u in zip(hits.itertuples(), users)], sql


def distinct_users_of(wh: Warehouse, levels: Levels, hits: pd.DataFrame) -> list[int]:
    """Distinct users behind each hit (entered the step before), in one pass."""
    if hits.empty:
        return []
    conditions = [f"{segment_condition(r.segment)} AND level >= {levels.steps.index(r.step)}" for r in hits.itertuples()]
    return distinct_users(wh, levels.cte, "levels", conditions)


def dropoffs(wh: Warehouse, spec: FunnelSpec, dims: tuple[str, ...] | None = None, pairs: bool = True,
             rules: SegmentRules = SegmentRules(), facts: Facts | None = None) -> ToolResult:
    """Segments whose step conversion is significantly worse than the rest (over every dimension of the
    event map unless `dims` says which), ranked by entities lost."""
    emap = wh.event_map
    dims = emap.dims if dims is None else dims
    spec.validate(known_events(wh), emap)
    levels = Levels.of(spec, emap, dims, facts)
    findings, sql = drill_down(wh, levels, spec, dims, pairs, rules)
    table = pd.DataFrame([{
        "step": f.step, "segment": segment_text(f.segment), "entered_previous": f.detail["entered"],
        "conversion": f.observed, "rest": f.baseline, "lost": round(f.detail["lost"]),
        "p_value": f.p_value} for f in findings])
    if findings:
        summary = (f"{len(findings)} segment(s) convert significantly worse (per {spec.entity}; BH q<{rules.q}, "
                   f"gap>={rules.min_relative_gap:.0%}, expected counts>={rules.min_expected:g}). Worst: "
                   + "; ".join(f"{f.step} for {segment_text(f.segment)}: {f.observed:.1%} vs {f.baseline:.1%} "
                               f"({round(f.detail['lost'])} {spec.entity} lost)" for f in findings[:5]))
        chart = bar_chart([f"{segment_text(f.segment)} @ {f.step}" for f in findings[:10]],
                          [f.observed for f in findings[:10]], "Step conversion of flagged segments",
                          "step conversion", baseline=findings[0].baseline)
    else:
        summary, chart = f"No segment converts significantly worse at any step (period {spec.period.label}).", None
    return ToolResult("Drop-offs", summary, table, chart, [sql], findings)


def _finding(row, spec: FunnelSpec, emap: EventMap, levels: Levels, downstream: dict[str, float], weeks: float,
             users: int) -> Friction:
    k = levels.steps.index(row.step)
    if levels.entity == "users":
        evidence = step_counts_sql(replace(spec, where=dict(row.segment)), emap)
    else:
        evidence = (f"WITH {levels.evidence_cte}\nSELECT count(*) FILTER (WHERE level >= {k}) AS entered_previous,"
                    f" count(*) FILTER (WHERE level >= {k + 1}) AS reached FROM levels"
                    f" WHERE {segment_condition(row.segment)}")
    return Friction(
        kind="funnel_dropoff",
        title=f"{levels.steps[k - 1]} -> {row.step} conversion is low for {segment_text(row.segment)}",
        metric="step_conversion", step=row.step, segment=row.segment, period=spec.period.label,
        baseline=float(row.rate_rest), observed=float(row.rate), affected_users=users,
        est_lost_conversions=float(row.lost * downstream[row.step]), p_value=float(row.p_value),
        evidence_sql=evidence, weekly_exposed=float(row.n / weeks), gap=float(row.gap),
        downstream_rate=downstream[row.step],
        detail={"lost": float(row.lost), "entered": int(row.n), "converted": int(row.x),
                "q_value": float(row.q_value), "previous_step": levels.steps[k - 1], "entity": levels.entity},
    )
