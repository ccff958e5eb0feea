"""Numbers and periods in a PM's words: `4.1%`, `+18%`, `$87.5k`, `11,556`, `Nov 16-22`.

Every summary a person reads formats its numbers here, so one answer never shows the same
kind of number two ways.

>>> pct(0.04123), pct(0.000412), change(0.183), change(-0.034), change(0.0)
('4.1%', '0.04%', '+18%', '-3.4%', '0%')
>>> money(87_512.4), money(1_250_000), money(950), money(-12.5)
('$87.5k', '$1.25M', '$950', '-$12.50')
>>> count(11556), count(2.5), points(0.0029), points(-0.00002)
('11,556', '2.5', '+0.29 pts', '0 pts')
>>> from datetime import datetime
>>> span(datetime(2026, 11, 16), datetime(2026, 11, 23)), span(datetime(2026, 10, 30), datetime(2026, 11, 6))
('Nov 16-22', 'Oct 30 - Nov 5')
>>> p_value(4.94e-10), p_value(0.0123), p_value(0.4)
('p<0.001', 'p=0.012', 'p=0.40')
"""

from __future__ import annotations

from datetime import datetime, timedelta


def pct(x: float) -> str:
    """A rate as a percentage: one decimal, two below 0.1%."""
    return f"{x:.2%}" if 0 < abs(x) < 0.001 else f"{x:.1%}"


def change(x: float) -> str:
    """A relative change with its sign: whole percent from 10%, one decimal below."""
    if round(x, 3) == 0:
        return "0%"
    return f"{x:+.0%}" if abs(x) >= 0.1 else f"{x:+.1%}"


def points(x: float) -> str:
    """A difference of two rates, in percentage points."""
    v = round(x * 100, 2)
    return "0 pts" if v == 0 else f"{v:+.2g} pts" if abs(v) < 1 else f"{v:+.1f} pts"


def money(x: float, symbol: str = "$") -> str:
    """An amount: `$87.5k`, `$1.25M`, `$950`, `$12.50`."""
    sign, a = ("-" if x < 0 else ""), abs(x)
    if a >= 1e6:
        text = f"{a / 1e6:.3g}M"
    elif a >= 1e4:
        text = f"{a / 1e3:.1f}k"
    elif a >= 100:
        text = f"{a:,.0f}"
    else:
        text = f"{a:,.2f}"
    return f"{sign}{symbol}{text}"


def count(x: float) -> str:
    """A count with thousands separators; a fractional count (an average) keeps one decimal."""
    return f"{x:,.0f}" if float(x).is_integer() else f"{x:,.1f}"


def span(start: datetime, end: datetime) -> str:
    """A half-open day range [start, end) as `Nov 16-22` (`Oct 30 - Nov 5`; the year when it is not one)."""
    last = end - timedelta(days=1) if end - start >= timedelta(days=1) else end
    if last.date() == start.date():
        return f"{start:%b} {start.day}"
    if start.year != last.year:
        return f"{start:%b} {start.day}, {start.year} - {last:%b} {last.day}, {last.year}"
    if start.month == last.month:
        return f"{start:%b} {start.day}-{last.day}"
    return f"{start:%b} {start.day} - {last:%b} {last.day}"


def p_value(p: float) -> str:
    """A p-value for the details part: `p<0.001`, `p=0.012`."""
    return "p<0.001" if p < 0.001 else f"p={p:.2g}" if p < 0.1 else f"p={p:.2f}"


def of_kind(value: float, kind: str) -> str:
    """A fact's value as people read it, by its kind (tools/result.py FactKind; a count when unknown)."""
    return {"rate": pct, "change": change, "money": money, "ms": lambda x: f"{count(x)} ms",
            "p_value": p_value}.get(kind, count)(value)
