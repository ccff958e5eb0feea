"""Import what teams export into a DuckDB analytics database, all or nothing (one module per format).

* `tables` - a folder with one file (or folder of parts) per table of the data model;
* `segment` - a Segment-spec JSONL file of `track` and `identify` calls;
* `events` - one wide events file (CSV, gzipped CSV, Parquet or JSON lines) with any column names;
* `amplitude`, `mixpanel`, `posthog`, `ga4` - those products' event exports.

`format="auto"` tells them apart by the files' names and their first record. The target database
is replaced only when everything loaded (see data.importers.core); `finish` runs last, in the same
write (the agent layer stores the event map there).
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable
from pathlib import Path

from data.importers.core import (
    FORMATS,
    Finish,
    ImportFailed,
    Progress,
    build,
    export_folder,
    inside,
    quiet,
    table_counts,
)
from data.importers.events import EventExport, load_events
from data.importers.segment import import_segment
from data.importers.tables import import_folder
from data.importers.wide import parse_columns

__all__ = ["EXPORT_FORMATS", "ImportFailed", "detect_format", "export_folder", "import_folder", "import_segment",
           "import_source", "table_counts"]

# export formats -> module staging them (each has `stage(con, path) -> EventExport`)
EXPORT_FORMATS: dict[str, str] = {"events": "data.importers.wide", "amplitude": "data.importers.amplitude",
                                  "mixpanel": "data.importers.mixpanel", "posthog": "data.importers.posthog",
                                  "ga4": "data.importers.ga4"}
ALL_FORMATS = ("tables", "segment", *EXPORT_FORMATS)


def import_source(source: str | Path, db: str | Path, *, format: str = "auto", columns: str | dict | None = None,
                  ts_format: str | None = None, progress: Progress = None, finish: Finish = None) -> dict[str, int]:
    """Import `source` into `db` (replacing its content); returns {table: row_count}.

    `columns` (`ts=created,user_id=uid` or a dict) and `ts_format` apply to event exports."""
    path = Path(source)
    if not path.exists():
        raise ImportFailed(f"{path} not found")
    fmt = detect_format(path) if format == "auto" else format
    if fmt not in ALL_FORMATS:
        raise ImportFailed(f"unknown format {format!r}; use auto or one of {', '.join(ALL_FORMATS)}")
    if (columns or ts_format) and fmt in ("tables", "segment"):
        raise ImportFailed(f"--columns and --ts-format apply to event exports, not to the {fmt} format")
    note = progress or quiet
    note(f"format: {fmt}")
    if fmt == "tables":
        return import_folder(path, db, progress=progress, finish=finish)
    if fmt == "segment":
        return import_segment(path, db, progress=progress, finish=finish)
    given = parse_columns(columns) if isinstance(columns, str) or columns is None else dict(columns)
    stager = _stager(fmt, given)

    def load(con) -> None:
        note(f"reading {path.name}")
        rows = load_events(con, stager(con, path), ts_format, note)
        note(f"loaded {rows:,} events")

    return build(Path(db), load, finish)


def _stager(fmt: str, columns: dict[str, str]) -> Callable[..., EventExport]:
    from importlib import import_module

    module = import_module(EXPORT_FORMATS[fmt])
    if fmt == "events":
        return lambda con, path: module.stage(con, path, columns)
    if columns:
        raise ImportFailed(f"--columns applies to a wide events file, not to the {fmt} export (its fields are known)")
    return module.stage


def detect_format(path: Path) -> str:
    """The format of a file or folder, from names and the first record; ImportFailed when none fits."""
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.is_file() and not p.name.startswith("."))
        stems = {p.name.split(".")[0] for p in files} | {p.name for p in path.iterdir() if p.is_dir()}
        if "events" in stems and "users" in stems:
            return "tables"
        records = sorted(p for p in path.rglob("*") if p.is_file() and _is_records(p) and not p.name.startswith("."))
        if records:  # an export folder (Amplitude unzips into <project id>/ with one file per hour)
            return _by_first_record(inside(path, records[0], records[0].relative_to(path).as_posix()))
        raise ImportFailed(f"cannot tell the format of folder {path}: expected users.* and events.* tables, or "
                           "export files (*.json.gz, *.jsonl, *.parquet); pass --format")
    if _is_records(path):
        return _by_first_record(path)
    if path.suffix.lower() in FORMATS or path.name.lower().endswith(".csv.gz"):
        return "events"
    raise ImportFailed(f"cannot tell the format of {path.name}: expected a folder of tables or an export file "
                       "(.csv, .csv.gz, .parquet, .jsonl, .json.gz); pass --format")


def _is_records(path: Path) -> bool:
    name = path.name.lower()
    return name.endswith((".jsonl", ".json", ".ndjson", ".jsonl.gz", ".json.gz", ".ndjson.gz", ".parquet"))


def _by_first_record(path: Path) -> str:
    """Tell an export format by the keys of its first record (JSON lines) or its columns (Parquet)."""
    if path.name.lower().endswith(".parquet"):
        import pyarrow.parquet as pq

        try:
            keys = set(pq.read_schema(path).names)
        except (OSError, ValueError) as err:
            raise ImportFailed(f"cannot read Parquet file: {err}", file=path.name) from err
        if {"event_name", "event_timestamp", "event_params"} <= keys:
            return "ga4"
        return "posthog" if {"uuid", "event", "distinct_id", "properties"} <= keys else "events"
    first = _first_json(path)
    keys = set(first)
    props = first.get("properties") if isinstance(first.get("properties"), dict) else {}
    segment_call = first.get("type") in {"track", "identify", "page", "screen", "group", "alias"}
    segment_keys = {"messageId", "event"} <= keys or {"event", "timestamp"} <= keys and keys & {"userId", "anonymousId"}
    if segment_call or segment_keys:
        return "segment"
    if "event_type" in keys and keys & {"$insert_id", "amplitude_id", "event_time"}:
        return "amplitude"
    if {"event_name", "event_timestamp", "event_params"} <= keys:
        return "ga4"
    if "event" in keys and {"time", "distinct_id"} & set(props) and "distinct_id" not in keys:
        return "mixpanel"
    if "event" in keys and "distinct_id" in keys and keys & {"uuid", "timestamp"}:
        return "posthog"
    return "events"


def _first_json(path: Path) -> dict:
    opener = gzip.open if path.suffix.lower() == ".gz" else open
    try:
        with opener(path, "rt", encoding="utf-8") as f:
            for number, line in enumerate(f, 1):
                if line.strip():
                    record = json.loads(line)
                    if not isinstance(record, dict):
                        raise ImportFailed("expected a JSON object", file=path.name, line=number)
                    return record
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ImportFailed(f"cannot read JSON lines: {err}", file=path.name) from err
    raise ImportFailed("the file is empty", file=path.name)
