"""Mixpanel raw event export: JSON lines, `export.jsonl`, each `{"event": name, "properties": {...}}`.

`time` is epoch SECONDS (the export's default; `time_in_ms` is off), so events keep second precision.
Properties rendered: `time`, `distinct_id` (the canonical user id, as after identify), `$insert_id`,
`$user_id`, `$device_id`, `mp_lib` ('web' | 'swift' | 'android'), `$os` ('Windows', 'Mac OS X',
'Linux', 'iOS', 'Android'), `$browser` (web: 'Chrome', 'Safari', 'Firefox', 'Microsoft Edge'),
`$current_url` (web), `$app_version_string` (apps), `mp_country_code` (ISO-2), and custom
properties: `Platform` ('web' | 'ios' | 'android', a super property: Mixpanel has no platform
field), `Plan` and `Acquisition Channel` (user attributes as super properties), `Screen` (apps),
`Product ID`, `Category`, `Price`, `Search Term`, `Results Count`, `Error Code`, `Load Time (ms)`,
`Revenue`, `Quantity` and the event's own properties. Mixpanel exports no session id. Exposures
are `$experiment_started` with "Experiment name" (the experiment id) and "Variant name".
"""

from __future__ import annotations

from pathlib import Path

import duckdb

from data.renderers import APP_PLATFORMS, SAME_DIMENSIONS, SDK_NAMES, case, compact, copy, lit, page_url, uuid

FILE = "export.jsonl"
EVENTS = {
    "Application Opened": "appOpened",
    "Signed Up": "signedUp",
    "Page Viewed": "$mp_web_page_view",
    "Products Searched": "searchPerformed",
    "Search Result Clicked": "searchResultClicked",
    "Product Viewed": "productViewed",
    "Product Added": "addToCart",
    "Cart Viewed": "cartViewed",
    "Checkout Started": "checkoutStarted",
    "Payment Info Entered": "paymentInfoEntered",
    "Order Completed": "orderCompleted",
    "Error Shown": "errorShown",
}
EXPOSURE = "$experiment_started"
LIBRARY = {"web": "web", "ios": "swift", "android": "android"}
VALUES = SDK_NAMES
DIMENSIONS = SAME_DIMENSIONS

PROPERTIES = compact(
    ("time", "epoch_us(ts) // 1000000"), ("distinct_id", "user_id"), ("$insert_id", "md5(event_id)"),
    ("$user_id", "user_id"), ("$device_id", uuid("user_id")), ("mp_lib", case("platform", LIBRARY)),
    ("$os", case("os", VALUES["os"])), ("$browser", case("browser", VALUES["browser"])),
    ("$current_url", f"CASE WHEN platform = 'web' THEN {page_url()} END"),
    ("$app_version_string", "app_version"),
    ("mp_country_code", "country"), ("Platform", "platform"), ("Plan", "plan"),
    ("Acquisition Channel", "acquisition_channel"), ("Screen", f"CASE WHEN platform IN {APP_PLATFORMS} THEN page END"),
    ("Product ID", "product_id"), ("Category", "category"), ("Price", "price"), ("Search Term", "search_query"),
    ("Results Count", "results_count"), ("Error Code", "error_code"), ("Load Time (ms)", "load_time_ms"),
    ("Revenue", "revenue"), ("Quantity", "quantity"),
    ("Experiment name", "experiment_id"), ("Variant name", "variant"),
)

SELECT = f"""SELECT
    seq,
    coalesce({case('event', EVENTS)}, {lit(EXPOSURE)}) AS event,
    json_merge_patch({PROPERTIES}, coalesce(properties, '{{}}')) AS properties
FROM render_rows"""


def write(con: duckdb.DuckDBPyConnection, folder: Path) -> None:
    copy(con, SELECT, folder / FILE, "FORMAT json")
