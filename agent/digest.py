"""The weekly digest: headline KPIs week over week, incidents (new, ongoing since, recovered on) over the
last weeks, new / ongoing / resolved friction, top tweaks.

Saved per ISO week in the state directory as Markdown, self-contained HTML (Plotly inlined,
no network needed) and JSON (the history later digests compare with). Writing is atomic and
a week's digest is rebuilt identically when run again.
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
from datetime import date, timedelta
from pathlib import Path
from typing import Literal

import plotly.graph_objects as go
import plotly.offline
from markdown_it import MarkdownIt
from pydantic import BaseModel, Field

from prompts import load_prompt
from tools.incidents import incidents
from tools.metrics import metric_sql
from tools.period import Period, PeriodError, data_bounds
from tools.result import Suggestion
from tools.scan import ScanReport, scan
from tools.semantic.metrics import catalog, missing_roles
from tools.sessions import Facts
from tools.trends import series_sql
from tools.warehouse import Warehouse

TOP = 5
INCIDENT_WEEKS = 8  # incidents are looked for over the digest week and the weeks before it
# Headline KPIs: metrics of the metric catalog, computed from their one definition each.
KPI_METRICS = ("wau", "orders", "revenue", "aov", "conversion_rate", "zero_result_rate")
RATES = {"conversion_rate", "zero_result_rate"}


class Kpi(BaseModel):
    name: str
    label: str = ""
    value: float | None = Field(None, description="None when the event map cannot compute it")
    previous: float | None = None
    change: float | None = Field(None, description="relative change; None when the previous value is 0")
    missing: str = Field("", description="what the event map lacks, when it cannot be computed")


class Tracked(BaseModel):
    """A problem followed across digests: its ids (lead and merged findings), title, weeks seen."""

    ids: list[str]
    title: str
    weeks: int = 1


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
    kpis: list[Kpi]
    incidents: list[Incident] = Field(default_factory=list)
    new: list[Tracked]
    ongoing: list[Tracked]
    resolved: list[Tracked]
    suggestions: list[Suggestion]
    markdown: str = ""
    html: str = ""
    files: dict[str, str] = Field(default_factory=dict)
    delivery: str | None = None


def week_period(week: str) -> Period:
    """The ISO week `YYYY-Www` as a period; anything else is a PeriodError naming it."""
    p = Period.parse(week, None)
    if p.iso_week() is None:
        raise PeriodError(f"week {week!r} not understood; use YYYY-Www, e.g. 2026-W47")
    return p


def previous_week(week: str) -> str:
    monday = week_period(week).start - timedelta(days=7)
    year, num, _ = monday.isocalendar()
    return f"{year}-W{num:02d}"


def last_full_week(wh: Warehouse) -> str:
    """The latest ISO week that ends on or before the data's last day."""
    hi = wh.scalar("SELECT max(ts) FROM events")
    if hi is None:
        raise PeriodError("the events table is empty: no week to digest")
    day = hi.date() + timedelta(days=1)
    monday = day - timedelta(days=day.weekday()) - timedelta(days=7)
    year, num, _ = monday.isocalendar()
    return f"{year}-W{num:02d}"


def kpis(wh: Warehouse, week: str) -> list[Kpi]:
    """The headline metrics this week and the week before, from the metric catalog's definitions; a metric
    the event map cannot compute is listed with what it lacks, never as zero."""
    emap = wh.event_map
    defs = catalog(emap)
    now, before = week_period(week), week_period(previous_week(week))
    start, end = data_bounds(wh)
    bounds = (f"{end:%Y-%m-%d}" if end else None, f"{start:%Y-%m-%d}" if start else None)
    missing = {k: missing_roles(k, defs, emap) for k in KPI_METRICS}
    ready = [k for k in KPI_METRICS if not missing[k]]
    cols = ", ".join(f"({metric_sql(k, emap, p, {}, *bounds)}) AS {k}_{i}" for k in ready
                     for i, p in enumerate((now, before)))
    row = wh.query(f"SELECT {cols}").df.iloc[0] if ready else {}
    out = []
    for key in KPI_METRICS:
        if missing[key]:
            out.append(Kpi(name=key, label=defs[key].name, missing=", ".join(missing[key])))
            continue
        # rounded: parallel float sums differ in the last bits between runs, the digest must not
        v, p = (round(float(row[f"{key}_{i}"] or 0), 6) for i in (0, 1))
        out.append(Kpi(name=key, label=defs[key].name, value=v, previous=p,
                       change=round((v - p) / p, 6) if p else None))
    return out


