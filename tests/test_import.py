"""Importers: folder and Segment sources, round trips, refusals and all-or-nothing writes."""

from __future__ import annotations

import hashlib
import json
import tempfile
from datetime import datetime
from pathlib import Path

import duckdb
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from data.importers import (
    ImportFailed,
    export_folder,
    import_folder,
    import_segment,
    import_source,
    table_counts,
)
from data.schema import TABLES, create_tables
from tests.importing import existing_database

USERS = "user_id,signed_up_at,country,plan\nu1,2026-01-01 09:00:00,US,free\nu2,2026-01-02T10:00:00Z,DE,pro\n"
EVENTS_HEADER = "event_id,ts,user_id,event,session_id,results_count,price,properties\n"


def events_csv(*rows: str) -> str:
    return EVENTS_HEADER + "".join(f"{row}\n" for row in rows)


GOOD_EVENTS = events_csv(
    'e1,2026-01-03T12:00:00+02:00,u1,Products Searched,s1,12,,"{""query"": ""red shoes""}"',
    "e2,2026-01-03 10:05:00,u1,Product Viewed,s1,,19.5,",
    "e3,2026-01-04T08:00:00Z,u2,Order Completed,s2,,,",
)


def write(folder: Path, files: dict[str, str | bytes]) -> Path:
    for name, content in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
    return folder


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def query(db: Path, sql: str) -> list[tuple]:
    with duckdb.connect(str(db), read_only=True) as con:
        return con.execute(sql).fetchall()


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return existing_database(tmp_path)


def assert_untouched(db: Path, digest: str) -> None:
    assert sha256(db) == digest
    assert [p.name for p in db.parent.iterdir()] == [db.name]  # no temp file or WAL left behind


def refused(source: Path, db: Path, *fragments: str, segment: bool = False, **attrs: object) -> ImportFailed:
    digest = sha256(db)
    with pytest.raises(ImportFailed) as info:
        (import_segment if segment else import_folder)(source, db)
    message = str(info.value)
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message
    for name, value in attrs.items():
        assert getattr(info.value, name) == value, message
    assert_untouched(db, digest)
    return info.value


# ------------------------------------------------------------------------------ happy paths


def test_csv_folder(tmp_path: Path, db: Path) -> None:
    source = write(tmp_path / "src", {"users.csv": USERS, "events.csv": GOOD_EVENTS, "README.md": "notes", ".DS_Store": b"\0"})
    messages: list[str] = []
    counts = import_folder(source, db, progress=messages.append)
    assert counts == {"users": 2, "events": 3, "experiments": 0, "assignments": 0, "products": 0}
    assert table_counts(db) == counts
    assert any("events.csv" in m for m in messages)
    assert [p.name for p in db.parent.iterdir()] == [db.name]
    rows = query(db, "SELECT event_id, ts, results_count, price, properties, platform FROM events ORDER BY event_id")
    assert rows == [
        ("e1", datetime(2026, 1, 3, 10, 0), 12, None, '{"query":"red shoes"}', None),
        ("e2", datetime(2026, 1, 3, 10, 5), None, 19.5, None, None),
        ("e3", datetime(2026, 1, 4, 8, 0), None, None, None, None),
    ]
    assert query(db, "SELECT user_id, signed_up_at, acquisition_channel FROM users ORDER BY 1") == [
        ("u1", datetime(2026, 1, 1, 9), None),
        ("u2", datetime(2026, 1, 2, 10), None),
    ]


