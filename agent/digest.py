"""The weekly digest: a three-line summary, headline KPIs week over week (arrows, 8-week sparklines),
incidents (new, ongoing since, recovered on) over the last weeks, new / ongoing / resolved friction (and
friction that only stopped because its experiment ended or its data is missing), top tweaks.

Saved per ISO week in the state directory as Markdown, self-contained HTML (static SVG charts, no script,
no network needed) and JSON (the history later digests compare with). Writing is atomic and a week's
digest is rebuilt identically when run again. A week without events is refused (NoDataError); a week
whose data stops early is marked partial and compared with the same days of the weeks before.
"""

from __future__ import annotations

import html
import http.client
import json
import os
import time
import urllib.error
import urllib.parse
import urllib.request
from bisect import bisect_left
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import pandas as pd
from markdown_it import MarkdownIt
from pydantic import BaseModel, Field

from prompts import load_prompt
from tools.facts_store import keep_in
from tools.format import change, count, money, pct
from tools.incidents import incidents
from tools.metrics import metric_sql
from tools.period import Period, PeriodError, data_bounds
from tools.result import Suggestion
from tools.scan import ScanReport, complete_part
from tools.scan_cache import cached_scan
from tools.semantic.metrics import catalog, missing_roles
from tools.sessions import Facts
from tools.trends import series_sql
from tools.warehouse import Warehouse

if TYPE_CHECKING:
    import plotly.graph_objects as go

TOP = 5
INCIDENT_WEEKS = 8  # incidents are looked for over the digest week and the weeks before it
SPARK_WEEKS = 8  # weeks of each KPI's sparkline, the digest week last
# Headline KPIs: metrics of the metric catalog, computed from their one definition each.
KPI_METRICS = ("wau", "orders", "revenue", "aov", "conversion_rate", "zero_result_rate")
SUMMARY_KPIS = ("orders", "revenue", "conversion_rate")
RATES = {"conversion_rate", "zero_result_rate"}
BLOCKS = "▁▂▃▄▅▆▇█"
GONE = ("resolved", "ended", "unconfirmed")  # why a problem of last week's digest is not found this week
RESOLVED_SHARE = 0.5  # a problem not found is resolved only on at least half of last week's events of its segment


class NoDataError(PeriodError):
    """A digest week without any event: a stalled pipeline, never a week where everything got fixed."""


class Kpi(BaseModel):
    name: str
    label: str = ""
    value: float | None = Field(None, description="None when the event map cannot compute it or the week has no data")
    previous: float | None = None
    change: float | None = Field(None, description="relative change; None when either value is missing or 0")
    missing: str = Field("", description="what the event map lacks, when it cannot be computed")
    trend: list[float | None] = Field(default_factory=list, description=f"the last {SPARK_WEEKS} weeks, oldest first")


class Tracked(BaseModel):
    """A problem followed across digests: its ids (lead and merged findings), title, weeks seen, and the lead
    finding's segment (to tell an ended experiment or a segment without data from a fix)."""

    ids: list[str]
    title: str
    weeks: int = 1
    segment: dict[str, str] = Field(default_factory=dict)


class Incident(BaseModel):
    """An incident as of the digest week: new (not in last week's digest), ongoing (since `start`) or recovered
    (on `end`)."""

    id: str
    title: str
    status: Literal["new", "ongoing", "recovered"]
    start: str
    end: str | None = Field(None, description="the day it recovered; None while it runs")


class Digest(BaseModel):
    week: str
    period_start: str
    period_end: str
    partial: str | None = Field(None, description="why the week's data is partial ('data up to 2026-11-18')")
    kpis: list[Kpi]
    incidents: list[Incident] = Field(default_factory=list)
    new: list[Tracked]
    ongoing: list[Tracked]
    resolved: list[Tracked]
    ended: list[Tracked] = Field(default_factory=list, description="experiment findings whose experiment ended")
    unconfirmed: list[Tracked] = Field(default_factory=list, description="not found, but their data is missing")
    suggestions: list[Suggestion]
    markdown: str = ""
    html: str = ""
    files: dict[str, str] = Field(default_factory=dict)
    delivery: str | None = None


