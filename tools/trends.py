"""Metric trends (ANALYTICS.md, Trends and anomalies): the metric over a period against the period before (from
its one definition: a total for counts and amounts), its daily series with robust-z anomalies, what explains the
change by a dimension (rate/mix for a rate, per value for a count or amount), and release regressions."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
import pandas as pd

from tools.charts import line_chart
from tools.distinct_users import distinct_users
from tools.format import change, p_value, pct, points, span
from tools.funnel import NOT_SET, check_scope, downstream_rates
from tools.metrics import (
    aggregate_sql,
    condition,
    headline,
    metric_by,
    metric_kind,
    metric_values,
    per_words,
    previous_period,
    relative_change,
    value_words,
)
from tools.period import Period, data_bounds
from tools.result import FactKind, Friction, ToolResult, applied, scope_words, segment_text
from tools.result import facts as facts_of
from tools.semantic.eventmap import EventMap, SegmentValue, segment_values
from tools.semantic.metrics import MetricDef, catalog, missing_roles
from tools.sessions import Facts, segment_condition
from tools.stats import bh, robust_z, testable, two_proportion_p
from tools.warehouse import Warehouse

ANOMALY_Z = 3.5
TRAILING_DAYS = 28
DEFAULT_METRIC = "conversion_rate"
DAILY = {"count", "count_distinct", "sum"}
OPEN_DAYS = 7  # an open period's trend compares its last 7 days with the 7 before


class TrendError(ValueError):
    """Unknown metric or dimension, or a metric this event map cannot compute."""


def daily_metrics(emap: EventMap) -> dict[str, MetricDef]:
    """Metrics of the catalog that have a daily series on this map: counts, sums, and ratios of them."""
    defs = catalog(emap)

    def daily(d: MetricDef) -> bool:
        if d.aggregation in {"ratio", "one_minus_ratio"}:
            return daily(defs[d.numerator]) and daily(defs[d.denominator])
        return d.aggregation in DAILY and d.per in (None, "day")

    return {k: d for k, d in defs.items() if daily(d) and not missing_roles(k, defs, emap)}


def series_sql(metric: str, emap: EventMap, period: Period, dimension: str | None = None,
               segment: Mapping[str, SegmentValue] | None = None) -> str:
    """Daily numerator and denominator of a metric (its one definition in the catalog), optionally per
    value of one dimension and within a segment. A one-minus ratio counts the complement (den - num).

    The rows are events `e` (joined to a user dimension's values when broken down by one); a metric
    filter's own subquery of events reads the period and segment unqualified."""
    return _daily_sql([metric], emap, period, dimension, segment or {}, [("num", "den")])


def shares_sql(keys: list[str], emap: EventMap, period: Period) -> str:
    """Daily numerator and denominator of several metrics in one pass over the events: num_<key>, den_<key>."""
    return _daily_sql(keys, emap, period, None, {}, [(f"num_{k}", f"den_{k}") for k in keys])


def _daily_sql(keys: list[str], emap: EventMap, period: Period, dimension: str | None,
               segment: Mapping[str, SegmentValue], names: list[tuple[str, str]]) -> str:
    """Per day (and dimension value), each metric's numerator and denominator under `names`.

    Counts of distinct sessions (or users) are taken in two steps when every part counts rows or distinct
    values of one entity: rows per day and entity first, then entities per day (one hash table instead of
    one per distinct count); otherwise each part is one aggregate."""
    defs = catalog(emap)
    scope = f"{period.where('e.ts')} AND {emap.segment_where(segment, 'e')}"
    inner = f"{period.where()} AND {emap.segment_where(segment)}"
    metrics = [defs[k] for k in keys]
    parts = list({p.key: p for d in metrics for p in ([defs[d.numerator], defs[d.denominator]] if d.numerator
                                                      else [d])}.values())
    dim, join = "", ""
    if dimension and dimension in emap.user_dims:
        dim = f"u.dim_value AS {dimension}, "
        join = f" LEFT JOIN (SELECT user_id, {emap.dim_sql(dimension)} AS dim_value FROM users) u USING (user_id)"
    elif dimension:
        dim = f"{emap.dim_sql(dimension, 'e')} AS {dimension}, "
    entities = {p.entity for p in parts if p.aggregation == "count_distinct"}
    two_step = len(entities) == 1 and all(p.aggregation in {"count", "count_distinct"} for p in parts)
    if two_step:
        counted = {p.key: f"count(*) FILTER (WHERE entity IS NOT NULL AND f{i})" if p.aggregation == "count_distinct"
                   else f"coalesce(sum(c{i}), 0)::BIGINT" for i, p in enumerate(parts)}
    else:
        counted = {p.key: aggregate_sql(p, emap, inner) for p in parts}
    columns = []
    for d, (num_name, den_name) in zip(metrics, names, strict=True):
        num, den = (counted[d.numerator], counted[d.denominator]) if d.numerator else (counted[d.key], "1")
        num = f"{den} - {num}" if d.aggregation == "one_minus_ratio" else num
        columns.append(f"{num} AS {num_name}, {den} AS {den_name}")
    if not two_step:
        return (f"SELECT date_trunc('day', e.ts) AS day, {dim}{', '.join(columns)} "
                f"FROM events e{join} WHERE {scope} GROUP BY ALL ORDER BY ALL")
    marks = ", ".join(f"bool_or({condition(p, emap, inner)}) AS f{i}" if p.aggregation == "count_distinct"
                      else f"count(*) FILTER (WHERE {condition(p, emap, inner)}) AS c{i}" for i, p in enumerate(parts))
    rows = (f"SELECT date_trunc('day', e.ts) AS day, {dim}e.{entities.pop()} AS entity, {marks} "
            f"FROM events e{join} WHERE {scope} GROUP BY ALL")
    keep = f"{dimension}, " if dimension else ""
    return f"SELECT day, {keep}{', '.join(columns)} FROM ({rows}) r GROUP BY ALL ORDER BY ALL"


def decompose(before: pd.DataFrame, after: pd.DataFrame, dimension: str) -> pd.DataFrame:
    """Rate/mix decomposition of a rate change; rows sum to the total change."""
    b = before.groupby(dimension)[["num", "den"]].sum()
    a = after.groupby(dimension)[["num", "den"]].sum()
    both = b.add_suffix("0").join(a.add_suffix("1"), how="outer").fillna(0.0)
    y0 = both["num0"].sum() / both["den0"].sum()
    p0, p1 = both["den0"] / both["den0"].sum(), both["den1"] / both["den1"].sum()
    y0_i = (both["num0"] / both["den0"]).where(both["den0"] > 0, y0)
    y1_i = (both["num1"] / both["den1"]).where(both["den1"] > 0, y0_i)
    out = pd.DataFrame({"rate_effect": (y1_i - y0_i) * p0, "mix_effect": (p1 - p0) * (y1_i - y0)})
    out["total"] = out["rate_effect"] + out["mix_effect"]
    return out.reset_index().sort_values("total", key=np.abs, ascending=False)


@dataclass(frozen=True)
class Windows:
    """What a trend compares: `current` (the asked period, or its last 7 days when it is open) against
    `previous`, named in words by `before` (`the 30 days before`, or the compared period)."""

    current: Period
    previous: Period
    before: str

    @classmethod
    def of(cls, period: Period, compare: Period | None, data_end: datetime | None) -> Windows | None:
        """A bounded period against `compare` or the equal span just before it; an open one by its last 7 days
        against the 7 before (None without data to anchor them)."""
        if period.start is not None and period.end is not None:
            current = period
        elif (end := period.end or data_end) is not None:
            current = Period(f"last_{OPEN_DAYS}_days", end - timedelta(days=OPEN_DAYS), end)
        else:
            return None
        if compare is not None:
            return cls(current, compare, compare.words())
        return cls(current, previous_period(current), f"the {current.days} days before")

    @property
    def span(self) -> Period:
        """Both windows and the days between them."""
        return Period("windows", min(self.previous.start, self.current.start), max(self.previous.end, self.current.end))

    def covering(self, period: Period) -> Period:
        """The days the daily series shows: the period and both windows."""
        return Period(period.label, None if period.start is None else min(period.start, self.span.start),
                      None if period.end is None else max(period.end, self.span.end))

    @staticmethod
    def days(df: pd.DataFrame, which: Period) -> pd.Series:
        """Rows of a daily frame inside one window."""
        return (df["day"] >= pd.Timestamp(which.start)) & (df["day"] < pd.Timestamp(which.end))


def check_metric(metric: str, emap: EventMap) -> MetricDef:
    """The metric's definition, or TrendError when it has no daily series on this map (and why)."""
    defs = catalog(emap)
    if metric not in daily_metrics(emap):
        if metric in defs and (need := missing_roles(metric, defs, emap)):
            raise TrendError(f"{defs[metric].name} ({metric}) is not available: the event map has no {', '.join(need)}")
        raise TrendError(f"no daily series for metric {metric!r}; use one of {', '.join(daily_metrics(emap))}")
    return defs[metric]


def trends(wh: Warehouse, metric: str = DEFAULT_METRIC, period: Period = Period("all", None, None),
           dimension: str | None = None, segment: Mapping[str, SegmentValue] | None = None,
           compare: Period | None = None) -> ToolResult:
    """The metric over the period against the one before (or `compare`), its daily series with anomaly flags,
    and what explains the change by a dimension.

    A bounded period (a week, "late May", the last 30 days) is compared with as many days right before it;
    an open one (all, after a release) by its last 7 days against the 7 before."""
    emap = wh.event_map
    d = check_metric(metric, emap)
    segment = segment or {}
    check_scope(emap, segment, dimension)
    windows = Windows.of(period, compare, data_bounds(wh)[1])
    scope = applied(period, segment, dimension, metric=metric)
    if windows is None:
        return ToolResult("Trends", f"No events in {scope_words(scope)}.", data={"applied": scope, "facts": {}})
    scope.update(compare=windows.previous.words(), current=windows.current.words())
    sql = series_sql(metric, emap, windows.covering(period), segment=segment)
    daily = wh.query(sql).df
    if daily.empty:
        return ToolResult("Trends", f"No events in {scope_words(scope)}.", sql=[sql],
                          data={"applied": scope, "facts": {}})
    daily["value"] = daily["num"] / daily["den"].replace(0, np.nan) if d.numerator else daily["num"].astype(float)
    daily["robust_z"] = robust_z(daily["value"].fillna(0.0).to_numpy(), TRAILING_DAYS)
    daily["anomaly"] = daily["robust_z"] >= ANOMALY_Z
    wow, sqls = compare_windows(wh, d, windows, segment)
    defs = catalog(emap)
    kind = metric_kind(d, defs)
    when = scope["current"] if windows.current == period else f"the last {OPEN_DAYS} days ({scope['current']})"
    summary = headline(d.name, wow["now"], wow["prev"], kind, per_words(d, defs), {**scope, "current": when},
                       windows.before) + anomaly_words(daily, kind)
    explain = None
    if dimension:
        explain, by_sql, text = explain_change(wh, d, windows, segment, dimension, kind)
        summary += text
        sqls.append(by_sql)
    summary += trend_details(d, wow["p_value"])
    data = {"week_over_week": wow, "explain": explain, "applied": scope,
            "facts": facts_of(value=(wow["now"], kind), previous=(wow["prev"], kind), change=(wow["change"], "change"))}
    chart = line_chart(daily, "day", ["value"], f"{d.name} per day", flags="anomaly")
    return ToolResult("Trends", summary, daily, chart, [sql, *sqls], [], data)


def compare_windows(wh: Warehouse, d: MetricDef, windows: Windows,
                    segment: Mapping[str, SegmentValue]) -> tuple[dict, list[str]]:
    """The metric in both windows, from its definition (as the metric tool computes it), its relative change and,
    for a rate, the two-proportion p-value of its numerator and denominator counts; in one query."""
    parts = (d.numerator, d.denominator) if d.is_rate and d.numerator else ()
    wanted = [(k, w, segment) for w in (windows.current, windows.previous) for k in (d.key, *parts)]
    values, sql = metric_values(wh, wanted)
    now, prev = values[0], values[len(values) // 2]
    p = None
    if parts:
        (x1, n1), (x0, n0) = ((x or 0.0, n or 0.0) for x, n in (values[1:3], values[4:6]))
        p = float(two_proportion_p(x1, n1, x0, n0)) if n0 and n1 else None
    return {"now": now, "prev": prev, "change": relative_change(now, prev), "p_value": p}, [sql]


def anomaly_words(daily: pd.DataFrame, kind: FactKind) -> str:
    """The unusual days (at most the last five), or that there were none."""
    anomalies = daily[daily["anomaly"]].tail(5)
    if anomalies.empty:
        return " No unusual day."
    return " Unusual days: " + ", ".join(f"{span(day, day)} ({value_words(v, kind)})"
                                          for day, v in anomalies[["day", "value"]].itertuples(index=False)) + "."


def explain_change(wh: Warehouse, d: MetricDef, windows: Windows, segment: Mapping[str, SegmentValue],
                   dimension: str, kind: FactKind) -> tuple[pd.DataFrame, str, str]:
    """What moved the metric, by value of `dimension`: a rate's change split into rate and mix effects (in
    points), an amount's or count's change per value. Returns the table, its SQL and a sentence."""
    if d.numerator and d.is_rate:
        sql = series_sql(d.key, wh.event_map, windows.span, dimension, segment)
        by = wh.query(sql).df
        by[dimension] = by[dimension].astype(object).where(by[dimension].notna(), NOT_SET)
        explain = decompose(by[windows.days(by, windows.previous)], by[windows.days(by, windows.current)], dimension)
        parts = [rate_mix_words(r[dimension], r.rate_effect, r.mix_effect) for _, r in explain.head(3).iterrows()]
    else:
        (now, sql), (prev, _) = (metric_by(wh, d, w, segment, dimension) for w in (windows.current, windows.previous))
        explain = now.merge(prev, on=dimension, how="outer", suffixes=("_now", "_prev")).fillna(0.0)
        explain["change"] = explain["value_now"] - explain["value_prev"]
        explain = explain.sort_values("change", key=np.abs, ascending=False)
        parts = [f"{r[dimension]} {signed(r.change, kind)}"
                 + (f" ({change(r.change / r.value_prev)})" if r.value_prev else "")
                 for _, r in explain.head(3).iterrows() if r.change]
    parts = [p for p in parts if p]
    return explain, sql, (f" Change by {dimension}: {'; '.join(parts)}." if parts else "")


def rate_mix_words(value: object, rate: float, mix: float) -> str:
    """`web +0.29 pts (rate), -0.05 pts (mix)`; a zero effect is left out (an empty string when both are)."""
    effects = [f"{points(x)} ({what})" for x, what in ((rate, "rate"), (mix, "mix")) if points(x) != "0 pts"]
    return f"{value} {', '.join(effects)}" if effects else ""


def signed(x: float, kind: FactKind) -> str:
    """A difference with its sign: `+$12.3k`, `-210`."""
    return ("+" if x > 0 else "") + value_words(x, kind)


def trend_details(d: MetricDef, p: float | None) -> str:
    """The details paragraph: the test of the change (rates), the anomaly rule, the definition."""
    test = f"two-proportion z-test of the two periods, {p_value(p)}; " if p is not None else ""
    return (f"\n\nDetails: {test}an unusual day has a robust z >= {ANOMALY_Z} over the trailing {TRAILING_DAYS} "
            f"days. {d.name} ({d.key}): {d.description}")


def version_sql(facts: Facts, evidence: bool = False, segment: Mapping[str, SegmentValue] | None = None) -> str:
    """Session step counts per platform, release version and day (the map's release role; platform 'all'
    when it names no platform dimension), of the sessions in `segment`."""
    release = facts.emap.roles.release
    reach = ", ".join(f"count(*) FILTER (WHERE level >= {i}) AS n{i}" for i in range(1, len(facts.steps) + 1))
    platform = release.platform or "'all'"
    return (f"WITH {facts.evidence_cte() if evidence else facts.cte()}\n"
            f"SELECT {platform} AS platform, {release.version} AS app_version, date_trunc('day', start_ts) AS day,"
            f" {reach} FROM facts WHERE {release.version} IS NOT NULL AND {segment_condition(segment or {})}"
            " GROUP BY ALL")


def release_regressions(wh: Warehouse, period: Period, q: float = 0.05, min_relative_gap: float = 0.10,
                        facts: Facts | None = None, segment: Mapping[str, SegmentValue] | None = None) -> ToolResult:
    """Versions whose session step conversion after their first-seen day is below the previous version's
    (the event map's release role names the versioning dimension, and the platform one if any), among the
    sessions of `segment`; a segment naming versions keeps only those versions' comparisons."""
    emap = wh.event_map
    release = emap.roles.release
    segment = segment or {}
    check_scope(emap, segment)
    scope = applied(period, segment)
    if release is None:
        return ToolResult("Release regressions", "Release regressions not computed: the event map has no release "
                          "role (the dimension that versions releases).", data={"applied": scope, "facts": {}})
    within = {d: v for d, v in segment.items() if d != release.version}
    facts = facts or Facts(period, emap).materialize(wh)
    steps = facts.steps
    df = wh.query(version_sql(facts, segment=within)).df
    sql = version_sql(facts, evidence=True, segment=within)
    tested = _version_tests(df, steps, release, segment)
    findings: list[Friction] = []
    if not tested.empty:
        tested["q_value"] = bh(tested["p_value"])
        hits = tested[(tested["q_value"] < q) & (tested["relative_gap"] >= min_relative_gap)]
        hits = _platform_explains_all(hits)
        _, end = data_bounds(wh)
        downstream = downstream_rates([float(df[f"n{i}"].sum()) for i in range(1, len(steps) + 1)], steps)
        users = distinct_users(wh, facts.cte(), "facts", [f"{segment_condition(within)} AND "
                                                          f"{segment_condition(r.segment)}" for r in hits.itertuples()])
        findings = [_regression(r, period, sql, end, downstream[r.step], u) for r, u in zip(hits.itertuples(), users)]
    table = tested.assign(segment=tested["segment"].map(segment_text)) if not tested.empty else tested
    data = {"applied": scope, "facts": facts_of(regressions=(len(findings), "count"))}
    return ToolResult("Release regressions", regression_words(findings, scope, q, min_relative_gap), table, None,
                      [sql], findings, data)


def _version_tests(df: pd.DataFrame, steps: tuple[str, ...], release, segment: Mapping[str, SegmentValue]
                   ) -> pd.DataFrame:
    """Every version against the one before it, on all platforms and on each (unless the segment fixes the
    platform), at every step; only the versions the segment names, if it names any."""
    one_platform = release.platform in segment and len(segment_values(segment[release.platform])) == 1
    scopes = ([] if one_platform else [(None, df)]) + (list(df.groupby("platform")) if release.platform else [])
    rows = [row for platform, g in scopes
            for row in _compare_versions(g, platform, steps, release.version, release.platform)]
    tested = pd.DataFrame(rows)
    if release.version in segment and not tested.empty:
        tested = tested[tested["version"].isin(segment_values(segment[release.version]))].reset_index(drop=True)
    return tested


def regression_words(findings: list[Friction], scope: dict, q: float, min_relative_gap: float) -> str:
    """The verdict (how many releases convert worse than the one before), each one, then the tests in details."""
    where = f"per session, {scope_words(scope)}"
    if not findings:
        return f"No release converts significantly worse than the version before it ({where})."
    name = _release_name
    many = f"{len(findings)} releases convert" if len(findings) > 1 else "1 release converts"
    return (f"{many} significantly worse than the version before ({where}): " + "; ".join(
        f"{name(f)} at {f.step}: {pct(f.observed)} vs {pct(f.baseline)} on {f.detail['previous_version']} "
        f"(since {span(*[datetime.fromisoformat(f.detail['since'])] * 2)})" for f in findings)
        + ". Rates are of the sessions reaching the step before.\n\nDetails: each version's sessions against the "
        f"previous version's over the same days, two-proportion z-test, Benjamini-Hochberg q<{q:g}, relative gap "
        f">= {min_relative_gap:.0%}; " + "; ".join(f"{name(f)} at {f.step} {p_value(f.p_value)}" for f in findings)
        + ".")


def _release_name(f: Friction) -> str:
    """`ios 5.5.0`, or the version alone on all platforms."""
    return " ".join(x for x in (f.detail["platform"], f.detail["version"]) if x)


def _compare_versions(g: pd.DataFrame, platform: str | None, steps: tuple[str, ...],
                      version_dim: str, platform_dim: str | None) -> list[dict]:
    first_seen = g[g["n1"] > 0].groupby("app_version")["day"].min().sort_values()
    out = []
    for prev_v, v in zip(first_seen.index[:-1], first_seen.index[1:]):
        since = first_seen[v]
        cur = g[(g["app_version"] == v) & (g["day"] >= since)]
        old = g[(g["app_version"] == prev_v) & (g["day"] >= since)]
        for i in range(2, len(steps) + 1):
            n, x = cur[f"n{i - 1}"].sum(), cur[f"n{i}"].sum()
            n0, x0 = old[f"n{i - 1}"].sum(), old[f"n{i}"].sum()
            if not testable(x, n, x0, n0):
                continue
            rate, rate0 = x / n, x0 / n0
            segment = {version_dim: v} if platform is None else {platform_dim: platform, version_dim: v}
            out.append({"segment": segment, "version": v, "platform": platform, "step": steps[i - 1],
                        "previous_version": prev_v, "since": since,
                        "n": int(n), "x": int(x), "n_prev": int(n0), "x_prev": int(x0), "rate": rate,
                        "rate_prev": rate0,
                        "relative_gap": (rate0 - rate) / rate0 if rate0 else 0.0,
                        "lost": n * (rate0 - rate), "p_value": float(two_proportion_p(x, n, x0, n0))})
    return out


def _platform_explains_all(hits: pd.DataFrame) -> pd.DataFrame:
    """Drop an all-platform finding when one platform's finding accounts for >= 80% of its loss."""
    keep = []
    for idx, r in hits.iterrows():
        if pd.isna(r["platform"]):
            same = hits[(hits["step"] == r["step"]) & (hits["version"] == r["version"]) & hits["platform"].notna()]
            if (same["lost"] >= 0.8 * r["lost"]).any():
                continue
        keep.append(idx)
    return hits.loc[keep]


def _regression(r, period: Period, sql: str, end, downstream: float, users: int) -> Friction:
    weeks = max((end - r.since).days / 7, 1 / 7) if end is not None else 1.0
    return Friction(
        kind="release_regression",
        title=f"Release {r.version}" + (f" on {r.platform}" if pd.notna(r.platform) else "")
        + f" converts worse into {r.step} than {r.previous_version}",
        metric="step_conversion", step=r.step, segment=r.segment,
        period=f"{r.since:%Y-%m-%d}..{end:%Y-%m-%d}" if end is not None else period.label,
        baseline=float(r.rate_prev), observed=float(r.rate), affected_users=users,
        est_lost_conversions=float(r.lost * downstream), p_value=float(r.p_value), evidence_sql=sql,
        weekly_exposed=float(r.n / weeks), gap=float(r.rate_prev - r.rate), downstream_rate=downstream,
        detail={"version": r.version, "platform": r.platform if pd.notna(r.platform) else None,
                "previous_version": r.previous_version,
                "since": f"{r.since:%Y-%m-%d}", "sessions": int(r.n),
                "sessions_previous": int(r.n_prev)},
    )

