"""Incidents: when a rate departed from its own past, for whom, and whether it recovered.

Daily series, per session (from the session facts), for everyone and for every value of every
dimension: each funnel step's conversion from the step before, each step's error rate (with an
error role) and share of slow loads (with a page_load role; slow = above the step's own 90th
percentile over the period, a threshold from the data); and the zero-result rate of searches (with
a search role and its results field). Each series gets the temporal scan of tools/timescan.py;
its p-values are corrected over the windows of a series (Bonferroni) and over all series
(Benjamini-Hochberg). An incident needs significance and a relative change of at least 10%.

The same incident shows in many series (everyone, platform=ios, os=ios...): per metric, incidents
whose windows overlap are one; it is reported for the narrowest segment that holds at least 80% of
the conversions lost by everyone (where it is concentrated), else for everyone, else for the
segment losing most. An incident still running on the last day of the period is ongoing;
otherwise it recovered on the day after its end. A release that appeared within 3 days of the
start is named as its likely cause.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Literal

import numpy as np
import pandas as pd

from tools.charts import timeline_chart
from tools.distinct_users import distinct_users
from tools.errors_speed import SLOW_QUANTILE
from tools.facts_store import frame
from tools.format import count, p_value, pct, span
from tools.funnel import check_scope, downstream_rates
from tools.period import Period
from tools.result import Friction, FrictionKind, ToolResult, applied, friction_id, scope_words, segment_text
from tools.result import facts as facts_of
from tools.segments import EXPLAINS_SHARE, SegmentRules, attach_segments, rollup_sql
from tools.semantic.eventmap import SegmentValue
from tools.semantic.metrics import MetricDef, catalog, missing_roles
from tools.sessions import Facts, segment_condition
from tools.stats import bh, testable, two_proportion_p
from tools.timescan import Window, best_window
from tools.trends import shares_sql
from tools.warehouse import Warehouse

MAX_PER_SERIES = 2       # incidents looked for in one series
OVERLAP = 0.5            # windows sharing at least half of the shorter one are one incident
STEEPER = 1.25           # a segment holding most of the loss leads only if its change is this much steeper
RELEASE_DAYS = 3         # a release first seen this close to the start is its likely cause


@dataclass(frozen=True)
class Metric:
    """One daily rate per step: which counts make it, which way is worse, what finding it becomes."""

    kind: FrictionKind
    name: str
    x: str
    n: str
    worse: Literal["lower", "higher"]


KPI_KINDS: dict[str | None, FrictionKind] = {"search": "failed_search", "error": "error_spike"}


def shares(facts: Facts) -> list[MetricDef]:
    """The catalog's shares of sessions or events (metrics with a `worse` way) the event map can compute."""
    defs = catalog(facts.emap)
    return [d for d in defs.values() if d.worse and not missing_roles(d.key, defs, facts.emap)]


def metrics(facts: Facts, kpis: list[MetricDef] = ()) -> list[tuple[Metric, str, int]]:
    """(metric, step, step index) for every series the event map can feed; a share of the metric catalog
    is a series of everyone's (step index 0, its name for the step)."""
    emap, steps = facts.emap, facts.steps
    out = [(Metric("funnel_dropoff", "step_conversion", f"n{i}", f"n{i - 1}", "lower"), steps[i - 1], i)
           for i in range(2, len(steps) + 1)]
    if emap.event_of("error"):
        out += [(Metric("error_spike", "error_rate", f"e{i}", f"n{i}", "higher"), steps[i - 1], i)
                for i in range(1, len(steps) + 1)]
    if emap.roles.page_load:
        out += [(Metric("slow_page", "slow_load_share", f"s{i}", f"l{i}", "higher"), steps[i - 1], i)
                for i in range(1, len(steps) + 1)]
    defs = catalog(emap)
    for d in kpis:
        kind = KPI_KINDS.get(defs[d.numerator].event, "funnel_dropoff")
        out.append((Metric(kind, d.key, f"k_{d.key}", f"kn_{d.key}", d.worse), d.name, 0))
    return out