def iso_week(day: date) -> str:
    """The ISO week `YYYY-Www` holding `day`."""
    year, num, _ = day.isocalendar()
    return f"{year}-W{num:02d}"


def week_period(week: str) -> Period:
    """The ISO week `YYYY-Www` as a period; anything else is a PeriodError naming it."""
    p = Period.parse(week, None)
    if p.iso_week() is None:
        raise PeriodError(f"week {week!r} not understood; use YYYY-Www, e.g. 2026-W47")
    return p


def previous_week(week: str) -> str:
    return iso_week(week_period(week).start.date() - timedelta(days=7))


def last_full_week(wh: Warehouse) -> str:
    """The latest ISO week that ends on or before the data's last day."""
    hi = wh.scalar("SELECT max(ts) FROM events")
    if hi is None:
        raise PeriodError("the events table is empty: no week to digest")
    return iso_week(hi.date() - timedelta(days=6))


def last_calendar_week(today: date | None = None) -> str:
    """The ISO week before `today`'s (default: today, UTC): what a Monday schedule digests, whatever the data
    holds, so that a stalled pipeline is an error rather than last month's digest sent again."""
    return iso_week((today or datetime.now(UTC).date()) - timedelta(days=7))


def coverage(wh: Warehouse, week: str) -> tuple[Period, str | None]:
    """The part of `week` with complete data and, when it is partial, why ('data up to 2026-11-18': the data
    ends, or its last days hold under half the usual volume); a week without events is a NoDataError."""
    p = week_period(week)
    lo, hi = data_bounds(wh)
    if lo is None or not wh.scalar(f"SELECT count(*) FROM events WHERE {p.where()}"):
        held = f"the data runs from {lo:%Y-%m-%d} to {hi - timedelta(days=1):%Y-%m-%d}" if lo else "no events at all"
        raise NoDataError(f"no events in week {week} ({p.start:%Y-%m-%d} to {p.end:%Y-%m-%d}): {held}")
    end = min(complete_part(wh, p)[0].end, hi)
    notes = [f"data from {lo:%Y-%m-%d}"] if lo.date() > p.start.date() else []
    notes += [f"data up to {end - timedelta(days=1):%Y-%m-%d}"] if end < p.end else []
    return Period(p.label, p.start, end), "; ".join(notes) or None


def _value(x: object) -> float | None:
    """A metric's value, rounded (parallel float sums differ in the last bits between runs); None for NULL/NaN."""
    return None if x is None or x != x else round(float(x), 6)


def kpis(wh: Warehouse, week: str, until: datetime | None = None) -> list[Kpi]:
    """The headline metrics of the week (up to `until` when its data stops early) and the same days of the
    weeks before, from the metric catalog's definitions. A metric the event map cannot compute is listed with
    what it lacks, never as zero; a week without events has no value, never zero."""
    emap, defs, now = wh.event_map, catalog(wh.event_map), week_period(week)
    shifts = [timedelta(weeks=i) for i in range(SPARK_WEEKS - 1, -1, -1)]
    weeks = [Period("week", now.start - s, (until or now.end) - s) for s in shifts]
    start, end = data_bounds(wh)
    bounds = (f"{end:%Y-%m-%d}" if end else None, f"{start:%Y-%m-%d}" if start else None)
    missing = {k: missing_roles(k, defs, emap) for k in KPI_METRICS}
    cols = [f"(SELECT count(*) FROM events WHERE {p.where()}) AS events_{i}" for i, p in enumerate(weeks)]
    cols += [f"({metric_sql(k, emap, p, {}, *bounds)}) AS {k}_{i}" for k in KPI_METRICS if not missing[k]
             for i, p in enumerate(weeks)]
    row = wh.query(f"SELECT {', '.join(cols)}").df.iloc[0]
    has_data = [bool(row[f"events_{i}"]) for i in range(SPARK_WEEKS)]
    out = []
    for key in KPI_METRICS:
        if missing[key]:
            out.append(Kpi(name=key, label=defs[key].name, missing=", ".join(missing[key])))
            continue
        trend = [_value(row[f"{key}_{i}"] or 0) if has_data[i] else None for i in range(SPARK_WEEKS)]
        v, p = trend[-1], trend[-2]
        out.append(Kpi(name=key, label=defs[key].name, value=v, previous=p, trend=trend,
                       change=round((v - p) / p, 6) if v is not None and p else None))
    return out