def test_parquet_folder(tmp_path: Path, db: Path) -> None:
    source = tmp_path / "src"
    source.mkdir()
    with duckdb.connect() as con:
        con.execute(f"COPY (SELECT 'u' || i AS user_id FROM range(3) t(i)) TO '{source / 'users.parquet'}'")
        con.execute(
            f"""COPY (SELECT 'e' || i AS event_id, TIMESTAMP '2026-01-01' + INTERVAL (i) HOUR AS ts,
                       'u' || (i % 3) AS user_id, 'Page Viewed' AS event, i AS load_time_ms,
                       {{'page': 'home', 'n': i}} AS properties
                FROM range(10) t(i)) TO '{source / 'events.parquet'}'"""
        )
    assert import_folder(source, db)["events"] == 10
    assert query(db, "SELECT ts, load_time_ms, properties FROM events WHERE event_id = 'e2'") == [
        (datetime(2026, 1, 1, 2), 2, '{"page":"home","n":2}')
    ]


def test_jsonl_folder(tmp_path: Path, db: Path) -> None:
    events = [
        {"event_id": "e1", "ts": "2026-01-03T12:00:00-05:00", "user_id": "u1", "event": "Products Searched",
         "search_query": "boots", "results_count": 4, "properties": {"query": "boots", "filters": ["size"]}},
        {"event_id": "e2", "ts": "2026-01-03 18:00:00", "user_id": "u2", "event": "Product Added", "price": 9.5},
    ]
    text = json.dumps(events[0]) + "\n\n" + json.dumps(events[1]) + "\n"
    users = "".join(json.dumps({"user_id": u, "plan": "free"}) + "\n" for u in ("u1", "u2"))
    source = write(tmp_path / "src", {"users.json": users, "events.jsonl": text})
    assert import_source(source, db) == {"users": 2, "events": 2, "experiments": 0, "assignments": 0, "products": 0}
    assert query(db, "SELECT event_id, ts, results_count, price, properties FROM events ORDER BY 1") == [
        ("e1", datetime(2026, 1, 3, 17), 4, None, '{"query":"boots","filters":["size"]}'),
        ("e2", datetime(2026, 1, 3, 18), None, 9.5, None),
    ]


def test_folder_of_parquet_parts(tmp_path: Path, db: Path) -> None:
    source = write(tmp_path / "src", {"users.csv": USERS})
    (source / "events").mkdir()
    with duckdb.connect() as con:
        for part in range(3):
            con.execute(
                f"""COPY (SELECT 'e{part}-' || i AS event_id, TIMESTAMP '2026-01-01' AS ts, 'u1' AS user_id,
                           'Page Viewed' AS event FROM range({part + 2}) t(i))
                    TO '{source / 'events' / f'part-{part}.parquet'}'"""
            )
    assert import_folder(source, db)["events"] == 2 + 3 + 4


# ------------------------------------------------------------------------------ round trip


def build_reference_db(path: Path) -> None:
    with duckdb.connect(str(path)) as con:
        create_tables(con)
        con.execute(
            """INSERT INTO users SELECT 'u' || i, TIMESTAMP '2025-12-01' + INTERVAL (i) DAY,
                   ['US', 'DE', NULL][i % 3 + 1], 'ads', CASE WHEN i % 2 = 0 THEN 'pro' END FROM range(5) t(i)"""
        )
        con.execute(
            """INSERT INTO events SELECT
                   'e' || i, TIMESTAMP '2026-01-01 00:00:00.123456' + INTERVAL (i * 37) MINUTE, 'u' || (i % 5),
                   's' || (i // 4), ['Product Viewed', 'Product Added', 'Order Completed'][i % 3 + 1],
                   ['ios', 'android', 'web'][i % 3 + 1], 'ios', '5.2.0', NULL, 'US', 'product',
                   'p' || (i % 7), 'shoes', 0.1 * i, CASE WHEN i % 3 = 2 THEN 19.99 * i END,
                   CASE WHEN i % 10 = 0 THEN 'red, "shoes"' || chr(10) || 'size 9' END,
                   CASE WHEN i % 10 = 0 THEN i END, NULL, 100 + i,
                   CASE WHEN i % 4 <> 0 THEN json_object('i', i, 'tags', ['a', 'b'], 'nested', {'x': 1.5}) END
               FROM range(50) t(i)"""
        )
        con.execute(
            """INSERT INTO experiments VALUES ('exp1', 'New checkout', '2026-01-01', NULL,
                   'Fewer steps convert better', 'Order Completed')"""
        )
        con.execute("INSERT INTO assignments SELECT 'exp1', 'u' || i, ['control', 'treatment'][i % 2 + 1], NULL FROM range(5) t(i)")
        con.execute("INSERT INTO products SELECT 'p' || i, 'Product ' || i, 'shoes', 10.5 * i FROM range(7) t(i)")