def week_incidents(wh: Warehouse, week: str, before: dict | None = None) -> tuple[list[Incident], go.Figure | None]:
    """Incidents of the digest week and the weeks before it, as of the week's end, and their chart: those
    that recovered during the week, those still running (ongoing when the previous digest `before` listed
    them, or without one when they started before the week; new otherwise)."""
    if len(wh.event_map.steps) < 2:
        return [], None
    now = week_period(week)
    since = now.start - timedelta(weeks=INCIDENT_WEEKS - 1)
    lookback = Period(f"{since:%Y-%m-%d}..{now.end:%Y-%m-%d}", since, now.end)
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


def compare(report: ScanReport, before: dict | None) -> tuple[list[Tracked], list[Tracked], list[Tracked]]:
    """New, ongoing (with weeks seen) and resolved problems versus the previous week's digest."""
    old = [Tracked(**t) for t in (before or {}).get("new", []) + (before or {}).get("ongoing", [])]
    new, ongoing, seen = [], [], set()
    for s in report.suggestions:
        ids = [s.friction_id, *s.related]
        match = next((t for t in old if set(t.ids) & set(ids)), None)
        if match is None:
            new.append(Tracked(ids=ids, title=s.title))
        else:
            seen.add(id(match))
            ongoing.append(Tracked(ids=ids, title=s.title, weeks=match.weeks + 1))
    resolved = [t for t in old if id(t) not in seen]
    return new, ongoing, resolved


def build(wh: Warehouse, week: str, history: History) -> Digest:
    """The digest of one ISO week (not saved)."""
    period = week_period(week)
    report = scan(wh, period)
    before = history.load(previous_week(week))
    new, ongoing, resolved = compare(report, before)
    found, timeline = week_incidents(wh, week, before)
    digest = Digest(week=week, period_start=f"{period.start:%Y-%m-%d}", period_end=f"{period.end:%Y-%m-%d}",
                    kpis=kpis(wh, week), incidents=found, new=new, ongoing=ongoing, resolved=resolved,
                    suggestions=report.suggestions[:TOP])
    digest.markdown = render_markdown(digest)
    digest.html = render_html(digest, wh, timeline)
    return digest


def _fmt(name: str, v: float) -> str:
    if name in RATES:
        return f"{v:.2%}"
    return f"${v:,.2f}" if name in {"revenue", "aov"} else f"{v:,.0f}"


def _items(items: list[Tracked], ongoing: bool = False) -> str:
    if not items:
        return "- none"
    return "\n".join(f"- {t.title}" + (f" (for {t.weeks} weeks)" if ongoing else "") for t in items)


def _incident_items(d: Digest) -> str:
    if not d.incidents:
        return "- none"
    label = {"new": "**New**", "ongoing": "**Ongoing**", "recovered": "**Recovered**"}
    return "\n".join(f"- {label[i.status]}" + (f" on {i.end}" if i.status == "recovered" else "") + f": {i.title}"
                      for i in d.incidents)


def render_markdown(d: Digest) -> str:
    rows = ["| metric | this week | week before | change |", "|---|---|---|---|"]
    for k in d.kpis:
        if k.missing:
            rows.append(f"| {k.label} | not tracked (no {k.missing}) | | |")
            continue
        change = "n/a" if k.change is None else f"{k.change:+.1%}"
        rows.append(f"| {k.label} | {_fmt(k.name, k.value)} | {_fmt(k.name, k.previous)} "
                    f"| {change} |")
    tips = []
    for i, s in enumerate(d.suggestions, 1):
        u = s.est_weekly_uplift
        tips.append(f"{i}. **{s.tweak}**\n   - Evidence: {s.rationale}\n   - Opportunity: {u.conversions_low:g} to "
                    f"{u.conversions_high:g} more orders a week (${u.revenue_low:,.0f} to ${u.revenue_high:,.0f}); "
                    f"RICE {s.rice_score:g}")
    return load_prompt(
        "digest", week=d.week, period_start=d.period_start, period_end=d.period_end, kpis="\n".join(rows),
        incidents_since=f"{week_period(d.week).start - timedelta(weeks=INCIDENT_WEEKS - 1):%Y-%m-%d}",
        incidents=_incident_items(d),
        new_count=len(d.new), new=_items(d.new), ongoing_count=len(d.ongoing), ongoing=_items(d.ongoing, True),
        resolved_count=len(d.resolved), resolved=_items(d.resolved),
        suggestions="\n".join(tips) or "No friction found this week.")