def week_incidents(wh: Warehouse, week: str, before: dict | None = None,
                   until: datetime | None = None) -> tuple[list[Incident], go.Figure | None]:
    """Incidents of the digest week and the weeks before it, as of the week's end (or `until`, where its
    complete data stops), and their chart: those that recovered during the week, those still running (ongoing
    when the previous digest `before` listed them, or without one when they started before the week; new
    otherwise)."""
    if len(wh.event_map.steps) < 2:
        return [], None
    now = week_period(week)
    since, end = now.start - timedelta(weeks=INCIDENT_WEEKS - 1), until or now.end
    lookback = Period(f"{since:%Y-%m-%d}..{end:%Y-%m-%d}", since, end)
    result = incidents(wh, Facts(lookback, wh.event_map).materialize(wh))
    week_start = now.start.date()
    listed = {i["id"] for i in (before or {}).get("incidents", []) if i["status"] != "recovered"}
    out = []
    for f in result.findings:
        inc = f.detail["incident"]
        start, end = date.fromisoformat(inc["start"]), inc["end"] and date.fromisoformat(inc["end"])
        if end and end < week_start:
            continue  # recovered before this week
        seen = f.id in listed if before is not None else start < week_start
        status = "recovered" if end else "ongoing" if seen else "new"
        out.append(Incident(id=f.id, title=f.title, status=status, start=inc["start"], end=inc["end"]))
    return out, result.chart if out else None


class History:
    """Digests saved per ISO week in one folder (`<state_dir>/digests`)."""

    def __init__(self, folder: str | Path) -> None:
        self.dir = Path(folder)

    def load(self, week: str) -> dict | None:
        path = self.dir / f"{week}.json"
        return json.loads(path.read_text()) if path.exists() else None

    def save(self, digest: Digest) -> dict[str, str]:
        """Write Markdown, HTML and JSON atomically (temp file, then rename); returns the paths."""
        self.dir.mkdir(parents=True, exist_ok=True)
        files = {}
        payload = digest.model_dump(exclude={"markdown", "html", "files", "delivery"}, mode="json")
        for ext, text in (("md", digest.markdown), ("html", digest.html), ("json", json.dumps(payload, indent=2))):
            path = self.dir / f"{digest.week}.{ext}"
            tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
            try:
                tmp.write_text(text, encoding="utf-8")
                os.replace(tmp, path)
            finally:
                tmp.unlink(missing_ok=True)
            files[ext] = str(path)
        return files


def compare(report: ScanReport, before: dict | None,
            gone: Callable[[Tracked], str] = lambda _: "resolved") -> dict[str, list[Tracked]]:
    """New and ongoing (with weeks seen) problems versus the previous week's digest, and those of last week not
    found again, under the status `gone` gives them (resolved, ended or unconfirmed)."""
    old = [Tracked(**t) for t in (before or {}).get("new", []) + (before or {}).get("ongoing", [])]
    segments = {f.id: f.segment for f in report.findings}
    out: dict[str, list[Tracked]] = {k: [] for k in ("new", "ongoing", *GONE)}
    seen = set()
    for s in report.suggestions:
        ids = [s.friction_id, *s.related]
        match = next((t for t in old if set(t.ids) & set(ids)), None)
        seen.add(id(match))
        out["ongoing" if match else "new"].append(Tracked(ids=ids, title=s.title, weeks=match.weeks + 1 if match else 1,
                                                          segment=segments.get(s.friction_id, {})))
    for t in old:
        if id(t) not in seen:
            out[gone(t)].append(t)
    return out