@pytest.mark.parametrize("fmt", ["parquet", "csv", "jsonl"])
def test_round_trip(tmp_path: Path, fmt: str) -> None:
    original, copy = tmp_path / "original.duckdb", tmp_path / "copy.duckdb"
    build_reference_db(original)
    files = export_folder(original, tmp_path / "export", format=fmt)
    assert sorted(p.name for p in files) == sorted(f"{table}.{fmt}" for table in TABLES)
    assert import_folder(tmp_path / "export", copy) == table_counts(original)
    with duckdb.connect() as con:
        con.execute(f"ATTACH '{original}' AS a (READ_ONLY)")
        con.execute(f"ATTACH '{copy}' AS b (READ_ONLY)")
        for table in TABLES:
            for left, right in (("a", "b"), ("b", "a")):
                diff = con.execute(f"SELECT * FROM {left}.{table} EXCEPT SELECT * FROM {right}.{table}").fetchall()
                assert diff == [], (table, left, diff)


# ------------------------------------------------------------------------------ Segment


def segment_line(**fields: object) -> str:
    return json.dumps(fields) + "\n"


def test_segment_jsonl(tmp_path: Path, db: Path) -> None:
    chrome = "Mozilla/5.0 (Macintosh) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36"
    lines = [
        segment_line(type="identify", userId="u1", traits={"country": "US", "plan": "free", "created_at": "2025-12-01T00:00:00Z"}),
        segment_line(type="identify", userId="u1", traits={"plan": "pro"}),
        segment_line(
            type="track", event="Product Added", userId="u1", messageId="m1", timestamp="2026-01-01T10:00:00Z",
            properties={"product_id": "p1", "price": 9.5, "category": "shoes", "query": "red shoes", "session_id": "s1"},
            context={"os": {"name": "iOS", "version": "17"}, "app": {"version": "5.2.0"}, "device": {"type": "ios"},
                     "locale": "en-US", "location": {"country": "US"}, "page": {"path": "/cart"}},
        ),
        segment_line(
            type="track", event="Products Searched", anonymousId="anon-7", messageId="m2",
            timestamp="2026-01-02T10:00:00+01:00", properties={"query": "boots", "results_count": 0},
            context={"userAgent": chrome, "session_id": "s9"},
        ),
        segment_line(type="page", name="Home", userId="u1", messageId="m3", timestamp="2026-01-01T09:00:00Z"),
    ]
    path = write(tmp_path, {"track.jsonl": "".join(lines)}) / "track.jsonl"
    messages: list[str] = []
    counts = import_source(path, db, progress=messages.append)
    assert counts["events"] == 2 and counts["users"] == 2
    assert any("skipped 1" in m and "page" in m for m in messages)
    assert query(
        db,
        """SELECT event_id, ts, user_id, session_id, event, platform, os, app_version, browser, country, page,
                  product_id, category, price, search_query, results_count, properties->>'$.category'
           FROM events ORDER BY event_id""",
    ) == [
        ("m1", datetime(2026, 1, 1, 10), "u1", "s1", "Product Added", "ios", "ios", "5.2.0", None, "US", "/cart",
         "p1", "shoes", 9.5, "red shoes", None, "shoes"),
        ("m2", datetime(2026, 1, 2, 9), "anon-7", "s9", "Products Searched", "web", None, None, "chrome", None, None,
         None, None, None, "boots", 0, None),
    ]
    assert query(db, "SELECT * FROM users ORDER BY user_id") == [
        ("anon-7", datetime(2026, 1, 2, 9), None, None, None),
        ("u1", datetime(2025, 12, 1), "US", None, "pro"),
    ]


