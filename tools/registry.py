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
from tools.format import count, p_value
from tools.funnel import FunnelSpec, check_scope, funnel
from tools.incidents import incidents
from tools.metrics import compute_metric, describe_metric
from tools.period import PERIOD_HELP, Period, resolve_period
from tools.result import ToolResult, applied, facts
from tools.retention import retention
from tools.scan import ScanReport, complete_part
from tools.scan_cache import cached_scan
from tools.schema import schema
from tools.search import search
from tools.sessions import Facts
from tools.tracking import check_tracking
from tools.trends import DEFAULT_METRIC, release_regressions, trends
from tools.warehouse import Warehouse

PeriodField = Field("all", description=f"time range: {PERIOD_HELP}")
CompareField = Field(None, description=f"the period to compare with ({PERIOD_HELP}); default: the equal-length "
                     "period just before `period`")
Segment = dict[str, str | list[str]]  # dimension -> value, or a list of values (any of them)
SegmentField = Field(default_factory=dict, description="filter, dimension -> value or list of values (any of "
                     "them), e.g. {\"platform\": \"ios\"} or {\"platform\": [\"ios\", \"android\"]}")
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
    segment: Segment = SegmentField


class DropoffParams(Params):
    steps: list[str] | None = StepsField
    funnel: str | None = FunnelNameField
    period: str = PeriodField
    entity: Literal["users", "sessions"] = Field("sessions", description="sessions avoid tenure confounding")
    segment: Segment = SegmentField
    step: str | None = Field(None, description="only drop-offs into this funnel step (from the step before it)")


class PeriodParams(Params):
    period: str = PeriodField


class SearchParams(Params):
    period: str = PeriodField
    segment: Segment = SegmentField
    breakdown: str | None = Field(None, description="a dimension to break the search rates down by")


class RetentionParams(Params):
    period: str = PeriodField
    week_n: int = Field(1, ge=1, le=12, description="retention week N: any event in days [7N, 7N+7) after signup")
    segment: Segment = SegmentField
    breakdown: str | None = Field(None, description="a dimension to break week-N retention down by (its value on "
                                  "the user, or on the user's first event)")
    signup_period: str | None = Field(None, description=f"only users who signed up in this period: {PERIOD_HELP}")


class ExperimentParams(Params):
    period: str = PeriodField
    experiment_id: str | None = Field(None, description="one experiment, or all")
    segment: Segment = SegmentField


class ErrorsParams(Params):
    period: str = PeriodField
    segment: Segment = SegmentField
    step: str | None = Field(None, description="only this funnel step's errors and load times")
    breakdown: str | None = Field(None, description="a dimension to break error rates and load times down by")


class IncidentParams(Params):
    period: str = PeriodField
    segment: Segment = SegmentField


class TrendParams(Params):
    metric: str = Field(DEFAULT_METRIC, description="a metric with a daily series (conversion_rate, orders, revenue, "
                        "add_to_cart_rate, zero_result_rate, error_rate, dau, ...)")
    period: str = PeriodField
    dimension: str | None = Field(None, description="explain the change by this dimension (the breakdown)")
    segment: Segment = SegmentField
    compare: str | None = CompareField


class ReleaseParams(Params):
    period: str = PeriodField
    segment: Segment = SegmentField


class CartParams(Params):
    period: str = PeriodField
    segment: Segment = SegmentField
    breakdown: str | None = Field(None, description="a dimension to break cart abandonment down by")


class MetricParams(Params):
    metric: str = Field(description="a defined metric, by key or name (e.g. mau, aov, conversion_rate)")
    period: str = PeriodField
    segment: Segment = SegmentField
    breakdown: str | None = Field(None, description="a dimension to compute the metric for each value of")
    compare: str | None = CompareField


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
    check_scope(wh.event_map, p.segment, p.breakdown)
    spec = FunnelSpec(_steps(wh, p), p.window_days, p.entity, resolve_period(wh, p.period), where=p.segment)
    return funnel(wh, spec, p.breakdown)