def why_gone(wh: Warehouse, week: str, complete: Period) -> Callable[[Tracked], str]:
    """Why a problem of last week is not found this week: its experiment ended (by the week's end); its data is
    missing (unconfirmed: the week's complete part holds under half of last week's events of its segment, or of
    everyone's when its segment is no dimension); else resolved."""
    now = week_period(week)
    before = Period("week before", now.start - timedelta(weeks=1), now.start)
    ended = set(wh.query("SELECT experiment_id FROM experiments WHERE ended_at <= "
                         f"TIMESTAMP '{now.end:%Y-%m-%d %H:%M:%S}'").df["experiment_id"])
    emap = wh.event_map

    def status(t: Tracked) -> str:
        if t.ids[0].startswith("experiment_") and t.segment.get("experiment_id") in ended:
            return "ended"
        where = emap.segment_where(t.segment) if set(t.segment) <= set(emap.dimensions) else "TRUE"
        held = wh.query(f"SELECT count(*) FILTER (WHERE {complete.where()}) AS now, "
                        f"count(*) FILTER (WHERE {before.where()}) AS before FROM events WHERE {where}").df.iloc[0]
        return "unconfirmed" if held["now"] < RESOLVED_SHARE * held["before"] else "resolved"
    return status


def measurable(s: Suggestion) -> bool:
    """Whether fixing it has an estimated uplift (a '0 to 0 more orders' suggestion is never ranked first)."""
    return s.est_weekly_uplift.conversions_high > 0


def build(wh: Warehouse, week: str, history: History) -> Digest:
    """The digest of one ISO week (not saved); a week without events is a NoDataError."""
    period = week_period(week)
    complete, partial = coverage(wh, week)
    until = complete.end if partial else None
    report = cached_scan(wh, complete)
    before = history.load(previous_week(week))
    changes = compare(report, before, why_gone(wh, week, complete))
    found, timeline = week_incidents(wh, week, before, until)
    ranked = sorted(report.suggestions, key=lambda s: not measurable(s))  # stable: RICE order otherwise
    digest = Digest(week=week, period_start=f"{period.start:%Y-%m-%d}", period_end=f"{period.end:%Y-%m-%d}",
                    partial=partial, kpis=kpis(wh, week, until), incidents=found, suggestions=ranked[:TOP], **changes)
    digest.markdown = render_markdown(digest)
    digest.html = render_html(digest, wh, timeline)
    return digest


def _fmt(name: str, v: float | None) -> str:
    if v is None:
        return "n/a"
    if name in RATES:
        return pct(v)
    return money(v) if name in {"revenue", "aov"} else count(v)


def _change(k: Kpi) -> str:
    """The change with its direction: `▲ +23%`, `▼ -6.7%`, `= 0%`; n/a when a week lacks the value."""
    if k.change is None:
        return "n/a"
    return f"{'▲' if k.change > 0 else '▼' if k.change < 0 else '='} {change(k.change)}"


def sparkline(values: list[float | None]) -> str:
    """Unicode blocks scaled from the lowest to the highest value; `·` for a week without data."""
    known = [v for v in values if v is not None]
    lo, hi = min(known, default=0), max(known, default=0)
    step = (hi - lo) / (len(BLOCKS) - 1) or 1
    return "".join("·" if v is None else BLOCKS[round((v - lo) / step)] if hi > lo else BLOCKS[3] for v in values)


def _opportunity(s: Suggestion) -> str:
    u = s.est_weekly_uplift
    if not measurable(s):
        return "no measurable uplift"
    return (f"{count(round(u.conversions_low, 1))} to {count(round(u.conversions_high, 1))} more orders a week "
            f"({money(u.revenue_low)} to {money(u.revenue_high)})")


