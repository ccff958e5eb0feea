"""Amplitude Export API output: a folder of gzipped JSON lines, one file per UTC day (`<app>_<YYYY-MM-DD>#0.json.gz`).

The Export API zips one file per hour; a day per file keeps the folder small, the lines are the same.
Each line has the documented response fields: `$insert_id`, `app`, `amplitude_id` (per user),
`uuid`, `event_id` (per-user counter), `event_type`, `event_time`, `client_event_time` and
`server_upload_time` ('YYYY-MM-DD HH:MM:SS.ffffff', UTC), `user_id` (the canonical id), `device_id`,
`session_id` (epoch MILLISECONDS of the session start; -1 outside a session), `event_properties`,
`user_properties` {plan, acquisitionChannel}, `platform` ('Web'|'iOS'|'Android'), `os_name`,
`os_version`, `device_model`, `device_family`, `device_type`, `country` (English name),
`version_name` (apps only), `library` and `user_creation_time` (signup). Documented fields we have
no data for are null.

As the Browser SDK documents it, a Web event's `os_name` is the BROWSER name and its operating system
is in `device_model` ('Windows', 'Mac OS', 'Linux'); the mobile SDKs write `os_name` 'ios' / 'android'.
So after import: browser = os_name on Web, os = device_model on Web and os_name on the apps.

Event properties: `page`, `product_id`, `category`, `price`, `query`, `result_count`, `error_code`,
`load_time`, the revenue properties `$revenue`, `$price`, `$quantity`, `$productId` on orders, and the
event's own properties. Exposures are Amplitude Experiment's `$exposure` event with `flag_key`
(experiment id) and `variant`.
"""

from __future__ import annotations

from pathlib import Path

import duckdb

from data.renderers import COUNTRY_NAMES, SAME_DIMENSIONS, case, compact, copy_by_day, lit, uuid

FILE = None
APP_ID = 187520
EVENTS = {
    "Application Opened": "[Amplitude] Application Opened",
    "Signed Up": "Sign Up",
    "Page Viewed": "[Amplitude] Page Viewed",
    "Products Searched": "Search",
    "Search Result Clicked": "Select Search Result",
    "Product Viewed": "View Product",
    "Product Added": "Add To Cart",
    "Cart Viewed": "View Cart",
    "Checkout Started": "Start Checkout",
    "Payment Info Entered": "Enter Payment Info",
    "Order Completed": "Complete Purchase",
    "Error Shown": "Error",
}
EXPOSURE = "$exposure"
BROWSER = {"chrome": "Chrome", "safari": "Safari", "firefox": "Firefox", "edge": "Edge"}
WEB_OS = {"windows": "Windows", "macos": "Mac OS", "linux": "Linux"}
FAMILY = {"windows": "Windows", "macos": "Mac", "linux": "Linux", "ios": "Apple iPhone", "android": "Android"}
LIBRARY = {"web": "amplitude-ts/2.11.0", "ios": "amplitude-swift/1.14.0",
           "android": "amplitude-analytics-android/1.19.0"}
VALUES = {
    "platform": {"web": "Web", "ios": "iOS", "android": "Android"},
    "os": WEB_OS,
    "browser": BROWSER,
    "country": COUNTRY_NAMES,
}
DIMENSIONS = SAME_DIMENSIONS

TIME = "'%Y-%m-%d %H:%M:%S.%f'"
EVENT_PROPERTIES = compact(
    ("page", "page"), ("product_id", "product_id"), ("category", "category"), ("price", "price"),
    ("query", "search_query"), ("result_count", "results_count"), ("error_code", "error_code"),
    ("load_time", "load_time_ms"), ("$revenue", "revenue"),
    ("$price", "CASE WHEN revenue IS NOT NULL THEN price END"), ("$quantity", "quantity"),
    ("$productId", "CASE WHEN revenue IS NOT NULL THEN product_id END"),
    ("flag_key", "experiment_id"), ("variant", "variant"),
)

SELECT = f"""SELECT
    seq,
    md5(event_id) AS "$insert_id",
    {APP_ID} AS app,
    1000000000 + dense_rank() OVER (ORDER BY user_id) AS amplitude_id,
    {uuid("'uuid:' || event_id")} AS uuid,
    row_number() OVER (PARTITION BY user_id ORDER BY seq) AS event_id,
    coalesce({case('event', EVENTS)}, {lit(EXPOSURE)}) AS event_type,
    strftime(ts, {TIME}) AS event_time,
    strftime(ts, {TIME}) AS client_event_time,
    strftime(ts, {TIME}) AS server_upload_time,
    user_id,
    {uuid('user_id')} AS device_id,
    coalesce(epoch_us(session_start) // 1000, -1) AS session_id,
    json_merge_patch({EVENT_PROPERTIES}, coalesce(properties, '{{}}')) AS event_properties,
    {compact(("plan", "plan"), ("acquisitionChannel", "acquisition_channel"))} AS user_properties,
    {case('platform', VALUES['platform'])} AS platform,
    CASE WHEN platform = 'web' THEN {case('browser', BROWSER)} ELSE os END AS os_name,
    NULL::VARCHAR AS os_version,
    CASE WHEN platform = 'web' THEN {case('os', WEB_OS)} END AS device_model,
    {case('os', FAMILY)} AS device_family,
    {case('os', FAMILY)} AS device_type,
    {case('country', COUNTRY_NAMES)} AS country,
    app_version AS version_name,
    {case('platform', LIBRARY)} AS library,
    strftime(signed_up_at, {TIME}) AS user_creation_time
FROM render_rows"""


def write(con: duckdb.DuckDBPyConnection, folder: Path) -> None:
    """One gzipped JSON-lines file per UTC day."""
    copy_by_day(con, SELECT, folder, f"{APP_ID}_{{day:%Y-%m-%d}}#0.json.gz", "FORMAT json")
