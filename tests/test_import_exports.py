"""Product exports (Amplitude, Mixpanel, PostHog, GA4): fixtures written from each format's public schema docs,
imported and checked against hand-computed values; malformed records refused by file and line."""

from __future__ import annotations

import gzip
import hashlib
import json
import shutil
from datetime import datetime
from pathlib import Path

import duckdb
import pytest

from data.importers import ImportFailed, import_source
from tests.importing import existing_database

EXPORTS = Path(__file__).parent / "fixtures" / "exports"
AMPLITUDE_FILES = ("187520_2024-03-04_9#0.json", "187520_2024-03-04_10#0.json")
ANON_DEVICE = "d-7f3e9b21-aaaa-4c1e-8d5b-000000000003"
MIXPANEL_ANON = "$device:18e0ff00aa1-0c0d0e0f101112-4c657a3f-1fa400-18e0ff00aa1"
GA4_ANON = "1234567890.1709542700"


def counts(events: int, users: int) -> dict[str, int]:
    return {"users": users, "events": events, "experiments": 0, "assignments": 0, "products": 0}


def query(db: Path, sql: str) -> list[tuple]:
    with duckdb.connect(str(db), read_only=True) as con:
        return con.execute(sql).fetchall()


def one(db: Path, sql: str) -> object:
    rows = query(db, sql)
    assert len(rows) == 1 and len(rows[0]) == 1, rows
    return rows[0][0]


def rows(db: Path, table: str) -> list[tuple]:
    return query(db, f"SELECT * FROM {table} ORDER BY ALL")


def columns(db: Path, table: str) -> list[str]:
    return [row[0] for row in query(db, f"DESCRIBE {table}")]


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return existing_database(tmp_path)


def gzipped_amplitude(folder: Path) -> Path:
    """The Amplitude fixture as the Export API's archive unpacks: one .json.gz file per hour."""
    folder.mkdir()
    for name in AMPLITUDE_FILES:
        (folder / f"{name}.gz").write_bytes(gzip.compress((EXPORTS / "amplitude" / name).read_bytes()))
    return folder


# ------------------------------------------------------------------------------ Amplitude


@pytest.mark.parametrize("fmt", ["auto", "amplitude"])
def test_amplitude_export(tmp_path: Path, db: Path, fmt: str) -> None:
    """Imported over an existing database, whose content it replaces."""
    source = gzipped_amplitude(tmp_path / "export")
    messages: list[str] = []
    assert import_source(source, db, format=fmt, progress=messages.append) == counts(events=25, users=4)
    assert "format: amplitude" in messages
    assert any("dropped 1 repeated events (the same insert id sent twice)" in m for m in messages)
    assert columns(db, "events") == [
        "event_id", "ts", "user_id", "session_id", "event", "properties", "platform", "device_type", "country",
        "region", "city", "language", "app_version", "library", "os", "os_version", "browser", "browser_version",
        "device_model"]
    # the retried upload kept once; an event without $insert_id identified by its uuid
    assert one(db, "SELECT count(*) FROM events WHERE event_id = 'a1f0c3e2-0005-4b7a-9c11-anna00000005'") == 1
    assert one(db, "SELECT event_id FROM events WHERE event = 'Clicked Size Guide'") == \
        "6b8f3a4c-1d5e-4f70-a192-000000000303"
    assert query(db, "SELECT ts, session_id FROM events WHERE user_id = 'u-anna01' ORDER BY ts LIMIT 2") == [
        (datetime(2024, 3, 4, 9, 15, 0, 123000), "u-anna01#1709543700000"),
        (datetime(2024, 3, 4, 9, 16, 30, 250000), "u-anna01#1709543700000")]
    # user_id null: the device id stands in, for the user and their sessions
    assert query(db, f"SELECT count(*), min(session_id) FROM events WHERE user_id = '{ANON_DEVICE}'") == [
        (4, f"{ANON_DEVICE}#1709545202000")]
    assert query(db, "SELECT user_id, count(DISTINCT session_id) FROM events GROUP BY 1 ORDER BY 1") == [
        (ANON_DEVICE, 2), ("u-anna01", 2), ("u-bram02", 2), ("u-chen03", 2)]
    # session_id -1 (a server-side event): no session
    assert query(db, "SELECT ts, session_id, platform, library FROM events WHERE event = 'Subscription Renewed'") == [
        (datetime(2024, 3, 4, 10, 0), None, None, "http/2.0")]
    assert query(db, "SELECT platform, os, os_version, device_type, device_model, country, region, city, language, "
                     "app_version, library FROM events WHERE event = 'Checkout Error' ORDER BY ts LIMIT 1") == [
        ("Android", "android", "14", "Google Pixel 8", "Pixel 8", "United Kingdom", "England", "London", "English",
         "5.1.3", "amplitude-android/1.12.0")]
    # the Browser SDK writes the browser in os_name and the OS in device_model; the apps the OS in os_name
    web = query(db, "SELECT DISTINCT os, os_version, browser, browser_version, device_model, app_version FROM events "
                    "WHERE user_id = 'u-bram02' AND platform = 'Web'")
    assert web == [("Mac OS", None, "Chrome", "122", None, None)]
    props = json.loads(one(db, "SELECT properties FROM events WHERE event = 'Searched Products' "
                               "AND user_id = 'u-anna01'"))
    assert props == {"query": "running shoes", "results_count": 24,
                     "filters": {"size": "42", "colors": ["black", "white"]}}
    assert json.loads(one(db, "SELECT properties FROM events WHERE event = '$exposure'")) == {
        "flag_key": "checkout-redesign", "variant": "treatment", "experiment_key": "exp-1"}
    assert columns(db, "users") == ["user_id", "signed_up_at", "company_size", "favorite_categories",
                                    "initial_referring_domain", "initial_utm_source", "plan", "push_enabled"]
    # signed_up_at = user_creation_time; the latest user properties win (hour 10 is read after hour 9)
    assert query(db, "SELECT * FROM users ORDER BY user_id") == [
        (ANON_DEVICE, datetime(2024, 3, 4, 9, 40, 2), None, None, "news.ycombinator.com", None, None, None),
        ("u-anna01", datetime(2024, 2, 20, 8, 0), None, '["shoes","outdoor"]', None, "newsletter", "premium", True),
        ("u-bram02", datetime(2024, 3, 1, 17, 45, 12), 12, None, None, "google", "pro", None),
        ("u-chen03", datetime(2024, 1, 11, 12, 30), None, None, None, "google", "free", False)]


