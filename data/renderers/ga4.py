"""GA4 BigQuery export: one Parquet file per daily table, `events_YYYYMMDD.parquet` (property time zone UTC).

Parquet, as `bq extract --destination_format=PARQUET` writes a daily table, keeps the documented types
(INT64 stays an integer; JSON extracts would turn it into a string). One row per event, with the
documented fields: `event_date` ('YYYYMMDD'), `event_timestamp` (INT64 µs, UTC), `event_name`,
`event_params` (ARRAY of {key, value {string_value, int_value, float_value, double_value}}),
`user_id` (the canonical id, on every event), `user_pseudo_id` (a client id `<n>.<first-touch
seconds>`, derived from the user id), `user_first_touch_timestamp` (µs of signup), `user_properties`
(`plan`, with `set_timestamp_micros`), `device` {category 'desktop'|'mobile', operating_system,
web_info {browser, hostname} on web}, `geo` {country: English name}, `app_info` {id, version} on
iOS/Android only, `traffic_source` {name, medium, source} (the user's acquisition channel, first
touch), `platform` ('WEB'|'IOS'|'ANDROID'), `ecommerce` {total_item_quantity, purchase_revenue_in_usd,
purchase_revenue, unique_items, transaction_id} on purchases and `items` (ARRAY of {item_id,
item_name, item_category, price, price_in_usd, quantity, item_revenue}) on product events.

Event params: `ga_session_id` (session start, epoch seconds) and `ga_session_number`; `page_location`
(web) or `firebase_screen` (apps); `search_term` and `search_results` on view_search_results (GA4 has
no standard results-count parameter: `search_results` is custom); `value` on purchase; `error_code`
on the custom `app_error` event; `load_time_ms` (custom, int) where a load time was measured; the
event's own properties as string params. Experiment exposures are the `experience_impression` event
GA4 documents for experiment integrations, `exp_variant_string` = `PIA-<experiment id>-<variant>`.
"""

from __future__ import annotations

from pathlib import Path

import duckdb

from data.renderers import APP_PLATFORMS, COUNTRY_NAMES, SAME_DIMENSIONS, SITE, case, copy_by_day, lit, page_url

FILE = None
EVENTS = {
    "Application Opened": "session_start",
    "Signed Up": "sign_up",
    "Page Viewed": "page_view",
    "Products Searched": "view_search_results",
    "Search Result Clicked": "select_item",
    "Product Viewed": "view_item",
    "Product Added": "add_to_cart",
    "Cart Viewed": "view_cart",
    "Checkout Started": "begin_checkout",
    "Payment Info Entered": "add_payment_info",
    "Order Completed": "purchase",
    "Error Shown": "app_error",
}
EXPOSURE = "experience_impression"
TOOL_ID = "PIA"
# Acquisition channel -> traffic_source (source, medium, name).
TRAFFIC = {
    "organic": ("google", "organic", "(organic)"),
    "paid_search": ("google", "cpc", "brand_search"),
    "social": ("facebook", "social", "fall_promo"),
    "email": ("newsletter", "email", "weekly_digest"),
    "referral": ("partner-blog", "referral", "(referral)"),
}
VALUES = {
    "platform": {"web": "WEB", "ios": "IOS", "android": "ANDROID"},
    "os": {"windows": "Windows", "macos": "Macintosh", "linux": "Linux", "ios": "iOS", "android": "Android"},
    "browser": {"chrome": "Chrome", "safari": "Safari", "firefox": "Firefox", "edge": "Edge"},
    "country": COUNTRY_NAMES,
    "acquisition_channel": {channel: medium for channel, (_, medium, _) in TRAFFIC.items()},
}
DIMENSIONS = SAME_DIMENSIONS | {"acquisition_channel": "traffic_source_medium"}


def _param(key: str, string: str = "NULL", integer: str = "NULL", double: str = "NULL") -> str:
    """SQL: one event_params record; `key` is SQL, each value a SQL expression (NULL when absent)."""
    return (f"{{'key': {key}, 'value': {{'string_value': {string}::VARCHAR, 'int_value': {integer}::BIGINT, "
            f"'float_value': NULL::DOUBLE, 'double_value': {double}::DOUBLE}}}}")


