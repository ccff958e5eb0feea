"""PostHog events from a batch export (S3 or file download): JSON lines, also gzipped, or Parquet; or a folder.

Fields read, from the events model of PostHog's batch exports (posthog.com/docs/data-pipelines/batch-exports/s3)
and its default event properties (posthog.com/docs/data/events): `uuid`, `event`, `distinct_id`, `timestamp`
(ISO 8601, UTC), `properties` (an object in JSON lines, JSON-encoded text in Parquet) with `$session_id`, `$os`,
`$browser`, `$browser_version`, `$device_type`, `$geoip_country_code` (else `$geoip_country_name`),
`$app_version`, `$current_url` and `$lib`, and `person_properties` (the person at ingestion) as user
properties. Other properties stay in `properties`. Batch exports identify each event by a UUID that "can be
used for de-duplication" (posthog.com/docs/cdp/batch-exports): repeats of a uuid are one event delivered twice.
"""

from __future__ import annotations

import json
from pathlib import Path

from data.importers.core import Connection, quote, sql_literal
from data.importers.events import EventExport
from data.importers.records import Fields, parse_records, parsed_properties, prop, read_export, stage_view, user_view

# column -> (property, fallback property or None); the properties (not the fallbacks) leave the properties JSON
CONTEXT = {"session_id": ("$session_id", None), "os": ("$os", None), "browser": ("$browser", None),
           "browser_version": ("$browser_version", None), "device_type": ("$device_type", None),
           "country": ("$geoip_country_code", "$geoip_country_name"), "app_version": ("$app_version", None),
           "current_url": ("$current_url", None), "library": ("$lib", None)}
_READ = [name for pair in CONTEXT.values() for name in pair if name]
_DROP = sql_literal(json.dumps(dict.fromkeys(primary for primary, _ in CONTEXT.values())))
RECORD = {**dict.fromkeys(("uuid", "event", "distinct_id", "timestamp"), "VARCHAR"), "properties": "JSON",
          "person_properties": "JSON"}


def _object(column: str) -> str:
    """SQL: the record's JSON `column` as an object, whether written as one or as JSON-encoded text (Parquet)."""
    c = quote(column)
    decoded = f"TRY_CAST(json_extract_string({c}, '$') AS JSON)"
    return (f"CASE json_type({c}) WHEN 'OBJECT' THEN {c} WHEN 'VARCHAR' THEN "
            f"CASE WHEN json_type({decoded}) = 'OBJECT' THEN {decoded} END END")


_USER = "nullif(distinct_id, '')"
FIELDS: Fields = {
    "_props": ("properties", _object("properties")),
    "_p": ("properties", parsed_properties("_props", _READ)),
    "ts": ("timestamp", quote("timestamp")),
    "user_id": ("distinct_id", _USER),
    "event": ("event", "event"),
    "event_id": ("uuid", "uuid"),
    "properties": ("properties", f"json_merge_patch(_props, {_DROP})"),
    **{column: (f"properties.{name}", prop(name, fallback)) for column, (name, fallback) in CONTEXT.items()},
}


def stage(con: Connection, path: Path) -> EventExport:
    """Stage a PostHog events export (a file or a folder of them) as data.importers.events expects."""
    parts, jsonl = read_export(con, "posthog_raw", path)
    parse_records(con, "posthog_records", "posthog_raw", RECORD)
    users = user_view(con, "posthog_users", "posthog_records", _USER, _object("person_properties"))
    staged = stage_view(con, "posthog_events", "posthog_records", FIELDS, parts, path, jsonl)
    return EventExport(staged, users=users, dedupe=True)
