"""Time expressions of a question as period strings (tools/period.py), anchored on the data's end.

`end` is the day after the last event, so "last week" is the last 7 days of data.

>>> end = date(2026, 11, 30)
>>> period("conversion last week", end), period("past fortnight", end), period("in Q3", end)
('last_7_days', 'last_14_days', '2026-07-01..2026-10-01')
>>> period("this month", end), period("last month", end)
('2026-11-01..2026-11-30', 'last_30_days')
>>> period("since monday", end), period("late september", end), period("in May", end)
('2026-11-23..2026-11-30', '2026-09-21..2026-10-01', '2026-05-01..2026-06-01')
>>> period("the first ten days of november", end), period("oct 5 to oct 18", end), before("2026-W47", end)
('2026-11-01..2026-11-11', '2026-10-05..2026-10-19', '2026-W46')
>>> comparison("compare this week to last week", end)
('last_7_days', '2026-11-16..2026-11-23')
>>> period("between oct 5 and oct 18", end), period("since october 15", end)
('2026-10-05..2026-10-19', '2026-10-15..2026-11-30')
>>> period("since september", end)
'2026-09-01..2026-11-30'
>>> comparison("this month vs last month", end)
('2026-11-01..2026-11-30', '2026-10-01..2026-11-01')
>>> period("first half of october", end), period("the first week of november", end)
('2026-10-01..2026-10-16', '2026-11-01..2026-11-08')
>>> period("since the start of november", end), period("aov: november so far vs october", end)
('2026-11-01..2026-11-30', '2026-11-01..2026-11-30')
>>> comparison("october vs september revenue", end)
('2026-10-01..2026-11-01', '2026-09-01..2026-10-01')
"""

from __future__ import annotations

import re
from datetime import date, timedelta

MONTHS = ("january", "february", "march", "april", "may", "june", "july", "august", "september", "october",
          "november", "december")
MONTH = "(" + "|".join(MONTHS) + "|sept|" + "|".join(m[:3] for m in MONTHS if m != "may") + r")\b"
PARTS = {"early": (1, 11), "mid": (11, 21), "middle of": (11, 21), "late": (21, 32), "end of": (21, 32),
         "first half of": (1, 16), "second half of": (16, 32), "the first half of": (1, 16),
         "the second half of": (16, 32)}
WEEK_OF = {"first": 0, "1st": 0, "second": 1, "2nd": 1, "third": 2, "3rd": 2, "fourth": 3, "4th": 3}
NUMBER_WORDS = {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9,
                "ten": 10, "fourteen": 14, "fifteen": 15, "twenty": 20, "thirty": 30, "a couple of": 2, "a few": 3,
                "couple of": 2, "couple": 2, "few": 3}
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
COMPARE = re.compile(r"\b(?:compare[ds]?|comparing)\s+(.+?)\s+(?:to|with|against|and|vs\.?|versus)\s+(.+)"
                     r"|(.+?)\s+(?:vs\.?|versus|compared (?:to|with)|against|than)\s+(.+)")


def _month_index(name: str) -> int:
    return next(i for i, m in enumerate(MONTHS, 1) if m.startswith(name[:3]))


def _year_of(month: int, end: date) -> int:
    """The year of the latest such month that has begun by the end of the data."""
    last = end - timedelta(days=1)
    return last.year if month <= last.month else last.year - 1


def _range(start: date, stop: date) -> str:
    return f"{start}..{stop}"


def _month_range(month: int, year: int, first: int = 1, last: int = 32) -> str:
    """Days [first, last) of a month ('late May' = the 21st to the month's end)."""
    month_end = date(year + (month == 12), month % 12 + 1, 1)
    return _range(date(year, month, first), month_end if last > 28 else date(year, month, last))


def _day(month_name: str, day: str, end: date) -> date | None:
    month = _month_index(month_name)
    try:
        return date(_year_of(month, end), month, int(day))
    except ValueError:
        return None


