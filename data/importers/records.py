"""Export files of JSON records (Amplitude, Mixpanel, PostHog, GA4): what those formats share.

Reading a file or folder of records (`read_export`), parsing them once (`parse_records`), staging their
columns (`stage_view`) and user properties (`user_view`) as data.importers.events expects.
"""

from __future__ import annotations

import gzip
import json
import re
from pathlib import Path
from typing import IO

from data.importers.core import (
    Connection,
    ImportFailed,
    Staged,
    column_name,
    count_rows,
    file_sql,
    inside,
    load_jsonl,
    quote,
    reading,
    sql_literal,
)

RECORD_SUFFIXES = (".jsonl", ".json", ".ndjson", ".jsonl.gz", ".json.gz", ".ndjson.gz", ".parquet")
ALWAYS = ("ts", "user_id", "event", "first_seen")  # staged columns kept even when no record has a value
Parts = list[tuple[Path, str, int]]
Fields = dict[str, tuple[str, str]]  # events column -> (source field named in errors, SQL over the parsed record)


class GzipFile(type(Path())):  # type: ignore[misc]
    """A gzipped file whose `open` reads it decompressed: DuckDB reads the file itself, and the errors of
    data.importers.core re-read it (through `open`) to name the line at fault."""

    def open(self, mode: str = "r", buffering: int = -1, encoding: str | None = None, errors: str | None = None,
             newline: str | None = None) -> IO:
        mode = mode if "b" in mode else mode.replace("t", "") + "t"
        return gzip.open(self, mode, encoding=encoding, errors=errors, newline=newline)


def read_export(con: Connection, raw: str, path: Path) -> tuple[Parts, bool]:
    """Read every record of the export at `path` (a file, or a folder of them read in name order, numbers
    compared as numbers) into a new temp table `raw` (json JSON): JSON lines as they are (also gzipped),
    Parquet rows as JSON objects. Returns `Staged.parts` and whether the records are JSON lines."""
    files = _export_files(path)
    kinds = {file.name.lower().endswith(".parquet") for file, _ in files}
    if len(kinds) > 1:
        raise ImportFailed("the folder holds both Parquet and JSON lines files; import them separately",
                           file=path.name)
    parquet = kinds == {True}
    con.execute(f"CREATE TEMP TABLE {raw} (json JSON)")
    parts: Parts = []
    for file, name in files:
        if parquet:
            start = count_rows(con, raw)
            with reading(file, name, "parquet"):
                con.execute(f"INSERT INTO {raw} SELECT to_json(t) FROM read_parquet({file_sql(file)}) t")
        else:
            file = GzipFile(file) if file.suffix.lower() == ".gz" else file
            start = load_jsonl(con, raw, file, name)
        parts.append((file, name, start))
    return parts, not parquet


def _export_files(path: Path) -> list[tuple[Path, str]]:
    """(file, name shown in errors) of the export at `path`: itself, or the record files under the folder."""
    if not path.is_dir():
        return [(path, path.name)]
    found = {p.relative_to(path).as_posix(): p for p in path.rglob("*")
             if p.is_file() and p.name.lower().endswith(RECORD_SUFFIXES)}
    names = sorted((n for n in found if not any(part.startswith(".") for part in n.split("/"))), key=_natural)
    if not names:
        raise ImportFailed(f"no export files ({', '.join('*' + s for s in RECORD_SUFFIXES)}) in the folder",
                           file=path.name)
    return [(inside(path, found[n], n), n) for n in names]