def _dropoffs(wh: Warehouse, p: DropoffParams) -> ToolResult:
    spec = FunnelSpec(_steps(wh, p), 7.0, p.entity, resolve_period(wh, p.period), where=p.segment)
    return dropoffs(wh, spec, step=p.step)


def _compare(wh: Warehouse, text: str | None) -> Period | None:
    """The comparison period asked for, or None for the tool's default (the period just before)."""
    return resolve_period(wh, text) if text else None


def _metric(wh: Warehouse, p: MetricParams) -> ToolResult:
    return compute_metric(wh, p.metric, resolve_period(wh, p.period), p.segment, p.breakdown, _compare(wh, p.compare))


def _incidents(wh: Warehouse, p: IncidentParams) -> ToolResult:
    """Incidents overlapping the asked period (and touching the asked segment), dated against all the (complete)
    data: one that began before the period keeps its start, one that recovered after it its end."""
    asked = resolve_period(wh, p.period)
    everything, notes = complete_part(wh, Period("all", None, None))
    result = incidents(wh, Facts(everything, wh.event_map).materialize(wh), within=asked, segment=p.segment)
    if notes:
        verdict, details = result.summary.split("\n\n", 1) if "\n\n" in result.summary else (result.summary, "")
        result.summary = " ".join([verdict, *notes]) + (f"\n\n{details}" if details else "")
    return result


def _scan(wh: Warehouse, p: PeriodParams) -> ToolResult:
    """Every detector over the period, suggestions ranked by RICE: the top five with their evidence, then the
    data-quality ones; the details give each one's p-value and how RICE is scored."""
    report = cached_scan(wh, p.period)
    items = scan_items(report, wh.event_map.dims)
    table = pd.DataFrame([{k: item[k] for k in ("rank", "rice", "reach", "impact", "confidence", "effort", "tweak",
                                                 "evidence")} for item in items])
    product, quality = report.product, report.data_quality
    when = report.covered or report.period
    summary = (f"Scan of {when}: {count(len(report.findings))} findings, {count(len(product))} product "
               "suggestions, ranked by RICE:\n" + "\n".join(
                   f"{i}. {s.tweak} (RICE {count(round(s.rice_score))}). Evidence: {s.rationale}"
                   for i, s in enumerate(product[:5], 1))) if product else \
        f"Scan of {when}: no product friction found."
    if quality:
        summary += f"\nData quality ({len(quality)}): " + "; ".join(s.title for s in quality[:3])
    summary += "".join(f"\nNot analysed: {line}" for line in report.disabled)
    summary += "".join(f"\nNote: {line}" for line in report.notes)
    found = {f.id: f.p_value for f in report.findings}
    tests = "; ".join(f"{i}. {p_value(found[s.friction_id])}" for i, s in enumerate(product[:5], 1)
                      if found.get(s.friction_id) is not None)
    summary += ("\n\nDetails: RICE = reach (users a week) x impact (3 to 0.25, by the share of weekly conversions "
                "lost) x confidence (100%, 80% or 50%, by p-value and users) / effort (person-weeks)"
                + (f"; p-values: {tests}" if tests else "") + ".")
    scope = applied(resolve_period(wh, p.period))
    data = {"report": report, "applied": scope, "items": items[:MAX_ITEMS],
            "facts": facts(suggestions=(len(report.suggestions), "count"), product_suggestions=(len(product), "count"),
                           findings=(len(report.findings), "count"))}
    return ToolResult("Friction scan", summary, table, sql=[f.evidence_sql for f in report.findings[:5]],
                      findings=report.findings, data=data)


MAX_ITEMS = 20  # ranked items a conversation keeps for "tell me more about #N"