def with_shares(wh: Warehouse, daily: pd.DataFrame, facts: Facts, kpis: list[MetricDef]) -> pd.DataFrame:
    """`daily` with each share's numerator (k_<key>) and denominator (kn_<key>) on everyone's rows."""
    if not kpis:
        return daily
    series = frame(wh, shares_sql([d.key for d in kpis], facts.emap, facts.period))
    series = series.assign(day=pd.to_datetime(series["day"])).set_index("day")
    top = daily["depth"] == 0
    for d in kpis:
        for col, src in ((f"k_{d.key}", f"num_{d.key}"), (f"kn_{d.key}", f"den_{d.key}")):
            daily[col] = 0.0
            daily.loc[top, col] = daily.loc[top, "day"].map(series[src]).fillna(0).to_numpy(float)
    return daily


def slow_thresholds(wh: Warehouse, facts: Facts) -> list[float]:
    """Per step, the 90th percentile of its load times over the period (NaN without loads)."""
    cols = ", ".join(f"quantile_cont(load_{i}, {SLOW_QUANTILE}) AS q{i}" for i in range(1, len(facts.steps) + 1))
    row = wh.query(f"WITH {facts.cte()} SELECT {cols} FROM facts").df.iloc[0]
    return [float(row[f"q{i}"]) if pd.notna(row[f"q{i}"]) else float("nan") for i in range(1, len(facts.steps) + 1)]


def daily_sql(facts: Facts, dims: tuple[str, ...], slow: list[float], evidence: bool = False) -> str:
    """Per day and segment (everyone, and each value of each dimension): sessions reaching each step (n),
    with an error at it (e), with a load (l) and a slow load (s)."""
    k = len(facts.steps)
    counts = {f"n{i}": f"count(*) FILTER (WHERE level >= {i})" for i in range(1, k + 1)}
    counts |= {f"e{i}": f"count(*) FILTER (WHERE level >= {i} AND error_{i})" for i in range(1, k + 1)}
    counts |= {f"l{i}": f"count(load_{i}) FILTER (WHERE level >= {i})" for i in range(1, k + 1)}
    limit = [str(q) if q == q else "NULL" for q in slow]  # NaN: no loads at that step
    counts |= {f"s{i}": f"count(*) FILTER (WHERE level >= {i} AND load_{i} > {limit[i - 1]})" for i in range(1, k + 1)}
    source = "(SELECT *, date_trunc('day', start_ts) AS day FROM facts) d"
    body = rollup_sql(source, dims, counts, pairs=False, always=("day",)).removeprefix("WITH ")
    return f"WITH {facts.evidence_cte() if evidence else facts.cte()}, {body}"


@dataclass
class Candidate:
    """A significant window of one series."""

    metric: Metric
    step: str
    index: int
    segment: dict[str, str]
    seg_key: str
    window: Window
    first_day: pd.Timestamp
    q_value: float = 1.0

    @property
    def lost(self) -> float:
        """Sessions the window lost (or extra sessions hit) against the series' own baseline."""
        return abs(self.window.baseline - self.window.rate) * self.window.n

    @property
    def relative(self) -> float:
        """The change as a share of the baseline."""
        return abs(self.window.baseline - self.window.rate) / self.window.baseline if self.window.baseline else 0.0

    def days(self) -> tuple[pd.Timestamp, pd.Timestamp]:
        return self.first_day + timedelta(days=self.window.start), self.first_day + timedelta(days=self.window.end)


def scan_series(daily: pd.DataFrame, facts: Facts, days: pd.DatetimeIndex,
                kpis: list[MetricDef] = ()) -> list[Candidate]:
    """The best windows (up to MAX_PER_SERIES) of every series: every metric for every segment row group."""
    out = []
    series = metrics(facts, kpis)
    counts = sorted({c for m, _, _ in series for c in (m.x, m.n)})
    for key, group in daily.groupby("seg_key", sort=True):
        segment = group["segment"].iloc[0]
        frame = group.set_index("day")[counts].reindex(days, fill_value=0)
        for metric, step, index in series:
            x, n = frame[metric.x].to_numpy(float), frame[metric.n].to_numpy(float)
            if n.sum() == 0:
                continue
            masked = np.zeros(len(days), bool)
            for _ in range(MAX_PER_SERIES):
                window = best_window(x, n, metric.worse, masked)
                if window is None:
                    break
                out.append(Candidate(metric, step, index, segment, key, window, days[0]))
                masked[window.start:window.end] = True
    return out