def _natural(name: str) -> list[str | int]:
    """Sort key comparing the digit runs of a name as numbers (hour 9 before hour 10)."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", name)]


def parse_records(con: Connection, records: str, raw: str, structure: dict) -> None:
    """Parse each record of `raw` once (json_transform: missing or mistyped fields are NULL) into temp table
    `records`: __rid and one column per key of `structure` ("VARCHAR", "JSON", nested objects and [lists]).
    `raw` is dropped."""
    con.execute(f"CREATE TEMP TABLE {records} AS SELECT rowid AS __rid, unnest(json_transform(json, "
                f"{sql_literal(json.dumps(structure))})) FROM {raw} ORDER BY rowid")
    con.execute(f"DROP TABLE {raw}")


def stage_view(con: Connection, view: str, records: str, fields: Fields, parts: Parts, path: Path,
               jsonl: bool) -> Staged:
    """Stage `records` as temp view `view`: __rid and one column per `fields` entry, computed once into a temp
    table; columns no record has a value for are left out (but ALWAYS). Helper fields (named `_...`) are computed
    first, in order, each once, for the fields after them to use, and are not staged."""
    source = records
    for column, (_, sql) in fields.items():
        if column.startswith("_"):
            source = f"(SELECT *, {sql} AS {quote(column)} FROM {source})"
    staged = [column for column in fields if not column.startswith("_")]
    select = ", ".join(f"{fields[column][1]} AS {quote(column)}" for column in staged)
    con.execute(f"CREATE TEMP TABLE {view}_rows AS SELECT __rid, {select} FROM {source} ORDER BY __rid")
    counts = con.execute(f"SELECT {', '.join(f'count({quote(c)})' for c in staged)} FROM {view}_rows").fetchone()
    kept = [column for column, n in zip(staged, counts) if n or column in ALWAYS]
    con.execute(f"CREATE TEMP VIEW {view} AS SELECT __rid, {', '.join(map(quote, kept))} FROM {view}_rows")
    names = {column: fields[column][0] for column in staged}
    return Staged("events", view, {}, parts, path.name, jsonl=jsonl, noun="field", names=names)


def user_view(con: Connection, view: str, records: str, user_id: str, props: str) -> str | None:
    """Temp view `view` of the user properties of `records`: __rid, user_id and one column per top-level key of
    the JSON objects `props` (SQL over a record), named as the export has it; keys with one snake_case name
    (`Plan`, `plan`) share the column of the first. None when no record has user properties."""
    source = (f"(SELECT __rid, {user_id} AS user_id, {props} AS props FROM {records}) "
              "WHERE json_type(props) = 'OBJECT'")
    keys = con.execute(f"SELECT DISTINCT unnest(json_keys(props)) AS k FROM {source} ORDER BY k").fetchall()
    spellings: dict[str, list[int]] = {}  # stored column -> positions of its keys in `found`
    found: list[str] = []
    for (key,) in keys:
        if key and column_name(key) not in ("user_id", "signed_up_at") and key.lower() != "__rid":
            spellings.setdefault(column_name(key), []).append(len(found))
            found.append(key)
    if not spellings:
        return None
    paths = ", ".join(sql_literal(json_path(key)) for key in found)
    select = ", ".join(f"coalesce({', '.join(f'v[{i + 1}]' for i in group)}) AS {quote(found[group[0]])}"
                       for group in spellings.values())
    con.execute(f"CREATE TEMP TABLE {view}_rows AS SELECT __rid, user_id, {select} FROM (SELECT __rid, user_id, "
                f"json_extract_string(props, [{paths}]) AS v FROM {source}) ORDER BY __rid")
    con.execute(f"CREATE TEMP VIEW {view} AS SELECT * FROM {view}_rows")
    return view


def json_path(*keys: str) -> str:
    """JSONPath of nested object keys, each quoted: ('properties', '$os') -> $."properties"."$os"."""
    return "$" + "".join('."' + key.replace("\\", "\\\\").replace('"', '\\"') + '"' for key in keys)


def parsed_properties(properties: str, names: list[str]) -> str:
    """SQL parsing the JSON object `properties` once into a struct of the properties `names`, as text: the helper
    column `_p` that `prop` reads."""
    return f"json_transform({properties}, {sql_literal(json.dumps(dict.fromkeys(names, 'VARCHAR')))})"


def prop(name: str, fallback: str | None = None) -> str:
    """SQL: property `name` of the helper column `_p`, else its `fallback` property."""
    sql = f"_p[{sql_literal(name)}]"
    return f"coalesce({sql}, {prop(fallback)})" if fallback else sql


def json_object(column: str) -> str:
    """SQL: the JSON `column` of a record when it holds an object, else NULL."""
    return f"CASE WHEN json_type({quote(column)}) = 'OBJECT' THEN {quote(column)} END"
