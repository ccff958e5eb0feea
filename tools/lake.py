"""A Parquet lake: one folder (or file) of Parquet per table, read in place by any engine.

Layout under the lake directory, per table of the data model (data/schema.py):
`<table>/` holding `*.parquet` files at any depth (hive partitions such as
`events/day=2026-11-02/part-0.parquet` are fine) or a single
`<table>.parquet`. `events` and `users` are required; a missing optional table reads as empty.
A lake on shared storage (`s3a://bucket/lake`, `abfss://...`, `dbfs:/...`) is for Spark only:
it reads `<lake>/<table>` folders there.

>>> sorted(TABLES)[:2]
['assignments', 'events']
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from data.export import DAY_PARTITION
from data.schema import TABLES

REQUIRED = ("events", "users")


class LakeError(ValueError):
    """A lake directory that cannot be read: names the directory and the missing table."""


@dataclass(frozen=True)
class LakeTable:
    """One table of the lake: its folder or single file, or None when absent (read as empty)."""

    name: str
    location: str | None
    folder: bool = True

    @property
    def columns(self) -> dict[str, str]:
        return TABLES[self.name]

    @property
    def glob(self) -> str | None:
        """Every Parquet file of the table, at any depth (DuckDB's read_parquet pattern)."""
        if self.location is None or not self.folder:
            return self.location
        return f"{self.location}/**/*.parquet"


def is_lake(path: str | Path) -> bool:
    """Whether `path` is a lake directory rather than a database file."""
    return Path(path).is_dir()


def remote_url(path: str | Path) -> str | None:
    """The storage URL when `path` names shared storage (`s3a://bucket/lake`, `dbfs:/lake`), else None.

    Accepts the URL also after a trip through `pathlib.Path`, which folds `//` into `/`.

    >>> remote_url(Path("s3a://bucket/lake")), remote_url("dbfs:/lake"), remote_url("/tmp/lake")
    ('s3a://bucket/lake', 'dbfs:/lake', None)
    """
    m = re.match(r"^([a-z][a-z0-9+.-]+):/+(.*)$", str(path))
    if not m:
        return None
    scheme, rest = m.groups()
    return f"{scheme}:/{rest}" if scheme in ("dbfs", "file") else f"{scheme}://{rest}"


def remote_tables(root: str) -> list[LakeTable]:
    """Every table as a `<root>/<table>` folder on shared storage (checked when Spark reads it)."""
    return [LakeTable(name, f"{root.rstrip('/')}/{name}") for name in TABLES]


def lake_tables(root: str | Path) -> list[LakeTable]:
    """Every table of the data model in `root`, with the glob of its files; LakeError if one is required."""
    root = Path(root)
    if not root.is_dir():
        raise LakeError(f"lake directory not found: {root}")
    tables, missing = [], []
    for name in TABLES:
        folder, single = root / name, root / f"{name}.parquet"
        if folder.is_dir() and any(folder.rglob("*.parquet")):
            table = LakeTable(name, str(folder.resolve()))
        elif single.is_file():
            table = LakeTable(name, str(single.resolve()), folder=False)
        else:
            table = LakeTable(name, None)
            if name in REQUIRED:
                missing.append(f"{name!r} (expected {folder}/ or {single})")
        tables.append(table)
    if missing:
        raise LakeError(f"lake {root}: no Parquet files for table {', '.join(missing)}")
    return tables


def view_select(table: LakeTable, source: str, present: list[str], *, json_type: str = "JSON") -> str:
    """SELECT the table's columns from `source` (DuckDB dialect): the data model's columns cast to their types,
    every other column of the files (a team's own fields, partition keys) as it is; `present` lists the
    source's columns. An absent table is a typed SELECT of the model's columns with no rows.
    JSON columns (text in Parquet) become `json_type` (engines without a JSON type keep text).
    """
    types = {c: json_type if t == "JSON" else t for c, t in table.columns.items()}
    if table.location is None:
        return "SELECT " + ", ".join(f"CAST(NULL AS {t}) AS {c}" for c, t in types.items()) + " WHERE FALSE"
    present = [c for c in present if not (table.name == "events" and c == DAY_PARTITION)]  # our export's partition
    cols = [f"CAST({c} AS {types[c]}) AS {c}" if c in types else f'"{c}"' for c in present]
    return "SELECT " + ", ".join(cols) + f" FROM {source}"