def test_amplitude_plain_json_folder_equals_gzipped(tmp_path: Path) -> None:
    plain, packed = tmp_path / "plain.duckdb", tmp_path / "packed.duckdb"
    import_source(EXPORTS / "amplitude", plain)
    import_source(gzipped_amplitude(tmp_path / "export"), packed)
    for table in ("events", "users"):
        assert rows(plain, table) == rows(packed, table)


def test_amplitude_user_property_names_and_empty_context(tmp_path: Path) -> None:
    """Keys differing only in case share a column; quotes in keys are read; context nobody has is left out."""
    records = [{"event_type": "Opened", "user_id": "u-1", "event_time": "2024-03-04 10:00:00.000000",
                "user_properties": {"Plan": "free", 'say "hi"': 1}},
               {"event_type": "Opened", "user_id": "u-1", "event_time": "2024-03-04 11:00:00.000000",
                "user_properties": {"plan": "pro", "User Id": "ignored"}}]
    source = tmp_path / "export.json"
    source.write_text("".join(json.dumps(r) + "\n" for r in records))
    db = tmp_path / "out.duckdb"
    assert import_source(source, db) == counts(events=2, users=1)
    assert columns(db, "events") == ["event_id", "ts", "user_id", "session_id", "event", "properties"]
    assert columns(db, "users") == ["user_id", "signed_up_at", "plan", "say_hi"]
    assert query(db, "SELECT * FROM users") == [("u-1", datetime(2024, 3, 4, 10, 0), "pro", 1)]


# ------------------------------------------------------------------------------ Mixpanel


