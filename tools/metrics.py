"""The metrics layer: named metrics defined in data/metrics.yaml, computed from their definition."""

from __future__ import annotations

from functools import cache
from importlib import resources
from typing import Literal

import pandas as pd
import yaml
from pydantic import BaseModel, ConfigDict, model_validator

from data.schema import EVENT_DIMENSIONS
from tools.funnel import check_dimensions
from tools.period import Period, data_bounds
from tools.result import ToolResult, segment_text
from tools.sqltext import lit
from tools.warehouse import Warehouse


class MetricError(ValueError):
    """A metric that is not defined, or a definition that cannot be computed."""


class MetricDef(BaseModel):
    """One named metric, structurally defined."""

    model_config = ConfigDict(extra="forbid")

    key: str
    name: str
    description: str
    owner: str
    aggregation: Literal["count", "count_distinct", "sum", "ratio", "one_minus_ratio", "retention"]
    event: str | None = None
    entity: Literal["user_id", "session_id"] | None = None
    per: Literal["day", "week", "month"] | None = None
    value: str | None = None
    filter: str | None = None
    numerator: str | None = None
    denominator: str | None = None
    week: int = 1

    @model_validator(mode="after")
    def _check(self) -> MetricDef:
        if self.aggregation in {"ratio", "one_minus_ratio"} and not (self.numerator and self.denominator):
            raise ValueError("a ratio needs numerator and denominator")
        if self.aggregation == "count_distinct" and not self.entity:
            raise ValueError("count_distinct needs an entity")
        if self.aggregation == "sum" and not self.value:
            raise ValueError("sum needs a value column")
        return self


@cache
def definitions() -> dict[str, MetricDef]:
    """Every metric of data/metrics.yaml by key (validated; references must exist)."""
    raw = yaml.safe_load(resources.files("data").joinpath("metrics.yaml").read_text())
    defs = {key: MetricDef(key=key, **body) for key, body in raw.items()}
    for d in defs.values():
        for ref in (d.numerator, d.denominator):
            if ref and ref not in defs:
                raise MetricError(f"data/metrics.yaml: {d.key} refers to undefined metric {ref!r}")
    return defs


def find(name: str) -> MetricDef | None:
    """A metric by key or by name, case-insensitive ('MAU', 'Monthly active users')."""
    wanted = " ".join(name.lower().replace("_", " ").split())
    for d in definitions().values():
        if wanted in {d.key.replace("_", " "), d.name.lower()}:
            return d
    return None


def _scope(period: Period, segment: dict[str, str]) -> str:
    """The period and segment as one SQL condition on events."""
    parts = [period.where()]
    for dim, value in segment.items():
        if dim in EVENT_DIMENSIONS:
            parts.append(f"{dim} = {lit(value)}")
        else:
            parts.append(f"user_id IN (SELECT user_id FROM users WHERE {dim} = {lit(value)})")
    return " AND ".join(parts)


def _where(d: MetricDef, period: Period, segment: dict[str, str]) -> str:
    """Period, segment, event and the definition's filter (whose `{scope}` is the period and segment)."""
    parts = [_scope(period, segment)]
    if d.event and d.event != "any":
        parts.append(f"event = {lit(d.event)}")
    if d.filter:
        parts.append(f"({d.filter.replace('{scope}', _scope(period, segment))})")
    return " AND ".join(parts)


