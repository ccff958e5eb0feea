"""The import machinery every format shares: staging, casting, validation and the all-or-nothing build.

Every value is cast to its column type inside DuckDB (vectorized ``TRY_CAST``); the first value
that does not fit is reported as :class:`ImportFailed` naming file, row and column. The database
is built in a temporary file next to the target and moved onto it only when everything loaded, so
an import REPLACES the whole content of the target database and a failed import leaves an existing
one byte-for-byte unchanged.
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

from data.schema import MAX_YEAR, MIN_YEAR, REQUIRED_COLUMNS, TABLES, create_tables

Progress = Callable[[str], None] | None
Connection = duckdb.DuckDBPyConnection
Finish = Callable[[Connection], None] | None

# File suffix -> format; .json files are read as JSONL too.
FORMATS = {".csv": "csv", ".parquet": "parquet", ".jsonl": "jsonl", ".json": "jsonl", ".ndjson": "jsonl"}
# Column whose values must be unique within its table.
UNIQUE_KEYS = {"users": "user_id", "events": "event_id", "experiments": "experiment_id", "products": "product_id"}
_MAX_JSON_LINE = 1 << 28  # bytes
CANDIDATE_TYPES = ("BIGINT", "DOUBLE", "BOOLEAN")  # what a text column of a team's own is read as, narrowest first
TEXT_NAMES = re.compile(r"(^|_)(version|id|code|zip|postal|phone|sku|build)(_|$)")  # columns that stay text
MAX_MESSAGE = 800  # characters of an ImportFailed message


class ImportFailed(ValueError):
    """A source could not be imported; the target database was left unchanged.

    ``file`` is the file as named inside the source, ``row`` the 1-based data row (header
    excluded), ``line`` the physical line (JSONL files and parse errors) and ``column`` the
    column (or Segment field); each is None when unknown. ``str()`` is one short printable line
    naming them (names clipped, characters that are not printable escaped).
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
            for part in (file and clip(file, 200), f"line {line}" if line else f"row {row}" if row else None)
            if part
        )
        if column is not None:
            named = f"{noun} {clip(str(column), 200)}"
            where = f"{where}, {named}" if where else named
        text = f"{where}: {problem}" if where else problem
        printable = "".join(c if c.isprintable() else c.encode("unicode_escape").decode() for c in text)
        super().__init__(clip(printable, MAX_MESSAGE))


# ------------------------------------------------------------------ building the database




def build(db: Path, load: Callable[[Connection], None], finish: Finish = None) -> dict[str, int]:
    """Run `load` (then `finish`, e.g. storing the event map) on a fresh database next to `db`, then move it
    onto `db`: both in the same all-or-nothing write."""
    db.parent.mkdir(parents=True, exist_ok=True)
    tmp = db.with_name(f".{db.name}.importing-{os.getpid()}.duckdb")
    discard(tmp)
    discard_stale(db)
    try:
        with duckdb.connect(str(tmp)) as con:
            con.execute("SET TimeZone = 'UTC'")
            create_tables(con)
            load(con)
            if finish is not None:
                finish(con)
            counts = table_rows(con)
            con.execute("CHECKPOINT")
        discard(Path(f"{db}.wal"))  # the old file's log must not be replayed onto the new one
        os.replace(tmp, db)
    except duckdb.Error as err:
        raise ImportFailed(f"import failed: {error_reason(err)[0]}") from err
    finally:
        discard(tmp)
    return counts


def discard(path: Path) -> None:
    """Remove a database file with its write-ahead log and spill folder, if present."""
    for leftover in (path, Path(f"{path}.wal")):
        leftover.unlink(missing_ok=True)
    shutil.rmtree(f"{path}.tmp", ignore_errors=True)


def discard_stale(db: Path) -> None:
    """Discard the temp databases of imports into `db` whose process is gone (killed midway), never a running one's."""
    prefix = f".{db.name}.importing-"
    leftover = re.compile(r"(\d{1,9})\.duckdb(\.wal|\.tmp)?")  # after the prefix: the pid of the import
    for path in db.parent.iterdir():
        found = path.name.startswith(prefix) and leftover.fullmatch(path.name[len(prefix):])
        if found and not running(int(found.group(1))):
            discard(db.with_name(f"{prefix}{found.group(1)}.duckdb"))