def summary(d: Digest) -> list[tuple[str, str]]:
    """Three lines for the top: what changed (KPIs), what is new, what to do first."""
    known = [k for k in d.kpis if k.value is not None]
    shown = [k for k in known if k.name in SUMMARY_KPIS] or known
    changed = ", ".join(f"{k.label} {_fmt(k.name, k.value)} ({_change(k)})" for k in shown)
    fresh = [f"incident {i.title}" for i in d.incidents if i.status == "new"] + [f"friction {t.title}" for t in d.new]
    new = f"{len(fresh)}: " + "; ".join(fresh[:2]) + (f"; and {len(fresh) - 2} more" if len(fresh) > 2 else "")
    first = d.suggestions[0] if d.suggestions and measurable(d.suggestions[0]) else None
    return [("What changed", changed or "no headline metric could be computed"),
            ("What is new", new if fresh else "nothing since last week"),
            ("Do first", f"{first.tweak} — {_opportunity(first)}" if first else "no tweak with a measurable uplift")]


def _items(items: list[Tracked], ongoing: bool = False) -> str:
    if not items:
        return "- none"
    return "\n".join(f"- {t.title}" + (f" (for {t.weeks} weeks)" if ongoing else "") for t in items)


def _gone_items(d: Digest) -> str:
    """Resolved problems, then (when there are) ended experiments and problems whose data is missing."""
    text = _items(d.resolved)
    for label, items in (("Experiments ended (not resolved: they stopped running)", d.ended),
                         ("Not found, unconfirmed (their data is missing this week)", d.unconfirmed)):
        text += f"\n\n**{label} ({len(items)})**\n\n{_items(items)}" if items else ""
    return text


def _incident_items(d: Digest) -> str:
    if not d.incidents:
        return "- none"
    label = {"new": "**New**", "ongoing": "**Ongoing**", "recovered": "**Recovered**"}
    return "\n".join(f"- {label[i.status]}" + (f" on {i.end}" if i.status == "recovered" else "") + f": {i.title}"
                      for i in d.incidents)


def _tip(s: Suggestion) -> str:
    return (f"**{s.tweak}**\n   - Evidence: {s.rationale}\n   - Opportunity: {_opportunity(s)}; "
            f"RICE {s.rice_score:g}")


def _tips(d: Digest) -> str:
    """Suggestions with an uplift, ranked; those without one after them, unranked."""
    ranked = [f"{i}. {_tip(s)}" for i, s in enumerate(filter(measurable, d.suggestions), 1)]
    rest = [f"- {_tip(s)}" for s in d.suggestions if not measurable(s)]
    rest = ["Without a measurable uplift (not ranked):\n\n" + "\n".join(rest)] if rest else []
    return "\n\n".join(["\n".join(ranked), *rest]).strip() or "No friction found this week."


def render_markdown(d: Digest) -> str:
    rows = ["| metric | this week | week before | change | last 8 weeks |", "|---|---|---|---|---|"]
    for k in d.kpis:
        if k.missing:
            rows.append(f"| {k.label} | not tracked (no {k.missing}) | | | |")
            continue
        rows.append(f"| {k.label} | {_fmt(k.name, k.value)} | {_fmt(k.name, k.previous)} | {_change(k)} "
                    f"| {sparkline(k.trend)} |")
    top = [f"# Weekly product digest: {d.week}"]
    if d.partial:
        top.append(f"> **Partial week: {d.partial}.** Headline numbers compare the same days of each week; a "
                   "problem not found on too little data is unconfirmed, never resolved.")
    top.append("\n".join(f"- **{label}:** {text}" for label, text in summary(d)))
    body = load_prompt(
        "digest", week=d.week, period_start=d.period_start, period_end=d.period_end, kpis="\n".join(rows),
        incidents_since=f"{week_period(d.week).start - timedelta(weeks=INCIDENT_WEEKS - 1):%Y-%m-%d}",
        incidents=_incident_items(d),
        new_count=len(d.new), new=_items(d.new), ongoing_count=len(d.ongoing), ongoing=_items(d.ongoing, True),
        resolved_count=len(d.resolved), resolved=_gone_items(d), suggestions=_tips(d))
    return "\n\n".join([*top, body])


