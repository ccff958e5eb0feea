"""Field references of the event map: where a value lives in the stored data.

A reference is one of
* `column` - a column of `events` (`platform`, `load_time_ms`),
* `users.column` - a column of `users` (`users.plan`),
* `properties.path` - a key (or dotted path) of the events' `properties` JSON (`properties.search_term`).

>>> parse_field("properties.search term").sql("e")
'json_extract_string(e.properties, \\'$."search term"\\')'
>>> parse_field("users.plan").sql("u"), parse_field("country").sql()
('u."plan"', '"country"')
>>> parse_field("revenue").sql(cast="DOUBLE")
'TRY_CAST("revenue" AS DOUBLE)'
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class FieldError(ValueError):
    """A field reference that cannot be understood; the message names it."""


def quote(name: str) -> str:
    """A SQL identifier, double-quoted."""
    return '"' + name.replace('"', '""') + '"'


@dataclass(frozen=True)
class Field:
    """One field: its table, its column and, for JSON properties, the key path inside it."""

    ref: str
    table: Literal["events", "users"]
    column: str
    path: tuple[str, ...] = ()

    def sql(self, alias: str = "", cast: str | None = None) -> str:
        """SQL reading the field from a row of its table (`alias.` prefixed), cast when asked."""
        prefix = f"{alias}." if alias else ""
        if self.path:
            json_path = "$." + ".".join('"' + p.replace('"', '\\"') + '"' for p in self.path)
            expr = f"json_extract_string({prefix}{self.column}, '{json_path.replace(chr(39), chr(39) * 2)}')"
        else:
            expr = f"{prefix}{quote(self.column)}"
        return f"TRY_CAST({expr} AS {cast})" if cast else expr

    @property
    def is_property(self) -> bool:
        return bool(self.path)


def parse_field(ref: str) -> Field:
    """Parse a reference (`col`, `users.col`, `properties.a.b`); FieldError names a bad one."""
    text = (ref or "").strip()
    if not text:
        raise FieldError("empty field reference")
    head, _, rest = text.partition(".")
    if head == "users" and rest:
        if not IDENTIFIER.match(rest):
            raise FieldError(f"field {ref!r}: {rest!r} is not a column name")
        return Field(text, "users", rest)
    if head == "properties" and rest:
        path = tuple(p for p in rest.split(".") if p)
        if not path:
            raise FieldError(f"field {ref!r}: no property key after 'properties.'")
        return Field(text, "events", "properties", path)
    if rest:
        raise FieldError(f"field {ref!r}: use a column name, users.<column> or properties.<key>")
    if not IDENTIFIER.match(text):
        raise FieldError(f"field {ref!r} is not a column name")
    return Field(text, "events", text)