def running(pid: int) -> bool:
    """Whether process `pid` exists (also another user's)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return True


def table_rows(con: Connection) -> dict[str, int]:
    return {table: con.execute(f"SELECT count(*) FROM {table}").fetchone()[0] for table in TABLES}


def quiet(_: str) -> None:
    """Progress callback that ignores its messages."""


# ------------------------------------------------------------------------------ staging and reading


@dataclass
class Staged:
    """One table's source rows staged in DuckDB, and where each row came from."""

    table: str
    view: str  # relation with __rid plus one column per present target column
    types: dict[str, str]  # present target column -> its type in `view`
    parts: list[tuple[Path, str, int]]  # (file, name shown in errors, first __rid), in order
    label: str  # the whole source, for errors about no row in particular
    jsonl: bool
    noun: str = "column"
    names: dict[str, str] = field(default_factory=dict)  # target column -> name in the source
    targets: dict[str, str] = field(default_factory=dict)  # column -> type in the database (default: the model's)

    @property
    def target_types(self) -> dict[str, str]:
        return self.targets or TABLES[self.table]

    def locate(self, rid: int) -> tuple[str, int, int | None]:
        """(file name, 1-based row, physical line for JSONL) of staged row `rid`."""
        path, name, start = next(part for part in reversed(self.parts) if part[2] <= rid)
        line = next(islice(jsonl_records(path), rid - start, None))[0] if self.jsonl else None
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


def file_columns(con: Connection, fmt: str, path: Path, name: str) -> dict[str, str]:
    """Column -> type of a CSV (all VARCHAR, from its header) or Parquet file."""
    if fmt == "parquet":
        with reading(path, name, fmt):
            described = con.execute(f"DESCRIBE SELECT * FROM read_parquet({file_sql(path)})").fetchall()
        return {row[0]: row[1] for row in described}
    with reading(path, name, fmt), path.open("rb") as f:
        first = f.readline(1 << 20)
    try:
        header = next(csv.reader([first.decode("utf-8-sig")]), [])
    except (UnicodeDecodeError, csv.Error) as err:
        raise ImportFailed(f"cannot read the CSV header: {err}", file=name, line=1) from err
    for i, column in enumerate(header):
        if column in header[:i]:
            raise ImportFailed("the column appears twice in the header", file=name, column=column)
    return dict.fromkeys(header, "VARCHAR")


def reader(fmt: str, path: Path, schema: dict[str, str]) -> str:
    """Table function reading a CSV (every column as VARCHAR, strict dialect) or Parquet file."""
    if fmt == "parquet":
        return f"read_parquet({file_sql(path)})"
    columns = ", ".join(f"{sql_literal(c)}: 'VARCHAR'" for c in schema)
    return (
        f"read_csv({file_sql(path)}, header = true, auto_detect = false, delim = ',', quote = '\"', "
        f"escape = '\"', columns = {{{columns}}})"
    )


def load_jsonl(con: Connection, raw: str, path: Path, name: str) -> int:
    """Append a JSONL file's lines to temp table `raw` (json JSON), each of which must be an
    object; return the rowid of its first line."""
    start = count_rows(con, raw)
    with reading(path, name, "jsonl"):
        con.execute(
            f"INSERT INTO {raw} SELECT json FROM read_ndjson_objects({file_sql(path)}, "
            f"maximum_object_size = {_MAX_JSON_LINE})"
        )
    (bad,) = con.execute(
        f"SELECT min(rowid) FROM {raw} WHERE rowid >= ? AND json_type(json) <> 'OBJECT'", [start]
    ).fetchone()
    if bad is not None:
        line = next(islice(jsonl_records(path), bad - start, None))[0]
        raise ImportFailed("expected a JSON object", file=name, row=bad - start + 1, line=line)
    return start


@contextmanager
def reading(path: Path, name: str, fmt: str) -> Iterator[None]:
    """Turn an error while reading a source file into ImportFailed naming the file (and line)."""
    try:
        yield
    except (duckdb.Error, OSError) as err:
        reason, line = error_reason(err)
        if line is not None and fmt == "jsonl":
            line = bad_json_line(path, line)
        kind = {"csv": "CSV", "parquet": "Parquet", "jsonl": "JSON lines"}[fmt]
        raise ImportFailed(f"cannot read {kind} file: {reason}", file=name, line=line) from err


def error_reason(err: Exception) -> tuple[str, int | None]:
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


def jsonl_records(path: Path) -> Iterator[tuple[int, bytes]]:
    """(line number, text) of each non-blank line of a JSONL file, the lines DuckDB reads."""
    with path.open("rb") as f:
        yield from ((number, text) for number, text in enumerate(f, 1) if text.strip())


