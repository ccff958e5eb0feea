"""A team's own warehouse export: ONE gzipped CSV, `events.csv.gz`, one wide row per event.

No users file, no event id, no session id: user attributes are repeated on every row. Columns:
`timestamp` (ISO 8601 UTC with a 'Z' suffix, µs), `uid` (the canonical user id), `event_name`
(snake_case), `device_platform`, `device_os`, `app_build_version` (iOS/Android rows only),
`browser_name` (web rows only), `geo_country` (ISO-2), `user_plan`, `signup_channel`, `page_name`,
`product_id`, `product_category`, `price`, `order_value` (revenue, on orders), `query`, `num_results`,
`error_code`, `load_ms`, and for experiment exposures (event `experiment_exposure`)
`experiment_key` and `experiment_variant`. Empty fields are NULL.
"""

from __future__ import annotations

from pathlib import Path

import duckdb

from data.renderers import case, copy, lit

FILE = "events.csv.gz"
EVENTS = {
    "Application Opened": "app_open",
    "Signed Up": "sign_up",
    "Page Viewed": "page_view",
    "Products Searched": "search_performed",
    "Search Result Clicked": "search_result_clicked",
    "Product Viewed": "product_view",
    "Product Added": "add_to_cart",
    "Cart Viewed": "cart_view",
    "Checkout Started": "checkout_started",
    "Payment Info Entered": "payment_info_entered",
    "Order Completed": "purchase_success",
    "Error Shown": "error_shown",
}
EXPOSURE = "experiment_exposure"
VALUES = {
    "os": {"windows": "Windows", "macos": "macOS", "linux": "Linux", "ios": "iOS", "android": "Android"},
    "browser": {"chrome": "Chrome", "safari": "Safari", "firefox": "Firefox", "edge": "Edge"},
}
DIMENSIONS = {"platform": "device_platform", "os": "device_os", "app_version": "app_build_version",
              "browser": "browser_name", "country": "geo_country", "acquisition_channel": "signup_channel",
              "plan": "user_plan"}

SELECT = f"""SELECT
    seq,
    strftime(ts, '%Y-%m-%dT%H:%M:%S.%fZ') AS "timestamp",
    user_id AS uid,
    coalesce({case('event', EVENTS)}, {lit(EXPOSURE)}) AS event_name,
    platform AS device_platform,
    {case('os', VALUES['os'])} AS device_os,
    app_version AS app_build_version,
    {case('browser', VALUES['browser'])} AS browser_name,
    country AS geo_country,
    plan AS user_plan,
    acquisition_channel AS signup_channel,
    page AS page_name,
    product_id,
    category AS product_category,
    price,
    revenue AS order_value,
    search_query AS query,
    results_count AS num_results,
    error_code,
    load_time_ms AS load_ms,
    experiment_id AS experiment_key,
    variant AS experiment_variant
FROM render_rows"""


def write(con: duckdb.DuckDBPyConnection, folder: Path) -> None:
    copy(con, SELECT, folder / FILE, "FORMAT csv, HEADER")
