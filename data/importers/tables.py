"""Import a folder of table files: one file (or folder of parts) per table of the data model.

``<table>.csv``, ``<table>.parquet``, ``<table>.jsonl``/``.json``/``.ndjson`` or a sub-folder
``<table>/`` of several files of one format; ``users`` and ``events`` are required. Columns of
``events`` and ``users`` beyond the data model's are kept (a team's own fields become dimensions),
not refused.
"""

from __future__ import annotations

from pathlib import Path

from data.importers.core import (
    FORMATS,
    UNIQUE_KEYS,
    Connection,
    Finish,
    ImportFailed,
    Progress,
    Staged,
    build,
    clip,
    column_name,
    count_rows,
    file_columns,
    insert,
    inside,
    load_jsonl,
    narrowest_type,
    quiet,
    quote,
    reader,
    reading,
    validate,
)
from data.schema import REQUIRED_COLUMNS, REQUIRED_TABLES, TABLES

_IGNORED_SUFFIXES = (".md", ".txt")  # READMEs and notes that may sit next to the data
OPEN_TABLES = ("events", "users")  # tables that keep columns beyond the data model's


def import_folder(source: str | Path, db: str | Path, *, progress: Progress = None, finish: Finish = None
                  ) -> dict[str, int]:
    """Import a folder of table files into `db`, REPLACING the database content.

    Absent optional columns are NULL; extra columns of events and users are kept; unknown files,
    unknown columns of the other tables, values that do not cast, NULLs in required columns,
    duplicate keys and an empty events table raise ImportFailed. `finish` runs last, in the same
    write. Returns {table: row_count}.
    """
    found = _discover(Path(source))
    note = progress or quiet

    def load(con: Connection) -> None:
        for table, (fmt, parts, label) in found.items():
            note(f"reading {label}")
            staged = _stage(con, table, fmt, parts, label)
            rows = validate(con, staged, UNIQUE_KEYS.get(table))
            if table == "events" and rows == 0:
                raise staged.fail("the events table is empty")
            insert(con, staged)
            _unstage(con, staged)
            note(f"loaded {table}: {rows:,} rows")

    return build(Path(db), load, finish)


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
                f"unknown table {clip(table)!r} (file {clip(label)}); expected one of {', '.join(TABLES)}", file=label
            )
        if table in found:
            raise ImportFailed(f"table {table!r} is given twice ({found[table][2]} and {label})", file=label)
        if entry.is_dir():
            parts = [(p, f"{label}{p.name}") for p in sorted(inside(source, entry, label).iterdir()) if not _ignored(p)]
            if not parts:
                raise ImportFailed("the folder holds no data files", file=label)
        else:
            parts = [(entry, label)]
        formats = set()
        for path, name in parts:
            if not inside(source, path, name).is_file() or path.suffix.lower() not in FORMATS:
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


def _stage(con: Connection, table: str, fmt: str, parts: list[tuple[Path, str]], label: str) -> Staged:
    """Copy a table's files, in order, into a temp table and expose it as a view."""
    raw, view = f"raw_{table}", f"src_{table}"
    starts: list[int] = []
    if fmt == "jsonl":
        con.execute(f"CREATE TEMP TABLE {raw} (json JSON)")
        present: set[str] = set()
        for path, name in parts:
            starts.append(load_jsonl(con, raw, path, name))
            keys = con.execute(
                f"SELECT DISTINCT unnest(json_keys(json)) AS k FROM {raw} WHERE rowid >= ? ORDER BY k", [starts[-1]]
            ).fetchall()
            _check_columns(table, name, [k for (k,) in keys])
            present.update(k for (k,) in keys)
        types = {c: "JSON" if c == "properties" else "VARCHAR"
                 for c in dict.fromkeys([*TABLES[table], *sorted(present)]) if c in present}
        columns = ", ".join(
            f"CASE WHEN json_type(json, '$.{c}') <> 'NULL' THEN json_extract(json, '$.{c}') END AS {quote(c)}"
            if t == "JSON"
            else f"json_extract_string(json, '$.{c}') AS {quote(c)}"
            for c, t in types.items()
        )
        con.execute(f"CREATE TEMP VIEW {view} AS SELECT rowid AS __rid{', ' if columns else ''}{columns} FROM {raw}")
    else:
        schemas = [file_columns(con, fmt, path, name) for path, name in parts]
        for (_, name), schema in zip(parts, schemas):
            _check_columns(table, name, list(schema))
        union: dict[str, set[str]] = {}
        for schema in schemas:
            for column, kind in schema.items():
                union.setdefault(column, set()).add(kind)
        types = {
            c: union[c].pop() if len(union[c]) == 1 else "VARCHAR"
            for c in dict.fromkeys([*TABLES[table], *union])
            if c in union
        } or dict.fromkeys(TABLES[table], "VARCHAR")  # only empty files: nothing to type
        con.execute(f"CREATE TEMP TABLE {raw} ({', '.join(f'{quote(c)} {t}' for c, t in types.items())})")
        for (path, name), schema in zip(parts, schemas):
            starts.append(count_rows(con, raw))
            if schema:
                with reading(path, name, fmt):
                    con.execute(f"INSERT INTO {raw} BY NAME SELECT * FROM {reader(fmt, path, schema)}")
        con.execute(f"CREATE TEMP VIEW {view} AS SELECT rowid AS __rid, * FROM {raw}")
    staged_parts = [(path, name, start) for (path, name), start in zip(parts, starts)]
    targets = {c: TABLES[table][c] if c in TABLES[table] else narrowest_type(con, view, c, t) for c, t in types.items()}
    return Staged(table, view, types, staged_parts, label, jsonl=fmt == "jsonl", targets=targets)


def _unstage(con: Connection, staged: Staged) -> None:
    con.execute(f"DROP VIEW {staged.view}")
    con.execute(f"DROP TABLE raw_{staged.table}")


def _check_columns(table: str, name: str, columns: list[str]) -> None:
    """Refuse missing required columns (unless the file has no columns at all), unknown columns of the tables
    with a fixed meaning (experiments, assignments, products), and names that are no plain identifier;
    events and users keep a team's own columns."""
    expected = TABLES[table]
    hint = f"expected columns: {', '.join(expected)}"
    for column in columns:
        if column not in expected and table not in OPEN_TABLES:
            raise ImportFailed(f"unknown column {clip(column)!r}; {hint}", file=name, column=column)
        if column not in expected and column != column_name(column):
            raise ImportFailed(f"column name {clip(column)!r} is not a plain lower-case identifier (e.g. "
                               f"{clip(column_name(column))!r}); rename it", file=name, column=column)
    for column in REQUIRED_COLUMNS[table]:
        if columns and column not in columns:
            raise ImportFailed(f"missing required column; {hint}", file=name, column=column)


