"""Renderers: a small generated dataset written in every export format, read back from the files.

Each format is read the way its public schema documents it (Parquet nesting, JSON lines, gzip, CSV)
and compared row by row with the canonical tables: timestamps in the format's unit, user ids, event
names through `Rendering.events`, dimension values through `Rendering.values`, search, error, load
time and revenue fields, one exposure per assignment; then the format's own shape (types, units,
sessions, nesting), determinism and the registry.
"""

from __future__ import annotations

import csv
import gzip
import json
import re
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pytest

from data.generate import generate
from data.renderers import FORMATS, Rendering, render
from data.scenario import DIMENSIONS, load_scenario

USERS = 2_000
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# The documented exposure event of each format (not a canonical event, so not in Rendering.events).
EXPOSURE = {"ga4": "experience_impression", "wide_csv": "experiment_exposure", "amplitude": "$exposure",
            "mixpanel": "$experiment_started", "posthog": "$feature_flag_called"}
# Timestamp precision each format keeps, in µs (Mixpanel's export is in seconds).
PRECISION_US = {"mixpanel": 1_000_000}
FIELDS = ("search_query", "results_count", "error_code", "load_time_ms", "revenue")
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("canon") / "canon.duckdb"
    generate(load_scenario("demo").model_copy(update={"users": USERS}), path)
    return path


@pytest.fixture(scope="module")
def rendered(db: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Rendering]:
    out = tmp_path_factory.mktemp("exports")
    return {fmt: render(db, fmt, out) for fmt in FORMATS}


def _dicts(con: duckdb.DuckDBPyConnection, sql: str) -> list[dict]:
    cur = con.execute(sql)
    names = [d[0] for d in cur.description]
    return [dict(zip(names, row)) for row in cur.fetchall()]


@pytest.fixture(scope="module")
def canon(db: Path) -> dict[str, list[dict]]:
    """Canonical events (with the user's attributes) and assignments."""
    with duckdb.connect(str(db), read_only=True) as con:
        events = _dicts(con, """
            SELECT epoch_us(e.ts) AS ts_us, e.*, u.plan, u.acquisition_channel, epoch_us(u.signed_up_at) AS signup_us
            FROM events e LEFT JOIN users u USING (user_id)""")
        assignments = _dicts(con, "SELECT epoch_us(assigned_at) AS ts_us, * FROM assignments")
    return {"events": events, "assignments": assignments}


def _us(text: str, fmt: str) -> int:
    """µs since epoch of a UTC timestamp string, exactly (no float rounding)."""
    moment = datetime.strptime(text, fmt)
    moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return (moment - EPOCH) // timedelta(microseconds=1)


def _jsonl(path: Path) -> list[dict]:
    files = sorted(path.glob("*.json.gz")) if path.is_dir() else [path]
    rows = []
    for file in files:
        opener = gzip.open if file.suffix == ".gz" else open
        with opener(file, "rt", encoding="utf-8") as lines:
            rows += [json.loads(line) | {"_file": file.name} for line in lines]
    return rows


def _ga4_param(key: str, kind: str) -> str:
    return f"list_filter(event_params, lambda p: p.key = '{key}')[1].value.{kind}_value"


def _read_ga4(path: Path) -> list[dict]:
    with duckdb.connect() as con:
        return _dicts(con, f"""
            SELECT event_timestamp AS ts_us, user_id AS "user", event_name AS event, platform,
                device.operating_system AS os, device.web_info.browser AS browser, geo.country AS country,
                app_info.version AS app_version,
                list_filter(user_properties, lambda p: p.key = 'plan')[1].value.string_value AS plan,
                traffic_source.medium AS acquisition_channel, {_ga4_param('search_term', 'string')} AS search_query,
                {_ga4_param('search_results', 'int')} AS results_count,
                {_ga4_param('error_code', 'string')} AS error_code,
                {_ga4_param('load_time_ms', 'int')} AS load_time_ms, ecommerce.purchase_revenue AS revenue,
                {_ga4_param('exp_variant_string', 'string')} AS exp_variant_string,
                {_ga4_param('ga_session_id', 'int')} AS session, *, parse_filename(filename) AS _file
            FROM read_parquet('{path}/*.parquet', filename = true)""")