def incidents(wh: Warehouse, facts: Facts, rules: SegmentRules = SegmentRules(),
              within: Period | None = None, segment: Mapping[str, SegmentValue] | None = None) -> ToolResult:
    """Every incident of the facts' period: where, when, how large, ongoing or recovered; with `within`,
    those overlapping it (dated by the whole facts' period, so one that began before it keeps its start);
    with `segment`, those that hit everyone or a segment whose sessions in the incident's window include some
    of `segment`'s."""
    emap, segment = facts.emap, segment or {}
    check_scope(emap, segment)
    scope = applied(within or facts.period, segment)
    if len(facts.steps) < 2:
        return ToolResult("Incidents", "No incidents looked for: the event map has no funnel.",
                          data={"applied": scope, "facts": {}})
    dims = tuple(facts.dims)
    slow = slow_thresholds(wh, facts) if emap.roles.page_load else [float("nan")] * len(facts.steps)
    daily = frame(wh, daily_sql(facts, dims, slow))  # the daily series per step and dimension value
    if daily.empty:
        return ToolResult("Incidents", f"No sessions ({scope_words(scope)}).",
                          data={"applied": scope, "facts": facts_of(incidents=(0, "count"), ongoing=(0, "count"))})
    daily["day"] = pd.to_datetime(daily["day"])
    kpis = shares(facts)
    daily = with_shares(wh, attach_segments(daily, dims), facts, kpis)
    days = pd.date_range(daily["day"].min(), daily["day"].max(), freq="D")
    candidates = scan_series(daily, facts, days, kpis)
    if candidates:
        for c, q in zip(candidates, bh([c.window.p_value for c in candidates])):
            c.q_value = float(q)
    hits = [c for c in candidates if c.q_value < rules.q and c.lost >= rules.min_lost
            and c.relative >= rules.min_relative_gap]
    leads = explain(hits)
    leads = [(lead, m) for lead, m in leads if lead.index or not any(
        other.index and other.metric.kind == lead.metric.kind and _overlap(other, lead) for other, _ in leads)]
    if within is not None:
        leads = [(lead, m) for lead, m in leads if _during(lead, within)]
    if segment:
        leads = touching(wh, facts, leads, segment)
    evidence = daily_sql(facts, dims, slow, evidence=True)
    findings = _findings(wh, facts, leads, daily, days, evidence)
    ongoing = sum(f.detail["incident"]["status"] == "ongoing" for f in findings)
    data = {"applied": scope | {"hit_everyone": sum(not f.segment for f in findings)},
            "facts": facts_of(incidents=(len(findings), "count"), ongoing=(ongoing, "count"))}
    summary = _summary(findings, data["applied"])
    chart = _chart(daily, days, leads) if findings else None
    table = pd.DataFrame([{"what": f.title, "segment": segment_text(f.segment), "start": f.detail["incident"]["start"],
                           "end": f.detail["incident"]["end"], "status": f.detail["incident"]["status"],
                           "before": f.baseline, "during": f.observed, "p_value": f.p_value} for f in findings])
    return ToolResult("Incidents", summary, table, chart, [evidence], findings, data)


def touching(wh: Warehouse, facts: Facts, leads: list[tuple[Candidate, list[Candidate]]],
             segment: Mapping[str, SegmentValue]) -> list[tuple[Candidate, list[Candidate]]]:
    """The incidents that hit everyone, or a segment with sessions of `segment` inside the incident's window
    (platform=ios for country=DE when German iOS sessions were hit; not os=android for platform=ios)."""
    narrow = [(i, lead) for i, (lead, _) in enumerate(leads) if lead.segment]
    if not narrow:
        return leads
    cols = ", ".join(f"count(*) FILTER (WHERE {_in_window(lead.segment, *lead.days())} AND "
                     f"{segment_condition(segment)}) AS n{i}" for i, lead in narrow)
    row = wh.query(f"WITH {facts.cte()} SELECT {cols} FROM facts").df.iloc[0]
    hit = {i for i, _ in narrow if row[f"n{i}"] > 0}
    return [g for i, g in enumerate(leads) if not g[0].segment or i in hit]


def _during(c: Candidate, p: Period) -> bool:
    start, end = c.days()
    return (p.start is None or end > p.start) and (p.end is None or start < p.end)


def _overlap(a: Candidate, b: Candidate) -> bool:
    shared = min(a.window.end, b.window.end) - max(a.window.start, b.window.start)
    shorter = min(a.window.end - a.window.start, b.window.end - b.window.start)
    return shared >= OVERLAP * shorter


