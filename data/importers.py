"""Import product event data into a DuckDB analytics database, all or nothing.

Two sources are understood:

* a folder with one file per table of :data:`data.schema.TABLES` (``<table>.csv``,
  ``<table>.parquet``, ``<table>.jsonl``/``.json``/``.ndjson``) or a sub-folder
  ``<table>/`` of several files of one format; ``users`` and ``events`` are required;
* a Segment-spec JSONL file of ``track`` (and ``identify``) calls.

Every value is cast to its column type inside DuckDB (vectorized ``TRY_CAST``); the first
value that does not fit is reported as :class:`ImportFailed` naming file, row and column.
The database is built in a temporary file next to the target and moved onto it only when
everything loaded, so an import REPLACES the whole content of the target database and a
failed import leaves an existing one byte-for-byte unchanged.
"""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Literal

import duckdb

from data.schema import REQUIRED_COLUMNS, REQUIRED_TABLES, TABLES, create_tables

Progress = Callable[[str], None] | None
Connection = duckdb.DuckDBPyConnection

# File suffix -> format; .json files are read as JSONL too.
FORMATS = {".csv": "csv", ".parquet": "parquet", ".jsonl": "jsonl", ".json": "jsonl", ".ndjson": "jsonl"}
# Column whose values must be unique within its table.
UNIQUE_KEYS = {"users": "user_id", "events": "event_id", "experiments": "experiment_id", "products": "product_id"}
_IGNORED_SUFFIXES = (".md", ".txt")  # READMEs and notes that may sit next to the data
_MAX_JSON_LINE = 1 << 28  # bytes


class ImportFailed(ValueError):
    """A source could not be imported; the target database was left unchanged.

    ``file`` is the file as named inside the source, ``row`` the 1-based data row (header
    excluded), ``line`` the physical line (JSONL files and parse errors) and ``column`` the
    column (or Segment field); each is None when unknown. ``str()`` is one line naming them.
    """

    def __init__(
        self,
        problem: str,
        *,
        file: str | None = None,
        row: int | None = None,
        line: int | None = None,
        column: str | None = None,
        noun: str = "column",
    ) -> None:
        self.file, self.row, self.line, self.column = file, row, line, column
        where = " ".join(
            part
            for part in (file, f"line {line}" if line else f"row {row}" if row else None)
            if part
        )
        if column is not None:
            where = f"{where}, {noun} {column}" if where else f"{noun} {column}"
        super().__init__(f"{where}: {problem}" if where else problem)


# --------------------------------------------------------------------------- public API


def import_source(
    source: str | Path,
    db: str | Path,
    *,
    format: Literal["auto", "tables", "segment"] = "auto",
    progress: Progress = None,
) -> dict[str, int]:
    """Import `source` into `db` (replacing its content); `auto` picks a folder as tables
    and a .jsonl/.json/.ndjson file as Segment track calls. Returns {table: row_count}."""
    path = Path(source)
    if format == "auto":
        if path.is_dir():
            format = "tables"
        elif path.is_file() and FORMATS.get(path.suffix.lower()) == "jsonl":
            format = "segment"
        else:
            raise ImportFailed(
                f"cannot import {path}: expected a folder of table files or a Segment .jsonl file"
            )
    if format == "tables":
        return import_folder(path, db, progress=progress)
    if format == "segment":
        return import_segment(path, db, progress=progress)
    raise ValueError(f"unknown import format {format!r}")


def import_folder(source: str | Path, db: str | Path, *, progress: Progress = None) -> dict[str, int]:
    """Import a folder of table files into `db`, REPLACING the database content.

    Absent optional columns are NULL; unknown files or columns, values that do not cast,
    NULLs in required columns, duplicate keys and an empty events table raise ImportFailed.
    Returns {table: row_count}.
    """
    found = _discover(Path(source))
    note = progress or _quiet

    def load(con: Connection) -> None:
        for table, (fmt, parts, label) in found.items():
            note(f"reading {label}")
            staged = _stage(con, table, fmt, parts, label)
            rows = _validate(con, staged, UNIQUE_KEYS.get(table))
            if table == "events" and rows == 0:
                raise staged.fail("the events table is empty")
            _insert(con, staged)
            _unstage(con, staged)
            note(f"loaded {table}: {rows:,} rows")

    return _build(Path(db), load)