@pytest.mark.parametrize("fmt", ["auto", "mixpanel"])
def test_mixpanel_export(tmp_path: Path, fmt: str) -> None:
    db = tmp_path / "mixpanel.duckdb"
    messages: list[str] = []
    assert import_source(EXPORTS / "mixpanel", db, format=fmt, progress=messages.append) == counts(events=21, users=4)
    assert any("dropped 1 repeated events (the same insert id sent twice)" in m for m in messages)
    assert columns(db, "events") == [
        "event_id", "ts", "user_id", "session_id", "event", "properties", "os", "browser", "browser_version",
        "country", "region", "city", "app_version", "device_model", "current_url", "library"]
    assert one(db, "SELECT count(*) FROM events WHERE event_id = 'mx0000000000000004'") == 1
    # epoch seconds (2024-03-04) and epoch milliseconds (time_in_ms, 2024-03-05) in one import
    assert query(db, "SELECT ts, event FROM events WHERE user_id = 'u-1001' ORDER BY ts") == [
        (datetime(2024, 3, 4, 9, 0), "$mp_web_page_view"), (datetime(2024, 3, 4, 9, 1, 10), "Search"),
        (datetime(2024, 3, 4, 9, 2, 30), "$experiment_started"), (datetime(2024, 3, 4, 9, 3), "Product Viewed"),
        (datetime(2024, 3, 4, 9, 5, 45), "Add To Cart"), (datetime(2024, 3, 4, 9, 7), "Checkout Started"),
        (datetime(2024, 3, 5, 8, 0, 0, 250000), "$mp_web_page_view"),
        (datetime(2024, 3, 5, 8, 1, 15, 500000), "Checkout Started"), (datetime(2024, 3, 5, 8, 2, 40), "Purchase")]
    # no session ids in the export: cut at 30 minutes of inactivity
    assert any("sessions cut at 30 minutes" in m for m in messages)
    assert query(db, "SELECT DISTINCT session_id FROM events WHERE user_id = 'u-1001' ORDER BY 1") == [
        ("u-1001#1",), ("u-1001#2",)]
    # no distinct_id: $user_id stands in
    assert query(db, "SELECT user_id, library FROM events WHERE event = 'Subscription Started'") == [
        ("u-1003", "python")]
    assert query(db, "SELECT os, browser, browser_version, country, region, city, current_url, library "
                     f"FROM events WHERE user_id = '{MIXPANEL_ANON}' ORDER BY ts LIMIT 1") == [
        ("Windows", "Firefox", "123", "FR", "Île-de-France", "Paris", "https://shop.example.com/", "web")]
    # $app_version_string, else $app_release (an older build)
    assert query(db, "SELECT ts, os, app_version, device_model, browser FROM events WHERE event = 'App Open' "
                     "ORDER BY ts") == [(datetime(2024, 3, 4, 9, 20), "iOS", "5.2.0", "iPhone", None),
                                        (datetime(2024, 3, 5, 8, 30), "iOS", "5.1.0", "iPhone", None)]
    props = json.loads(one(db, "SELECT properties FROM events WHERE event = '$experiment_started'"))
    assert props["Experiment name"] == "Checkout Redesign" and props["Variant name"] == "B"
    assert props["$device_id"] == "18e0a1b2c3d-0f1e2d3c4b5a69-1a2b3c4d-1fa400-18e0a1b2c3d"
    mapped = {"time", "distinct_id", "$insert_id", "$os", "$browser", "$browser_version", "mp_country_code",
              "$region", "$city", "$app_version_string", "$device", "$current_url", "mp_lib"}
    keys = {k for (k,) in query(db, "SELECT DISTINCT unnest(json_keys(properties)) FROM events")}
    assert not keys & mapped and {"$app_release", "mp_processing_time_ms", "$lib_version"} <= keys
    assert json.loads(one(db, "SELECT properties->'filters' FROM events WHERE event = 'Search' "
                              "AND user_id = 'u-1001'")) == {"size": ["M", "L"], "in_stock": True}
    assert columns(db, "users") == ["user_id", "signed_up_at"]
    assert query(db, "SELECT * FROM users ORDER BY user_id") == [
        (MIXPANEL_ANON, datetime(2024, 3, 4, 9, 40)), ("u-1001", datetime(2024, 3, 4, 9, 0)),
        ("u-1002", datetime(2024, 3, 4, 9, 20)), ("u-1003", datetime(2024, 3, 4, 9, 55))]


# ------------------------------------------------------------------------------ PostHog

POSTHOG = EXPORTS / "posthog" / "events_2024-03-04.jsonl"