def explain(hits: list[Candidate]) -> list[tuple[Candidate, list[Candidate]]]:
    """(A share of the catalog whose incident overlaps one of a step's of the same kind is left to the step's.)
    Group the windows of one metric and step that overlap in time, and lead each group with where the
    incident is concentrated: among the segments holding at least 80% of everyone's loss with a steeper
    change (by a quarter), or half of it with at least twice everyone's relative change, the narrowest;
    else everyone; else the largest loss."""
    groups: list[list[Candidate]] = []
    for c in sorted(hits, key=lambda c: (-c.lost, len(c.segment), c.seg_key)):
        for g in groups:
            if g[0].metric == c.metric and g[0].step == c.step and any(_overlap(m, c) for m in g):
                g.append(c)
                break
        else:
            groups.append([c])
    out = []
    for g in groups:
        everyone = next((c for c in g if not c.segment), None)
        lead = everyone or g[0]
        if everyone is not None:
            concentrated = [c for c in g if c.segment and (
                c.lost >= EXPLAINS_SHARE * everyone.lost and c.relative >= STEEPER * everyone.relative
                or c.lost >= everyone.lost / 2 and c.relative >= 2 * everyone.relative)]
            if concentrated:
                lead = min(concentrated, key=lambda c: (c.window.n, c.seg_key))
        out.append((lead, [c for c in g if c is not lead]))
    return out


def _findings(wh: Warehouse, facts: Facts, leads: list[tuple[Candidate, list[Candidate]]], daily: pd.DataFrame,
              days: pd.DatetimeIndex, evidence: str) -> list[Friction]:
    if not leads:
        return []
    steps = facts.steps
    everyone = daily[daily["depth"] == 0]
    downstream = downstream_rates([float(everyone[f"n{i}"].sum()) for i in range(1, len(steps) + 1)], steps)
    conditions = []
    for lead, _ in leads:
        start, end = lead.days()
        at = max(lead.index - 1, 1) if lead.metric.kind == "funnel_dropoff" else lead.index
        conditions.append(f"{segment_condition(lead.segment)} AND level >= {at} AND start_ts >= "
                          f"TIMESTAMP '{start:%Y-%m-%d}' AND start_ts < TIMESTAMP '{end:%Y-%m-%d}'")
    users = distinct_users(wh, facts.cte(), "facts", conditions)
    releases = _first_seen(wh, facts)
    last_day = days[-1]
    out = []
    for (lead, members), affected in zip(leads, users):
        out.append(_finding(lead, members, affected, downstream, last_day, releases, facts, evidence))
    return sorted(out, key=lambda f: (-f.est_lost_conversions, f.id))


def _first_seen(wh: Warehouse, facts: Facts) -> dict[str, pd.Timestamp]:
    """Release version -> the first day a session of it was seen (none without a release role)."""
    release = facts.emap.roles.release
    if release is None:
        return {}
    df = wh.query(f"WITH {facts.cte()} SELECT {release.version} AS v, min(start_ts) AS first FROM facts "
                  f"WHERE {release.version} IS NOT NULL GROUP BY 1").df
    return {str(v): pd.Timestamp(t).normalize() for v, t in zip(df["v"], df["first"])}


