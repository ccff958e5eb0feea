"""The metrics layer: named metrics defined in data/metrics.yaml, computed from their definition."""

from __future__ import annotations

import pandas as pd

from tools.funnel import check_dimensions
from tools.period import Period, data_bounds
from tools.result import ToolResult, segment_text
from tools.semantic.eventmap import EventMap
from tools.semantic.metrics import (
    MetricDef,
    MetricError,
    catalog,
    event_condition,
    expand,
    find,
    missing_roles,
    value_sql,
)
from tools.warehouse import Warehouse

__all__ = ["MetricError", "aggregate_sql", "compute_metric", "describe_metric", "metric_sql"]


def _scope(emap: EventMap, period: Period, segment: dict[str, str]) -> str:
    """The period and segment as one SQL condition on events."""
    return f"{period.where()} AND {emap.segment_where(segment)}"


def condition(d: MetricDef, emap: EventMap, scope: str) -> str:
    """Which events rows a count or sum metric reads: its event and its filter (`{scope}` = `scope`)."""
    parts = [event_condition(d, emap)]
    if d.filter:
        parts.append(f"({expand(d.filter, emap, scope)})")
    return " AND ".join(p for p in parts if p != "TRUE") or "TRUE"


def aggregate_sql(d: MetricDef, emap: EventMap, scope: str) -> str:
    """The aggregate over events rows of a count, count_distinct or sum metric (for any grouping)."""
    cond = condition(d, emap, scope)
    only = "" if cond == "TRUE" else f" FILTER (WHERE {cond})"
    if d.aggregation == "count":
        return f"count(*){only}"
    if d.aggregation == "sum":
        return f"coalesce(sum({value_sql(d, emap)}){only}, 0)"
    return f"count(DISTINCT {d.entity}){only}"


def metric_sql(key: str, emap: EventMap, period: Period, segment: dict[str, str], data_end: str | None = None,
               data_start: str | None = None) -> str:
    """A scalar SQL expression (a subquery) computing metric `key`.

    Daily, weekly and monthly actives average over every day, week or month of the period
    within the data (zero where nobody was active).
    """
    defs = catalog(emap)
    d = defs[key]
    if need := missing_roles(key, defs, emap):
        raise MetricError(f"{d.name} ({key}) is not available: the event map has no {', '.join(need)}")
    if d.aggregation in {"ratio", "one_minus_ratio"}:
        ratio = (f"(({metric_sql(d.numerator, emap, period, segment, data_end, data_start)}) / "
                 f"nullif(({metric_sql(d.denominator, emap, period, segment, data_end, data_start)}), 0))")
        return f"SELECT 1 - {ratio}" if d.aggregation == "one_minus_ratio" else f"SELECT {ratio}"
    if d.aggregation == "retention":
        lo, hi = 7 * d.week, 7 * d.week + 7
        end = f"TIMESTAMP '{data_end}'" if data_end else "(SELECT max(ts) FROM events)"
        seg = f" AND {emap.segment_where(segment, 'u')}" if segment else ""
        return (f"SELECT avg((EXISTS (SELECT 1 FROM events e WHERE e.user_id = u.user_id AND e.ts >= u.signed_up_at"
                f" + INTERVAL {lo} DAY AND e.ts < u.signed_up_at + INTERVAL {hi} DAY))::INT) FROM users u"
                f" WHERE {period.where('u.signed_up_at')} AND u.signed_up_at + INTERVAL {hi} DAY <= {end}{seg}")
    scope = _scope(emap, period, segment)
    if d.per:
        where = f"{scope} AND {condition(d, emap, scope)}"
        lo = f"TIMESTAMP '{period.start:%Y-%m-%d %H:%M:%S}'" if period.start else f"TIMESTAMP '{data_start}'"
        hi = f"TIMESTAMP '{period.end:%Y-%m-%d %H:%M:%S}'" if period.end else f"TIMESTAMP '{data_end}'"
        if data_start and data_end and period.start and period.end:
            lo, hi = f"greatest({lo}, TIMESTAMP '{data_start}')", f"least({hi}, TIMESTAMP '{data_end}')"
        units = (f"SELECT unnest(generate_series(date_trunc('{d.per}', {lo}), {hi} - INTERVAL 1 MICROSECOND, "
                 f"INTERVAL 1 {d.per})) AS p")
        return (f"SELECT avg(coalesce(n, 0)) FROM ({units}) LEFT JOIN (SELECT date_trunc('{d.per}', ts) AS p, "
                f"count(DISTINCT {d.entity}) AS n FROM events WHERE {where} GROUP BY 1) USING (p)")
    return f"SELECT {aggregate_sql(d, emap, scope)} FROM events WHERE {scope}"


def compute_metric(wh: Warehouse, name: str, period: Period, segment: dict[str, str] | None = None) -> ToolResult:
    """The value of a defined metric for a period and segment, from its definition."""
    emap = wh.event_map
    defs = catalog(emap)
    d = find(name, defs)
    if d is None:
        raise MetricError(f"metric {name!r} is not defined (data/metrics.yaml and the event map's metrics); "
                          "defined: " + ", ".join(sorted(defs)))
    segment = segment or {}
    check_dimensions(emap, segment)
    if d.aggregation == "retention" and set(segment) & set(emap.event_dims):
        raise MetricError(f"{d.name} is defined on users: segment it by a user dimension "
                          f"({', '.join(emap.user_dims) or 'the map has none'})")
    start, end = data_bounds(wh)
    sql = "SELECT ({}) AS value".format(metric_sql(d.key, emap, period, segment, f"{end:%Y-%m-%d}" if end else None,
                                                    f"{start:%Y-%m-%d}" if start else None))
    value = wh.scalar(sql)
    shown = "no data" if value is None else _format(d, float(value))
    scope = f"period {period.label}" + (f", {segment_text(segment)}" if segment else "")
    summary = f"{d.name} ({d.key}) for {scope}: {shown}. Definition: {d.description} Owner: {d.owner}."
    return ToolResult("Metric", summary, pd.DataFrame([{"metric": d.key, "value": value, "scope": scope}]),
                      sql=[sql], data={"metric": d.key, "value": value})


def _format(d: MetricDef, value: float) -> str:
    if d.is_rate:
        return f"{value:.2%}"
    return f"{value:,.0f}" if value == int(value) else f"{value:,.2f}"


def describe_metric(emap: EventMap, name: str | None = None) -> ToolResult:
    """The definition of one metric, or of all; an undefined metric is said to be undefined, and one this
    map cannot compute says which role it lacks."""
    defs = catalog(emap)
    if name:
        d = find(name, defs)
        if d is None:
            return ToolResult("Metric definition", f"The metric {name!r} is not defined. Defined metrics: "
                              + ", ".join(f"{m.key} ({m.name})" for m in defs.values()) + ".")
        chosen = [d]
    else:
        chosen = list(defs.values())
    rows = [m.model_dump(exclude_none=True) for m in chosen]
    summary = " ".join(f"{m.name} ({m.key}): {m.description} Aggregation {m.aggregation}"
                       + (f" of {m.event_name or m.event}" if m.event_name or m.event else "")
                       + (f" per {m.per}" if m.per else "") + f"; owner {m.owner or 'none'}."
                       + (f" Not available on this data: no {', '.join(need)}." if (
                           need := missing_roles(m.key, defs, emap)) else "") for m in chosen)
    return ToolResult("Metric definition", summary, pd.DataFrame(rows))