def bad_json_line(path: Path, reported: int) -> int | None:
    """Physical line of the malformed record DuckDB reported as `reported`.

    DuckDB 2.0 reports the 1-based record number plus one (blank lines not counted), so
    check that record and the next, in case a later version fixes the count.
    """
    start = max(reported - 2, 0)
    for number, text in islice(jsonl_records(path), start, start + 2):
        try:
            json.loads(text)
        except ValueError:
            return number
    return None


# --------------------------------------------------------------------------- validation


def cast_sql(column: str, source: str, target: str) -> str:
    """SQL casting `column` from type `source` to `target`; NULL where it does not fit."""
    c = quote(column)
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


def validate(con: Connection, staged: Staged, unique: str | None) -> int:
    """Raise ImportFailed at the first value that does not cast, required value that is missing
    or timestamp out of range (by row, then column order), or at the first duplicate of `unique`;
    return the number of rows."""
    targets = staged.target_types
    checks: list[tuple[str, str, str]] = []  # (column, kind: missing, cast or range, predicate)
    for column, source in staged.types.items():
        c, cast = quote(column), cast_sql(column, source, targets[column])
        if column in REQUIRED_COLUMNS.get(staged.table, ()):
            checks.append((column, "missing", f"{c} IS NULL"))
        if targets[column] != "VARCHAR":
            fraction = f" OR TRY_CAST({c} AS DOUBLE) <> {cast}" if targets[column] == "INTEGER" else ""
            checks.append((column, "cast", f"{c} IS NOT NULL AND ({cast} IS NULL{fraction})"))
        if is_time(targets[column]):
            checks.append((column, "range", out_of_range(cast)))
    aggregates = ["count(*)"] + [f"min(__rid) FILTER (WHERE {predicate})" for *_, predicate in checks]
    rows, *firsts = con.execute(f"SELECT {', '.join(aggregates)} FROM {staged.view}").fetchone()
    hits = [(rid, i) for i, rid in enumerate(firsts) if rid is not None]
    if hits:
        rid, i = min(hits)
        column, kind, _ = checks[i]
        if kind == "missing":
            raise staged.fail("missing required value", rid=rid, column=column)
        if kind == "range":
            cast = cast_sql(column, staged.types[column], targets[column])
            raise range_error(con, staged, staged.view, column, cast, rid)
        (value,) = con.execute(
            f"SELECT CAST({quote(column)} AS VARCHAR) FROM {staged.view} WHERE __rid = ?", [rid]
        ).fetchone()
        raise staged.fail(f"cannot parse {clip(value)!r} as {targets[column]}", rid=rid, column=column)
    if unique in staged.types:
        check_unique(con, staged, unique)
    return rows


def is_time(kind: str) -> bool:
    """Whether a column of DuckDB type `kind` holds points in time (timestamps of any precision or zone, dates)."""
    return kind.startswith("TIMESTAMP") or kind == "DATE"


def out_of_range(sql: str) -> str:
    """SQL: the timestamp or date `sql` is outside [MIN_YEAR, MAX_YEAR) (also infinity and years BC)."""
    ts = f"CAST({sql} AS TIMESTAMP)"
    return f"({ts} < TIMESTAMP '{MIN_YEAR}-01-01' OR {ts} >= TIMESTAMP '{MAX_YEAR}-01-01')"


def check_range(con: Connection, staged: Staged, relation: str, columns: dict[str, str]) -> None:
    """Refuse the first timestamp (by row, then column order) outside [MIN_YEAR, MAX_YEAR): a clock or unit error
    that every analysis would crash on. `columns`: column named in errors -> SQL of its timestamp or date over
    `relation`, which has the staged rows' __rid."""
    found = [f"min(__rid) FILTER (WHERE {out_of_range(sql)})" for sql in columns.values()]
    firsts = con.execute(f"SELECT {', '.join(found)} FROM {relation}").fetchone() if columns else ()
    hits = [(rid, i) for i, rid in enumerate(firsts) if rid is not None]
    if hits:
        rid, i = min(hits)
        raise range_error(con, staged, relation, *list(columns.items())[i], rid)


def range_error(con: Connection, staged: Staged, relation: str, column: str, sql: str, rid: int) -> ImportFailed:
    """The error naming row `rid`, whose timestamp `sql` is out of range."""
    (value,) = con.execute(f"SELECT CAST({sql} AS VARCHAR) FROM {relation} WHERE __rid = ?", [rid]).fetchone()
    return staged.fail(f"timestamp {clip(value)} is outside {MIN_YEAR}..{MAX_YEAR - 1} (a clock or unit error?)",
                       rid=rid, column=column)