def _finding(lead: Candidate, members: list[Candidate], users: int, downstream: dict[str, float],
             last_day: pd.Timestamp, releases: dict[str, pd.Timestamp], facts: Facts, evidence: str) -> Friction:
    w, steps = lead.window, facts.steps
    start, end = lead.days()
    ongoing = end > last_day
    status = "ongoing" if ongoing else "recovered"
    release_dim = facts.emap.roles.release.version if facts.emap.roles.release else None
    version = lead.segment.get(release_dim) if release_dim else None
    cause = version if version in releases and abs((releases[version] - start).days) <= RELEASE_DAYS else None
    gap = abs(w.baseline - w.rate)
    nxt = steps[min(lead.index, len(steps) - 1)]
    share = lead.index == 0  # a share of the metric catalog, everyone's
    if share:  # its own unit lost, times everyone's conversion unless it counts orders itself
        defs = catalog(facts.emap)
        down = 1.0 if defs[defs[lead.metric.name].numerator].event == "order" else downstream[steps[0]]
        lost = gap * w.n * down
    elif lead.metric.kind == "funnel_dropoff":
        lost, down = gap * w.n * downstream[lead.step], downstream[lead.step]
    else:  # an error or a slow load costs the next step about the share of sessions it hits
        lost, down = gap * w.n * downstream[nxt], downstream[nxt]
    weeks = max((end - start).days / 7, 1 / 7)
    what = lead.step if share else {
        "funnel_dropoff": f"{steps[lead.index - 2] if lead.index > 1 else lead.step} -> {lead.step} conversion",
        "error_spike": f"Errors at {lead.step}", "slow_page": f"Slow loads of {lead.step}"}[lead.metric.kind]
    moved = "fell" if w.rate < w.baseline else "rose"
    when = f"since {span(start, start)} (ongoing)" if ongoing else span(start, end)
    title = (f"{what} {moved} from {pct(w.baseline)} to {pct(w.rate)} for {segment_text(lead.segment)} {when}"
             + (f", after release {cause}" if cause else ""))
    return Friction(
        id=friction_id(lead.metric.kind, lead.metric.name if share else lead.step, lead.segment),
        kind=lead.metric.kind, title=title, metric=lead.metric.name, step=None if share else lead.step,
        segment=lead.segment,
        period=f"{start:%Y-%m-%d}..{end:%Y-%m-%d}", baseline=w.baseline, observed=w.rate, affected_users=users,
        est_lost_conversions=float(lost), p_value=w.p_value,
        evidence_sql=evidence + f"\n-- rows: {segment_condition(lead.segment)}, "
                                f"day in {start:%Y-%m-%d}..{end:%Y-%m-%d}",
        weekly_exposed=w.n / weeks, gap=gap, downstream_rate=down,
        detail={"incident": {"start": f"{start:%Y-%m-%d}", "end": None if ongoing else f"{end:%Y-%m-%d}",
                             "last_day": f"{end - timedelta(days=1):%Y-%m-%d}", "status": status,
                             "days": (end - start).days},
                "release": cause, "sessions": int(w.n), "q_value": lead.q_value,
                "seen_in": [segment_text(m.segment) for m in members][:5],
                "previous_step": steps[lead.index - 2] if lead.index > 1 else None},
    )


def _chart(daily: pd.DataFrame, days: pd.DatetimeIndex, leads: list[tuple[Candidate, list[Candidate]]]):
    """Each incident's daily rate (for its segment), with its interval shaded (the four largest)."""
    lines = []
    for lead, _ in sorted(leads, key=lambda g: -g[0].lost)[:4]:
        rows = daily[daily["seg_key"] == lead.seg_key].set_index("day")[[lead.metric.x, lead.metric.n]]
        rows = rows.reindex(days, fill_value=0)
        rate = (rows[lead.metric.x] / rows[lead.metric.n].where(rows[lead.metric.n] > 0)).rename(None)
        start, end = lead.days()
        ongoing = end > days[-1]
        lines.append((f"{lead.metric.name} at {lead.step}, {segment_text(lead.segment)}", rate,
                      f"{start:%Y-%m-%d}", None if ongoing else f"{end:%Y-%m-%d}"))
    return timeline_chart(lines, "Incidents: daily rates, incident intervals shaded")


def _summary(findings: list[Friction], scope: dict) -> str:
    """Verdict (how many incidents, how many still ongoing; with a segment asked, how many hit everyone), each
    incident with its dates and users; then the details: the method and each incident's p-value."""
    if not findings:
        return f"No incident ({scope_words(scope)}): no rate left its own baseline significantly."
    n, ongoing = len(findings), sum(f.detail["incident"]["status"] == "ongoing" for f in findings)
    text = f"{n} incident{'s' if n > 1 else ''} ({scope_words(scope)}), {ongoing} still ongoing"
    if scope["segment"]:
        hit = scope["hit_everyone"]
        text += ": " + " and ".join(part for count_, part in (
            (hit, f"{hit} hit everyone"), (n - hit, f"{n - hit} hit a segment overlapping "
                                                   f"{segment_text(scope['segment'])}")) if count_)
    text += ". " + "; ".join(
        f"{i}. {f.title}" + (f", recovered on {_day(f.detail['incident']['end'])}" if f.detail["incident"]["end"]
                             else "") + f" ({count(f.affected_users)} users had a session in it)"
        for i, f in enumerate(findings[:5], 1)) + "."
    return text + ("\n\nDetails: each daily rate is scanned against its own past (Kulldorff's temporal scan "
                   "statistic, Benjamini-Hochberg q<0.05 over all series, relative change at least 10%): "
                   + "; ".join(f"{i}. {p_value(f.p_value)}" for i, f in enumerate(findings[:5], 1)) + ".")


