"""Mixpanel raw event export: JSON lines `{"event": ..., "properties": {...}}` (also gzipped, or a folder of them).

Fields read, from the Raw Event Export API and Mixpanel's default properties (docs.mixpanel.com/reference/
raw-event-export, docs.mixpanel.com/docs/data-structure/property-reference/default-properties): `event`,
`properties.time` (epoch seconds, milliseconds with `time_in_ms`: told apart per record), `distinct_id` (else
`$user_id`, `$device_id`), `$insert_id`, `$os`, `$browser`, `$browser_version`, `mp_country_code`, `$region`,
`$city`, `$app_version_string` (else `$app_release`), `$device`, `$current_url` and `mp_lib`. Every other
property (custom ones, `$experiment_started`'s "Experiment name" and "Variant name") stays in `properties`.
The export has no session ids: data.importers.events cuts sessions. Times are taken as UTC (Mixpanel
projects created before 2023 may export them in the project's time zone; nothing in the export says so).
"""

from __future__ import annotations

import json
from pathlib import Path

from data.importers.core import Connection, sql_literal
from data.importers.events import EventExport
from data.importers.records import (
    Fields,
    json_object,
    parse_records,
    parsed_properties,
    prop,
    read_export,
    stage_view,
)

# column -> (property, fallback property or None); the properties (not the fallbacks) leave the properties JSON
CONTEXT = {"os": ("$os", None), "browser": ("$browser", None), "browser_version": ("$browser_version", None),
           "country": ("mp_country_code", None), "region": ("$region", None), "city": ("$city", None),
           "app_version": ("$app_version_string", "$app_release"), "device_model": ("$device", None),
           "current_url": ("$current_url", None), "library": ("mp_lib", None)}
_MAPPED = ["time", "distinct_id", "$insert_id", *(primary for primary, _ in CONTEXT.values())]
_READ = [*_MAPPED, "$user_id", "$device_id", *(fallback for _, fallback in CONTEXT.values() if fallback)]
_DROP = sql_literal(json.dumps(dict.fromkeys(_MAPPED)))  # a JSON merge patch removing them
_TIME = f"TRY_CAST({prop('time')} AS DOUBLE)"
FIELDS: Fields = {
    "_p": ("properties", parsed_properties("properties", _READ)),
    # milliseconds (newer exports) become seconds, so both units can meet in one import
    "ts": ("properties.time", f"CASE WHEN {_TIME} >= 1e11 THEN CAST({_TIME} / 1000 AS VARCHAR) "
                              f"ELSE {prop('time')} END"),
    "user_id": ("properties.distinct_id", f"coalesce(nullif({prop('distinct_id')}, ''), {prop('$user_id')}, "
                                          f"{prop('$device_id')})"),
    "event": ("event", "event"),
    "event_id": ("properties.$insert_id", prop("$insert_id")),
    "properties": ("properties", f"json_merge_patch({json_object('properties')}, {_DROP})"),
    **{column: (f"properties.{name}", prop(name, fallback)) for column, (name, fallback) in CONTEXT.items()},
}


def stage(con: Connection, path: Path) -> EventExport:
    """Stage a Mixpanel export (a JSON lines file or a folder of them) as data.importers.events expects."""
    parts, jsonl = read_export(con, "mixpanel_raw", path)
    parse_records(con, "mixpanel_records", "mixpanel_raw", {"event": "VARCHAR", "properties": "JSON"})
    staged = stage_view(con, "mixpanel_events", "mixpanel_records", FIELDS, parts, path, jsonl)
    return EventExport(staged, dedupe=True)
