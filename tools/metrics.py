"""The metrics layer: named metrics defined in data/metrics.yaml, computed from their definition."""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd

from tools.format import change, count, money, pct
from tools.funnel import check_scope
from tools.period import Period, data_bounds
from tools.result import FactKind, ToolResult, applied, facts, scope_words, segment_text
from tools.semantic.eventmap import EventMap, SegmentValue, segment_values
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

BREAKDOWN_LIMIT = 12  # values of a breakdown dimension shown, the most frequent first


def _scope(emap: EventMap, period: Period, segment: Mapping[str, SegmentValue]) -> str:
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


def metric_sql(key: str, emap: EventMap, period: Period, segment: Mapping[str, SegmentValue],
               data_end: str | None = None, data_start: str | None = None) -> str:
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


def data_days(wh: Warehouse) -> tuple[str | None, str | None]:
    """(the day after the data ends, the day it starts) as metric_sql takes them."""
    start, end = data_bounds(wh)
    return (f"{end:%Y-%m-%d}" if end else None), (f"{start:%Y-%m-%d}" if start else None)


def metric_values(wh: Warehouse, wanted: list[tuple[str, Period, Mapping[str, SegmentValue]]]
                  ) -> tuple[list[float | None], str]:
    """Metrics (key, period, segment) from their definitions, in one query, and its SQL."""
    bounds = data_days(wh)
    sql = "SELECT " + ", ".join(f"({metric_sql(key, wh.event_map, period, segment, *bounds)}) AS v{i}"
                                for i, (key, period, segment) in enumerate(wanted))
    row = wh.query(sql).df.iloc[0]
    return [None if pd.isna(x) else float(x) for x in row], sql


def metric_kind(d: MetricDef, defs: dict[str, MetricDef]) -> FactKind:
    """How a metric's value reads: a rate, money (a sum of a revenue field, or a ratio of one) or a count."""
    if d.is_rate:
        return "rate"
    if d.aggregation == "ratio":
        return metric_kind(defs[d.numerator], defs)
    return "money" if d.aggregation == "sum" and d.value and d.value.endswith("revenue") else "count"


def per_words(d: MetricDef, defs: dict[str, MetricDef]) -> str:
    """A ratio's denominator, said once: `of sessions` for a rate, `per order` for an amount; else nothing."""
    if d.aggregation == "retention":
        return "of users who signed up"
    if not d.denominator:
        return ""
    name = defs[d.denominator].name.lower()
    return f"of {name}" if d.is_rate else f"per {name.removesuffix('s')}"


def value_words(value: float | None, kind: FactKind) -> str:
    """A metric value as a PM reads it (`4.1%`, `$87.5k`, `11,556`), or `no data`."""
    if value is None:
        return "no data"
    return {"rate": pct, "money": money, "change": change}.get(kind, count)(value)


def previous_period(period: Period) -> Period | None:
    """The equal-length period just before a bounded one (None for an unbounded one)."""
    if period.start is None or period.end is None:
        return None
    start = period.start - (period.end - period.start)
    return Period(f"{start:%Y-%m-%d}..{period.start:%Y-%m-%d}", start, period.start)


def relative_change(value: float | None, previous: float | None) -> float | None:
    """(value - previous) / previous, or None when either is missing or previous is 0."""
    return (value - previous) / previous if value is not None and previous else None


def headline(name: str, value: float | None, previous: float | None, kind: FactKind, per: str, scope: dict,
             before: str) -> str:
    """`Revenue: $313k in Oct 31 - Nov 29, +29% on the 30 days before ($243k in Oct 1-30).` (`before` names
    the comparison: `the 30 days before`, or the compared period's words)."""
    when = scope.get("current") or scope["period"]
    text = f"{name}: {value_words(value, kind)}{' ' + per if per and value is not None else ''} {in_words(when)}"
    text += f" for {segment_text(scope['segment'])}" if scope["segment"] else ""
    if scope["compare"] is None:
        return text + "."
    moved = relative_change(value, previous)
    then = value_words(previous, kind) + ("" if before == scope["compare"] else f" in {scope['compare']}")
    return text + (f", {change(moved)} on {before}" if moved is not None else f", against {before}") + f" ({then})."