def import_segment(source: str | Path, db: str | Path, *, progress: Progress = None) -> dict[str, int]:
    """Import a Segment-spec JSONL file into `db`, REPLACING the database content.

    ``track`` lines become events, ``identify`` lines users (latest trait wins); users seen
    only in events get signed_up_at = their first event. Other call types are skipped and
    reported through `progress`. Returns {table: row_count}.
    """
    path = Path(source)
    note = progress or _quiet

    def load(con: Connection) -> None:
        note(f"reading {path.name}")
        con.execute("CREATE TEMP TABLE raw_segment (json JSON)")
        _load_jsonl(con, "raw_segment", path, path.name)
        kinds = dict(
            con.execute(
                "SELECT coalesce(json->>'$.type', 'track'), count(*) FROM raw_segment GROUP BY ALL ORDER BY ALL"
            ).fetchall()
        )
        skipped = {kind: n for kind, n in kinds.items() if kind not in ("track", "identify")}
        if skipped:
            detail = ", ".join(f"{kind}: {n:,}" for kind, n in skipped.items())
            note(f"skipped {sum(skipped.values()):,} lines that are not track or identify calls ({detail})")
        events = _segment_view(con, path, "events", "track")
        rows = _validate(con, events, "event_id")
        if rows == 0:
            raise ImportFailed("no track calls in the file", file=path.name)
        _insert(con, events)
        users = _segment_view(con, path, "users", "identify")
        _validate(con, users, None)
        traits = ", ".join(
            f"arg_max({c}, __rid) FILTER (WHERE {c} IS NOT NULL) AS {c}"
            for c in ("signed_up_at", "country", "acquisition_channel", "plan")
        )
        casts = ", ".join(f"{_cast(c, t, TABLES['users'][c])} AS {c}" for c, t in users.types.items())
        con.execute(
            f"""INSERT INTO users
            WITH identified AS (
                SELECT user_id, {traits} FROM (SELECT __rid, {casts} FROM {users.view}) GROUP BY user_id),
            seen AS (SELECT user_id, min(ts) AS first_ts FROM events GROUP BY user_id)
            SELECT coalesce(i.user_id, s.user_id), coalesce(i.signed_up_at, s.first_ts),
                   i.country, i.acquisition_channel, i.plan
            FROM identified i FULL JOIN seen s ON i.user_id = s.user_id"""
        )
        note(f"loaded {rows:,} events")

    return _build(Path(db), load)