def scan_items(report: ScanReport, dims: tuple[str, ...]) -> list[dict]:
    """The ranked suggestions as JSON rows: RICE and its parts as the table shows them, and where each friction is
    (its kind, step, segment on the map's dimensions, experiment) for a drill-down."""
    where = {f.id: f for f in report.findings}
    items = []
    for rank, s in enumerate(report.suggestions, 1):
        f = where.get(s.friction_id)
        segment = {k: v for k, v in (f.segment if f else {}).items() if k in dims}
        items.append({"rank": rank, "count": len(report.suggestions), "rice": count(round(s.rice_score)),
                      "reach": count(round(s.reach)), "impact": f"{s.impact:g}", "confidence": f"{s.confidence:.0%}",
                      "effort": f"{s.effort:g}", "tweak": s.tweak, "evidence": s.rationale, "kind": s.kind,
                      "step": f.step if f else None, "segment": segment,
                      "experiment_id": (f.segment if f else {}).get("experiment_id")})
    return items


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
    Tool("dropoffs", "For every funnel step (or one step), the segments (one dimension or pairs) converting "
         "significantly worse than the rest, ranked by users lost; optionally within a segment.", DropoffParams,
         _dropoffs),
    Tool("cart_abandonment", "Cart and checkout abandonment per user (optionally within a segment and by a "
         "dimension), and the segments whose sessions abandon more.", CartParams,
         lambda wh, p: cart_abandonment(wh, resolve_period(wh, p.period), segment=p.segment, breakdown=p.breakdown)),
    Tool("search_quality", "Search zero-result, no-click, exit and reformulation rates (optionally within a segment "
         "and by a dimension); failing queries and tokens with their likely cause.", SearchParams,
         lambda wh, p: search(wh, resolve_period(wh, p.period), p.segment, p.breakdown)),
    Tool("retention", "Weekly signup cohorts: week-N retention (optionally within a segment, by a dimension, or "
         "of the users who signed up in a period), and cohorts that dip below the others.", RetentionParams,
         lambda wh, p: retention(wh, resolve_period(wh, p.period), p.week_n, segment=p.segment,
                                 breakdown=p.breakdown,
                                 signups=resolve_period(wh, p.signup_period) if p.signup_period else None)),
    Tool("experiments", "A/B tests: conversion per variant, lift with 95% CI and p-value, sample-ratio mismatch; "
         "optionally over the users of a segment only.", ExperimentParams,
         lambda wh, p: experiments(wh, resolve_period(wh, p.period), p.experiment_id, p.segment)),
    Tool("trends", "A metric over the period (a total for counts and amounts) against the period before (or "
         "`compare`), its daily series with anomaly flags, and what explains the change by a dimension.",
         TrendParams, lambda wh, p: trends(wh, p.metric, resolve_period(wh, p.period), p.dimension, p.segment,
                                           _compare(wh, p.compare))),
    Tool("errors_and_speed", "Error rates and page load times per funnel step (optionally of one step, within a "
         "segment, by a dimension), and segments where they hurt conversion.", ErrorsParams,
         lambda wh, p: errors_and_speed(wh, resolve_period(wh, p.period), segment=p.segment, step=p.step,
                                        breakdown=p.breakdown)),
    Tool("release_regressions", "App versions converting worse than the version before them (optionally within a "
         "segment).", ReleaseParams,
         lambda wh, p: release_regressions(wh, resolve_period(wh, p.period), segment=p.segment)),
    Tool("incidents", "What broke and when: intervals where a step's conversion, an error rate or slow loads left "
         "their own baseline, with start, end (or ongoing), the segment hit, users and conversions lost; optionally "
         "only those that hit everyone or a part of a segment.", IncidentParams, _incidents),
    Tool("metric", "Compute a named metric (DAU, WAU, MAU, orders, revenue, AOV, conversion_rate, cart_abandonment, "
         "zero_result_rate, week_1_retention...) from its definition, for a period and segment, against a "
         "comparison period, optionally by a dimension.", MetricParams, _metric, quotes_data=False),
    Tool("metric_definition", "How a named metric is defined (event, filter, aggregation, entity, owner).",
         DefinitionParams, lambda wh, p: describe_metric(wh.event_map, p.metric)),
    Tool("check_tracking", "Data quality: near-duplicate events, duplicate ids, future timestamps, events and fields "
         "that stopped being tracked; with a tracking plan also unplanned events, missing properties, type drift and "
         "unexpected values.", TrackingParams, lambda wh, p: check_tracking(wh, period=resolve_period(wh, p.period))),
    Tool("scan_frictions", "Run every detector and rank suggested tweaks by RICE: what to fix first.",
         PeriodParams, _scan),
)}
