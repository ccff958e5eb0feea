"""Metric trends (ANALYTICS.md, Trends and anomalies): daily series, robust-z anomalies,
week over week with a rate/mix explanation, and release regressions."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pandas as pd

from tools.charts import line_chart
from tools.distinct_users import distinct_users
from tools.funnel import check_dimensions, downstream_rates
from tools.metrics import aggregate_sql
from tools.period import Period, data_bounds
from tools.result import Friction, ToolResult, segment_text
from tools.semantic.eventmap import EventMap
from tools.semantic.metrics import MetricDef, catalog, missing_roles
from tools.sessions import Facts, segment_condition
from tools.stats import bh, robust_z, testable, two_proportion_p
from tools.warehouse import Warehouse

ANOMALY_Z = 3.5
TRAILING_DAYS = 28
DEFAULT_METRIC = "conversion_rate"
DAILY = {"count", "count_distinct", "sum"}


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
               segment: dict[str, str] | None = None) -> str:
    """Daily numerator and denominator of a metric (its one definition in the catalog), optionally per
    value of one dimension and within a segment. A one-minus ratio counts the complement (den - num)."""
    defs = catalog(emap)
    d = defs[metric]
    scope = f"{period.where('e.ts')} AND {emap.segment_where(segment or {}, 'e')}"
    if d.numerator:
        num, den = (aggregate_sql(defs[k], emap, scope) for k in (d.numerator, d.denominator))
        num = f"{den} - {num}" if d.aggregation == "one_minus_ratio" else num
    else:
        num, den = aggregate_sql(d, emap, scope), "1"
    dim, join = "", ""
    if dimension and dimension in emap.user_dims:
        dim = f"u.dim_value AS {dimension}, "
        join = f" LEFT JOIN (SELECT user_id, {emap.dim_sql(dimension)} AS dim_value FROM users) u USING (user_id)"
    elif dimension:
        dim = f"{emap.dim_sql(dimension, 'e')} AS {dimension}, "
    return (f"SELECT date_trunc('day', e.ts) AS day, {dim}{num} AS num, {den} AS den "
            f"FROM events e{join} WHERE {scope} GROUP BY ALL ORDER BY ALL")


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


def trends(wh: Warehouse, metric: str = DEFAULT_METRIC, period: Period = Period("all", None, None),
           dimension: str | None = None, segment: dict[str, str] | None = None) -> ToolResult:
    """Daily series with anomaly flags, the change against the period before, and what explains it.

    A bounded period (a week, "late May", the last 30 days) is compared with as many days right before it;
    an open one (all, after a release) by its last 7 days against the 7 before."""
    emap = wh.event_map
    defs = catalog(emap)
    if metric not in daily_metrics(emap):
        if metric in defs and (need := missing_roles(metric, defs, emap)):
            raise TrendError(f"{defs[metric].name} ({metric}) is not available: the event map has no {', '.join(need)}")
        raise TrendError(f"no daily series for metric {metric!r}; use one of {', '.join(daily_metrics(emap))}")
    check_dimensions(emap, [*([dimension] if dimension else []), *(segment or {})])
    d = defs[metric]
    # a bounded period is compared with as many days right before it; an open one, its last 7 days with the 7 before
    bounded = period.start is not None and period.end is not None
    span = (period.end - period.start) if bounded else timedelta(days=7)
    queried = Period(period.label, period.start - span, period.end) if bounded else period
    sql = series_sql(metric, emap, queried, segment=segment)
    daily = wh.query(sql).df
    if daily.empty:
        return ToolResult("Trends", f"No events in period {period.label}.", sql=[sql])
    is_rate = d.numerator is not None
    daily["value"] = daily["num"] / daily["den"].replace(0, np.nan) if is_rate else daily["num"].astype(float)
    daily["robust_z"] = robust_z(daily["value"].fillna(0.0).to_numpy(), TRAILING_DAYS)
    daily["anomaly"] = daily["robust_z"] >= ANOMALY_Z
    split = pd.Timestamp(period.start) if bounded else daily["day"].max() - pd.Timedelta(days=6)
    now = daily[daily["day"] >= split]
    prev = daily[(daily["day"] < split) & (daily["day"] >= split - span)]
    wow = _week_over_week(now, prev, is_rate)
    sqls, explain = [sql], None
    compared = (f"{wow['now']:.4g} vs {wow['prev']:.4g} the {span.days} days before" if bounded
                else f"last 7 days {wow['now']:.4g} vs {wow['prev']:.4g} the 7 days before")
    summary = (f"{d.name} ({metric}: {d.description}), daily, period {period.label}"
               + (f", {segment_text(segment)}" if segment else "") + f": {compared} ({wow['change']:+.1%}"
               + (f", p={wow['p_value']:.3g}" if wow.get("p_value") is not None else "") + "). ")
    anomalies = daily[daily["anomaly"]]
    summary += (f"{len(anomalies)} anomalous day(s) (robust z >= {ANOMALY_Z} over trailing {TRAILING_DAYS} days): "
                + ", ".join(f"{d:%Y-%m-%d} ({v:.4g})" for d, v in anomalies[["day", "value"]].tail(5).itertuples(index=False))
                if len(anomalies) else "No anomalous day.")
    if dimension and is_rate:
        by_sql = series_sql(metric, emap, queried, dimension, segment)
        by = wh.query(by_sql).df
        sqls.append(by_sql)
        explain = decompose(by[by["day"].isin(prev["day"])], by[by["day"].isin(now["day"])], dimension)
        top = explain.head(3)
        summary += f" Change by {dimension}: " + "; ".join(
            f"{r[dimension]}: rate {r.rate_effect:+.4f}, mix {r.mix_effect:+.4f}" for _, r in top.iterrows())
    chart = line_chart(daily, "day", ["value"], f"{d.name} per day", flags="anomaly")
    return ToolResult("Trends", summary, daily, chart, sqls, [], {"week_over_week": wow, "explain": explain})


def _week_over_week(now: pd.DataFrame, prev: pd.DataFrame, is_rate: bool) -> dict:
    if is_rate:
        x1, n1, x0, n0 = now["num"].sum(), now["den"].sum(), prev["num"].sum(), prev["den"].sum()
        v1, v0 = (x1 / n1 if n1 else 0.0), (x0 / n0 if n0 else 0.0)
        p = float(two_proportion_p(x1, n1, x0, n0)) if n0 and n1 else None
    else:
        v1, v0, p = float(now["num"].sum()), float(prev["num"].sum()), None
    return {"now": float(v1), "prev": float(v0), "change": (v1 - v0) / v0 if v0 else 0.0, "p_value": p}


def version_sql(facts: Facts, evidence: bool = False) -> str:
    """Session step counts per platform, release version and day (the map's release role; platform 'all'
    when it names no platform dimension)."""
    release = facts.emap.roles.release
    reach = ", ".join(f"count(*) FILTER (WHERE level >= {i}) AS n{i}" for i in range(1, len(facts.steps) + 1))
    platform = release.platform or "'all'"
    return (f"WITH {facts.evidence_cte() if evidence else facts.cte()}\n"
            f"SELECT {platform} AS platform, {release.version} AS app_version, date_trunc('day', start_ts) AS day,"
            f" {reach} FROM facts WHERE {release.version} IS NOT NULL GROUP BY ALL")


def release_regressions(wh: Warehouse, period: Period, q: float = 0.05,
                        min_relative_gap: float = 0.10, facts: Facts | None = None) -> ToolResult:
    """Versions whose session step conversion after their first-seen day is below the previous version's
    (the event map's release role names the versioning dimension, and the platform one if any)."""
    emap = wh.event_map
    release = emap.roles.release
    if release is None:
        return ToolResult("Release regressions", "Release regressions not computed: the event map has no release "
                          "role (the dimension that versions releases).")
    facts = facts or Facts(period, emap)
    steps = facts.steps
    df = wh.query(version_sql(facts)).df
    sql = version_sql(facts, evidence=True)
    rows = []
    scopes = [(None, df)] + ([(p, g) for p, g in df.groupby("platform")] if release.platform else [])
    for platform, g in scopes:
        rows += _compare_versions(g, platform, steps, release.version, release.platform)
    tested = pd.DataFrame(rows)
    findings: list[Friction] = []
    if not tested.empty:
        tested["q_value"] = bh(tested["p_value"])
        hits = tested[(tested["q_value"] < q) & (tested["relative_gap"] >= min_relative_gap)]
        hits = _platform_explains_all(hits)
        _, end = data_bounds(wh)
        downstream = downstream_rates([float(df[f"n{i}"].sum()) for i in range(1, len(steps) + 1)], steps)
        users = distinct_users(wh, facts.cte(), "facts", [segment_condition(r.segment) for r in hits.itertuples()])
        findings = [_regression(r, period, sql, end, downstream[r.step], u) for r, u in zip(hits.itertuples(), users)]
    summary = ("Release regressions: " + "; ".join(
        f"{segment_text(f.segment)} at {f.step}: {f.observed:.1%} vs {f.baseline:.1%} on "
        f"{f.detail['previous_version']}" for f in findings)
        if findings else "No release converts significantly worse than the version before it.")
    table = tested.assign(segment=tested["segment"].map(segment_text)) if not tested.empty else tested
    return ToolResult("Release regressions", summary, table, None, [sql], findings)


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