def _relative(q: str, end: date) -> str | None:
    """Periods counted back from the end of the data: last N days/weeks/months, this week, yesterday..."""
    words = "|".join(NUMBER_WORDS)
    if m := re.search(rf"\b(?:last|past|previous|recent|trailing|rolling)\s+(\d{{1,3}}|{words})\s+(day|week|month)s?\b"
                      rf"(?!\s+(?:of|in)\s+{MONTH})", q):  # not "the last 2 weeks of October"
        n = int(m.group(1)) if m.group(1).isdigit() else NUMBER_WORDS[m.group(1)]
        return f"last_{n * {'day': 1, 'week': 7, 'month': 30}[m.group(2)]}_days"
    if m := re.search(r"\b(?:(?:last|past|previous|trailing)\s*|l)(\d{1,3})\s?d\b", q):  # "last 30d", "L7D"
        return f"last_{int(m.group(1))}_days"
    if re.search(r"\b(?:the )?week before last\b", q):
        return _range(end - timedelta(days=14), end - timedelta(days=7))  # the week before the last 7 days
    if m := re.search(rf"\b(\d|{words}) weeks? ago\b", q):  # "three weeks ago": that 7-day span counted back
        n = int(m.group(1)) if m.group(1).isdigit() else NUMBER_WORDS[m.group(1)]
        if n >= 2:
            return _range(end - timedelta(days=7 * n), end - timedelta(days=7 * (n - 1)))
    if m := re.search(r"\bsince (?:the )?(?:start|beginning) of (?:the |this )?(week|month|quarter|year)\b", q):
        q = {"week": "this week", "month": "mtd", "quarter": "qtd", "year": "ytd"}[m.group(1)]  # to date
    if re.search(r"\b(?:ytd|year to date|this year|so far this year|all year)\b", q):
        return _range(date((end - timedelta(days=1)).year, 1, 1), end)
    if re.search(r"\b(?:last|this|past|over the|on the|at the|the) weekend\b", q):
        last = end - timedelta(days=1)
        sunday = last - timedelta(days=(last.weekday() - 6) % 7)  # the last Saturday and Sunday of the data
        return _range(sunday - timedelta(days=1), sunday + timedelta(days=1))
    if re.search(r"\b(?:this|current) quarter\b|\bquarter to date\b|\bqtd\b", q):
        last = end - timedelta(days=1)
        return _range(date(last.year, 3 * ((last.month - 1) // 3) + 1, 1), end)
    if re.search(r"\b(?:last|previous) quarter\b", q):  # the calendar quarter before this one
        last = end - timedelta(days=1)
        start = date(last.year, 3 * ((last.month - 1) // 3) + 1, 1)
        prev = date(start.year - (start.month == 1), (start.month - 4) % 12 + 1, 1)
        return _range(prev, start)
    if re.search(r"\b(?:last|past|this|previous) fortnight\b|\bfortnight\b", q):
        return "last_14_days"
    if re.search(r"\b(last|past|previous|this|current) week\b(?! (?:of|in|one|two|three|four|\d)\b)|\bthis wk\b|"
                 r"\blast wk\b|\bwtd\b", q):
        return "last_7_days"
    if re.search(r"\b(this|current|all) month\b|\bmtd\b|\bmonth to date\b|\bmonth so far\b", q):
        last = end - timedelta(days=1)
        return _range(last.replace(day=1), end)
    if re.search(r"\b(last|past|previous) month\b", q):
        return "last_30_days"
    if re.search(r"\bpast quarter\b", q):
        return "last_90_days"
    if m := re.search(r"\b(?:last|past|previous)\s+(\d{2,3})\s*(?:hours|hrs|h)\b", q):  # "last 48 hours": whole days
        return f"last_{max(1, -(-int(m.group(1)) // 24))}_days"
    if re.search(r"\b(yesterday|today|last day|past day|past 24 hours)\b", q):
        return "last_1_days"
    if m := re.search(rf"\bsince the (\d{{1,2}})(?:st|nd|rd|th)\b(?! (?:of )?{MONTH})", q):  # "since the 1st"
        last = end - timedelta(days=1)
        if 1 <= int(m.group(1)) <= last.day:
            return _range(last.replace(day=int(m.group(1))), end)
    if m := re.search(rf"\bsince (?:last )?({'|'.join(WEEKDAYS)})\b", q):
        last = end - timedelta(days=1)
        back = (last.weekday() - WEEKDAYS.index(m.group(1))) % 7
        return _range(last - timedelta(days=back), end)
    return None


def _calendar(q: str, end: date) -> str | None:
    """Named weeks, dates, quarters and months."""
    if m := re.search(r"\bweek (\d{1,2}) (?:to|through|until|-) week (\d{1,2})\b", q):
        year = (end - timedelta(days=1)).isocalendar().year
        first = date.fromisocalendar(year, int(m.group(1)), 1)
        return _range(first, date.fromisocalendar(year, int(m.group(2)), 1) + timedelta(days=7))
    if m := re.search(r"\b(\d{4})-?w(\d{1,2})\b", q):
        return f"{m.group(1)}-W{int(m.group(2)):02d}"
    if m := re.search(r"(\d{4}-\d{2}-\d{2})\.\.(\d{4}-\d{2}-\d{2})", q):
        return f"{m.group(1)}..{m.group(2)}"  # a period string as the tools take it: the end excluded
    if m := re.search(r"(\d{4}-\d{2}-\d{2})\s*(?:to|until|through|thru|and|-|–)\s*(\d{4}-\d{2}-\d{2})", q):
        last = date.fromisoformat(m.group(2)) + timedelta(days=1)  # in words the last day is included
        return f"{m.group(1)}..{last}"
    if not re.search(r"\bcompar|\bvs\b|\bversus\b", q) and (m := re.search(
            rf"\b(?:from |between )?{MONTH}(?:\s+\d{{4}})? (?:through|thru|to|until|-) (?:the end of )?{MONTH}"
            rf"(?!\s*\d)", q) or re.search(rf"\bbetween {MONTH} and {MONTH}(?!\s*\d)", q)):
        # "September through October": both whole months
        first, last = _month_index(m.group(1)), _month_index(m.group(2))
        year = _year_of(first, end)
        start = date(year, first, 1)
        stop = date.fromisoformat(_month_range(last, year + (last < first))[-10:])
        if stop > start:
            return _range(start, stop)
    if m := re.search(rf"\b(?:the )?(first|last) (\d{{1,2}}|{'|'.join(NUMBER_WORDS)}) (days?|weeks?) (?:of|in) {MONTH}",
                      q):
        month, n = _month_index(m.group(4)), int(m.group(2)) if m.group(2).isdigit() else NUMBER_WORDS[m.group(2)]
        n *= 7 if m.group(3).startswith("week") else 1
        whole = _month_range(month, _year_of(month, end))
        first, stop = date.fromisoformat(whole[:10]), date.fromisoformat(whole[-10:])
        return _range(first, first + timedelta(days=n)) if m.group(1) == "first" else _range(stop - timedelta(n), stop)
    if m := re.search(rf"\b(?:between |from )?{MONTH} (\d{{1,2}})(?:st|nd|rd|th)? (?:and|to|until|through|-) {MONTH} "
                      rf"(\d{{1,2}})(?:st|nd|rd|th)?\b", q):
        first, last = _day(m.group(1), m.group(2), end), _day(m.group(3), m.group(4), end)
        if first and last and last > first:
            return _range(first, last + timedelta(days=1))  # "between Oct 5 and Oct 18" includes the 18th
    if m := re.search(rf"\b(?:(?:since|from|after) (?:the )?)?{MONTH} (\d{{1,2}})(?:st|nd|rd|th)?,? ?"
                      rf"(?:on(?:wards?)?|and (?:after|later|since))\b", q) or re.search(
            rf"\b(?:since|from) (?:the )?{MONTH} (\d{{1,2}})(?:st|nd|rd|th)?\b(?!\s*(?:and|to|until|through|-)\s*"
            rf"{MONTH})", q):  # "since Oct 20", "from Nov 1st onwards", "since the 1st of November"
        if first := _day(m.group(1), m.group(2), end):
            return _range(first, end)
    if m := re.search(rf"\bweek (?:of|starting|beginning|commencing) (?:the )?{MONTH} (\d{{1,2}})(?:st|nd|rd|th)?\b",
                      q):
        if day := _day(m.group(1), m.group(2), end):  # "the week of Nov 9": the ISO week holding that day
            return f"{day.isocalendar().year}-W{day.isocalendar().week:02d}"
    if m := re.search(rf"\b(?:on|for) {MONTH} (\d{{1,2}})(?:st|nd|rd|th)?\b(?!\s*(?:and|to|until|through|-))", q):
        if day := _day(m.group(1), m.group(2), end):  # "on Nov 12": that day
            return _range(day, day + timedelta(days=1))
    if m := re.search(r"\bq([1-4])(?:\s*(\d{4}))?\b", q):
        quarter = int(m.group(1))
        year = int(m.group(2)) if m.group(2) else _year_of(3 * quarter - 2, end)
        stop = date(year + (quarter == 4), (3 * quarter) % 12 + 1, 1)
        if re.search(r"\bq[1-4](?:\s*\d{4})? (?:so far|to date)\b", q):  # "Q4 so far": up to the end of the data
            stop = min(stop, end)
        return _range(date(year, 3 * quarter - 2, 1), stop)
    if m := re.search(rf"\bsince (?:the )?(?:start|beginning) of {MONTH}", q):  # "since the start of November"
        month = _month_index(m.group(1))
        return _range(date(_year_of(month, end), month, 1), end)
    if m := re.search(rf"\b{MONTH}(?:\s+(\d{{4}}))? (?:so far|to date)\b", q):  # "November so far": up to the end
        month = _month_index(m.group(1))
        whole = _month_range(month, int(m.group(2)) if m.group(2) else _year_of(month, end))
        return _range(date.fromisoformat(whole[:10]), min(date.fromisoformat(whole[-10:]), end))
    if m := re.search(rf"\b(?:the )?(first|1st|second|2nd|third|3rd|fourth|4th|last) week (?:of|in) {MONTH}", q):
        month = _month_index(m.group(2))  # "the first week of November": its days 1-7; the last: its last 7 days
        whole = _month_range(month, _year_of(month, end))
        first, stop = date.fromisoformat(whole[:10]), date.fromisoformat(whole[-10:])
        if m.group(1) == "last":
            return _range(stop - timedelta(days=7), stop)
        start = first + timedelta(days=7 * WEEK_OF[m.group(1)])
        return _range(start, min(start + timedelta(days=7), stop))
    if m := re.search(rf"\bsince (?:the )?((?:first|second) half of|early|mid|middle of|late|end of)[ -]{MONTH}", q):
        month = _month_index(m.group(2))  # "since mid-October": from that part of the month on
        start = date.fromisoformat(_month_range(month, _year_of(month, end), *PARTS[m.group(1)])[:10])
        return _range(start, end)
    if m := re.search(rf"\b((?:the )?(?:first|second) half of|early|mid|middle of|late|end of)[ -]{MONTH}", q):
        month = _month_index(m.group(2))
        return _month_range(month, _year_of(month, end), *PARTS[m.group(1)])
    if m := re.search(rf"\bsince (?:early )?{MONTH}(?!\s*\d)", q):  # "since September": from its first day on
        month = _month_index(m.group(1))
        return _range(date(_year_of(month, end), month, 1), end)
    if m := re.search(rf"(?:\b(?:in|during|for|of|from|over)\s+|^|\b(?=\w+ (?:vs|versus|compared)\b)){MONTH}"
                      rf"(?:\s+(\d{{4}}))?", q) or re.search(r"\b(may)\s+(\d{4})\b", q):
        month = _month_index(m.group(1))
        return _month_range(month, int(m.group(2)) if m.group(2) else _year_of(month, end))
    if m := re.search(rf"\b{MONTH}(?:\s+(\d{{4}}))?", q):
        if m.group(1) != "may":
            month = _month_index(m.group(1))
            return _month_range(month, int(m.group(2)) if m.group(2) else _year_of(month, end))
    return None


def _slash(first: str, second: str) -> str:
    """"11/15" as "november 15" (month first, as US teams write it; day first when the first number cannot be a
    month: "15/11")."""
    a, b = int(first), int(second)
    month, day = (a, b) if a <= 12 else (b, a)
    return f"{MONTHS[month - 1]} {day}" if 1 <= month <= 12 and 1 <= day <= 31 else f"{first}/{second}"


def period(q: str, end: date | None) -> str | None:
    """The period a question names, as a period string; None when it names none."""
    q = q.lower()
    q = re.sub(r"\b1st half\b", "first half", re.sub(r"\b2nd half\b", "second half", q))
    q = re.sub(r"(?<![\d/.])(\d{1,2})/(\d{1,2})\s*(to|-|–|through|thru|until|and)\s*(\d{1,2})/(\d{1,2})(?![\d/])",
               lambda m: f"{_slash(m[1], m[2])} to {_slash(m[4], m[5])}", q)  # "11/1 to 11/15", "11/1-11/15"
    q = re.sub(r"\b(on|to|from|since|until|through|thru|between|before|after) (\d{1,2})/(\d{1,2})(?![\d/])",
               lambda m: f"{m[1]} {_slash(m[2], m[3])}", q)  # "since 11/3"
    # "between 1 and 15 October", "Nov 3-9": both days named with their month
    q = re.sub(rf"(?<![\d.])\b(\d{{1,2}})(?:st|nd|rd|th)? (and|to|until|through|-) (\d{{1,2}})(?:st|nd|rd|th)? "
               rf"(?:of )?{MONTH}", r"\4 \1 \2 \4 \3", q)
    q = re.sub(rf"\b{MONTH} (\d{{1,2}})(?:st|nd|rd|th)? ?(-|to|until|through) ?(\d{{1,2}})(?:st|nd|rd|th)?\b"
               rf"(?! ?{MONTH})", r"\1 \2 \3 \1 \4", q)
    q = re.sub(rf"(?<![\d.])\b(\d{{1,2}})(?:st|nd|rd|th)? (?:of )?{MONTH}", r"\2 \1", q)  # "since 1 October"
    if m := re.search(r"\b(before|after|since) (?:the )?(?:release |version |v)?(\d+(?:\.\d+)+)(?: release)?\b", q):
        return f"{'before' if m.group(1) == 'before' else 'after'}_release:{m.group(2)}"
    if re.search(r"\b(all time|overall|ever|whole period|all data)\b", q):
        return "all"
    if end is None:
        return _calendar(q, date(2100, 1, 1)) if re.search(r"\d{4}", q) else None
    return _relative(q, end) or _calendar(q, end)


def comparison(q: str, end: date | None) -> tuple[str, str] | None:
    """(period, compared with) for "compare X to Y" / "X vs Y" when both sides name a period."""
    m = COMPARE.search(q.lower())
    if not m or end is None:
        return None
    first, second = (m.group(1), m.group(2)) if m.group(1) else (m.group(3), m.group(4))
    a, b = period(first, end) or _week_number(first, end), period(second, end) or _week_number(second, end)
    if a is not None and b is None and re.search(r"\b(the )?(week|month|period|days?) (before|prior)\b|\bthe previous "
                                                 r"(week|month|period)\b|\bprior (week|month|period)\b", second):
        b = before(a, end)
    if a is not None and b is None and re.fullmatch(r"\s*(?:the\s+)?(?:last|previous|prior|before)(?:\s+one)?\W*",
                                                    second):
        b = before(a, end)  # "this week versus last"
    if a is None or b is None:
        return None
    if re.search(r"\b(this|current) month\b|\bmonth to date\b|\bmtd\b", first) and re.search(
            r"\b(last|previous) month\b", second):
        start = date.fromisoformat(a[:10])  # month to date against the whole month before it
        return a, _month_range(12 if start.month == 1 else start.month - 1, start.year - (start.month == 1))
    if a == b and a.startswith("last_"):  # "this week vs last week": the same span just before it
        days = int(a.split("_")[1])
        return a, _range(end - timedelta(days=2 * days), end - timedelta(days=days))
    return a, b


def before(period: str, end: date | None) -> str | None:
    """The period of the same length just before `period` ("and the week before that?")."""
    if m := re.fullmatch(r"(\d{4})-W(\d{2})", period):
        monday = date.fromisocalendar(int(m.group(1)), int(m.group(2)), 1) - timedelta(days=7)
        return f"{monday.isocalendar().year}-W{monday.isocalendar().week:02d}"
    if (m := re.fullmatch(r"last_(\d+)_days", period)) and end:
        days = int(m.group(1))
        return _range(end - timedelta(days=2 * days), end - timedelta(days=days))
    if m := re.fullmatch(r"(\d{4}-\d{2}-\d{2})\.\.(\d{4}-\d{2}-\d{2})", period):
        start, stop = (date.fromisoformat(g) for g in m.groups())
        if start.day == 1 and stop.day == 1 and (stop - start).days in range(28, 32):  # a calendar month
            return _month_range(12 if start.month == 1 else start.month - 1, start.year - (start.month == 1))
        return _range(start - (stop - start), start)
    return None


def _week_number(text: str, end: date) -> str | None:
    """"week 46" as the ISO week of the data's last year (a comparison side; in a whole question "week 2" may be a
    retention week)."""
    m = re.search(r"\bweek (\d{1,2})\b", text)
    return f"{(end - timedelta(days=1)).isocalendar().year}-W{int(m.group(1)):02d}" if m else None
