"""One wide events file, with whatever column names a team's warehouse gave it.

CSV (also gzipped), Parquet or JSON lines. The core columns are found by their common names
(`timestamp`, `time`, `event_time`... for the time; `user_id`, `distinct_id`, `uid`, `client_id`...
for the user; `event`, `event_name`, `event_type`... for the event; `session_id`; an event id),
or named with `columns` (`{"ts": "created", "user_id": "uid"}`, from `--columns ts=created,...`).
Every other column is kept under its snake_case name, with the narrowest type its values fit.
"""

from __future__ import annotations

import csv
import gzip
import io
from pathlib import Path

from data.importers.core import (
    Connection,
    ImportFailed,
    Staged,
    clip,
    column_name,
    file_sql,
    load_jsonl,
    quote,
    reading,
    sql_literal,
)
from data.importers.events import EventExport

# canonical column -> the names it usually has (compared in snake_case), most telling first
ALIASES: dict[str, tuple[str, ...]] = {
    "ts": ("ts", "timestamp", "event_timestamp", "event_time", "time", "datetime", "date_time", "event_datetime",
           "occurred_at", "created_at", "timestamp_utc", "time_utc", "event_date_time", "date"),
    "user_id": ("user_id", "userid", "distinct_id", "uid", "user_pseudo_id", "client_id", "customer_id",
                "visitor_id", "anonymous_id", "person_id", "member_id", "account_id", "device_id", "user"),
    "event": ("event", "event_name", "event_type", "eventname", "event_action", "action", "name", "type"),
    "session_id": ("session_id", "sessionid", "ga_session_id", "visit_id", "session"),
    "event_id": ("event_id", "eventid", "insert_id", "message_id", "uuid", "id"),
}


def parse_columns(text: str | None) -> dict[str, str]:
    """`ts=created,user_id=uid` -> {"ts": "created", "user_id": "uid"}; ImportFailed names a bad pair."""
    out: dict[str, str] = {}
    for pair in filter(None, (p.strip() for p in (text or "").split(","))):
        key, sep, value = pair.partition("=")
        if not sep or not value.strip():
            raise ImportFailed(f"--columns {pair!r}: use name=column, e.g. ts=created_at")
        if key.strip() not in ALIASES:
            raise ImportFailed(f"--columns {pair!r}: {key.strip()!r} is not one of {', '.join(ALIASES)}")
        out[key.strip()] = value.strip()
    return out


def stage(con: Connection, path: Path, columns: dict[str, str] | None = None) -> EventExport:
    """Stage the file's rows as the flat events view of data.importers.events."""
    name = path.name
    kind = _kind(path)
    if kind == "jsonl":
        con.execute("CREATE TEMP TABLE wide_json (json JSON)")
        load_jsonl(con, "wide_json", path, name)
        keys = [k for (k,) in con.execute("SELECT DISTINCT unnest(json_keys(json)) FROM wide_json").fetchall()]
        keys = sorted(keys)
        cols = ", ".join(f"CASE WHEN json_type(json, {sql_literal('$.' + _json_key(k))}) IN ('OBJECT', 'ARRAY') "
                         f"THEN CAST(json_extract(json, {sql_literal('$.' + _json_key(k))}) AS VARCHAR) "
                         f"ELSE json_extract_string(json, {sql_literal('$.' + _json_key(k))}) END AS {quote(k)}"
                         for k in keys)
        con.execute(f"CREATE TEMP TABLE wide_raw AS SELECT {cols} FROM wide_json ORDER BY rowid")
    else:
        source = f"read_parquet({file_sql(path)})" if kind == "parquet" else _csv_source(path)
        with reading(path, name, "parquet" if kind == "parquet" else "csv"):
            con.execute(f"CREATE TEMP TABLE wide_raw AS SELECT * FROM {source}")
    present = [r[0] for r in con.execute("DESCRIBE wide_raw").fetchall()]
    chosen = _core_columns(present, columns or {}, name)
    renamed = {v: k for k, v in chosen.items()}
    taken = set(chosen)
    select = []
    for col in present:
        target = renamed.get(col)
        if target is None:
            target = column_name(col)
            while target in taken or target in ALIASES or target == "properties" and col != "properties":
                target = f"{target}_2"
        taken.add(target)
        select.append(f"{quote(col)} AS {quote(target)}")
    con.execute(f"CREATE TEMP VIEW wide_events AS SELECT rowid AS __rid, {', '.join(select)} FROM wide_raw")
    staged = Staged("events", "wide_events", {}, [(path, name, 0)], name, jsonl=kind == "jsonl", names=dict(chosen))
    return EventExport(staged)


def _kind(path: Path) -> str:
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes[-1:] == [".parquet"]:
        return "parquet"
    if any(s in (".jsonl", ".json", ".ndjson") for s in suffixes[-2:]):
        return "jsonl"
    return "csv"


def _json_key(key: str) -> str:
    return '"' + key.replace('"', '\\"') + '"'


def _csv_source(path: Path) -> str:
    """read_csv of every column as text, in the strict dialect (gzip read from the file name)."""
    columns = ", ".join(f"{sql_literal(c)}: 'VARCHAR'" for c in _csv_header(path))
    return (f"read_csv({file_sql(path)}, header = true, auto_detect = false, delim = ',', quote = '\"', "
            f"escape = '\"', columns = {{{columns}}})")


def _csv_header(path: Path) -> list[str]:
    """The header of a CSV file, gzipped or not; ImportFailed names a file that has none."""
    opener = gzip.open if path.suffix.lower() == ".gz" else open
    try:
        with opener(path, "rb") as raw:
            first = raw.readline(1 << 20)
        header = next(csv.reader(io.StringIO(first.decode("utf-8-sig"))), [])
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise ImportFailed(f"cannot read the CSV header: {err}", file=path.name, line=1) from err
    if not header:
        raise ImportFailed("the file is empty (no CSV header)", file=path.name, line=1)
    for i, column in enumerate(header):
        if column in header[:i]:
            raise ImportFailed("the column appears twice in the header", file=path.name, column=column)
    return header


def _core_columns(present: list[str], given: dict[str, str], name: str) -> dict[str, str]:
    """canonical column -> the file's column: those given, else the first alias present."""
    by_snake = {column_name(c): c for c in reversed(present)}
    out: dict[str, str] = {}
    for core, aliases in ALIASES.items():
        if core in given:
            if given[core] not in present:
                raise ImportFailed(f"--columns {core}={given[core]}: no such column; columns: "
                                   f"{clip(', '.join(present), 200)}", file=name)
            out[core] = given[core]
            continue
        found = next((by_snake[a] for a in aliases if a in by_snake and by_snake[a] not in out.values()), None)
        if found is not None:
            out[core] = found
    for core in ("ts", "user_id", "event"):
        if core not in out:
            raise ImportFailed(f"no {core} column found among {clip(', '.join(present), 200)}; name it with --columns "
                               f"{core}=<column>", file=name)
    return out