# ------------------------------------------------------------------------------ refusals


def test_missing_events_file(tmp_path: Path, db: Path) -> None:
    source = write(tmp_path / "src", {"users.csv": USERS})
    refused(source, db, "missing required table 'events'", "events.csv")


def test_missing_required_column(tmp_path: Path, db: Path) -> None:
    source = write(tmp_path / "src", {"users.csv": USERS, "events.csv": "event_id,user_id,event\ne1,u1,x\n"})
    refused(source, db, "events.csv, column ts: missing required column", file="events.csv", column="ts")


def test_extra_columns_of_events_and_users_are_kept_typed(tmp_path: Path, db: Path) -> None:
    """A team's own columns are kept (typed by their values), not refused: they become dimensions."""
    events = "event_id,ts,user_id,event,colour,basket_size\ne1,2026-01-01,u1,x,red,3\ne2,2026-01-02,u1,y,,12\n"
    users = "user_id,signed_up_at,user_lifecycle\nu1,2026-01-01,new\n"
    source = write(tmp_path / "src", {"users.csv": users, "events.csv": events})
    import_folder(source, db)
    con = duckdb.connect(str(db), read_only=True)
    types = dict(con.execute("SELECT column_name, data_type FROM duckdb_columns() WHERE table_name = 'events'").fetchall())
    assert (types["colour"], types["basket_size"]) == ("VARCHAR", "BIGINT")
    assert con.execute("SELECT colour, basket_size FROM events ORDER BY ts").fetchall() == [("red", 3), (None, 12)]
    assert con.execute("SELECT user_lifecycle FROM users").fetchall() == [("new",)]
    con.close()


def test_unknown_column_of_a_fixed_table(tmp_path: Path, db: Path) -> None:
    products = "product_id,colour\np1,red\n"
    source = write(tmp_path / "src", {"users.csv": USERS, "events.csv": GOOD_EVENTS, "products.csv": products})
    refused(source, db, "products.csv, column colour: unknown column 'colour'", "expected columns: product_id,",
            file="products.csv", column="colour")


def test_unknown_table_file(tmp_path: Path, db: Path) -> None:
    source = write(tmp_path / "src", {"users.csv": USERS, "events.csv": GOOD_EVENTS, "orders.csv": "a\n1\n"})
    refused(source, db, "unknown table 'orders' (file orders.csv); expected one of users, events", file="orders.csv")


def test_bad_timestamp_names_row_and_column(tmp_path: Path, db: Path) -> None:
    # Row 1 holds a quoted line break, so data row 3 is physical line 5: rows are counted, not lines.
    events = events_csv(
        'e1,2026-01-01,u1,x,"two\nlines",,,',
        "e2,2026-01-02,u1,x,s1,,,",
        "e3,yesterday,u1,x,s1,,,",
        "e4,also bad,u1,x,s1,,,",
    )
    source = write(tmp_path / "src", {"users.csv": USERS, "events.csv": events})
    refused(source, db, "events.csv row 3, column ts: cannot parse 'yesterday' as TIMESTAMP",
            file="events.csv", row=3, column="ts")


def test_bad_integer(tmp_path: Path, db: Path) -> None:
    events = events_csv("e1,2026-01-01,u1,x,s1,3,,", "e2,2026-01-01,u1,x,s1,many,,")
    source = write(tmp_path / "src", {"users.csv": USERS, "events.csv": events})
    refused(source, db, "events.csv row 2, column results_count: cannot parse 'many' as INTEGER",
            row=2, column="results_count")


def test_fractional_integer(tmp_path: Path, db: Path) -> None:
    source = write(tmp_path / "src", {"users.csv": USERS, "events.csv": events_csv("e1,2026-01-01,u1,x,s1,2.5,,")})
    refused(source, db, "events.csv row 1, column results_count: cannot parse '2.5' as INTEGER")