@pytest.mark.parametrize("fmt", ["auto", "posthog"])
def test_posthog_export(tmp_path: Path, fmt: str) -> None:
    db = tmp_path / "posthog.duckdb"
    assert import_source(POSTHOG, db, format=fmt) == counts(events=18, users=3)
    assert columns(db, "events") == [
        "event_id", "ts", "user_id", "session_id", "event", "properties", "os", "browser", "browser_version",
        "device_type", "country", "app_version", "current_url", "library"]
    assert query(db, "SELECT event_id, ts, user_id, session_id, os, browser, browser_version, device_type, country, "
                     "current_url, library FROM events WHERE event = '$autocapture'") == [
        ("018e0c60-0002-7000-8000-000000000002", datetime(2024, 3, 4, 9, 0, 20, 456000), "u_5001",
         "018e0c60-1f00-7a1b-8c2d-3e4f5a6b7c01", "Mac OS X", "Chrome", "122", "Desktop", "DE",
         "https://app.example.com/dashboard", "web")]
    assert query(db, "SELECT DISTINCT os, device_type, app_version, country, library FROM events "
                     "WHERE user_id = 'u_5002'") == [("iOS", "Mobile", "3.4.1", "US", "posthog-ios")]
    # $geoip_country_code missing: the country name stands in
    assert query(db, "SELECT DISTINCT country FROM events WHERE user_id = '018e0cc8-4e90-7f3e-9d41-3c5a2b1e0f11'") \
        == [("France",)]
    # a server-side event has no session
    assert query(db, "SELECT ts, session_id, library FROM events WHERE event = 'subscription_renewed'") == [
        (datetime(2024, 3, 5, 0, 0, 3), None, "posthog-python")]
    assert one(db, "SELECT count(DISTINCT session_id) FROM events") == 4
    flag = json.loads(one(db, "SELECT properties FROM events WHERE event = '$feature_flag_called'"))
    assert flag["$feature_flag"] == "new-editor" and flag["$feature_flag_response"] == "test"
    assert flag["$geoip_country_name"] == "Germany" and flag["$pathname"] == "/reports/new"
    assert not {"$session_id", "$os", "$browser", "$browser_version", "$device_type", "$geoip_country_code",
                "$app_version", "$current_url", "$lib"} & set(flag)
    assert json.loads(one(db, "SELECT properties->'config' FROM events WHERE event = 'report_created' "
                              "ORDER BY ts LIMIT 1")) == {"window_days": 14, "breakdown": ["$browser"]}
    assert columns(db, "users") == ["user_id", "signed_up_at", "initial_browser", "initial_geoip_country_code",
                                    "initial_os", "email", "plan", "seats"]
    assert query(db, "SELECT user_id, signed_up_at, email, plan, seats FROM users ORDER BY user_id") == [
        ("018e0cc8-4e90-7f3e-9d41-3c5a2b1e0f11", datetime(2024, 3, 4, 15, 30), None, None, None),
        ("u_5001", datetime(2024, 3, 4, 9, 0, 0, 123000), "lena@example.com", "enterprise", 25),
        ("u_5002", datetime(2024, 3, 4, 14, 0), "sam@example.org", "plus", None)]


def test_posthog_parquet_and_repeated_uuid(tmp_path: Path) -> None:
    """Parquet batch exports hold properties as JSON-encoded text; a uuid delivered twice is one event."""
    jsonl_db, repeated_db, parquet_db = (tmp_path / f"{name}.duckdb" for name in ("jsonl", "repeated", "parquet"))
    import_source(POSTHOG, jsonl_db)
    lines = POSTHOG.read_text().splitlines(keepends=True)
    repeated = tmp_path / "events.jsonl"
    repeated.write_text("".join(lines + lines[:1]))
    messages: list[str] = []
    assert import_source(repeated, repeated_db, progress=messages.append) == counts(events=18, users=3)
    assert any("dropped 1 repeated events" in m for m in messages)
    assert rows(repeated_db, "events") == rows(jsonl_db, "events")
    parquet = tmp_path / "events.parquet"
    with duckdb.connect() as con:
        con.execute(f"""COPY (SELECT json->>'uuid' AS uuid, json->>'event' AS event,
            json->>'distinct_id' AS distinct_id, json->>'person_id' AS person_id, json->>'properties' AS properties,
            json->>'person_properties' AS person_properties, json->>'elements_chain' AS elements_chain,
            CAST(json->>'timestamp' AS TIMESTAMPTZ) AS timestamp, CAST(json->>'created_at' AS TIMESTAMPTZ) AS created_at
            FROM read_ndjson_objects('{POSTHOG}')) TO '{parquet}' (FORMAT parquet)""")
    assert import_source(parquet, parquet_db, format="posthog") == counts(events=18, users=3)
    for table in ("events", "users"):
        assert rows(parquet_db, table) == rows(jsonl_db, table)