def check_unique(con: Connection, staged: Staged, column: str) -> None:
    key = f"CAST({quote(column)} AS VARCHAR)"
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
        raise staged.fail(f"duplicate value {clip(duplicate[0])!r} (at {where})", rid=rids[1], column=column)


def insert(con: Connection, staged: Staged) -> None:
    """INSERT the staged rows, cast to their target types; columns the table lacks (a team's own) are added."""
    targets = staged.target_types
    add_columns(con, staged.table, {c: targets[c] for c in staged.types})
    columns = ", ".join(quote(c) for c in staged.types)
    values = ", ".join(cast_sql(c, t, targets[c]) for c, t in staged.types.items())
    con.execute(f"INSERT INTO {staged.table} ({columns}) SELECT {values} FROM {staged.view}")


def add_columns(con: Connection, table: str, types: dict[str, str]) -> None:
    """Add to `table` the columns of `types` it does not have yet."""
    have = {r[0] for r in con.execute(f"DESCRIBE {table}").fetchall()}
    for column, kind in types.items():
        if column not in have:
            con.execute(f"ALTER TABLE {table} ADD COLUMN {quote(column)} {kind}")


def narrowest_type(con: Connection, view: str, column: str, source: str) -> str:
    """The type a team's own column is stored as: its source type, or for text (CSV, JSON) the narrowest of
    BIGINT, DOUBLE and BOOLEAN that every value fits, else VARCHAR; nested values as JSON. Text whose name
    says it holds versions, ids or codes stays text: '5.10' is no number 5.1, nor '007' the number 7."""
    if source.startswith(("STRUCT", "MAP")) or source.endswith("]") or source == "JSON":
        return "JSON"
    if source != "VARCHAR" or TEXT_NAMES.search(column):
        return source
    c = quote(column)
    misfit = {t: f"TRY_CAST({c} AS {t}) IS NULL" for t in CANDIDATE_TYPES}
    misfit["BIGINT"] += f" OR TRY_CAST({c} AS DOUBLE) <> TRY_CAST({c} AS BIGINT)"  # '19.5' would round to 20
    fits = con.execute(f"SELECT count({c}) > 0, " + ", ".join(
        f"count(*) FILTER (WHERE {c} IS NOT NULL AND ({misfit[t]})) = 0" for t in CANDIDATE_TYPES)
        + f" FROM {view}").fetchone()
    return next((t for t, ok in zip(CANDIDATE_TYPES, fits[1:]) if ok and fits[0]), "VARCHAR")


def column_name(raw: str) -> str:
    """A plain lower-case identifier for a source column or field (`$os` -> `os`, `User Plan` -> `user_plan`)."""
    text = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", str(raw))
    name = re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_") or "column"
    return f"c_{name}" if name[0].isdigit() else name


# ------------------------------------------------------------------------------ helpers


def count_rows(con: Connection, table: str) -> int:
    return con.execute(f"SELECT count(*) FROM {table}").fetchone()[0]


def quote(name: str) -> str:
    """SQL identifier."""
    return '"' + name.replace('"', '""') + '"'


def sql_literal(value: str | Path) -> str:
    """SQL string literal."""
    return "'" + str(value).replace("'", "''") + "'"


def file_sql(path: Path) -> str:
    """SQL string literal naming exactly the file `path` to DuckDB's readers, which would expand `*`, `?` and `[`."""
    return sql_literal(re.sub(r"[*?[]", lambda m: f"[{m.group()}]", str(path)))


def inside(folder: Path, path: Path, name: str) -> Path:
    """`path`, found in the import folder `folder` (`name` there); ImportFailed, without reading it, when it is a
    symbolic link (or in one) resolving outside `folder`."""
    if not path.resolve().is_relative_to(folder.resolve()):
        raise ImportFailed("is a symbolic link to outside the import folder; copy what it points to into it", file=name)
    return path


def clip(value: str, limit: int = 80) -> str:
    return value if len(value) <= limit else value[: limit - 3] + "..."


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
            con.execute(f"COPY {table} TO {sql_literal(path)} ({options[format]})")
    return paths


def table_counts(db: str | Path) -> dict[str, int]:
    """Row count of every data-model table in `db`."""
    with duckdb.connect(str(db), read_only=True) as con:
        return table_rows(con)