def _day(iso: str) -> str:
    """An ISO day as a PM says it: `Aug 31`."""
    day = pd.Timestamp(iso).to_pydatetime()
    return span(day, day)


def outside_incidents(wh: Warehouse, facts: Facts, findings: list[Friction],
                      rules: SegmentRules = SegmentRules()) -> list[Friction]:
    """`findings` without the segment drop-offs and release regressions only an incident made. A segment
    (or a release) can convert worse at a step over the period because its sessions fell inside an incident
    of that step (a release shipped during an outage): it is compared with the same rest again (the other
    segments, or the previous release) without the sessions of the step's incidents (each incident's
    segment inside its window); when it is then no longer significantly (p < q) and materially worse, it
    is left out and named in the incident's `explains`."""
    steps = facts.steps
    found = [f for f in findings if f.kind == "funnel_dropoff" and "incident" in f.detail and f.step in steps]
    tested = [f for f in findings if f.kind in ("funnel_dropoff", "release_regression") and "incident" not in f.detail
              and f.segment and f.step in steps[1:] and any(i.step == f.step for i in found)]
    if not tested:
        return findings
    cols = []
    for k, f in enumerate(tested):
        at = steps.index(f.step) + 1
        outside = "NOT coalesce(" + " OR ".join(_window_condition(i) for i in found if i.step == f.step) + ", FALSE)"
        seg, rest = _compared(f, facts)
        for name, cond in (("n", f"level >= {at - 1}"), ("x", f"level >= {at}")):
            cols += [f"count(*) FILTER (WHERE {cond} AND {outside} AND {seg}) AS {name}{k}",
                     f"count(*) FILTER (WHERE {cond} AND {outside} AND {rest}) AS {name}_rest{k}"]
    row = wh.query(f"WITH {facts.cte()} SELECT {', '.join(cols)} FROM facts").df.iloc[0]
    dropped: set[int] = set()  # by identity: an incident and a segment finding may share kind, step and segment
    for k, f in enumerate(tested):
        n, x, n_rest, x_rest = (float(row[f"{c}{k}"]) for c in ("n", "x", "n_rest", "x_rest"))
        rate, rest = (x / n if n else 0.0), (x_rest / n_rest if n_rest else 0.0)
        still = (testable(x, n, x_rest, n_rest, rules.min_expected) and rest > 0
                 and float(two_proportion_p(x, n, x_rest, n_rest)) < rules.q
                 and (rest - rate) / rest >= rules.min_relative_gap and n * (rest - rate) >= rules.min_lost)
        if not still:
            dropped.add(id(f))
            for i in found:
                if i.step == f.step:
                    i.detail.setdefault("explains", []).append(f.title)
    return [f for f in findings if id(f) not in dropped]


def _compared(f: Friction, facts: Facts) -> tuple[str, str]:
    """SQL over session facts: the finding's sessions, and those it was compared with (the rest of the
    population; for a release, the previous release's since the day it appeared)."""
    seg = f"coalesce({segment_condition(f.segment)}, FALSE)"
    if f.kind != "release_regression":
        return seg, f"NOT {seg}"
    version = facts.emap.roles.release.version
    since = f"start_ts >= TIMESTAMP '{f.detail['since']}'"
    previous = segment_condition({**f.segment, version: f.detail["previous_version"]})
    return f"{seg} AND {since}", f"coalesce({previous}, FALSE) AND {since}"


def _window_condition(incident: Friction) -> str:
    """SQL over session facts: the incident's segment inside its window."""
    inc = incident.detail["incident"]
    return _in_window(incident.segment, inc["start"], inc["end"])


def _in_window(segment: Mapping[str, SegmentValue], start: object, end: object | None) -> str:
    """SQL over session facts: the sessions of `segment` that started on the days [start, end) (no end: since
    start); days as dates, timestamps or ISO text."""
    return (f"({segment_condition(segment)} AND start_ts >= TIMESTAMP '{pd.Timestamp(start):%Y-%m-%d}'"
            + (f" AND start_ts < TIMESTAMP '{pd.Timestamp(end):%Y-%m-%d}'" if end is not None else "") + ")")