# Static SVG charts: a few KB each, drawn by fixed code from numbers; every text in them is escaped.
WIDTH, HEIGHT, LEFT, PAD = 640, 200, 56, 16
COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd")
Line = tuple[str, list[str], list[float | None]]  # label, days (YYYY-MM-DD), values


def _text(x: float, y: float, text: str, anchor: str = "start", color: str = "#444") -> str:
    return (f'<text x="{x:.1f}" y="{y:.1f}" font-size="11" fill="{color}" text-anchor="{anchor}">'
            f"{html.escape(text)}</text>")


def line_svg(lines: list[Line], shades: list[tuple[str, str]], fmt: Callable[[float], str]) -> str:
    """Daily lines on one axis from 0, with intervals (first day, last day) shaded and a legend below."""
    days = sorted({day for _, xs, _ in lines for day in xs})
    top = max((v for _, _, ys in lines for v in ys if v is not None), default=0) or 1
    span = max(len(days) - 1, 1)

    def x(day: str) -> float:
        return LEFT + (WIDTH - LEFT - PAD) * min(bisect_left(days, day), span) / span

    def y(v: float) -> float:
        return PAD + (HEIGHT - 2 * PAD) * (1 - v / top)
    parts = [f'<rect x="{x(a):.1f}" y="{PAD}" width="{max(x(b) - x(a), 2):.1f}" height="{HEIGHT - 2 * PAD}" '
             'fill="#d62728" opacity="0.12"/>' for a, b in shades]
    for n, (label, xs, ys) in enumerate(lines):
        path = "".join(("M" if i == 0 or ys[i - 1] is None else "L") + f"{x(d):.1f} {y(v):.1f} "
                       for i, (d, v) in enumerate(zip(xs, ys, strict=True)) if v is not None)
        color = COLORS[n % len(COLORS)]
        parts.append(f'<path d="{path.strip()}" fill="none" stroke="{color}" stroke-width="2"/>')
        parts.append(_text(LEFT, HEIGHT + 14 * (n + 1), f"— {label}", color=color))
    if days:
        parts += [_text(LEFT - 4, PAD + 4, fmt(top), "end"), _text(LEFT - 4, HEIGHT - PAD, fmt(0), "end"),
                  _text(LEFT, HEIGHT - 2, days[0]), _text(WIDTH - PAD, HEIGHT - 2, days[-1], "end")]
    return _svg(parts, HEIGHT + 14 * len(lines) + 6)


def bar_svg(labels: list[str], values: list[float]) -> str:
    """Horizontal bars, each with its label and value."""
    top, row = max(values, default=0) or 1, 24
    parts = []
    for i, (label, v) in enumerate(zip(labels, values, strict=True)):
        w = (WIDTH - LEFT - 2 * PAD - 40) * v / top
        parts += [_text(LEFT - 6, PAD + i * row + 14, label, "end"),
                  f'<rect x="{LEFT}" y="{PAD + i * row}" width="{w:.1f}" height="{row - 6}" fill="{COLORS[0]}"/>',
                  _text(LEFT + w + 4, PAD + i * row + 14, f"{v:g}")]
    return _svg(parts or [_text(LEFT, PAD + 14, "no suggestion with a measurable uplift")],
                2 * PAD + max(len(values), 1) * row)


def _svg(parts: list[str], height: int) -> str:
    return f'<svg viewBox="0 0 {WIDTH} {height}" width="100%" role="img">{"".join(parts)}</svg>'


def _day(x: object) -> str:
    return f"{pd.Timestamp(x):%Y-%m-%d}"


def _timeline(fig: go.Figure) -> tuple[str, str]:
    """The incident chart (daily rates, incident intervals shaded) as a static SVG."""
    lines = [(t.name, [_day(x) for x in t.x], [_value(v) for v in t.y]) for t in fig.data]
    shades = [(_day(s.x0), _day(s.x1)) for s in fig.layout.shapes]
    return fig.layout.title.text or "Incidents", line_svg(lines, shades, lambda v: f"{v:.0%}")