def _read_amplitude(path: Path) -> list[dict]:
    rows = []
    for r in _jsonl(path):
        props, user, web = r["event_properties"], r["user_properties"], r["platform"] == "Web"
        rows.append(r | {
            "ts_us": _us(r["event_time"], "%Y-%m-%d %H:%M:%S.%f"), "user": r["user_id"], "event": r["event_type"],
            "os": r["device_model"] if web else r["os_name"], "browser": r["os_name"] if web else None,
            "app_version": r["version_name"], "plan": user.get("plan"),
            "acquisition_channel": user.get("acquisitionChannel"), "search_query": props.get("query"),
            "results_count": props.get("result_count"), "error_code": props.get("error_code"),
            "load_time_ms": props.get("load_time"), "revenue": props.get("$revenue"),
            "experiment_id": props.get("flag_key"), "variant": props.get("variant"), "session": r["session_id"]})
    return rows


def _read_mixpanel(path: Path) -> list[dict]:
    rows = []
    for r in _jsonl(path):
        p = r["properties"]
        rows.append(r | {
            "ts_us": p["time"] * 1_000_000, "user": p["distinct_id"], "platform": p.get("Platform"),
            "os": p.get("$os"), "browser": p.get("$browser"), "country": p.get("mp_country_code"),
            "app_version": p.get("$app_version_string"), "plan": p.get("Plan"),
            "acquisition_channel": p.get("Acquisition Channel"), "search_query": p.get("Search Term"),
            "results_count": p.get("Results Count"), "error_code": p.get("Error Code"),
            "load_time_ms": p.get("Load Time (ms)"), "revenue": p.get("Revenue"),
            "experiment_id": p.get("Experiment name"), "variant": p.get("Variant name"), "session": None})
    return rows


def _read_posthog(path: Path) -> list[dict]:
    rows = []
    for r in _jsonl(path):
        p, person = r["properties"], r["person_properties"]
        rows.append(r | {
            "ts_us": _us(r["timestamp"], "%Y-%m-%dT%H:%M:%S.%f%z"), "user": r["distinct_id"],
            "platform": p.get("platform"), "os": p.get("$os"), "browser": p.get("$browser"),
            "country": p.get("$geoip_country_code"), "app_version": p.get("$app_version"), "plan": person.get("plan"),
            "acquisition_channel": person.get("acquisition_channel"), "search_query": p.get("search_query"),
            "results_count": p.get("results_count"), "error_code": p.get("$exception_type"),
            "load_time_ms": p.get("page_load_ms"), "revenue": p.get("revenue"),
            "experiment_id": p.get("$feature_flag"), "variant": p.get("$feature_flag_response"),
            "session": p.get("$session_id")})
    return rows


def _read_wide_csv(path: Path) -> list[dict]:
    with gzip.open(path, "rt", encoding="utf-8", newline="") as text:
        table = list(csv.DictReader(text))

    def num(value: str, kind: type) -> int | float | None:
        return kind(value) if value else None

    return [r | {
        "ts_us": _us(r["timestamp"], "%Y-%m-%dT%H:%M:%S.%fZ"), "user": r["uid"], "event": r["event_name"],
        "platform": r["device_platform"] or None, "os": r["device_os"] or None, "browser": r["browser_name"] or None,
        "country": r["geo_country"] or None, "app_version": r["app_build_version"] or None,
        "plan": r["user_plan"] or None, "acquisition_channel": r["signup_channel"] or None,
        "search_query": r["query"] or None, "results_count": num(r["num_results"], int),
        "error_code": r["error_code"] or None, "load_time_ms": num(r["load_ms"], int),
        "revenue": num(r["order_value"], float), "experiment_id": r["experiment_key"] or None,
        "variant": r["experiment_variant"] or None, "session": None} for r in table]


