"""Amplitude Export API: gzipped JSON lines files (the API's zip archive, unpacked), one event object a line.

Fields read, from the Export API response schema (amplitude.com/docs/apis/analytics/export): `event_type`,
`user_id` (else `device_id`), `event_time` (UTC 'YYYY-MM-DD HH:MM:SS.ffffff'), `session_id` (epoch ms of the
session start, -1 for none), `$insert_id` (else `uuid`), `event_properties`, `user_properties`, `platform`,
`os_name`, `os_version`, `device_type`, `device_model`, `country`, `region`, `city`, `language`,
`version_name`, `library` and `user_creation_time`. Experiment exposures (`$exposure`) are ordinary events.
"""

from __future__ import annotations

from pathlib import Path

from data.importers.core import Connection, quote
from data.importers.events import EventExport
from data.importers.records import Fields, json_object, parse_records, read_export, stage_view, user_view

CONTEXT = {"platform": "platform", "device_type": "device_type", "country": "country", "region": "region",
           "city": "city", "language": "language", "app_version": "version_name", "library": "library"}
# Amplitude's Browser SDK writes the browser in os_name (and its version in os_version) and the operating
# system in device_model; the mobile SDKs write the OS in os_name and the device in device_model.
_WEB = "lower(platform) = 'web'"
DEVICE = {"os": f"CASE WHEN {_WEB} THEN device_model ELSE os_name END",
          "os_version": f"CASE WHEN {_WEB} THEN NULL ELSE os_version END",
          "browser": f"CASE WHEN {_WEB} THEN os_name END",
          "browser_version": f"CASE WHEN {_WEB} THEN os_version END",
          "device_model": f"CASE WHEN {_WEB} THEN NULL ELSE device_model END"}
RECORD = {**dict.fromkeys(("event_type", "event_time", "user_id", "device_id", "$insert_id", "uuid", "session_id",
                           "user_creation_time", "os_name", "os_version", "device_model", *CONTEXT.values()),
                          "VARCHAR"),
          "event_properties": "JSON", "user_properties": "JSON"}
_USER = "coalesce(nullif(user_id, ''), device_id)"
FIELDS: Fields = {
    "ts": ("event_time", "event_time"),
    "user_id": ("user_id", _USER),
    "event": ("event_type", "event_type"),
    "event_id": ("$insert_id", 'coalesce("$insert_id", uuid)'),
    "session_id": ("session_id", f"CASE WHEN session_id <> '-1' THEN {_USER} || '#' || session_id END"),
    "properties": ("event_properties", json_object("event_properties")),
    "first_seen": ("user_creation_time", "coalesce(user_creation_time, event_time)"),
    **{column: (field, quote(field)) for column, field in CONTEXT.items()},
    **{column: ("os_name" if "os" in column or column.startswith("browser") else "device_model", sql)
       for column, sql in DEVICE.items()},
}


def stage(con: Connection, path: Path) -> EventExport:
    """Stage an Amplitude export (a .json.gz file or a folder of them) as data.importers.events expects."""
    parts, jsonl = read_export(con, "amplitude_raw", path)
    parse_records(con, "amplitude_records", "amplitude_raw", RECORD)
    users = user_view(con, "amplitude_users", "amplitude_records", _USER, "user_properties")
    staged = stage_view(con, "amplitude_events", "amplitude_records", FIELDS, parts, path, jsonl)
    return EventExport(staged, users=users, first_seen="first_seen", dedupe=True)
