"""Analysis periods: half-open [start, end) in UTC, parsed from user-facing strings.

>>> Period.parse("2026-W47", data_end=None).start.isoformat()
'2026-11-16T00:00:00'
>>> Period.parse("2026-11-01..2026-11-08", data_end=None).days
7
>>> Period.parse("2026-W47", data_end=None).words(), Period.parse("all", data_end=None).words()
('Nov 16-22', 'all time')
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING

import numpy as np

from tools.format import span

if TYPE_CHECKING:
    from tools.warehouse import Warehouse

PERIOD_HELP = "all | last_N_days | YYYY-MM-DD..YYYY-MM-DD | YYYY-Www | before_release:V | after_release:V"
RELEASE = re.compile(r"(before|after)_release:(\S+)")


class PeriodError(ValueError):
    """A period string that cannot be understood."""


@dataclass(frozen=True)
class Period:
    """A half-open time range; `start`/`end` None means unbounded."""

    label: str
    start: datetime | None
    end: datetime | None

    @property
    def days(self) -> int | None:
        if self.start is None or self.end is None:
            return None
        return (self.end - self.start).days

    @classmethod
    def parse(cls, text: str, data_end: datetime | None) -> Period:
        """Parse `text`; relative periods (last_N_days) end at `data_end` (the day after the last event)."""
        text = (text or "all").strip()
        if text == "all":
            return cls("all", None, None)
        if m := re.fullmatch(r"last_(\d{1,4})_days?", text):
            n = int(m.group(1))
            if n < 1:
                raise PeriodError(f"period {text!r}: N must be at least 1")
            if data_end is None:
                raise PeriodError(f"period {text!r} needs data to anchor on, and the events table is empty")
            return cls(text, data_end - timedelta(days=n), data_end)
        if m := re.fullmatch(r"(\d{4})-W(\d{2})", text):
            try:
                monday = date.fromisocalendar(int(m.group(1)), int(m.group(2)), 1)
            except ValueError:
                raise PeriodError(f"period {text!r}: no such ISO week") from None
            start = datetime.combine(monday, datetime.min.time())
            return cls(text, start, start + timedelta(days=7))
        if m := re.fullmatch(r"(\d{4}-\d{2}-\d{2})\.\.(\d{4}-\d{2}-\d{2})", text):
            try:
                start, end = (datetime.fromisoformat(g) for g in m.groups())
            except ValueError as exc:
                raise PeriodError(f"period {text!r}: {exc}") from None
            if end <= start:
                raise PeriodError(f"period {text!r}: the end must be after the start")
            return cls(text, start, end)
        if RELEASE.fullmatch(text):
            raise PeriodError(f"period {text!r} is resolved against the data (resolve_period)")
        raise PeriodError(f"period {text!r} not understood; use {PERIOD_HELP}")

    def where(self, column: str = "ts") -> str:
        """SQL predicate for this period on `column` (literal timestamps, no parameters)."""
        parts = []
        if self.start is not None:
            parts.append(f"{column} >= TIMESTAMP '{self.start:%Y-%m-%d %H:%M:%S}'")
        if self.end is not None:
            parts.append(f"{column} < TIMESTAMP '{self.end:%Y-%m-%d %H:%M:%S}'")
        return " AND ".join(parts) or "TRUE"

    def words(self) -> str:
        """The period as a PM says it: `Nov 16-22`, `all time`, `before release 5.5.0`, `since Nov 3`."""
        if m := RELEASE.fullmatch(self.label):
            return f"{m.group(1)} release {m.group(2)}"
        if self.start is None and self.end is None:
            return "all time"
        if self.start is None:
            return f"before {span(self.end, self.end)}"
        if self.end is None:
            return f"since {span(self.start, self.start)}"
        return span(self.start, self.end)

    def iso_week(self) -> str | None:
        return self.label if re.fullmatch(r"\d{4}-W\d{2}", self.label) else None


def data_bounds(wh: Warehouse) -> tuple[datetime | None, datetime | None]:
    """First event time and the midnight after the last event (None, None for no events)."""
    lo, hi = wh.query("SELECT min(ts) AS lo, max(ts) AS hi FROM events").df.iloc[0]
    if lo is None or lo != lo:
        return None, None
    hi = hi.to_pydatetime()
    return lo.to_pydatetime(), datetime.combine(hi.date(), datetime.min.time()) + timedelta(days=1)


def resolve_period(wh: Warehouse, text: str | None) -> Period:
    """Parse `text` against the data: relative periods end the day after the last event; before_release:V and
    after_release:V split the data at the day release V (or V.x) was first seen, by the map's release role."""
    if m := RELEASE.fullmatch((text or "").strip()):
        return _around_release(wh, m.group(0), m.group(1), m.group(2))
    return Period.parse(text or "all", data_bounds(wh)[1])


def _around_release(wh: Warehouse, label: str, side: str, version: str) -> Period:
    from tools.sqltext import lit

    release = wh.event_map.roles.release
    if release is None:
        raise PeriodError(f"period {label!r}: the event map has no release role (which dimension versions releases)")
    column = wh.event_map.dim_sql(release.version)
    first = wh.scalar(f"SELECT min(ts) FROM events WHERE {column} = {lit(version)} "
                      f"OR starts_with({column}, {lit(version + '.')})")
    if first is None:
        raise PeriodError(f"period {label!r}: no release {version!r} in the data ({release.version})")
    day = datetime.combine(first.date(), datetime.min.time())
    return Period(label, None, day) if side == "before" else Period(label, day, None)


def period_weeks(wh: Warehouse, period: Period) -> float:
    """Length in weeks of the period clipped to the data (at least one day)."""
    lo, hi = data_bounds(wh)
    if lo is None:
        return 1 / 7
    start = max(lo, period.start) if period.start else lo
    end = min(hi, period.end) if period.end else hi
    return max((end - start).total_seconds() / (7 * 86400), 1 / 7)


INCOMPLETE_SHARE = 0.5   # a trailing day with less than half the usual daily events is still arriving
USUAL_DAYS = 14          # "usual" = the median day of the two weeks before the last week


def incomplete_tail(wh: Warehouse) -> tuple[datetime, float] | None:
    """The first of the trailing days (at most 7) that hold under half the usual daily events, and the share
    of the usual volume they hold: data still arriving (late events, an export cut mid-day). None when the
    last day looks complete or there is too little history to tell."""
    daily = wh.query("SELECT date_trunc('day', ts) AS d, count(*) AS n FROM events "
                     "WHERE ts <= now()::TIMESTAMP + INTERVAL 1 DAY GROUP BY 1 ORDER BY 1").df
    if len(daily) < USUAL_DAYS + 7:
        return None
    counts = daily["n"].astype(float).to_numpy()
    usual = float(np.median(counts[-(USUAL_DAYS + 7):-7]))
    first = len(counts)
    while first > len(counts) - 7 and counts[first - 1] < INCOMPLETE_SHARE * usual:
        first -= 1
    if first == len(counts):
        return None
    return daily["d"].iloc[first].to_pydatetime(), float(counts[first:].mean() / usual)