READERS = {"ga4": _read_ga4, "wide_csv": _read_wide_csv, "amplitude": _read_amplitude, "mixpanel": _read_mixpanel,
           "posthog": _read_posthog}


@pytest.fixture(scope="module")
def read(rendered: dict[str, Rendering]) -> dict[str, list[dict]]:
    rows = {fmt: READERS[fmt](r.path) for fmt, r in rendered.items()}
    ga4 = rows["ga4"]  # the experiment and variant of a GA4 exposure are inside exp_variant_string
    for r in ga4:
        if r["exp_variant_string"]:
            r["experiment_id"], r["variant"] = r["exp_variant_string"].split("-")[1:]
    return rows


def _canonical_keys(canon: dict[str, list[dict]], precision: int) -> Counter:
    keys = Counter()
    for e in canon["events"]:
        app = e["platform"] in ("ios", "android")
        dims = tuple(None if d == "app_version" and not app else e[d] for d in DIMENSIONS)
        keys[(e["ts_us"] - e["ts_us"] % precision, e["user_id"], e["event"], dims, tuple(e[f] for f in FIELDS))] += 1
    for a in canon["assignments"]:
        keys[(a["ts_us"] - a["ts_us"] % precision, a["user_id"], "exposure", a["experiment_id"], a["variant"])] += 1
    return keys


def _rendered_keys(fmt: str, rendering: Rendering, rows: list[dict]) -> Counter:
    """The rows in canonical spelling: event names and dimension values mapped back through the Rendering."""
    names = {v: k for k, v in rendering.events.items()}
    back = {d: {v: k for k, v in rendering.values[d].items()} for d in DIMENSIONS}
    keys = Counter()
    for r in rows:
        if r["event"] == EXPOSURE[fmt]:
            keys[(r["ts_us"], r["user"], "exposure", r["experiment_id"], r["variant"])] += 1
            continue
        dims = tuple(back[d].get(r[d], r[d]) for d in DIMENSIONS)
        keys[(r["ts_us"], r["user"], names.get(r["event"], r["event"]), dims, tuple(r[f] for f in FIELDS))] += 1
    return keys


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_event_and_exposure_reads_back_as_the_canonical_row(fmt, rendered, read, canon):
    """Time (in the format's unit), user, event, every dimension, search/error/load/revenue fields."""
    assert len(read[fmt]) == len(canon["events"]) + len(canon["assignments"])
    expected = _canonical_keys(canon, PRECISION_US.get(fmt, 1))
    got = _rendered_keys(fmt, rendered[fmt], read[fmt])
    assert got == expected, f"{fmt}: first differences {list((got - expected).items())[:3]}"


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_value_translation_is_applied(fmt, rendered, read, canon):
    values = rendered[fmt].values
    assert set(values) == set(DIMENSIONS)
    for dim in DIMENSIONS:
        assert len(set(values[dim].values())) == len(values[dim]), f"{fmt}.{dim}: two values share a spelling"
        app_only = dim == "app_version"
        present = {e[dim] for e in canon["events"] if e[dim] and (not app_only or e["platform"] != "web")}
        observed = {r[dim] for r in read[fmt] if r[dim] and r["event"] != EXPOSURE[fmt]}
        assert observed == {values[dim][v] for v in present}, f"{fmt}.{dim}"
    assert set(rendered[fmt].dimensions) == set(DIMENSIONS)


@pytest.mark.parametrize("fmt", FORMATS)
def test_event_names_cover_every_canonical_event_once(fmt, rendered, canon):
    events = rendered[fmt].events
    assert set(events) == {e["event"] for e in canon["events"]}
    assert len(set(events.values())) == len(events) and EXPOSURE[fmt] not in events.values()


