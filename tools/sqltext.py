"""Tiny helpers to write SQL text safely from trusted code.

>>> lit("it's")
"'it''s'"
>>> lit(3)
'3'
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence


def lit(value: object) -> str:
    """A SQL literal for a string or number (strings single-quoted, quotes doubled)."""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, (int, float)):
        return repr(value)
    return "'" + str(value).replace("'", "''") + "'"


FIRST = "first_touch"


def first_of(columns: Sequence[str] | Mapping[str, str], order: str = "ts") -> str:
    """`, arg_min(struct_pack(c := c, ...), order) AS first_touch`: the columns of the row with the least `order`.

    `columns` are column names, or names mapped to the SQL expressions computing them.

    One struct keeps the values of one row together (separate arg_mins agree on ties only because
    DuckDB happens to update them in the same order) and compares `order` once per row. Measured
    in the full queries on 10M events, one arg_min per column instead was slower: retention 3.1
    against 2.6 s, session facts 5.0-5.2 against 4.3-4.8 s. Empty when there are no columns.
    """
    if not columns:
        return ""
    exprs = columns if isinstance(columns, Mapping) else {c: c for c in columns}
    return f", arg_min(struct_pack({', '.join(f'{c} := {e}' for c, e in exprs.items())}), {order}) AS {FIRST}"


def unpack_first(columns: Sequence[str], alias: str = "") -> str:
    """`, first_touch.c AS c` for each column of `first_of` (`alias.first_touch.c` with an alias)."""
    source = f"{alias}.{FIRST}" if alias else FIRST
    return "".join(f", {source}.{c} AS {c}" for c in columns)
