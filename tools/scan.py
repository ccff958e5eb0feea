"""The friction scan: every detector over one period, then prioritized suggestions."""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from pydantic import BaseModel, Field

from tools.cart import abandoning_segments
from tools.charts import without_charts
from tools.dropoffs import dropoffs
from tools.errors_speed import errors_and_speed
from tools.experiments import experiments
from tools.format import pct, span
from tools.funnel import FunnelSpec
from tools.incidents import incidents, outside_incidents
from tools.period import Period, data_bounds, incomplete_tail, resolve_period
from tools.prioritize import prioritize
from tools.result import Friction, Suggestion, ToolResult
from tools.retention import retention
from tools.search import search
from tools.semantic.eventmap import EventMap
from tools.sessions import Facts
from tools.tracking import check_tracking
from tools.trends import release_regressions
from tools.warehouse import Warehouse

Detector = Callable[[Warehouse, Facts], ToolResult]
# Detectors run two at a time on DuckDB: much of each one's time is single-threaded (Python, pandas, some
# operators), so two keep both cores of a small machine busy.
SCAN_WORKERS = 2


def _cart(wh: Warehouse, facts: Facts) -> ToolResult:
    findings, sql = abandoning_segments(wh, facts.period, facts=facts.materialize(wh))
    return ToolResult("Cart abandonment", f"{len(findings)} segment(s) abandon carts more", sql=[sql],
                      findings=findings)


# The one registry of detectors: name -> (warehouse, session facts of the period) -> ToolResult, and the
# analysis of EventMap.unavailable() that disables it when the map lacks what it needs.
# Segment drill-downs run per session: context dimensions (app_version) change over a user's life.
# A detector that reads the session facts materializes them: the first builds them, the others wait for it.
# The order is the order of work: the first detector builds the facts while the next ones (which do not
# read them) keep the other worker busy.
DETECTORS: dict[str, Detector] = {
    "dropoffs": lambda wh, f: dropoffs(wh, FunnelSpec(f.steps, entity="sessions", period=f.period),
                                       facts=f.materialize(wh)),
    "search": lambda wh, f: search(wh, f.period),
    "retention": lambda wh, f: retention(wh, f.period, matrix=False),
    "tracking": lambda wh, f: check_tracking(wh, period=f.period),
    "experiments": lambda wh, f: experiments(wh, f.period),
    "cart_abandonment": _cart,
    "errors_and_speed": lambda wh, f: errors_and_speed(wh, f.period, facts=f.materialize(wh)),
    "release_regressions": lambda wh, f: release_regressions(wh, f.period, facts=f.materialize(wh)),
    "incidents": lambda wh, f: incidents(wh, f.materialize(wh)),
}
NEEDS = {"dropoffs": ("funnel and drop-offs",), "incidents": ("funnel and drop-offs",),
         "cart_abandonment": ("cart abandonment",),
         "search": ("search quality",), "errors_and_speed": ("errors", "page speed"),
         "release_regressions": ("release regressions",)}


def disabled_detectors(emap: EventMap) -> dict[str, str]:
    """Detectors the event map cannot run -> one plain line saying why (all of their needs are missing)."""
    missing = emap.unavailable()
    out = {}
    for name, needs in NEEDS.items():
        if all(n in missing for n in needs):
            out[name] = f"{' and '.join(needs)}: the event map has no " + " and no ".join(
                missing[n] for n in needs) + " (`insight map` shows the map)"
    return out


class ScanReport(BaseModel):
    """What a scan found: findings, ranked suggestions (product friction first, then data quality),
    per-detector timing, detectors the event map disabled, and failures."""

    period: str
    covered: str = Field("", description="the period as a PM says it, with the days of data an open one covers")
    findings: list[Friction]
    suggestions: list[Suggestion]
    timings_ms: dict[str, float] = Field(default_factory=dict)
    disabled: list[str] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list, description="what the scan left out of the period, and why")
    warnings: list[str] = Field(default_factory=list)

    @property
    def product(self) -> list[Suggestion]:
        """Suggestions about product friction, by RICE."""
        return [s for s in self.suggestions if s.kind != "tracking_issue"]

    @property
    def data_quality(self) -> list[Suggestion]:
        """Suggestions about the data itself (tracking), by RICE."""
        return [s for s in self.suggestions if s.kind == "tracking_issue"]

    def public(self) -> dict:
        """The JSON shape of `insight scan --json`."""
        return {"period": self.period, "findings": [f.model_dump() for f in self.findings],
                "suggestions": [s.model_dump() for s in self.suggestions], "disabled": self.disabled,
                "notes": self.notes}


