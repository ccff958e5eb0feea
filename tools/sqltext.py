"""Tiny helpers to write SQL text safely from trusted code.

>>> lit("it's")
"'it''s'"
>>> lit(3)
'3'
"""

from __future__ import annotations


def lit(value: object) -> str:
    """A SQL literal for a string or number (strings single-quoted, quotes doubled)."""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, (int, float)):
        return repr(value)
    return "'" + str(value).replace("'", "''") + "'"
