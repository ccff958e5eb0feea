"""The warehouse: read-only, no external access, locked settings, timeouts, row caps, threads, clear errors."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import textwrap
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from data.schema import TABLES, create_tables
from tools.warehouse import QueryResult, Warehouse, WarehouseError

RUNAWAY = "SELECT count(*) FROM range(1000000000000) a"


def build_database(path: Path, users: int = 200, events: int = 500) -> None:
    """A small database: `users` users, `events` events spread over them, the other tables empty."""
    con = duckdb.connect(str(path))
    create_tables(con)
    con.execute(
        "INSERT INTO users SELECT 'u' || i, TIMESTAMP '2024-01-01' + i * INTERVAL 1 HOUR, 'US', 'ads', "
        "['free', 'pro'][i % 2 + 1] FROM range(?) t(i)",
        [users],
    )
    con.execute(
        "INSERT INTO events (event_id, ts, user_id, session_id, event, os, results_count, load_time_ms, properties) "
        "SELECT 'e' || i, TIMESTAMP '2024-02-01' + i * INTERVAL 1 MINUTE, 'u' || (i % ?), 's' || (i % 40), "
        "'Page Viewed', ['ios', 'android', 'web'][i % 3 + 1], CASE WHEN i % 2 = 0 THEN i END, 100 + i, '{}' "
        "FROM range(?) t(i)",
        [users, events],
    )
    con.close()


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    path = tmp_path / "events.duckdb"
    build_database(path)
    return path


@pytest.fixture
def warehouse(db_path: Path):
    with Warehouse(db_path) as wh:
        yield wh


def file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_reads_tables_and_columns(warehouse: Warehouse) -> None:
    assert warehouse.tables == TABLES
    assert warehouse.dialect == "duckdb"
    result = warehouse.query("SELECT os, count(*) AS n FROM events WHERE os = ? GROUP BY os", ["ios"])
    assert isinstance(result, QueryResult)
    assert result.df.to_dict("records") == [{"os": "ios", "n": 167}]
    assert not result.truncated and result.elapsed_ms >= 0
    assert warehouse.scalar("SELECT count(*) FROM users WHERE plan = ?", ["pro"]) == 100
    assert warehouse.scalar("SELECT 1 WHERE false") is None


def test_dtypes_are_kept(warehouse: Warehouse) -> None:
    df = warehouse.query("SELECT ts, load_time_ms, results_count, user_id FROM events ORDER BY ts").df
    assert list(df.columns) == ["ts", "load_time_ms", "results_count", "user_id"]
    assert pd.api.types.is_datetime64_dtype(df["ts"])
    assert pd.api.types.is_integer_dtype(df["load_time_ms"])
    assert df["results_count"].isna().sum() == 250
    assert df["ts"].iloc[0] == pd.Timestamp("2024-02-01")


def test_writes_fail_and_leave_the_file_unchanged(db_path: Path) -> None:
    before = file_digest(db_path)
    with Warehouse(db_path) as wh:
        checksum = wh.checksum()
        for sql in (
            "DELETE FROM events",
            "UPDATE users SET plan = 'x'",
            "INSERT INTO users VALUES ('x', NULL, NULL, NULL, NULL)",
            "DROP TABLE events",
            "CREATE TABLE x AS SELECT 1",
            "WITH t AS (DELETE FROM events RETURNING *) SELECT * FROM t",
        ):
            with pytest.raises(WarehouseError, match="read-only"):
                wh.query(sql)
        assert wh.checksum() == checksum
    assert file_digest(db_path) == before


def test_external_access_is_off(warehouse: Warehouse, tmp_path: Path) -> None:
    csv = tmp_path / "outside.csv"
    csv.write_text("a,b\n1,2\n")
    leak = pd.DataFrame({"secret": [1]})  # noqa: F841 - DuckDB would scan this local by name if allowed
    for sql in (
        f"SELECT * FROM read_csv('{csv}')",
        f"SELECT * FROM '{csv}'",
        "SELECT * FROM read_csv('/etc/hostname')",
        f"COPY events TO '{tmp_path / 'copy.csv'}'",
        f"ATTACH '{tmp_path / 'other.duckdb'}' AS other",
        "INSTALL httpfs",
        "LOAD httpfs",
        "SELECT * FROM leak",
    ):
        with pytest.raises(WarehouseError):
            warehouse.query(sql)
    assert not (tmp_path / "copy.csv").exists() and not (tmp_path / "other.duckdb").exists()


def test_configuration_is_applied_and_locked(db_path: Path) -> None:
    with Warehouse(db_path, threads=1, memory_limit="512MB") as wh:
        assert wh.scalar("SELECT current_setting('threads')") == 1
        assert wh.scalar("SELECT current_setting('enable_external_access')") is False
        assert wh.scalar("SELECT current_setting('lock_configuration')") is True
        for sql in (
            "SET threads = 4",
            "SET memory_limit = '10GB'",
            "SET enable_external_access = true",
            "SET lock_configuration = false",
            "RESET threads",
        ):
            with pytest.raises(WarehouseError, match="locked"):
                wh.query(sql)
        assert wh.scalar("SELECT current_setting('threads')") == 1


def test_row_cap_and_truncated_flag(db_path: Path) -> None:
    with Warehouse(db_path, row_cap=100) as wh:
        capped = wh.query("SELECT * FROM events ORDER BY ts", row_cap=10)
        assert len(capped.df) == 10 and capped.truncated
        assert capped.df["event_id"].tolist() == [f"e{i}" for i in range(10)]
        exact = wh.query("SELECT * FROM events", row_cap=500)
        assert len(exact.df) == 500 and not exact.truncated
        assert len(wh.query("SELECT * FROM events").df) == 500  # trusted, no cap
        guarded = wh.run_guarded("SELECT * FROM events")  # the warehouse default
        assert len(guarded.df) == 100 and guarded.truncated
        many = wh.query("SELECT * FROM range(5000) t(i)", row_cap=4500)  # spans several DuckDB chunks
        assert many.df["i"].tolist() == list(range(4500)) and many.truncated
        assert not wh.query("SELECT * FROM range(5000) t(i)", row_cap=5000).truncated
        empty = wh.query("SELECT * FROM events WHERE false", row_cap=10)
        assert empty.df.empty and list(empty.df.columns) == list(TABLES["events"]) and not empty.truncated


def test_runaway_query_is_interrupted_and_the_warehouse_stays_usable(db_path: Path) -> None:
    with Warehouse(db_path, timeout_s=0.5) as wh:
        for run in (wh.query, wh.run_guarded):
            started = time.perf_counter()
            with pytest.raises(WarehouseError, match=r"interrupted after 0\.5 s"):
                run(RUNAWAY)
            assert time.perf_counter() - started < 5
        with pytest.raises(WarehouseError, match="interrupted"):
            wh.run_guarded("SELECT count(*) FROM events a, events b, events c, events d")
        assert wh.scalar("SELECT count(*) FROM events") == 500
        time.sleep(0.6)  # no stale interrupt may hit a later statement
        assert wh.query("SELECT count(*) AS n FROM users").df["n"].iloc[0] == 200


def test_concurrent_threads_get_their_own_correct_results(db_path: Path) -> None:
    with Warehouse(db_path, timeout_s=1.0) as wh:

        def work(worker: int) -> list[tuple[int, int]]:
            if worker == 0:
                with pytest.raises(WarehouseError, match="interrupted"):
                    wh.query(RUNAWAY)
            answers = []
            for i in range(25):
                n = worker * 10 + i
                got = wh.scalar("SELECT count(*) FROM events WHERE load_time_ms < 100 + ?", [n])
                frame = wh.query("SELECT event_id FROM events WHERE load_time_ms < 100 + ?", [n]).df
                assert len(frame) == got
                answers.append((n, got))
            return answers

        with ThreadPoolExecutor(max_workers=8) as pool:
            results = list(pool.map(work, range(8)))
    assert all(got == n for answers in results for n, got in answers)


def test_missing_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.duckdb"
    with pytest.raises(WarehouseError, match="database file not found") as error:
        Warehouse(missing)
    assert str(missing) in str(error.value) and "insight generate" in str(error.value)


def test_garbage_file(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.duckdb"
    garbage.write_bytes(b"this is not a database\n" * 500)
    with pytest.raises(WarehouseError, match="not a DuckDB database") as error:
        Warehouse(garbage)
    assert str(garbage) in str(error.value)


def test_file_held_read_write_in_this_process(db_path: Path) -> None:
    writer = duckdb.connect(str(db_path))
    try:
        with pytest.raises(WarehouseError) as error:
            Warehouse(db_path)
        assert str(db_path) in str(error.value) and "read-write" in str(error.value)
    finally:
        writer.close()
    with Warehouse(db_path) as wh:
        assert wh.scalar("SELECT count(*) FROM users") == 200


def test_file_held_read_write_by_another_process(db_path: Path) -> None:
    script = textwrap.dedent(
        f"""
        import sys, duckdb
        con = duckdb.connect({str(db_path)!r})
        print("ready", flush=True)
        sys.stdin.read()
        """
    )
    writer = subprocess.Popen(
        [sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert writer.stdout.readline().strip() == "ready"
        with pytest.raises(WarehouseError, match="another process is writing it") as error:
            Warehouse(db_path)
        assert str(db_path) in str(error.value)
    finally:
        writer.communicate("", timeout=30)


def test_two_warehouses_on_one_file_share_the_locked_instance(db_path: Path) -> None:
    with Warehouse(db_path) as first, Warehouse(db_path) as second:
        assert first.checksum() == second.checksum()
        with pytest.raises(WarehouseError, match="locked"):
            second.query("SET threads = 8")


def test_checksum_tracks_content_not_row_order(tmp_path: Path) -> None:
    paths = [tmp_path / f"{name}.duckdb" for name in ("a", "b", "c")]
    for path in paths:
        build_database(path)
    shuffled = duckdb.connect(str(paths[1]))
    shuffled.execute("CREATE TEMP TABLE copy AS SELECT * FROM events ORDER BY random()")
    shuffled.execute("DELETE FROM events")
    shuffled.execute("INSERT INTO events SELECT * FROM copy")
    shuffled.close()
    changed = duckdb.connect(str(paths[2]))
    changed.execute("UPDATE users SET plan = 'enterprise' WHERE user_id = 'u7'")
    changed.close()
    a, b, c = (Warehouse(path) for path in paths)
    try:
        assert a.checksum() == b.checksum() != c.checksum()
    finally:
        for wh in (a, b, c):
            wh.close()


def test_closed_warehouse_refuses_queries(db_path: Path) -> None:
    with Warehouse(db_path) as wh:
        wh.scalar("SELECT 1")
    with pytest.raises(WarehouseError):
        wh.scalar("SELECT 1")