def test_duplicate_event_id(tmp_path: Path, db: Path) -> None:
    events = events_csv("e1,2026-01-01,u1,x,,,,", "e2,2026-01-01,u1,x,,,,", "e1,2026-01-02,u2,y,,,,")
    source = write(tmp_path / "src", {"users.csv": USERS, "events.csv": events})
    refused(source, db, "events.csv row 3, column event_id: duplicate value 'e1' (at row 1, row 3)",
            row=3, column="event_id")


def test_duplicate_event_id_across_parts(tmp_path: Path, db: Path) -> None:
    source = write(tmp_path / "src", {
        "users.csv": USERS,
        "events/a.csv": events_csv("e1,2026-01-01,u1,x,,,,", "e2,2026-01-01,u1,x,,,,"),
        "events/b.csv": events_csv("e3,2026-01-01,u1,x,,,,", "e2,2026-01-01,u1,x,,,,"),
    })
    refused(source, db, "events/b.csv row 2, column event_id: duplicate value 'e2'",
            "(at events/a.csv row 2, events/b.csv row 2)", file="events/b.csv", row=2)


def test_duplicate_user_id(tmp_path: Path, db: Path) -> None:
    source = write(tmp_path / "src", {"users.csv": USERS + "u1,,,\n", "events.csv": GOOD_EVENTS})
    refused(source, db, "users.csv row 3, column user_id: duplicate value 'u1'")


def test_null_user_id(tmp_path: Path, db: Path) -> None:
    events = events_csv("e1,2026-01-01,u1,x,,,,", "e2,2026-01-01,,x,,,,")
    source = write(tmp_path / "src", {"users.csv": USERS, "events.csv": events})
    refused(source, db, "events.csv row 2, column user_id: missing required value", row=2, column="user_id")


def test_invalid_json_properties(tmp_path: Path, db: Path) -> None:
    events = events_csv('e1,2026-01-01,u1,x,,,,"{""ok"": 1}"', "e2,2026-01-01,u1,x,,,,{oops")
    source = write(tmp_path / "src", {"users.csv": USERS, "events.csv": events})
    refused(source, db, "events.csv row 2, column properties: cannot parse '{oops' as JSON", column="properties")


def test_corrupt_parquet(tmp_path: Path, db: Path) -> None:
    source = write(tmp_path / "src", {"users.csv": USERS, "events.parquet": b"PAR1 this is not parquet PAR1"})
    refused(source, db, "events.parquet: cannot read Parquet file", file="events.parquet")


def test_malformed_jsonl_line(tmp_path: Path, db: Path) -> None:
    good = json.dumps({"event_id": "e1", "ts": "2026-01-01", "user_id": "u1", "event": "x"})
    source = write(tmp_path / "src", {"users.csv": USERS, "events.jsonl": f"{good}\n\n{{\"event_id\": \"e2\",\n{good}\n"})
    refused(source, db, "events.jsonl line 3: cannot read JSON lines file: Malformed JSON", file="events.jsonl", line=3)


def test_jsonl_bad_value_names_physical_line(tmp_path: Path, db: Path) -> None:
    rows = [{"event_id": f"e{i}", "ts": ts, "user_id": "u1", "event": "x"} for i, ts in enumerate(["2026-01-01", "soon"])]
    text = f"{json.dumps(rows[0])}\n\n{json.dumps(rows[1])}\n"  # a blank line: record 2 is line 3
    source = write(tmp_path / "src", {"users.csv": USERS, "events.jsonl": text})
    refused(source, db, "events.jsonl line 3, column ts: cannot parse 'soon' as TIMESTAMP", row=2, line=3)


def test_jsonl_line_not_an_object(tmp_path: Path, db: Path) -> None:
    source = write(tmp_path / "src", {"users.csv": USERS, "events.jsonl": "[1, 2]\n"})
    refused(source, db, "events.jsonl line 1: expected a JSON object")


