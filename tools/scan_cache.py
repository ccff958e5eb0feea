"""Scans computed once per data version, event map and period, then reused (a fact of tools/facts_store.py).

A report with a failed detector is not kept (it may have been a timeout).
"""

from __future__ import annotations

from collections.abc import Callable

from tools.facts_store import binding, json_codec, remembered
from tools.period import Period, resolve_period
from tools.scan import ScanReport, scan
from tools.warehouse import Warehouse

REPORTS = json_codec("scans", 32, lambda report: report.model_dump(mode="json"), ScanReport.model_validate,
                     keep=lambda report: not report.warnings)


def cached_scan(wh: Warehouse, period: str | Period = "all", progress: Callable[[str], None] | None = None
                ) -> ScanReport:
    """`scan(wh, period)`, computed once per data version, event map and period.

    `progress` (else the bound one) hears each step of a scan that runs. A cached report is the same
    object each time: do not change it.
    """
    p = period if isinstance(period, Period) else resolve_period(wh, period)
    hear = progress or binding(wh).progress
    return remembered(wh, "scan", (p.label, p.start, p.end), lambda: scan(wh, p, progress=hear), REPORTS)