def _charts(d: Digest, wh: Warehouse) -> list[go.Figure]:
    period = week_period(previous_week(d.week))
    two_weeks = Period(f"{period.start:%Y-%m-%d}..{d.period_end}", period.start, week_period(d.week).end)
    charts = []
    if not missing_roles("conversion_rate", catalog(wh.event_map), wh.event_map):  # the KPI's own definition
        daily = wh.query(series_sql("conversion_rate", wh.event_map, two_weeks)).df
        trend = go.Figure(go.Scatter(x=daily["day"], y=daily["num"] / daily["den"].where(daily["den"] > 0),
                                     mode="lines+markers"))
        trend.update_layout(title="Conversion rate per day (this week and the week before)", height=320)
        charts.append(trend)
    bars = go.Figure(go.Bar(x=[s.est_weekly_uplift.conversions_high for s in d.suggestions],
                            y=[f"#{i}" for i in range(1, len(d.suggestions) + 1)], orientation="h"))
    bars.update_layout(title="Optimistic weekly orders recovered per suggestion", height=280)
    return [*charts, bars]


def render_html(d: Digest, wh: Warehouse, timeline: go.Figure | None = None) -> str:
    """Self-contained HTML: no links, no images, no remote scripts; Plotly's library is inlined."""
    md = MarkdownIt("commonmark", {"html": False}).enable("table").disable(["image", "link", "autolink"])
    figures = [*_charts(d, wh), *([timeline] if timeline is not None else [])]
    charts = "".join(f.to_html(full_html=False, include_plotlyjs=False, config={"displaylogo": False},
                               div_id=f"chart-{i}") for i, f in enumerate(figures))
    return (
        "<!DOCTYPE html><html><head><meta charset='utf-8'>"
        f"<title>{html.escape(d.week)} digest</title>"
        "<style>body{font-family:sans-serif;max-width:900px;margin:2em auto}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:4px 8px}</style>"
        f"<script>{plotly.offline.get_plotlyjs()}</script></head><body>"
        f"{md.render(d.markdown)}<h2>Charts</h2>{charts}</body></html>"
    )


class WebhookError(ValueError):
    """A webhook URL that is not http(s)."""


def check_webhook(url: str) -> str:
    """`url` if it is an http(s) URL with a host; else a WebhookError naming it."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise WebhookError(f"webhook {url[:200]!r}: use an http:// or https:// URL")
    return url


def slack_text(text: str) -> str:
    """Text as Slack shows it, never as a mention, link or channel ping (`&`, `<`, `>` escaped)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A webhook answers itself: a redirect (possibly to another scheme) is a failure, never followed."""

    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


def deliver(d: Digest, url: str, attempts: int = 3, timeout_s: float = 10.0) -> str:
    """POST a Slack-compatible message to the http(s) `url`, retrying with backoff; returns what happened in
    one line."""
    check_webhook(url)
    lines = [f"*Weekly product digest {d.week}*"]
    lines += [f"{i}. {slack_text(s.tweak)}" for i, s in enumerate(d.suggestions, 1)]
    body = json.dumps({"text": "\n".join(lines)}).encode()
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
               webhook: str | None = None) -> Digest:
    """Build, save (history and optional copy in `out_dir`) and optionally deliver one week's digest; a bad week
    (PeriodError) or webhook (WebhookError) is refused before anything is built."""
    if webhook:
        check_webhook(webhook)
    week = week_period(week).iso_week() if week else last_full_week(wh)
    history = History(Path(state_dir) / "digests")
    digest = build(wh, week, history)
    digest.files = history.save(digest)
    if out_dir:
        digest.files |= {f"out_{k}": v for k, v in History(out_dir).save(digest).items()}
    if webhook:
        digest.delivery = deliver(digest, webhook)
    return digest