def metric_sql(key: str, period: Period, segment: dict[str, str], data_end: str | None = None,
               data_start: str | None = None) -> str:
    """A scalar SQL expression (a subquery) computing metric `key`.

    Daily, weekly and monthly actives average over every day, week or month of the period
    within the data (zero where nobody was active).
    """
    d = definitions()[key]
    if d.aggregation in {"ratio", "one_minus_ratio"}:
        ratio = (f"(({metric_sql(d.numerator, period, segment, data_end, data_start)}) / "
                 f"nullif(({metric_sql(d.denominator, period, segment, data_end, data_start)}), 0))")
        return f"SELECT 1 - {ratio}" if d.aggregation == "one_minus_ratio" else f"SELECT {ratio}"
    if d.aggregation == "retention":
        lo, hi = 7 * d.week, 7 * d.week + 7
        end = f"TIMESTAMP '{data_end}'" if data_end else "(SELECT max(ts) FROM events)"
        seg = "".join(f" AND {k} = {lit(v)}" for k, v in segment.items() if k not in EVENT_DIMENSIONS)
        return (f"SELECT avg((EXISTS (SELECT 1 FROM events e WHERE e.user_id = u.user_id AND e.ts >= u.signed_up_at"
                f" + INTERVAL {lo} DAY AND e.ts < u.signed_up_at + INTERVAL {hi} DAY))::INT) FROM users u"
                f" WHERE {period.where('u.signed_up_at')} AND u.signed_up_at + INTERVAL {hi} DAY <= {end}{seg}")
    where = _where(d, period, segment)
    if d.aggregation == "count":
        return f"SELECT count(*) FROM events WHERE {where}"
    if d.aggregation == "sum":
        return f"SELECT coalesce(sum({d.value}), 0) FROM events WHERE {where}"
    if d.per:
        lo = f"TIMESTAMP '{period.start:%Y-%m-%d %H:%M:%S}'" if period.start else f"TIMESTAMP '{data_start}'"
        hi = f"TIMESTAMP '{period.end:%Y-%m-%d %H:%M:%S}'" if period.end else f"TIMESTAMP '{data_end}'"
        if data_start and data_end and period.start and period.end:
            lo, hi = f"greatest({lo}, TIMESTAMP '{data_start}')", f"least({hi}, TIMESTAMP '{data_end}')"
        units = (f"SELECT unnest(generate_series(date_trunc('{d.per}', {lo}), {hi} - INTERVAL 1 MICROSECOND, "
                 f"INTERVAL 1 {d.per})) AS p")
        return (f"SELECT avg(coalesce(n, 0)) FROM ({units}) LEFT JOIN (SELECT date_trunc('{d.per}', ts) AS p, "
                f"count(DISTINCT {d.entity}) AS n FROM events WHERE {where} GROUP BY 1) USING (p)")
    return f"SELECT count(DISTINCT {d.entity}) FROM events WHERE {where}"


def compute_metric(wh: Warehouse, name: str, period: Period, segment: dict[str, str] | None = None) -> ToolResult:
    """The value of a defined metric for a period and segment, from its definition."""
    d = find(name)
    if d is None:
        raise MetricError(f"metric {name!r} is not defined in data/metrics.yaml; defined: "
                          + ", ".join(sorted(definitions())))
    segment = segment or {}
    check_dimensions(segment)
    if d.aggregation == "retention" and set(segment) & set(EVENT_DIMENSIONS):
        raise MetricError(f"{d.name} is defined on users: segment it by acquisition_channel or plan")
    start, end = data_bounds(wh)
    sql = "SELECT ({}) AS value".format(metric_sql(d.key, period, segment, f"{end:%Y-%m-%d}" if end else None,
                                                    f"{start:%Y-%m-%d}" if start else None))
    value = wh.scalar(sql)
    shown = "no data" if value is None else _format(d, float(value))
    scope = f"period {period.label}" + (f", {segment_text(segment)}" if segment else "")
    summary = f"{d.name} ({d.key}) for {scope}: {shown}. Definition: {d.description} Owner: {d.owner}."
    return ToolResult("Metric", summary, pd.DataFrame([{"metric": d.key, "value": value, "scope": scope}]),
                      sql=[sql], data={"metric": d.key, "value": value})


def _format(d: MetricDef, value: float) -> str:
    if d.aggregation in {"ratio", "one_minus_ratio", "retention"} and d.key != "aov":
        return f"{value:.2%}"
    return f"{value:,.0f}" if value == int(value) else f"{value:,.2f}"


def describe_metric(name: str | None = None) -> ToolResult:
    """The definition of one metric, or of all; an undefined metric is said to be undefined."""
    defs = definitions()
    if name:
        d = find(name)
        if d is None:
            return ToolResult("Metric definition", f"The metric {name!r} is not defined. Defined metrics: "
                              + ", ".join(f"{m.key} ({m.name})" for m in defs.values()) + ".")
        chosen = [d]
    else:
        chosen = list(defs.values())
    rows = [m.model_dump(exclude_none=True) for m in chosen]
    summary = " ".join(f"{m.name} ({m.key}): {m.description} Aggregation {m.aggregation}"
                       + (f" of {m.event}" if m.event else "") + (f" per {m.per}" if m.per else "")
                       + f"; owner {m.owner}." for m in chosen)
    return ToolResult("Metric definition", summary, pd.DataFrame(rows))