def test_ragged_csv_row(tmp_path: Path, db: Path) -> None:
    events = events_csv("e1,2026-01-01,u1,x,,,,", "e2,2026-01-01,u1,x,,,,,extra")
    source = write(tmp_path / "src", {"users.csv": USERS, "events.csv": events})
    refused(source, db, "events.csv line 3: cannot read CSV file", "Expected Number of Columns: 8 Found: 9", line=3)


@pytest.mark.parametrize("name, content", [("events.csv", EVENTS_HEADER), ("events.csv", ""), ("events.jsonl", "")])
def test_empty_events(tmp_path: Path, db: Path, name: str, content: str) -> None:
    source = write(tmp_path / "src", {"users.csv": USERS, name: content})
    refused(source, db, f"{name}: the events table is empty", file=name)


def test_segment_missing_message_id(tmp_path: Path, db: Path) -> None:
    ok = segment_line(type="track", event="x", userId="u1", messageId="m1", timestamp="2026-01-01T00:00:00Z")
    bad = segment_line(type="track", event="x", userId="u1", timestamp="2026-01-01T00:00:00Z")
    path = write(tmp_path, {"track.jsonl": ok + bad}) / "track.jsonl"
    refused(path, db, "track.jsonl line 2, field messageId: missing required value", segment=True,
            line=2, column="messageId")


def test_segment_bad_price(tmp_path: Path, db: Path) -> None:
    bad = segment_line(type="track", event="x", userId="u1", messageId="m1", timestamp="2026-01-01T00:00:00Z",
                       properties={"price": "cheap"})
    path = write(tmp_path, {"track.jsonl": bad}) / "track.jsonl"
    refused(path, db, "track.jsonl line 1, field properties.price: cannot parse 'cheap' as DOUBLE", segment=True)


def test_failed_import_into_new_path_leaves_nothing(tmp_path: Path) -> None:
    source = write(tmp_path / "src", {"users.csv": USERS, "events.csv": events_csv("e1,never,u1,x,,,,")})
    target = tmp_path / "fresh" / "insight.duckdb"
    with pytest.raises(ImportFailed):
        import_folder(source, target)
    assert list(target.parent.iterdir()) == []


# ------------------------------------------------------------------------------ fuzzing

EVENT_KEYS = st.sampled_from(["event_id", "ts", "user_id", "event", "price", "results_count", "properties", "junk"])
JSON_VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=12),
    st.sampled_from(["2026-01-01", "2026-01-01T00:00:00Z", "e1"]), st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)
GARBAGE = st.one_of(
    st.binary(max_size=400).map(lambda b: ("events.csv", b)),
    st.text(max_size=400).map(lambda t: ("events.csv", (EVENTS_HEADER + t).encode())),
    st.binary(max_size=400).map(lambda b: ("events.jsonl", b)),
    st.text(alphabet='{}[]":,0123456789abcets_ \n\\', max_size=400).map(lambda t: ("events.jsonl", t.encode())),
    st.lists(st.dictionaries(EVENT_KEYS, JSON_VALUES, max_size=6), max_size=4).map(
        lambda rows: ("events.jsonl", "".join(json.dumps(r) + "\n" for r in rows).encode())
    ),
)


@settings(max_examples=30, deadline=None)
@given(GARBAGE)
def test_garbage_events_never_escape_import_failed(garbage: tuple[str, bytes]) -> None:
    name, content = garbage
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        source = write(root / "src", {"users.csv": USERS, name: content})
        target = root / "dbdir" / "insight.duckdb"
        target.parent.mkdir()
        with duckdb.connect(str(target)) as con:
            create_tables(con)
        digest = sha256(target)
        try:
            import_folder(source, target)
        except ImportFailed as err:
            assert "\n" not in str(err)
            assert_untouched(target, digest)
        else:  # the fuzzer stumbled on a valid file
            assert [p.name for p in target.parent.iterdir()] == [target.name]
