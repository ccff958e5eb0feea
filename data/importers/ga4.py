"""GA4 BigQuery export: the `events_YYYYMMDD` tables as JSON lines (BigQuery's JSON export, INT64 as text) or
Parquet, a file or a folder of them.

Fields read, from the GA4 BigQuery Export schema (developers.google.com/analytics/bigquery/event-schema):
`event_name`, `event_timestamp` (µs), `user_id` (else `user_pseudo_id`), `event_params` (repeated {key, value:
{string_value, int_value, float_value, double_value}}) with `ga_session_id`, `user_properties` (same, plus
set_timestamp_micros), `user_first_touch_timestamp` (µs), `device.category`, `.operating_system`,
`.operating_system_version`, `.mobile_model_name`, `.language`, `.web_info.browser`, `.web_info.browser_version`,
`geo.country`, `.region`, `.city`, `app_info.version`, `platform`, `traffic_source.medium`, `.source`, `.name`,
`ecommerce.purchase_revenue` (else `.purchase_revenue_in_usd`), `ecommerce.transaction_id` and `items`.
A session is `user_pseudo_id#ga_session_id`; the export has no event id (data.importers.events hashes the row).
"""

from __future__ import annotations

from pathlib import Path

from data.importers.core import Connection, quote
from data.importers.events import EventExport
from data.importers.records import Fields, parse_records, read_export, stage_view, user_view

_VALUE = {"string_value": "VARCHAR", "int_value": "BIGINT", "float_value": "DOUBLE", "double_value": "DOUBLE"}
_PARAMS = [{"key": "VARCHAR", "value": _VALUE}]
# events column -> path of the field in the record
CONTEXT = {"platform": ("platform",), "device_type": ("device", "category"), "os": ("device", "operating_system"),
           "os_version": ("device", "operating_system_version"), "device_model": ("device", "mobile_model_name"),
           "browser": ("device", "web_info", "browser"), "browser_version": ("device", "web_info", "browser_version"),
           "language": ("device", "language"), "country": ("geo", "country"), "region": ("geo", "region"),
           "city": ("geo", "city"), "app_version": ("app_info", "version"),
           "traffic_source_medium": ("traffic_source", "medium"), "traffic_source_source": ("traffic_source", "source"),
           "traffic_source_name": ("traffic_source", "name"), "transaction_id": ("ecommerce", "transaction_id")}


def _structure() -> dict:
    """The json_transform structure of the fields read."""
    record: dict = {**dict.fromkeys(("event_name", "event_timestamp", "user_id", "user_pseudo_id",
                                     "user_first_touch_timestamp"), "VARCHAR"),
                    "event_params": _PARAMS, "user_properties": _PARAMS, "items": "JSON"}
    for path in CONTEXT.values():
        node = record
        for key in path[:-1]:
            node = node.setdefault(key, {})
        node[path[-1]] = "VARCHAR"
    record.setdefault("ecommerce", {}).update(purchase_revenue="DOUBLE", purchase_revenue_in_usd="DOUBLE")
    return record


def _field(*path: str) -> str:
    """SQL: the field at `path` of a parsed record."""
    return quote(path[0]) + "".join(f"['{key}']" for key in path[1:])


def _value(p: str) -> str:
    """SQL: the value that is set of a {key, value} record `p`, as JSON."""
    return f"coalesce({', '.join(f'to_json({p}.value.{name})' for name in _VALUE)})"


def _flat(column: str) -> str:
    """SQL: the repeated {key, value} `column` as one JSON object {key: the value that is set}."""
    pairs = f"list_transform({quote(column)}, lambda p: to_json(p.key) || ':' || coalesce({_value('p')}, 'null'))"
    return f"CAST('{{' || array_to_string({pairs}, ',') || '}}' AS JSON)"


_USER = "coalesce(nullif(user_id, ''), user_pseudo_id)"
# experience_impression's exp_variant_string is '<vendor>-<experiment id>-<variant id>' (GA4's documented format)
_EXP_PARAM = _value("list_filter(event_params, lambda p: p.key = 'exp_variant_string')[1]")
_EXP = f"json_extract_string({_EXP_PARAM}, '$')"
_SESSION = _value("list_filter(event_params, lambda p: p.key = 'ga_session_id')[1]")
FIELDS: Fields = {
    "ts": ("event_timestamp", "event_timestamp"),
    "user_id": ("user_id", _USER),
    "event": ("event_name", "event_name"),
    "session_id": ("event_params.ga_session_id", f"user_pseudo_id || '#' || json_extract_string({_SESSION}, '$')"),
    "properties": ("event_params", _flat("event_params")),
    "first_seen": ("user_first_touch_timestamp", "coalesce(user_first_touch_timestamp, event_timestamp)"),
    **{column: (".".join(path), _field(*path)) for column, path in CONTEXT.items()},
    "purchase_revenue": ("ecommerce.purchase_revenue",
                         "coalesce(ecommerce['purchase_revenue'], ecommerce['purchase_revenue_in_usd'])"),
    "items": ("items", "CASE WHEN json_array_length(items) > 0 THEN items END"),
    "experiment_id": ("event_params.exp_variant_string", f"nullif(split_part({_EXP}, '-', 2), '')"),
    "variant_id": ("event_params.exp_variant_string", f"nullif(split_part({_EXP}, '-', 3), '')"),
}


def stage(con: Connection, path: Path) -> EventExport:
    """Stage a GA4 export (events_YYYYMMDD files, or a folder of them) as data.importers.events expects."""
    parts, jsonl = read_export(con, "ga4_raw", path)
    parse_records(con, "ga4_records", "ga4_raw", _structure())
    users = user_view(con, "ga4_users", "ga4_records", _USER, _flat("user_properties"))
    return EventExport(stage_view(con, "ga4_events", "ga4_records", FIELDS, parts, path, jsonl), users=users,
                       first_seen="first_seen")