def _charts(d: Digest, wh: Warehouse, timeline: go.Figure | None) -> list[tuple[str, str]]:
    """(title, SVG) of the daily conversion rate (this week and the week before), the weekly orders each
    suggestion may recover, and the incident timeline."""
    charts = []
    if not missing_roles("conversion_rate", catalog(wh.event_map), wh.event_map):  # the KPI's own definition
        start, end = week_period(previous_week(d.week)).start, week_period(d.week).end
        daily = wh.query(series_sql("conversion_rate", wh.event_map, Period("two weeks", start, end))).df
        rates = [_value(n / den) if den else None for n, den in zip(daily["num"], daily["den"], strict=True)]
        line = ("conversion rate", [_day(x) for x in daily["day"]], rates)
        charts.append(("Conversion rate per day (this week and the week before)",
                       line_svg([line], [], lambda v: f"{v:.1%}")))
    ranked = [s for s in d.suggestions if measurable(s)]
    charts.append(("Optimistic weekly orders recovered per suggestion",
                   bar_svg([f"#{i}" for i in range(1, len(ranked) + 1)],
                           [s.est_weekly_uplift.conversions_high for s in ranked])))
    return charts + ([_timeline(timeline)] if timeline is not None else [])


STYLE = ("body{font-family:system-ui,sans-serif;max-width:900px;margin:1em auto;padding:0 1em;line-height:1.45}"
         "table{border-collapse:collapse;display:block;overflow-x:auto}td,th{border:1px solid #ccc;padding:4px 8px}"
         "blockquote{margin:0;padding:.5em 1em;background:#fff4e5;border-left:4px solid #f0a030}"
         "figure{margin:1em 0}figcaption{font-weight:bold}svg{max-width:100%;height:auto}")


def render_html(d: Digest, wh: Warehouse, timeline: go.Figure | None = None) -> str:
    """Self-contained HTML for any screen: no links, no images, no scripts; charts are inline SVG."""
    md = MarkdownIt("commonmark", {"html": False}).enable("table").disable(["image", "link", "autolink"])
    charts = "".join(f'<figure id="chart-{i}"><figcaption>{html.escape(title)}</figcaption>{svg}</figure>'
                     for i, (title, svg) in enumerate(_charts(d, wh, timeline)))
    return (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>{html.escape(d.week)} digest</title><style>{STYLE}</style></head><body>"
        f"{md.render(d.markdown)}<h2>Charts</h2>{charts}</body></html>"
    )


class WebhookError(ValueError):
    """A webhook (or digest link) URL that is not http(s)."""


def check_webhook(url: str, what: str = "webhook") -> str:
    """`url` if it is an http(s) URL with a host; else a WebhookError naming it."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise WebhookError(f"{what} {url[:200]!r}: use an http:// or https:// URL")
    return url


def slack_text(text: str) -> str:
    """Text as Slack shows it, never as a mention, link or channel ping (`&`, `<`, `>` escaped)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def digest_link(base_url: str | None, d: Digest) -> str | None:
    """The URL of the digest's HTML file under `base_url` (None without one)."""
    if not base_url:
        return None
    return f"{base_url.rstrip('/')}/{Path(d.files.get('html', f'{d.week}.html')).name}"


def _slack_url(url: str) -> str:
    """`url` as one Slack link target: `|`, `<`, `>`, quotes and spaces percent-encoded, `&` escaped."""
    return slack_text(urllib.parse.quote(url, safe=":/?#[]@!$&'()*+,;=%~"))


def _section(text: str) -> dict:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text[:3000]}}  # Slack's limit per section


