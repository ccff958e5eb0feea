"""Every analysis in one registry: name -> typed parameters, runner and description (`from tools import TOOLS`).

The agent turns each entry into a LangChain tool; the scan and the digest call the same
runners. Every runner is `(warehouse, params) -> ToolResult`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from tools.cart import cart_abandonment
from tools.dropoffs import dropoffs
from tools.errors_speed import errors_and_speed
from tools.experiments import experiments
from tools.funnel import FunnelSpec, check_dimensions, funnel
from tools.incidents import incidents
from tools.metrics import compute_metric, describe_metric
from tools.period import PERIOD_HELP, Period, resolve_period
from tools.result import ToolResult
from tools.retention import retention
from tools.scan import complete_part
from tools.scan_cache import cached_scan
from tools.schema import schema
from tools.search import search
from tools.sessions import Facts
from tools.tracking import check_tracking
from tools.trends import DEFAULT_METRIC, release_regressions, trends
from tools.warehouse import Warehouse

PeriodField = Field("all", description=f"time range: {PERIOD_HELP}")
SegmentField = Field(default_factory=dict, description="filter, dimension -> value, e.g. {\"platform\": \"ios\"}")
StepsField = Field(None, description="event names in order (default: the event map's funnel)")
FunnelNameField = Field(None, description="a named funnel of the event map (default: its default funnel)")


class Params(BaseModel):
    model_config = ConfigDict(extra="forbid")


class NoParams(Params):
    """No parameters."""


class SqlParams(Params):
    query: str = Field(description="one read-only SELECT over users, events, experiments, assignments, products")


class FunnelParams(Params):
    steps: list[str] | None = StepsField
    funnel: str | None = FunnelNameField
    window_days: float = Field(7.0, gt=0, le=90, description="conversion window from step 1, in days")
    breakdown: str | None = Field(None, description="a dimension to break the funnel down by")
    entity: Literal["users", "sessions"] = "users"
    period: str = PeriodField
    segment: dict[str, str] = SegmentField


class DropoffParams(Params):
    steps: list[str] | None = StepsField
    funnel: str | None = FunnelNameField
    period: str = PeriodField
    entity: Literal["users", "sessions"] = Field("sessions", description="sessions avoid tenure confounding")


class PeriodParams(Params):
    period: str = PeriodField


class RetentionParams(Params):
    period: str = PeriodField
    week_n: int = Field(1, ge=1, le=12, description="retention week N: any event in days [7N, 7N+7) after signup")


class ExperimentParams(Params):
    period: str = PeriodField
    experiment_id: str | None = Field(None, description="one experiment, or all")


class TrendParams(Params):
    metric: str = Field(DEFAULT_METRIC, description="a metric with a daily series (conversion_rate, orders, revenue, "
                        "add_to_cart_rate, zero_result_rate, error_rate, dau, ...)")
    period: str = PeriodField
    dimension: str | None = Field(None, description="explain the week-over-week change by this dimension")
    segment: dict[str, str] = SegmentField


class CartParams(Params):
    period: str = PeriodField
    segment: dict[str, str] = SegmentField


class MetricParams(Params):
    metric: str = Field(description="a defined metric, by key or name (e.g. mau, aov, conversion_rate)")
    period: str = PeriodField
    segment: dict[str, str] = SegmentField


class DefinitionParams(Params):
    metric: str | None = Field(None, description="one metric, or omit for all definitions")


class TrackingParams(Params):
    period: str = PeriodField


def _sql(wh: Warehouse, p: SqlParams) -> ToolResult:
    r = wh.run_guarded(p.query)
    text = r.df.head(20).to_string(index=False) if not r.df.empty else "(no rows)"
    more = f" (truncated at {len(r.df)} rows)" if r.truncated else ""
    return ToolResult("SQL", f"{len(r.df)} row(s){more}:\n{text}", r.df, sql=[r.sql])


def _steps(wh: Warehouse, p: FunnelParams | DropoffParams) -> tuple[str, ...]:
    """The steps asked for, else the named funnel, else the event map's default funnel."""
    return tuple(p.steps) if p.steps else wh.event_map.funnel(p.funnel)


def _funnel(wh: Warehouse, p: FunnelParams) -> ToolResult:
    check_dimensions(wh.event_map, p.segment)
    spec = FunnelSpec(_steps(wh, p), p.window_days, p.entity, resolve_period(wh, p.period), where=p.segment)
    return funnel(wh, spec, p.breakdown)


def _dropoffs(wh: Warehouse, p: DropoffParams) -> ToolResult:
    return dropoffs(wh, FunnelSpec(_steps(wh, p), 7.0, p.entity, resolve_period(wh, p.period)))


def _incidents(wh: Warehouse, p: PeriodParams) -> ToolResult:
    """Incidents overlapping the asked period, dated against all the (complete) data: one that began before
    the period keeps its start, one that recovered after it its end."""
    asked = resolve_period(wh, p.period)
    everything, notes = complete_part(wh, Period("all", None, None))
    result = incidents(wh, Facts(everything, wh.event_map).materialize(wh),
                       within=None if asked.start is None and asked.end is None else asked)
    if notes:
        result.summary += " " + " ".join(notes)
    return result