def _traffic(part: int) -> str:
    return case("acquisition_channel", {channel: t[part] for channel, t in TRAFFIC.items()})


PARAMS = f"""list_concat(
    list_filter([
        {_param("'ga_session_id'", integer='epoch_us(session_start) // 1000000')},
        {_param("'ga_session_number'", integer='session_number')},
        {_param("'page_location'", string=f"CASE WHEN platform = 'web' THEN {page_url()} END")},
        {_param("'firebase_screen'", string=f"CASE WHEN platform IN {APP_PLATFORMS} THEN page END")},
        {_param("'search_term'", string='search_query')},
        {_param("'search_results'", integer='results_count')},
        {_param("'value'", double="CASE WHEN event = 'Order Completed' THEN revenue END")},
        {_param("'error_code'", string='error_code')},
        {_param("'load_time_ms'", integer='load_time_ms')},
        {_param("'exp_variant_string'", string=f"{lit(TOOL_ID)} || '-' || experiment_id || '-' || variant")}
    ], lambda p: p.value.string_value IS NOT NULL OR p.value.int_value IS NOT NULL OR p.value.double_value IS NOT NULL),
    coalesce(list_transform(json_keys(properties), lambda k: {_param('k', string='properties ->> k')}), []))"""

ITEM = """{'item_id': product_id, 'item_name': product_name, 'item_category': category, 'price': price,
    'price_in_usd': price, 'quantity': coalesce(quantity, 1), 'item_revenue': revenue}"""

SELECT = f"""SELECT
    seq,
    strftime(ts, '%Y%m%d') AS event_date,
    epoch_us(ts) AS event_timestamp,
    coalesce({case('event', EVENTS)}, {lit(EXPOSURE)}) AS event_name,
    {PARAMS} AS event_params,
    user_id,
    (md5_number(user_id) % 2147483647)::VARCHAR || '.' || (epoch_us(signed_up_at) // 1000000)::VARCHAR
        AS user_pseudo_id,
    epoch_us(signed_up_at) AS user_first_touch_timestamp,
    CASE WHEN plan IS NOT NULL THEN [{{'key': 'plan', 'value': {{'string_value': plan, 'int_value': NULL::BIGINT,
        'float_value': NULL::DOUBLE, 'double_value': NULL::DOUBLE,
        'set_timestamp_micros': epoch_us(signed_up_at)}}}}] ELSE [] END AS user_properties,
    CASE WHEN platform IS NOT NULL THEN {{
        'category': CASE WHEN platform IN {APP_PLATFORMS} THEN 'mobile' ELSE 'desktop' END,
        'operating_system': {case('os', VALUES['os'])},
        'web_info': CASE WHEN platform = 'web' THEN {{'browser': {case('browser', VALUES['browser'])},
            'hostname': {lit(SITE.removeprefix('https://'))}}} END}} END AS device,
    {{'country': {case('country', COUNTRY_NAMES)}}} AS geo,
    CASE WHEN platform IN {APP_PLATFORMS} THEN {{'id': 'com.example.shop', 'version': app_version}} END AS app_info,
    {{'name': {_traffic(2)}, 'medium': {_traffic(1)}, 'source': {_traffic(0)}}} AS traffic_source,
    {case('platform', VALUES['platform'])} AS platform,
    CASE WHEN event = 'Order Completed' THEN {{'total_item_quantity': quantity, 'purchase_revenue_in_usd': revenue,
        'purchase_revenue': revenue, 'unique_items': 1, 'transaction_id': 'T-' || event_id}} END AS ecommerce,
    CASE WHEN product_id IS NOT NULL THEN [{ITEM}] ELSE [] END AS items
FROM render_rows"""


def write(con: duckdb.DuckDBPyConnection, folder: Path) -> None:
    """One Parquet file per daily table."""
    copy_by_day(con, SELECT, folder, "events_{day:%Y%m%d}.parquet", "FORMAT parquet")