def _kpi_fields(d: Digest) -> list[dict]:
    """One Block Kit field per KPI (at most 10, Slack's limit): label, value and change."""
    return [{"type": "mrkdwn", "text": f"*{slack_text(k.label)}*\n"
             + ("not tracked" if k.missing else f"{_fmt(k.name, k.value)} {_change(k)}")} for k in d.kpis[:10]]


def slack_message(d: Digest, link: str | None = None) -> dict:
    """A Block Kit message: summary, KPIs, incident counts, the top three tweaks and a link to the full digest,
    with a plain `text` fallback for notifications. Every text from the data is escaped."""
    count = {s: sum(i.status == s for i in d.incidents) for s in ("new", "ongoing", "recovered")}
    incidents = f"*Incidents:* {count['new']} new, {count['ongoing']} ongoing, {count['recovered']} recovered"
    partial = [f"*Partial week: {slack_text(d.partial)}*"] if d.partial else []
    lines = [f"*{label}:* {slack_text(text)}" for label, text in summary(d)]
    tweaks = [f"{i}. {slack_text(s.tweak)}" for i, s in enumerate(d.suggestions[:3], 1)]
    blocks = [{"type": "header", "text": {"type": "plain_text", "text": f"Weekly product digest {d.week}"}},
              *map(_section, partial), _section("\n".join(lines))]
    blocks += [{"type": "section", "fields": _kpi_fields(d)}] if d.kpis else []
    blocks += [_section(incidents), *(_section(f"{t} ({_opportunity(s)})") for t, s in zip(tweaks, d.suggestions))]
    blocks += [_section(f"<{_slack_url(link)}|Open the full digest>")] if link else []
    text = [f"*Weekly product digest {d.week}*", *partial, *lines, incidents,
            *([f"Full digest: {_slack_url(link)}"] if link else []), *tweaks]
    return {"text": "\n".join(text), "blocks": blocks}


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A webhook answers itself: a redirect (possibly to another scheme) is a failure, never followed."""

    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


def deliver(d: Digest, url: str, link: str | None = None, attempts: int = 3, timeout_s: float = 10.0) -> str:
    """POST the Block Kit message (with `link` to the full digest) to the http(s) `url`, retrying with backoff;
    returns what happened in one line."""
    check_webhook(url)
    body = json.dumps(slack_message(d, link)).encode()
    opener = urllib.request.build_opener(_NoRedirect)
    error = ""
    for attempt in range(1, attempts + 1):
        try:
            req = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
            with opener.open(req, timeout=timeout_s) as resp:
                if 200 <= resp.status < 300:
                    return f"delivered to webhook (attempt {attempt})"
                error = f"HTTP {resp.status}"
        except urllib.error.HTTPError as exc:
            error = f"HTTP {exc.code}"
        except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as exc:
            error = " ".join(str(getattr(exc, "reason", exc) or type(exc).__name__).split())[:200]
        if attempt < attempts:
            time.sleep(0.5 * 2 ** (attempt - 1))
    return f"webhook delivery failed after {attempts} attempts: {error}"


def run_digest(wh: Warehouse, state_dir: str | Path, week: str | None = None, out_dir: str | Path | None = None,
               webhook: str | None = None, base_url: str | None = None) -> Digest:
    """Build, save (history and optional copy in `out_dir`) and optionally deliver one week's digest, linking to
    its HTML file under `base_url`; a bad or empty week (PeriodError, NoDataError) or a bad webhook or base URL
    (WebhookError) is refused before anything is built."""
    if webhook:
        check_webhook(webhook)
    if base_url:
        check_webhook(base_url, "digest base URL")
    week = week_period(week).iso_week() if week else last_full_week(wh)
    keep_in(wh, state_dir)  # the digest's scan and facts are shared with `insight scan`, ask and the next digest
    history = History(Path(state_dir) / "digests")
    digest = build(wh, week, history)
    digest.files = history.save(digest)
    if out_dir:
        digest.files |= {f"out_{k}": v for k, v in History(out_dir).save(digest).items()}
    if webhook:
        digest.delivery = deliver(digest, webhook, digest_link(base_url, digest))
    return digest