# ------------------------------------------------------------------------------ GA4


@pytest.mark.parametrize("fmt", ["auto", "ga4"])
def test_ga4_export(tmp_path: Path, fmt: str) -> None:
    db = tmp_path / "ga4.duckdb"
    assert import_source(EXPORTS / "ga4", db, format=fmt) == counts(events=17, users=3)
    assert columns(db, "events") == [
        "event_id", "ts", "user_id", "session_id", "event", "properties", "platform", "device_type", "os",
        "os_version", "device_model", "browser", "browser_version", "language", "country", "region", "city",
        "app_version", "traffic_source_medium", "traffic_source_source", "traffic_source_name", "transaction_id",
        "purchase_revenue", "items"]
    assert one(db, "SELECT count(DISTINCT event_id) FROM events") == 17  # no ids in the export: a hash per row
    # user_id, else user_pseudo_id; the session is user_pseudo_id#ga_session_id
    assert query(db, "SELECT ts, user_id, session_id, transaction_id, purchase_revenue FROM events "
                     "WHERE event = 'purchase'") == [
        (datetime(2024, 3, 4, 18, 32, 5, 250000), "cust-42", "987654321.1708000000#1709577000", "T-10023", 149.0)]
    assert query(db, "SELECT ts, user_id, session_id FROM events WHERE event = 'first_visit'") == [
        (datetime(2024, 3, 4, 9, 0, 0, 123456), GA4_ANON, f"{GA4_ANON}#1709542790")]
    assert one(db, "SELECT session_id FROM events WHERE event = 'scroll'") is None  # no ga_session_id
    assert json.loads(one(db, "SELECT properties FROM events WHERE event = 'purchase'")) == {
        "ga_session_id": 1709577000, "currency": "EUR", "value": 149.0, "transaction_id": "T-10023",
        "shipping": 4.9, "tax": 23.79}
    # no local-currency revenue: the USD revenue stands in
    assert query(db, "SELECT purchase_revenue, transaction_id FROM events WHERE event = 'in_app_purchase'") == [
        (6.3, "GPA.3372-1234-5678-90123")]
    assert query(db, "SELECT json_array_length(items), items->>'$[0].item_id', items->>'$[0].price' FROM events "
                     "WHERE event = 'purchase'") == [(1, "SKU-88", "149.0")]
    assert one(db, "SELECT count(items) FROM events") == 4
    assert query(db, "SELECT platform, device_type, os, os_version, device_model, browser, browser_version, language, "
                     "country, region, city, app_version, traffic_source_medium, traffic_source_source, "
                     "traffic_source_name FROM events WHERE event = 'app_exception'") == [
        ("ANDROID", "mobile", "Android", "Android 14", "Pixel 8", None, None, "en-gb", "United Kingdom", "England",
         "Manchester", "4.2.0", "(none)", "(direct)", "(direct)")]
    assert query(db, "SELECT DISTINCT browser, browser_version, traffic_source_medium FROM events "
                     "WHERE user_id = 'cust-42'") == [("Safari", "17.3.1", "email")]
    assert columns(db, "users") == ["user_id", "signed_up_at", "first_open_time", "loyalty_points", "plan"]
    # signed_up_at = user_first_touch_timestamp; the latest user property values win
    assert query(db, "SELECT * FROM users ORDER BY user_id") == [
        (GA4_ANON, datetime(2024, 3, 4, 9, 0, 0, 123456), None, None, None),
        ("cust-42", datetime(2024, 2, 15, 12, 26, 40), None, 1350, "premium"),
        ("cust-77", datetime(2024, 1, 23, 8, 53, 20), 1706000400000, None, "coins")]


