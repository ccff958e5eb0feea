"""PostHog events, as its batch export writes them to files (events model, JSON lines): `events.jsonl`.

Fields: `uuid`, `event`, `distinct_id` (the canonical user id), `person_id` (a UUID per user),
`timestamp` and `created_at` (ISO 8601 with '+00:00', µs), `properties` and `person_properties`
(objects; {plan, acquisition_channel}). Event properties follow the SDKs: `$os` ('Windows',
'Mac OS X', 'Linux', 'iOS', 'Android'), `$browser` (web: 'Chrome', 'Safari', 'Firefox',
'Microsoft Edge'), `$device_type` ('Desktop' | 'Mobile'), `$lib` ('web' | 'posthog-ios' |
'posthog-android'), `$current_url` and `$pathname` (web) or `$screen_name` (apps), `$session_id`
(a UUID per session), `$app_version` (apps), `$geoip_country_code` (ISO-2) and
`$geoip_country_name`, plus custom `platform` ('web' | 'ios' | 'android', a super property:
PostHog has no platform field), `product_id`, `category`, `price`, `search_query`, `results_count`,
`page_load_ms`, `revenue`, `quantity` and the event's own properties. Page views are `$pageview`;
errors are `$exception` with the error code as `$exception_type` and `$exception_message`; the
mobile SDKs' `Application Opened` is kept; exposures are `$feature_flag_called` with `$feature_flag`
(experiment id) and `$feature_flag_response` (variant).
"""

from __future__ import annotations

from pathlib import Path

import duckdb

from data.renderers import (
    APP_PLATFORMS,
    COUNTRY_NAMES,
    SAME_DIMENSIONS,
    SDK_NAMES,
    case,
    compact,
    copy,
    lit,
    page_url,
    uuid,
)

FILE = "events.jsonl"
EVENTS = {
    "Application Opened": "Application Opened",
    "Signed Up": "signed_up",
    "Page Viewed": "$pageview",
    "Products Searched": "searched",
    "Search Result Clicked": "search_result_clicked",
    "Product Viewed": "product_viewed",
    "Product Added": "added_to_cart",
    "Cart Viewed": "cart_viewed",
    "Checkout Started": "checkout_started",
    "Payment Info Entered": "payment_info_entered",
    "Order Completed": "order_placed",
    "Error Shown": "$exception",
}
EXPOSURE = "$feature_flag_called"
LIBRARY = {"web": "web", "ios": "posthog-ios", "android": "posthog-android"}
VALUES = SDK_NAMES
DIMENSIONS = SAME_DIMENSIONS

TIME = "'%Y-%m-%dT%H:%M:%S.%f+00:00'"
WEB = "platform = 'web'"
PROPERTIES = compact(
    ("$os", case("os", VALUES["os"])), ("$browser", case("browser", VALUES["browser"])),
    ("$device_type", f"CASE WHEN platform IN {APP_PLATFORMS} THEN 'Mobile' WHEN {WEB} THEN 'Desktop' END"),
    ("$lib", case("platform", LIBRARY)),
    ("$current_url", f"CASE WHEN {WEB} THEN {page_url()} END"),
    ("$pathname", f"CASE WHEN {WEB} THEN CASE page WHEN 'home' THEN '/' ELSE '/' || page END END"),
    ("$screen_name", f"CASE WHEN platform IN {APP_PLATFORMS} THEN page END"),
    ("$session_id", uuid("session_id")), ("$app_version", "app_version"),
    ("$geoip_country_code", "country"), ("$geoip_country_name", case("country", COUNTRY_NAMES)),
    ("platform", "platform"), ("product_id", "product_id"), ("category", "category"), ("price", "price"),
    ("search_query", "search_query"), ("results_count", "results_count"), ("page_load_ms", "load_time_ms"),
    ("revenue", "revenue"), ("quantity", "quantity"),
    ("$exception_type", "error_code"), ("$exception_message", "error_code"),
    ("$feature_flag", "experiment_id"), ("$feature_flag_response", "variant"),
)

SELECT = f"""SELECT
    seq,
    {uuid("'event:' || event_id")} AS uuid,
    coalesce({case('event', EVENTS)}, {lit(EXPOSURE)}) AS event,
    user_id AS distinct_id,
    {uuid("'person:' || user_id")} AS person_id,
    strftime(ts, {TIME}) AS "timestamp",
    json_merge_patch({PROPERTIES}, coalesce(properties, '{{}}')) AS properties,
    {compact(("plan", "plan"), ("acquisition_channel", "acquisition_channel"))} AS person_properties,
    strftime(ts, {TIME}) AS created_at
FROM render_rows"""


def write(con: duckdb.DuckDBPyConnection, folder: Path) -> None:
    copy(con, SELECT, folder / FILE, "FORMAT json")