def in_words(when: str) -> str:
    """`in Nov 16-22`, `over all time`, `since Nov 3`, `before release 5.5.0`."""
    if when == "all time":
        return "over all time"
    return when if when.split()[0] in {"since", "before", "after"} else f"in {when}"


def breakdown_values(wh: Warehouse, dim: str, period: Period, segment: Mapping[str, SegmentValue],
                     limit: int = BREAKDOWN_LIMIT) -> list[str]:
    """The most frequent values of a dimension on the events in scope (at most `limit`; unset values left out)."""
    emap = wh.event_map
    value = emap.dim_sql(dim, "u" if dim in emap.user_dims else "e")
    join = " JOIN users u ON u.user_id = e.user_id" if dim in emap.user_dims else ""
    only = segment_values(segment[dim]) if dim in segment else None
    df = wh.query(f"SELECT {value} AS v, count(*) AS n FROM events e{join} WHERE {period.where('e.ts')} AND "
                  f"{emap.segment_where(segment, 'e')} AND {value} IS NOT NULL GROUP BY 1 ORDER BY n DESC, v "
                  f"LIMIT {limit}").df
    return [str(v) for v in df["v"] if only is None or str(v) in only]


def metric_by(wh: Warehouse, d: MetricDef, period: Period, segment: Mapping[str, SegmentValue],
              dim: str) -> tuple[pd.DataFrame, str]:
    """The metric for each of the most frequent values of `dim` (within the segment), in one query."""
    values = breakdown_values(wh, dim, period, segment)
    if not values:
        return pd.DataFrame(columns=[dim, "value"]), ""
    found, sql = metric_values(wh, [(d.key, period, {**segment, dim: v}) for v in values])
    return pd.DataFrame({dim: values, "value": found}), sql


def compute_metric(wh: Warehouse, name: str, period: Period, segment: Mapping[str, SegmentValue] | None = None,
                   breakdown: str | None = None, compare: Period | None = None) -> ToolResult:
    """A defined metric for a period and segment, from its definition: against `compare` (default: the
    equal-length period just before a bounded one) and by a breakdown dimension if asked."""
    emap = wh.event_map
    defs = catalog(emap)
    d = find(name, defs)
    if d is None:
        raise MetricError(f"metric {name!r} is not defined (data/metrics.yaml and the event map's metrics); "
                          "defined: " + ", ".join(sorted(defs)))
    segment = segment or {}
    check_scope(emap, segment, breakdown)
    if d.aggregation == "retention" and {*segment, breakdown} & set(emap.event_dims):
        raise MetricError(f"{d.name} is defined on users: segment it by a user dimension "
                          f"({', '.join(emap.user_dims) or 'the map has none'})")
    default = compare is None
    compare = previous_period(period) if default else compare
    (value, *before), sql = metric_values(wh, [(d.key, p, segment) for p in (period, compare) if p is not None])
    previous, sqls = (before or [None])[0], [sql]
    kind = metric_kind(d, defs)
    scope = applied(period, segment, breakdown, compare=compare, metric=d.key)
    data = {"metric": d.key, "value": value, "applied": scope,
            "facts": facts(value=(value, kind), previous=(previous, kind),
                           change=(relative_change(value, previous), "change"))}
    summary = headline(d.name, value, previous, kind, per_words(d, defs), scope,
                       f"the {period.days} days before" if default else scope["compare"] or "")
    if breakdown:
        data["breakdown"], by_sql = metric_by(wh, d, period, segment, breakdown)
        sqls.append(by_sql)
        most = f" (its {BREAKDOWN_LIMIT} most frequent values)" if len(data["breakdown"]) == BREAKDOWN_LIMIT else ""
        summary += f" By {breakdown}{most}: " + "; ".join(
            f"{v} {value_words(x, kind)}" for v, x in data["breakdown"].itertuples(index=False)) + "."
    summary += f"\n\nDetails: {d.name} ({d.key}): {d.description} Owner: {d.owner or 'none'}."
    table = pd.DataFrame([{"metric": d.key, "value": value, "scope": scope_words(scope)}])
    return ToolResult("Metric", summary, table, sql=sqls, data=data)


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