def test_ga4_parquet_equals_json(tmp_path: Path) -> None:
    """The same tables as typed Parquet (INT64 timestamps and int_value) import to the same rows."""
    folder = tmp_path / "bq"
    folder.mkdir()
    value = "STRUCT(string_value VARCHAR, int_value BIGINT, float_value DOUBLE, double_value DOUBLE"
    with duckdb.connect() as con:
        for day in ("20240304", "20240305"):
            con.execute(f"""COPY (SELECT * REPLACE (CAST(event_timestamp AS BIGINT) AS event_timestamp,
                CAST(user_first_touch_timestamp AS BIGINT) AS user_first_touch_timestamp,
                CAST(event_params AS STRUCT("key" VARCHAR, "value" {value}))[]) AS event_params,
                CAST(user_properties AS STRUCT("key" VARCHAR, "value" {value}, set_timestamp_micros BIGINT))[])
                    AS user_properties)
                FROM read_json('{EXPORTS / "ga4" / f"events_{day}.json"}', format = 'newline_delimited'))
                TO '{folder / f"events_{day}.parquet"}' (FORMAT parquet)""")
    json_db, parquet_db = tmp_path / "json.duckdb", tmp_path / "parquet.duckdb"
    import_source(EXPORTS / "ga4", json_db)
    assert import_source(folder, parquet_db) == counts(events=17, users=3)
    for table in ("events", "users"):
        assert rows(parquet_db, table) == rows(json_db, table)


# ------------------------------------------------------------------------------ refusals

BAD_LINES = {
    "malformed": lambda record: '{"event": "cut short", "properties": {',
    "not an object": lambda record: '["an", "array"]',
    "no event name": lambda record: json.dumps({k: v for k, v in record.items()
                                                if k not in ("event_type", "event", "event_name")}),
}
# format -> (fixture file, its event name field)
SOURCES = {"amplitude": (EXPORTS / "amplitude" / AMPLITUDE_FILES[1], "event_type"),
           "mixpanel": (EXPORTS / "mixpanel" / "export_2024-03-04.jsonl", "event"),
           "posthog": (POSTHOG, "event"),
           "ga4": (EXPORTS / "ga4" / "events_20240304.json", "event_name")}


@pytest.mark.parametrize("problem", BAD_LINES)
@pytest.mark.parametrize("fmt", SOURCES)
def test_bad_record_names_file_and_line(tmp_path: Path, db: Path, fmt: str, problem: str) -> None:
    """Line 4 of the second file is bad (line 2 is blank): the error names both; the database is untouched."""
    fixture, event_field = SOURCES[fmt]
    good = fixture.read_text().splitlines()
    text = "\n".join([good[0], "", good[1], BAD_LINES[problem](json.loads(good[2])), *good[3:]]) + "\n"
    source = tmp_path / "export"
    source.mkdir()
    if fmt == "amplitude":  # both hourly files gzipped, the bad line in hour 10 (read second)
        (source / f"{AMPLITUDE_FILES[0]}.gz").write_bytes(
            gzip.compress((EXPORTS / "amplitude" / AMPLITUDE_FILES[0]).read_bytes()))
        name = f"{AMPLITUDE_FILES[1]}.gz"
        (source / name).write_bytes(gzip.compress(text.encode()))
    else:
        shutil.copy(fixture, source / ("a_" + fixture.name))
        name = "b_" + fixture.name
        (source / name).write_text(text)
    digest = sha256(db)
    with pytest.raises(ImportFailed) as info:
        import_source(source, db, format=fmt)
    message = str(info.value)
    expected = {"malformed": f"{name} line 4: cannot read JSON lines file: Malformed JSON",
                "not an object": f"{name} line 4: expected a JSON object",
                "no event name": f"{name} line 4, field {event_field}: missing required value"}[problem]
    assert expected in message
    assert info.value.line == 4
    assert sha256(db) == digest
    assert [p.name for p in db.parent.iterdir()] == [db.name]  # no temp file or WAL left behind


def test_folder_without_export_files(tmp_path: Path, db: Path) -> None:
    (tmp_path / "export").mkdir()
    (tmp_path / "export" / "notes.txt").write_text("nothing here")
    with pytest.raises(ImportFailed, match=r"export: no export files \(\*\.jsonl"):
        import_source(tmp_path / "export", db, format="mixpanel")


def test_folder_mixing_parquet_and_json_lines(tmp_path: Path, db: Path) -> None:
    folder = tmp_path / "bq"
    folder.mkdir()
    shutil.copy(EXPORTS / "ga4" / "events_20240304.json", folder)
    with duckdb.connect() as con:
        con.execute(f"COPY (SELECT 1 AS x) TO '{folder / 'events_20240305.parquet'}' (FORMAT parquet)")
    with pytest.raises(ImportFailed, match="both Parquet and JSON lines files"):
        import_source(folder, db, format="ga4")
