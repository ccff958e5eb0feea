"""Drop-off drill-down: for every funnel step, the segments that convert significantly worse."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace

import pandas as pd

from tools.charts import bar_chart
from tools.distinct_users import distinct_users
from tools.format import count, p_value, pct
from tools.funnel import (
    FunnelError,
    FunnelSpec,
    check_scope,
    downstream_rates,
    known_events,
    levels_sql,
    step_counts_sql,
)
from tools.period import period_weeks
from tools.result import Friction, ToolResult, applied, scope_words, segment_text
from tools.result import facts as facts_of
from tools.segments import SegmentRules, attach_segments, compare, rollup_sql, select
from tools.semantic.eventmap import EventMap, SegmentValue, segment_values
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
        facts = facts or Facts(spec.period, emap, spec.steps, tuple(dict.fromkeys((*dims, *spec.where))))
        body = (f"levels AS (SELECT session_id AS entity, user_id{''.join(', ' + d for d in dims)},"
                f" {level_column} AS level FROM facts WHERE {segment_condition(spec.where)})")
        return cls(f"{facts.cte()},\n{body}", f"{facts.evidence_cte()},\n{body}", spec.steps, "sessions")


def segment_step_counts(wh: Warehouse, levels: Levels, dims: tuple[str, ...], pairs: bool = True
                        ) -> tuple[pd.DataFrame, str]:
    """Entities reaching each step for every segment (grouping sets); row with depth 0 = everyone."""
    reach = {f"n{i}": f"count(*) FILTER (WHERE level >= {i})" for i in range(1, len(levels.steps) + 1)}
    body = rollup_sql("levels", dims, reach, pairs).removeprefix("WITH ")
    return (attach_segments(wh.query(f"WITH {levels.cte},\n{body}").df, dims),
            f"WITH {levels.evidence_cte},\n{body}")


def step_tests(counts: pd.DataFrame, steps: tuple[str, ...], step: str | None = None) -> pd.DataFrame:
    """One row per (step k >= 2, segment): n entered step k-1, x reached step k, versus the rest; only
    step `step` when given."""
    total = counts[counts["depth"] == 0].iloc[0]
    rows = []
    for i in range(2, len(steps) + 1):
        if step is not None and steps[i - 1] != step:
            continue
        part = pd.DataFrame({
            "step": steps[i - 1], "segment": counts["segment"], "depth": counts["depth"], "seg_key": counts["seg_key"],
            "n": counts[f"n{i - 1}"], "x": counts[f"n{i}"],
        })
        part["n_rest"] = total[f"n{i - 1}"] - part["n"]
        part["x_rest"] = total[f"n{i}"] - part["x"]
        rows.append(part)
    return compare(pd.concat(rows, ignore_index=True), worse="lower")


def drill_down(wh: Warehouse, levels: Levels, spec: FunnelSpec, dims: tuple[str, ...], pairs: bool,
               rules: SegmentRules, step: str | None = None) -> tuple[list[Friction], str]:
    """Findings for the segments converting significantly worse at some step (or at `step`: the conversion
    into it from the step before), ranked by entities lost."""
    counts, sql = segment_step_counts(wh, levels, dims, pairs)
    everyone = counts[counts["depth"] == 0]
    if everyone.empty or pd.isna(everyone["n1"].iloc[0]) or everyone["n1"].iloc[0] == 0:
        return [], sql
    hits = select(step_tests(counts, levels.steps, step), rules, key="step")
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
    conditions = [f"{segment_condition(r.segment)} AND level >= {levels.steps.index(r.step)}"
                  for r in hits.itertuples()]
    return distinct_users(wh, levels.cte, "levels", conditions)


def drill_dims(emap: EventMap, dims: tuple[str, ...] | None, segment: Mapping[str, SegmentValue]) -> tuple[str, ...]:
    """The dimensions to drill into: `dims` (default: all of the map's) but those the segment fixes to one value."""
    return tuple(d for d in (emap.dims if dims is None else dims) if len(segment_values(segment.get(d, ()))) != 1)


def check_step(step: str | None, steps: tuple[str, ...]) -> None:
    """Refuse (FunnelError) a step that is not a later step of the funnel (drop-offs happen into a step)."""
    if step is not None and step not in steps[1:]:
        raise FunnelError(f"step {step!r}: drop-offs are measured into a later step of the funnel: "
                          f"{', '.join(steps[1:])}")


def dropoffs(wh: Warehouse, spec: FunnelSpec, dims: tuple[str, ...] | None = None, pairs: bool = True,
             rules: SegmentRules = SegmentRules(), facts: Facts | None = None, step: str | None = None) -> ToolResult:
    """Segments whose step conversion is significantly worse than the rest (over every dimension of the
    event map unless `dims` says which), ranked by entities lost: within `spec.where` (the segment) and,
    with `step`, only into that step."""
    emap = wh.event_map
    spec.validate(known_events(wh), emap)
    check_scope(emap, spec.where)
    check_step(step, spec.steps)
    dims = drill_dims(emap, dims, spec.where)
    if facts is None and spec.entity == "sessions":  # stored session facts, shared with scans and questions
        facts = Facts(spec.period, emap, spec.steps).materialize(wh)
    levels = Levels.of(spec, emap, dims, facts)
    findings, sql = drill_down(wh, levels, spec, dims, pairs, rules, step)
    table = pd.DataFrame([{
        "step": f.step, "segment": segment_text(f.segment), "entered_previous": f.detail["entered"],
        "conversion": f.observed, "rest": f.baseline, "lost": round(f.detail["lost"]),
        "p_value": f.p_value} for f in findings])
    scope = applied(spec.period, spec.where, step=step, entity=spec.entity, steps=list(spec.steps))
    worst = findings[0].observed if findings else None
    data = {"applied": scope, "facts": facts_of(segments=(len(findings), "count"), worst_rate=(worst, "rate"))}
    chart = bar_chart([f"{segment_text(f.segment)} @ {f.step}" for f in findings[:10]],
                      [f.observed for f in findings[:10]], "Step conversion of flagged segments",
                      "step conversion", baseline=findings[0].baseline) if findings else None
    return ToolResult("Drop-offs", dropoff_words(findings, scope, rules), table, chart, [sql], findings, data)


def dropoff_words(findings: list[Friction], scope: dict, rules: SegmentRules) -> str:
    """The verdict (how many segments convert worse, where), the worst five, then the tests in details."""
    entity, step = scope["entity"], scope["step"]
    where = f"per {entity.removesuffix('s')}, {scope_words(scope)}"
    if not findings:
        return f"No segment converts significantly worse than the rest at {step or 'any step'} ({where})."
    at = f" at {step or 'some step'}"
    shown = findings[:5]
    many = f"{count(len(findings))} segments convert" if len(findings) > 1 else "1 segment converts"
    return (f"{many} significantly worse than the rest{at} ({where}). Worst: "
            + "; ".join(f"{segment_text(f.segment)} at {f.step}: {pct(f.observed)} vs {pct(f.baseline)} for the rest "
                        f"({count(round(f.detail['lost']))} {entity} lost)" for f in shown)
            + f". Rates are of the {entity} reaching the step before."
            + tests_details(rules, [(f"{segment_text(f.segment)} at {f.step}", f.p_value) for f in shown]))


def tests_details(rules: SegmentRules, p_values: list[tuple[str, float | None]]) -> str:
    """The details paragraph of segment findings: how one is decided, and each one's p-value."""
    return (f"\n\nDetails: each segment against the rest by a two-proportion z-test, Benjamini-Hochberg "
            f"q<{rules.q:g} (pairs q<{rules.pair_q:g}), relative gap >= {rules.min_relative_gap:.0%}, expected "
            f"counts >= {rules.min_expected:g}; " + "; ".join(f"{what} {p_value(p)}" for what, p in p_values) + ".")


def _finding(row, spec: FunnelSpec, emap: EventMap, levels: Levels, downstream: dict[str, float], weeks: float,
             users: int) -> Friction:
    k = levels.steps.index(row.step)
    if levels.entity == "users":
        evidence = step_counts_sql(replace(spec, where={**spec.where, **row.segment}), emap)
    else:
        evidence = (f"WITH {levels.evidence_cte}\nSELECT count(*) FILTER (WHERE level >= {k}) AS entered_previous,"
                    f" count(*) FILTER (WHERE level >= {k + 1}) AS reached FROM levels"
                    f" WHERE {segment_condition(row.segment)}")
    return Friction(
        kind="funnel_dropoff",
        title=f"{levels.steps[k - 1]} -> {row.step} conversion is low for {segment_text(row.segment)}"
        + (f" (within {segment_text(spec.where)})" if spec.where else ""),
        metric="step_conversion", step=row.step, segment=row.segment, period=spec.period.label,
        baseline=float(row.rate_rest), observed=float(row.rate), affected_users=users,
        est_lost_conversions=float(row.lost * downstream[row.step]), p_value=float(row.p_value),
        evidence_sql=evidence, weekly_exposed=float(row.n / weeks), gap=float(row.gap),
        downstream_rate=downstream[row.step],
        detail={"lost": float(row.lost), "entered": int(row.n), "converted": int(row.x),
                "q_value": float(row.q_value), "previous_step": levels.steps[k - 1], "entity": levels.entity,
                "within": {d: list(segment_values(v)) for d, v in spec.where.items()}},
    )