def _scan(wh: Warehouse, p: PeriodParams) -> ToolResult:
    report = cached_scan(wh, p.period)
    table = pd.DataFrame([{"rank": i, "rice": s.rice_score, "tweak": s.tweak, "evidence": s.rationale}
                          for i, s in enumerate(report.suggestions, 1)])
    product, quality = report.product, report.data_quality
    summary = (f"Scan of period {report.period}: {len(report.findings)} findings, {len(product)} product "
               "suggestions, ranked by RICE:\n" + "\n".join(
                   f"{i}. {s.tweak} (RICE {s.rice_score:g}). Evidence: {s.rationale}"
                   for i, s in enumerate(product[:5], 1))) if product else \
        f"Scan of period {report.period}: no product friction found."
    if quality:
        summary += f"\nData quality ({len(quality)}): " + "; ".join(s.title for s in quality[:3])
    summary += "".join(f"\nNot analysed: {line}" for line in report.disabled)
    summary += "".join(f"\nNote: {line}" for line in report.notes)
    return ToolResult("Friction scan", summary, table, sql=[f.evidence_sql for f in report.findings[:5]],
                      findings=report.findings, data={"report": report})


@dataclass(frozen=True)
class Tool:
    """One analysis as the model sees it."""

    name: str
    description: str
    params: type[Params]
    run: Callable[[Warehouse, Params], ToolResult]
    quotes_data: bool = True   # its output quotes values from the data (event names, segments, queries, codes)


TOOLS: dict[str, Tool] = {t.name: t for t in (
    Tool("schema", "Tables, columns, row counts, event names, the period covered and segment values.",
         NoParams, lambda wh, p: schema(wh)),
    Tool("run_sql", "Run one read-only SQL query (DuckDB dialect) over the event data; rows are capped.",
         SqlParams, _sql),
    Tool("funnel", "Ordered funnel with a conversion window: entities and conversion per step, optional "
         "breakdown by a dimension and segment filter.", FunnelParams, _funnel),
    Tool("dropoffs", "For every funnel step, the segments (one dimension or pairs) converting significantly "
         "worse than the rest, ranked by users lost.", DropoffParams, _dropoffs),
    Tool("cart_abandonment", "Cart and checkout abandonment (optionally within a segment), and the segments "
         "abandoning more.", CartParams,
         lambda wh, p: cart_abandonment(wh, resolve_period(wh, p.period), segment=p.segment)),
    Tool("search_quality", "Search zero-result, no-click, exit and reformulation rates; failing queries and "
         "tokens with their likely cause.", PeriodParams, lambda wh, p: search(wh, resolve_period(wh, p.period))),
    Tool("retention", "Weekly signup cohorts: week-N retention, and cohorts that dip below the others.",
         RetentionParams, lambda wh, p: retention(wh, resolve_period(wh, p.period), p.week_n)),
    Tool("experiments", "A/B tests: conversion per variant, lift with 95% CI and p-value, sample-ratio mismatch.",
         ExperimentParams, lambda wh, p: experiments(wh, resolve_period(wh, p.period), p.experiment_id)),
    Tool("trends", "Daily metric with anomaly flags, week-over-week change, and what explains it by a dimension.",
         TrendParams, lambda wh, p: trends(wh, p.metric, resolve_period(wh, p.period), p.dimension, p.segment)),
    Tool("errors_and_speed", "Error rates and page load times per funnel step, and segments where they hurt "
         "conversion.", PeriodParams, lambda wh, p: errors_and_speed(wh, resolve_period(wh, p.period))),
    Tool("release_regressions", "App versions converting worse than the version before them.", PeriodParams,
         lambda wh, p: release_regressions(wh, resolve_period(wh, p.period))),
    Tool("incidents", "What broke and when: intervals where a step's conversion, an error rate or slow loads left "
         "their own baseline, with start, end (or ongoing), the segment hit, users and conversions lost.",
         PeriodParams, lambda wh, p: _incidents(wh, p)),
    Tool("metric", "Compute a named metric (DAU, WAU, MAU, orders, revenue, AOV, conversion_rate, cart_abandonment, "
         "zero_result_rate, week_1_retention...) from its definition, for a period and segment.", MetricParams,
         lambda wh, p: compute_metric(wh, p.metric, resolve_period(wh, p.period), p.segment), quotes_data=False),
    Tool("metric_definition", "How a named metric is defined (event, filter, aggregation, entity, owner).",
         DefinitionParams, lambda wh, p: describe_metric(wh.event_map, p.metric)),
    Tool("check_tracking", "Data quality: near-duplicate events, duplicate ids, future timestamps, events and fields "
         "that stopped being tracked; with a tracking plan also unplanned events, missing properties, type drift and "
         "unexpected values.", TrackingParams, lambda wh, p: check_tracking(wh, period=resolve_period(wh, p.period))),
    Tool("scan_frictions", "Run every detector and rank suggested tweaks by RICE: what to fix first.",
         PeriodParams, _scan),
)}