def export_folder(
    db: str | Path, out_dir: str | Path, *, format: Literal["parquet", "csv", "jsonl"] = "parquet"
) -> list[Path]:
    """Write every table of `db` to `out_dir` as ``<table>.<format>``; import_folder reads it back."""
    options = {"parquet": "FORMAT parquet", "csv": "FORMAT csv, HEADER", "jsonl": "FORMAT json"}
    if format not in options:
        raise ValueError(f"unknown export format {format!r}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / f"{table}.{format}" for table in TABLES]
    with duckdb.connect(str(db), read_only=True) as con:
        for table, path in zip(TABLES, paths):
            con.execute(f"COPY {table} TO {_lit(path)} ({options[format]})")
    return paths


def table_counts(db: str | Path) -> dict[str, int]:
    """Row count of every data-model table in `db`."""
    with duckdb.connect(str(db), read_only=True) as con:
        return _counts(con)


# ------------------------------------------------------------------ building the database


def _build(db: Path, load: Callable[[Connection], None]) -> dict[str, int]:
    """Run `load` on a fresh database next to `db`, then move it onto `db`."""
    db.parent.mkdir(parents=True, exist_ok=True)
    tmp = db.with_name(f".{db.name}.importing-{os.getpid()}.duckdb")
    _discard(tmp)
    try:
        with duckdb.connect(str(tmp)) as con:
            con.execute("SET TimeZone = 'UTC'")
            create_tables(con)
            load(con)
            counts = _counts(con)
            con.execute("CHECKPOINT")
        _discard(Path(f"{db}.wal"))  # the old file's log must not be replayed onto the new one
        os.replace(tmp, db)
    except duckdb.Error as err:
        raise ImportFailed(f"import failed: {_reason(err)[0]}") from err
    finally:
        _discard(tmp)
    return counts


def _discard(path: Path) -> None:
    """Remove a database file with its write-ahead log and spill folder, if present."""
    for leftover in (path, Path(f"{path}.wal")):
        leftover.unlink(missing_ok=True)
    shutil.rmtree(f"{path}.tmp", ignore_errors=True)


def _counts(con: Connection) -> dict[str, int]:
    return {table: con.execute(f"SELECT count(*) FROM {table}").fetchone()[0] for table in TABLES}


def _quiet(_: str) -> None:
    """Progress callback that ignores its messages."""


# ------------------------------------------------------------------------------ sources


def _discover(source: Path) -> dict[str, tuple[str, list[tuple[Path, str]], str]]:
    """Map each table to (format, [(file, name shown in errors)], label) for a source folder."""
    if not source.is_dir():
        raise ImportFailed(f"{source} is not a folder")
    found: dict[str, tuple[str, list[tuple[Path, str]], str]] = {}
    for entry in sorted(source.iterdir()):
        if _ignored(entry):
            continue
        table = entry.name if entry.is_dir() else entry.stem
        label = f"{entry.name}/" if entry.is_dir() else entry.name
        if table not in TABLES:
            raise ImportFailed(
                f"unknown table {table!r} (file {label}); expected one of {', '.join(TABLES)}", file=label
            )
        if table in found:
            raise ImportFailed(f"table {table!r} is given twice ({found[table][2]} and {label})", file=label)
        if entry.is_dir():
            parts = [(p, f"{label}{p.name}") for p in sorted(entry.iterdir()) if not _ignored(p)]
            if not parts:
                raise ImportFailed("the folder holds no data files", file=label)
        else:
            parts = [(entry, label)]
        formats = set()
        for path, name in parts:
            if not path.is_file() or path.suffix.lower() not in FORMATS:
                raise ImportFailed(f"unsupported file; expected one of {', '.join(FORMATS)}", file=name)
            formats.add(FORMATS[path.suffix.lower()])
        if len(formats) > 1:
            raise ImportFailed(f"mixes file formats ({', '.join(sorted(formats))})", file=label)
        found[table] = (formats.pop(), parts, label)
    for table in REQUIRED_TABLES:
        if table not in found:
            raise ImportFailed(
                f"missing required table {table!r}: expected {table}.csv, {table}.parquet, "
                f"{table}.jsonl or a folder {table}/ in {source}"
            )
    return found


def _ignored(path: Path) -> bool:
    return path.name.startswith(".") or (path.is_file() and path.suffix.lower() in _IGNORED_SUFFIXES)


@dataclass
class _Staged:
    """One table's source rows staged in DuckDB, and where each row came from."""

    table: str
    view: str  # relation with __rid plus one column per present target column
    types: dict[str, str]  # present target column -> its type in `view`
    parts: list[tuple[Path, str, int]]  # (file, name shown in errors, first __rid), in order
    label: str  # the whole source, for errors about no row in particular
    jsonl: bool
    noun: str = "column"
    names: dict[str, str] = field(default_factory=dict)  # target column -> name in the source

    def locate(self, rid: int) -> tuple[str, int, int | None]:
        """(file name, 1-based row, physical line for JSONL) of staged row `rid`."""
        path, name, start = next(part for part in reversed(self.parts) if part[2] <= rid)
        line = next(islice(_records(path), rid - start, None))[0] if self.jsonl else None
        return name, rid - start + 1, line

    def fail(self, problem: str, *, rid: int | None = None, column: str | None = None) -> ImportFailed:
        name = self.names.get(column, column) if column else None
        if rid is None:
            return ImportFailed(problem, file=self.label, column=name, noun=self.noun)
        file, row, line = self.locate(rid)
        return ImportFailed(problem, file=file, row=row, line=line, column=name, noun=self.noun)

    def position(self, rid: int) -> str:
        file, row, line = self.locate(rid)
        where = f"line {line}" if line else f"row {row}"
        return where if len(self.parts) == 1 else f"{file} {where}"


def _stage(con: Connection, table: str, fmt: str, parts: list[tuple[Path, str]], label: str) -> _Staged:
    """Copy a table's files, in order, into a temp table and expose it as a view."""
    raw, view = f"raw_{table}", f"src_{table}"
    starts: list[int] = []
    if fmt == "jsonl":
        con.execute(f"CREATE TEMP TABLE {raw} (json JSON)")
        present: set[str] = set()
        for path, name in parts:
            starts.append(_load_jsonl(con, raw, path, name))
            keys = con.execute(
                f"SELECT DISTINCT unnest(json_keys(json)) AS k FROM {raw} WHERE rowid >= ? ORDER BY k", [starts[-1]]
            ).fetchall()
            _check_columns(table, name, [k for (k,) in keys])
            present.update(k for (k,) in keys)
        types = {c: "JSON" if c == "properties" else "VARCHAR" for c in TABLES[table] if c in present}
        columns = ", ".join(
            f"CASE WHEN json_type(json, '$.{c}') <> 'NULL' THEN json_extract(json, '$.{c}') END AS {_q(c)}"
            if t == "JSON"
            else f"json_extract_string(json, '$.{c}') AS {_q(c)}"
            for c, t in types.items()
        )
        con.execute(f"CREATE TEMP VIEW {view} AS SELECT rowid AS __rid{', ' if columns else ''}{columns} FROM {raw}")
    else:
        schemas = [_file_columns(con, fmt, path, name) for path, name in parts]
        for (_, name), schema in zip(parts, schemas):
            _check_columns(table, name, list(schema))
        union: dict[str, set[str]] = {}
        for schema in schemas:
            for column, kind in schema.items():
                union.setdefault(column, set()).add(kind)
        types = {
            c: union[c].pop() if len(union[c]) == 1 else "VARCHAR"
            for c in TABLES[table]
            if c in union
        } or dict.fromkeys(TABLES[table], "VARCHAR")  # only empty files: nothing to type
        con.execute(f"CREATE TEMP TABLE {raw} ({', '.join(f'{_q(c)} {t}' for c, t in types.items())})")
        for (path, name), schema in zip(parts, schemas):
            starts.append(_count(con, raw))
            if schema:
                with _reading(path, name, fmt):
                    con.execute(f"INSERT INTO {raw} BY NAME SELECT * FROM {_reader(fmt, path, schema)}")
        con.execute(f"CREATE TEMP VIEW {view} AS SELECT rowid AS __rid, * FROM {raw}")
    staged_parts = [(path, name, start) for (path, name), start in zip(parts, starts)]
    return _Staged(table, view, types, staged_parts, label, jsonl=fmt == "jsonl")


def _unstage(con: Connection, staged: _Staged) -> None:
    con.execute(f"DROP VIEW {staged.view}")
    con.execute(f"DROP TABLE raw_{staged.table}")


def _file_columns(con: Connection, fmt: str, path: Path, name: str) -> dict[str, str]:
    """Column -> type of a CSV (all VARCHAR, from its header) or Parquet file."""
    if fmt == "parquet":
        with _reading(path, name, fmt):
            described = con.execute(f"DESCRIBE SELECT * FROM read_parquet({_lit(path)})").fetchall()
        return {row[0]: row[1] for row in described}
    with _reading(path, name, fmt), path.open("rb") as f:
        first = f.readline(1 << 20)
    try:
        header = next(csv.reader([first.decode("utf-8-sig")]), [])
    except (UnicodeDecodeError, csv.Error) as err:
        raise ImportFailed(f"cannot read the CSV header: {err}", file=name, line=1) from err
    for i, column in enumerate(header):
        if column in header[:i]:
            raise ImportFailed("the column appears twice in the header", file=name, column=column)
    return dict.fromkeys(header, "VARCHAR")


def _reader(fmt: str, path: Path, schema: dict[str, str]) -> str:
    """Table function reading a CSV (every column as VARCHAR, strict dialect) or Parquet file."""
    if fmt == "parquet":
        return f"read_parquet({_lit(path)})"
    columns = ", ".join(f"{_lit(c)}: 'VARCHAR'" for c in schema)
    return (
        f"read_csv({_lit(path)}, header = true, auto_detect = false, delim = ',', quote = '\"', "
        f"escape = '\"', columns = {{{columns}}})"
    )


def _load_jsonl(con: Connection, raw: str, path: Path, name: str) -> int:
    """Append a JSONL file's lines to temp table `raw` (json JSON), each of which must be an
    object; return the rowid of its first line."""
    start = _count(con, raw)
    with _reading(path, name, "jsonl"):
        con.execute(
            f"INSERT INTO {raw} SELECT json FROM read_ndjson_objects({_lit(path)}, "
            f"maximum_object_size = {_MAX_JSON_LINE})"
        )
    (bad,) = con.execute(
        f"SELECT min(rowid) FROM {raw} WHERE rowid >= ? AND json_type(json) <> 'OBJECT'", [start]
    ).fetchone()
    if bad is not None:
        line = next(islice(_records(path), bad - start, None))[0]
        raise ImportFailed("expected a JSON object", file=name, row=bad - start + 1, line=line)
    return start


def _check_columns(table: str, name: str, columns: list[str]) -> None:
    """Refuse unknown columns, and missing required ones unless the file has no columns at all."""
    expected = TABLES[table]
    hint = f"expected columns: {', '.join(expected)}"
    for column in columns:
        if column not in expected:
            raise ImportFailed(f"unknown column {column!r}; {hint}", file=name, column=column)
    for column in REQUIRED_COLUMNS[table]:
        if columns and column not in columns:
            raise ImportFailed(f"missing required column; {hint}", file=name, column=column)


@contextmanager
def _reading(path: Path, name: str, fmt: str) -> Iterator[None]:
    """Turn an error while reading a source file into ImportFailed naming the file (and line)."""
    try:
        yield
    except (duckdb.Error, OSError) as err:
        reason, line = _reason(err)
        if line is not None and fmt == "jsonl":
            line = _bad_json_line(path, line)
        kind = {"csv": "CSV", "parquet": "Parquet", "jsonl": "JSON lines"}[fmt]
        raise ImportFailed(f"cannot read {kind} file: {reason}", file=name, line=line) from err


def _reason(err: Exception) -> tuple[str, int | None]:
    """A DuckDB error condensed to one line, and the source line it names, if any."""
    text = re.split(r"\n(?:Possible|LINE \d+:)", re.sub(r"^[\w ]*Error: ", "", str(err)))[0]
    found = re.search(r"(?:CSV Error on Line: |in line )(\d+)", text)
    text = re.sub(r' in file "[^"]*"|,? at byte \d+ in line \d+', "", text)
    lines = [
        line.strip()
        for line in text.splitlines()
        if line.strip() and not line.startswith(("CSV Error on Line", "Original Line"))
    ]
    reason = (lines[-1:] or str(err).strip().splitlines()[:1] or [type(err).__name__])[0]
    return reason[:300], int(found.group(1)) if found else None


def _records(path: Path) -> Iterator[tuple[int, bytes]]:
    """(line number, text) of each non-blank line of a JSONL file, the lines DuckDB reads."""
    with path.open("rb") as f:
        yield from ((number, text) for number, text in enumerate(f, 1) if text.strip())


def _bad_json_line(path: Path, reported: int) -> int | None:
    """Physical line of the malformed record DuckDB reported as `reported`.

    DuckDB 2.0 reports the 1-based record number plus one (blank lines not counted), so
    check that record and the next, in case a later version fixes the count.
    """
    start = max(reported - 2, 0)
    for number, text in islice(_records(path), start, start + 2):
        try:
            json.loads(text)
        except ValueError:
            return number
    return None


# --------------------------------------------------------------------------- validation


def _cast(column: str, source: str, target: str) -> str:
    """SQL casting `column` from type `source` to `target`; NULL where it does not fit."""
    c = _q(column)
    if target == "JSON":
        if source == "JSON":
            return f"json({c})"
        if source.startswith(("STRUCT", "MAP")) or source.endswith("]"):
            return f"to_json({c})"
        return f"json(TRY_CAST(CAST({c} AS VARCHAR) AS JSON))"
    if source == target:
        return c
    if target == "TIMESTAMP":  # ISO 8601 with or without T, Z or offset -> naive UTC
        return f"TRY_CAST(TRY_CAST({c} AS TIMESTAMPTZ) AS TIMESTAMP)"
    return f"TRY_CAST({c} AS {target})"


def _validate(con: Connection, staged: _Staged, unique: str | None) -> int:
    """Raise ImportFailed at the first value that does not cast or required value that is
    missing (by row, then column order), or at the first duplicate of `unique`; return the
    number of rows."""
    targets = TABLES[staged.table]
    checks: list[tuple[str, bool, str]] = []  # (column, is-missing-check, predicate)
    for column, source in staged.types.items():
        c, cast = _q(column), _cast(column, source, targets[column])
        if column in REQUIRED_COLUMNS[staged.table]:
            checks.append((column, True, f"{c} IS NULL"))
        if targets[column] != "VARCHAR":
            fraction = f" OR TRY_CAST({c} AS DOUBLE) <> {cast}" if targets[column] == "INTEGER" else ""
            checks.append((column, False, f"{c} IS NOT NULL AND ({cast} IS NULL{fraction})"))
    aggregates = ["count(*)"] + [f"min(__rid) FILTER (WHERE {predicate})" for *_, predicate in checks]
    rows, *firsts = con.execute(f"SELECT {', '.join(aggregates)} FROM {staged.view}").fetchone()
    hits = [(rid, i) for i, rid in enumerate(firsts) if rid is not None]
    if hits:
        rid, i = min(hits)
        column, missing, _ = checks[i]
        if missing:
            raise staged.fail("missing required value", rid=rid, column=column)
        (value,) = con.execute(
            f"SELECT CAST({_q(column)} AS VARCHAR) FROM {staged.view} WHERE __rid = ?", [rid]
        ).fetchone()
        raise staged.fail(f"cannot parse {_clip(value)!r} as {targets[column]}", rid=rid, column=column)
    if unique in staged.types:
        _check_unique(con, staged, unique)
    return rows


def _check_unique(con: Connection, staged: _Staged, column: str) -> None:
    key = f"CAST({_q(column)} AS VARCHAR)"
    duplicate = con.execute(
        f"SELECT {key} AS k FROM {staged.view} WHERE k IS NOT NULL GROUP BY k HAVING count(*) > 1 "
        "ORDER BY min(__rid) LIMIT 1"
    ).fetchone()
    if duplicate:
        rids = [
            rid
            for (rid,) in con.execute(
                f"SELECT __rid FROM {staged.view} WHERE {key} = ? ORDER BY __rid LIMIT 5", [duplicate[0]]
            ).fetchall()
        ]
        where = ", ".join(staged.position(rid) for rid in rids)
        raise staged.fail(f"duplicate value {_clip(duplicate[0])!r} (at {where})", rid=rids[1], column=column)


def _insert(con: Connection, staged: _Staged) -> None:
    targets = TABLES[staged.table]
    columns = ", ".join(_q(c) for c in staged.types)
    values = ", ".join(_cast(c, t, targets[c]) for c, t in staged.types.items())
    con.execute(f"INSERT INTO {staged.table} ({columns}) SELECT {values} FROM {staged.view}")


# ------------------------------------------------------------------------------ Segment


def _j(path: str) -> str:
    return f"json_extract_string(json, '$.{path}')"


_USER_AGENT = _j("context.userAgent")
# events column -> (field named in errors, SQL over a track call's JSON)
_SEGMENT_EVENTS = {
    "event_id": ("messageId", _j("messageId")),
    "ts": ("timestamp", _j("timestamp")),
    "user_id": ("userId", f"coalesce({_j('userId')}, {_j('anonymousId')})"),
    "session_id": ("properties.session_id", f"coalesce({_j('properties.session_id')}, {_j('context.session_id')})"),
    "event": ("event", _j("event")),
    "platform": (
        "context.device.type",
        f"coalesce({_j('context.device.type')}, CASE WHEN {_USER_AGENT} IS NOT NULL THEN 'web' END)",
    ),
    "os": ("context.os.name", f"lower({_j('context.os.name')})"),
    "app_version": ("context.app.version", _j("context.app.version")),
    "browser": (
        "context.userAgent",
        f"""CASE WHEN regexp_matches({_USER_AGENT}, 'Edg(e|A|iOS)?/') THEN 'edge'
            WHEN regexp_matches({_USER_AGENT}, '(Firefox|FxiOS)/') THEN 'firefox'
            WHEN regexp_matches({_USER_AGENT}, '(Chrome|CriOS)/') THEN 'chrome'
            WHEN regexp_matches({_USER_AGENT}, 'Safari/') THEN 'safari' END""",
    ),
    "country": ("context.location.country", _j("context.location.country")),
    "page": ("properties.page", f"coalesce({_j('properties.page')}, {_j('context.page.path')})"),
    "product_id": ("properties.product_id", _j("properties.product_id")),
    "category": ("properties.category", _j("properties.category")),
    "price": ("properties.price", _j("properties.price")),
    "revenue": ("properties.revenue", _j("properties.revenue")),
    "search_query": ("properties.query", _j("properties.query")),
    "results_count": ("properties.results_count", _j("properties.results_count")),
    "error_code": ("properties.error_code", _j("properties.error_code")),
    "load_time_ms": ("properties.load_time_ms", _j("properties.load_time_ms")),
    "properties": (
        "properties",
        "CASE WHEN json_type(json, '$.properties') <> 'NULL' THEN json_extract(json, '$.properties') END",
    ),
}
# users column -> (field named in errors, SQL over an identify call's JSON)
_SEGMENT_USERS = {
    "user_id": ("userId", f"coalesce({_j('userId')}, {_j('anonymousId')})"),
    "signed_up_at": ("traits.created_at", f"coalesce({_j('traits.created_at')}, {_j('traits.createdAt')})"),
    "country": ("traits.country", _j("traits.country")),
    "acquisition_channel": ("traits.acquisition_channel", _j("traits.acquisition_channel")),
    "plan": ("traits.plan", _j("traits.plan")),
}


def _segment_view(con: Connection, path: Path, table: str, kind: str) -> _Staged:
    """View of the `kind` calls in raw_segment mapped onto `table`'s columns."""
    fields = _SEGMENT_EVENTS if table == "events" else _SEGMENT_USERS
    view = f"segment_{table}"
    columns = ", ".join(f"{sql} AS {_q(column)}" for column, (_, sql) in fields.items())
    con.execute(
        f"CREATE TEMP VIEW {view} AS SELECT rowid AS __rid, {columns} FROM raw_segment "
        f"WHERE coalesce(json->>'$.type', 'track') = '{kind}'"
    )
    types = {column: "JSON" if column == "properties" else "VARCHAR" for column in fields}
    names = {column: name for column, (name, _) in fields.items()}
    return _Staged(table, view, types, [(path, path.name, 0)], path.name, jsonl=True, noun="field", names=names)


# ------------------------------------------------------------------------------ helpers


def _count(con: Connection, table: str) -> int:
    return con.execute(f"SELECT count(*) FROM {table}").fetchone()[0]


def _q(name: str) -> str:
    """SQL identifier."""
    return '"' + name.replace('"', '""') + '"'


def _lit(value: str | Path) -> str:
    """SQL string literal."""
    return "'" + str(value).replace("'", "''") + "'"


def _clip(value: str) -> str:
    return value if len(value) <= 80 else value[:77] + "..."