@pytest.mark.parametrize("fmt", FORMATS)
def test_app_version_only_on_app_events(fmt, read):
    web = {"ga4": "WEB", "amplitude": "Web"}.get(fmt, "web")
    rows = [r for r in read[fmt] if r["event"] != EXPOSURE[fmt]]
    assert all(r["app_version"] is None for r in rows if r["platform"] == web)
    assert all(r["app_version"] for r in rows if r["platform"] != web)


def test_ga4_daily_tables_types_nesting_and_units(read, canon, rendered):
    rows, users = read["ga4"], {e["user_id"]: e for e in canon["events"]}
    with duckdb.connect() as con:
        described = con.execute(f"DESCRIBE SELECT * FROM read_parquet('{rendered['ga4'].path}/*.parquet')").fetchall()
    types = {column: kind for column, kind, *_ in described}
    assert types["event_timestamp"] == "BIGINT" and types["user_first_touch_timestamp"] == "BIGINT"
    assert types["event_params"] == ('STRUCT("key" VARCHAR, "value" STRUCT(string_value VARCHAR, int_value BIGINT, '
                                     'float_value DOUBLE, double_value DOUBLE))[]')
    assert types["user_properties"].startswith('STRUCT("key" VARCHAR, "value" STRUCT(string_value VARCHAR')
    assert types["items"].startswith("STRUCT(item_id VARCHAR, item_name VARCHAR, item_category VARCHAR, price DOUBLE")
    for r in rows:
        moment = EPOCH + timedelta(microseconds=r["event_timestamp"])
        assert r["event_date"] == moment.strftime("%Y%m%d") and r["_file"] == f"events_{r['event_date']}.parquet"
        assert r["user_first_touch_timestamp"] == users[r["user_id"]]["signup_us"]
        assert (r["app_info"] is None) == (r["platform"] == "WEB")
        assert r["device"]["category"] == ("desktop" if r["platform"] == "WEB" else "mobile")
        assert (r["device"]["web_info"] is None) == (r["platform"] != "WEB")
        if r["event_name"] == "purchase":
            item = r["items"][0]
            assert r["ecommerce"]["purchase_revenue_in_usd"] == r["revenue"]
            assert abs(item["price"] * item["quantity"] - r["revenue"]) < 0.01
        if r["event_name"] == "experience_impression":
            assert r["exp_variant_string"].startswith("PIA-")
    sessions = {(r["user"], r["session"]) for r in rows}
    assert len(sessions) == len({e["session_id"] for e in canon["events"]})
    starts = {}
    for r in rows:  # ga_session_id is the epoch second the session started
        starts[(r["user"], r["session"])] = min(starts.get((r["user"], r["session"]), r["ts_us"]), r["ts_us"])
    assert all(start // 1_000_000 == session for (_, session), start in starts.items())


def test_amplitude_export_lines(read, canon, rendered):
    rows = read["amplitude"]
    assert all(f.startswith("187520_") and f.endswith("#0.json.gz") for f in {r["_file"] for r in rows})
    assert all(r["_file"].split("_")[1].split("#")[0] == r["event_time"][:10] for r in rows)
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6}", r["event_time"]) for r in rows)
    assert len({r["$insert_id"] for r in rows}) == len(rows) and all(UUID.match(r["uuid"]) for r in rows)
    assert {r["platform"] for r in rows} == {"Web", "iOS", "Android"}
    # session_id: epoch milliseconds of the session's first event, one per canonical session
    starts: dict[tuple, int] = {}
    for r in rows:
        assert isinstance(r["session_id"], int) and r["session_id"] > 10**12
        key = (r["user_id"], r["session_id"])
        starts[key] = min(starts.get(key, r["ts_us"]), r["ts_us"])
    assert all(start // 1000 == session for (_, session), start in starts.items())
    assert len(starts) == len({e["session_id"] for e in canon["events"]})
    signups = {e["user_id"]: e["signup_us"] for e in canon["events"]}
    assert all(_us(r["user_creation_time"], "%Y-%m-%d %H:%M:%S.%f") == signups[r["user_id"]] for r in rows)
    exposures = [r for r in rows if r["event_type"] == "$exposure"]
    assert Counter((r["user_id"], r["event_properties"]["flag_key"], r["event_properties"]["variant"])
                   for r in exposures) == Counter((a["user_id"], a["experiment_id"], a["variant"])
                                                  for a in canon["assignments"])


def test_mixpanel_export_lines(rendered):
    rows = _jsonl(rendered["mixpanel"].path)
    assert all(set(r) == {"event", "properties", "_file"} for r in rows)
    for r in rows:
        p = r["properties"]
        assert isinstance(p["time"], int) and 10**9 < p["time"] < 10**10  # seconds, not ms
        assert p["distinct_id"] == p["$user_id"] and len(p["$insert_id"]) <= 36
        assert "session_id" not in p and "$session_id" not in p
        assert ("$browser" in p) == (p.get("Platform") == "web") and ("$current_url" not in p or "$browser" in p)
        assert ("$app_version_string" in p) == (p.get("Platform") in ("ios", "android"))
    assert len({r["properties"]["$insert_id"] for r in rows}) == len(rows)
    assert {r["properties"]["mp_lib"] for r in rows if "mp_lib" in r["properties"]} == {"web", "swift", "android"}


def test_posthog_batch_export_lines(read, canon):
    rows = read["posthog"]
    for r in rows:
        stamp = datetime.fromisoformat(r["timestamp"])
        assert stamp.utcoffset() == timedelta(0) and r["created_at"] == r["timestamp"]
        assert UUID.match(r["uuid"]) and UUID.match(r["person_id"])
    assert len({r["uuid"] for r in rows}) == len(rows)
    events = [r for r in rows if r["event"] != "$feature_flag_called"]
    assert len({r["session"] for r in events}) == len({e["session_id"] for e in canon["events"]})
    assert all(UUID.match(r["session"]) for r in events)
    errors = [r for r in rows if r["event"] == "$exception"]
    assert errors and all(r["properties"]["$exception_message"] == r["error_code"] for r in errors)
    pages = [r for r in rows if r["event"] == "$pageview"]
    assert pages and all(r["properties"]["$current_url"].startswith("https://") for r in pages)


def test_wide_csv_is_one_wide_file_without_ids(rendered, read):
    path = rendered["wide_csv"].path
    assert path.name == "events.csv.gz" and [p.name for p in path.parent.iterdir()] == ["events.csv.gz"]
    columns = set(read["wide_csv"][0]) - {"ts_us", "user", "event", "platform", "os", "browser", "country",
                                           "app_version", "plan", "acquisition_channel", "search_query",
                                           "results_count", "error_code", "load_time_ms", "revenue",
                                           "experiment_id", "variant", "session"}
    assert set(rendered["wide_csv"].dimensions.values()) <= columns
    assert not {"event_id", "session_id", "user_id"} & columns
    assert all(r["timestamp"].endswith("Z") for r in read["wide_csv"])


def test_rendering_is_deterministic_and_replaces_the_previous_export(db, rendered, tmp_path):
    for fmt, first in rendered.items():
        folder = first.path if first.path.is_dir() else first.path.parent
        before = {p.name: p.read_bytes() for p in folder.iterdir()}
        (folder / "stale.txt").write_text("left from an earlier run")
        again = render(db, fmt, folder.parent)
        assert again == first
        assert {p.name: p.read_bytes() for p in folder.iterdir()} == before, fmt
        assert not list(folder.parent.glob(f".{fmt}.*")), "staging folder left behind"


def test_unknown_format_and_missing_database_are_refused(db, tmp_path):
    with pytest.raises(ValueError, match="'segment'"):
        render(db, "segment", tmp_path)
    with pytest.raises(FileNotFoundError):
        render(tmp_path / "absent.duckdb", "ga4", tmp_path)
