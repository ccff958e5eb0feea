"""Grounding: every number in an answer must appear in a tool result of the same question.

Numbers are compared as unsigned values, so "12.3%", "0.123" and "12.30" match, and a number
rounded from a tool's value matches it. Code blocks (SQL shown as evidence), list markers and
identifiers such as `5.5.0` or `2026-W47` are not claims and are skipped.

>>> ungrounded("Conversion is 17.4% (7,696 of 44,264 users).", ["7696 converted (17.4%) of 44264"])
[]
>>> ungrounded("Conversion rose 25%.", ["conversion 0.174"])
['25%']
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

NUMBER = re.compile(r"(?<![\w.\-/])[-+]?\$?(\d{1,3}(?:,\d{3})+|\d+)(\.\d+)?(%?)(?![\w]|\.\d)")
SOURCE_NUMBER = re.compile(r"\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?")
CODE = re.compile(r"```.*?```|`[^`]*`", re.S)
LIST_MARKER = re.compile(r"(?m)^\s*\d+[.)]\s")
IDENTIFIER = re.compile(r"\b[\w-]*\d+(?:[.\-:]\d+){2,}[\w-]*\b|\b\d{4}-W\d{2}\b|\b\d{4}-\d{2}-\d{2}\b")


def numbers(text: str) -> list[tuple[str, Decimal, int]]:
    """(as written, value, decimals) for each number in `text`, percentages as written."""
    out = []
    for m in NUMBER.finditer(text):
        digits = m.group(1).replace(",", "") + (m.group(2) or "")
        try:
            value = Decimal(digits)
        except InvalidOperation:
            continue
        out.append((m.group(0), value, len(m.group(2) or "") - 1 if m.group(2) else 0))
    return out


def _claims(text: str) -> str:
    text = CODE.sub(" ", text)
    text = LIST_MARKER.sub(" ", text)
    return IDENTIFIER.sub(" ", text)


def _source_values(sources: list[str]) -> set[Decimal]:
    """Every number in the sources (any context), also as a percentage and as a fraction."""
    values: set[Decimal] = set()
    for s in sources:
        for m in SOURCE_NUMBER.finditer(s):
            v = Decimal(m.group(0).replace(",", ""))
            values.update({v, v * 100, v / 100})
    return values


def _matches(value: Decimal, decimals: int, known: set[Decimal]) -> bool:
    if value in known:
        return True
    tolerance = Decimal(5) * Decimal(10) ** (-(decimals + 1))
    return any(abs(k - value) <= tolerance for k in known)


def ungrounded(answer: str, sources: list[str]) -> list[str]:
    """Numbers of `answer` that no source contains (as written in the answer)."""
    known = _source_values(sources)
    return [raw for raw, value, decimals in numbers(_claims(answer)) if not _matches(abs(value), decimals, known)]