def _detect(wh: Warehouse, facts: Facts, detect: Detector) -> tuple[list[Friction], str | None, float]:
    """One detector's findings, its failure (one broken detector must not hide the others' findings) and its
    milliseconds. Runs in a worker thread; draws no charts (the scan keeps findings only)."""
    started = time.perf_counter()
    try:
        with without_charts():
            found, failure = detect(wh, facts).findings, None
    except Exception as exc:  # noqa: BLE001 - reported in the scan's warnings
        found, failure = [], f"{type(exc).__name__}: {str(exc)[:200]}"
    return found, failure, round((time.perf_counter() - started) * 1000, 1)


def scan(wh: Warehouse, period: str | Period = "all", progress: Callable[[str], None] | None = None,
         detectors: dict[str, Detector] | None = None) -> ScanReport:
    """Run every detector over `period` and rank what they find.

    A detector that fails is reported in `warnings`; the others still run. Trailing days whose data is
    still arriving are left out of the period, with a note (an incomplete day is no drop).
    """
    p = period if isinstance(period, Period) else resolve_period(wh, period)
    p, notes = complete_part(wh, p)
    notes = wh.ignored_notes() + notes
    emap = wh.event_map
    findings: list[Friction] = []
    timings, warnings = {}, []
    disabled = disabled_detectors(emap)
    facts = Facts(p, emap)  # materialized by the first detector that reads them
    chosen = {name: detect for name, detect in (detectors or DETECTORS).items()
              if name not in disabled and (emap.steps or name not in NEEDS)}
    with ThreadPoolExecutor(max_workers=SCAN_WORKERS if wh.dialect == "duckdb" else 1) as pool:
        running = {name: pool.submit(_detect, wh, facts, detect) for name, detect in chosen.items()}
        for name, future in running.items():  # progress and results in registry order, from this thread
            if progress:
                progress(name)
            found, failure, timings[name] = future.result()
            findings += found
            if failure:
                warnings.append(f"detector {name} failed: {failure}")
    if emap.steps:
        findings = outside_incidents(wh, facts.materialize(wh), findings)
    if progress:
        progress("prioritizing")
    findings.sort(key=lambda f: (f.kind, f.id))  # detector output order is not guaranteed by SQL
    suggestions = prioritize(wh, findings, p)
    return ScanReport(period=p.label, covered=covered_words(wh, p), findings=findings, suggestions=suggestions,
                      timings_ms=timings,
                      disabled=list(disabled.values()), notes=notes, warnings=warnings)


def complete_part(wh: Warehouse, p: Period) -> tuple[Period, list[str]]:
    """The period without the trailing days whose data is still arriving, and a note saying so."""
    tail = incomplete_tail(wh)
    if tail is None or (p.end is not None and p.end <= tail[0]) or (p.start is not None and p.start >= tail[0]):
        return p, []
    start, share = tail
    note = (f"Left out {span(start, start)} to the end of the data: those days hold {pct(share)} of the usual daily "
            "events (data still arriving).")
    return Period(p.label, p.start, start), [note]


def covered_words(wh: Warehouse, p: Period) -> str:
    """A period as a PM says it, with the days of data it covers when it is open-ended:
    `Nov 16-22`, `all time (Aug 31 - Nov 29)`, `after release 5.5.0 (Oct 3 - Nov 29)`."""
    if p.start is not None and p.end is not None and p.label != "all":
        return p.words()
    lo, hi = data_bounds(wh)
    if lo is None:
        return p.words()
    start, end = max(lo, p.start or lo), min(hi, p.end or hi)
    return f"{p.words()} ({span(start, end)})" if end > start else p.words()
