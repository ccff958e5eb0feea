"""Warehouse hardening: impossible stored timestamps, result bytes, settings reads, huge queries, ended threads."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import duckdb
import pytest

from agent.api import InsightAgent
from agent.digest import run_digest
from data.export import export_lake
from data.generate import generate
from data.scenario import load_scenario
from data.schema import MAX_YEAR, MIN_YEAR, TABLES
from tests.test_warehouse import build_database
from tools.scan import scan
from tools.sql_guard import MAX_MESSAGE, MAX_SQL_CHARS, SqlRefused, check_sql
from tools.tracking import check_tracking
from tools.warehouse import Warehouse, WarehouseError

ROOT = Path(__file__).resolve().parent.parent
IMPOSSIBLE = ["9999-12-31 23:59:59", "infinity", "-infinity", "0044-03-15 (BC)"]


def add_impossible_rows(path: Path) -> None:
    """Events, a user, an experiment and a DATE column with impossible times, written read-write."""
    con = duckdb.connect(str(path))
    for i, ts in enumerate(IMPOSSIBLE):
        con.execute("INSERT INTO events (event_id, ts, user_id, session_id, event) "
                    "SELECT ?, CAST(? AS TIMESTAMP), min(user_id), 's-bad', 'Page Viewed' FROM users", [f"bad{i}", ts])
    con.execute("UPDATE users SET signed_up_at = 'infinity' WHERE user_id = (SELECT min(user_id) FROM users)")
    con.execute("INSERT INTO experiments (experiment_id, name, started_at) VALUES ('x-bad', 'Bad', '-infinity')")
    con.execute("CREATE TABLE holidays AS SELECT * FROM (VALUES (DATE '2024-12-25', 'xmas'), "
                "(DATE '5000000-01-01', 'far'), (NULL, 'unknown')) t(day, name)")
    con.close()


@pytest.fixture(scope="module")
def impossible_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("impossible") / "impossible.duckdb"
    generate(load_scenario("demo").model_copy(update={"users": 400}), path)
    add_impossible_rows(path)
    return path


def test_rows_outside_the_plausible_range_are_counted_and_left_out(tmp_path: Path) -> None:
    path = tmp_path / "small.duckdb"
    build_database(path)
    con = duckdb.connect(str(path))
    for ts in (f"{MIN_YEAR}-01-01", f"{MAX_YEAR - 1}-12-31 23:59:59", f"{MIN_YEAR - 1}-12-31 23:59:59",
               f"{MAX_YEAR}-01-01", *IMPOSSIBLE):
        con.execute("INSERT INTO events (event_id, ts, user_id, event) VALUES (?, CAST(? AS TIMESTAMP), 'u1', 'x')",
                    [f"edge {ts}", ts])
    con.close()
    with Warehouse(path) as wh:
        assert wh.ignored_rows == {"events": 6}
        assert wh.scalar("SELECT count(*) FROM events") == 502
        assert wh.query("SELECT * FROM events").df["ts"].min().year == MIN_YEAR
        assert len(wh.run_guarded("SELECT * FROM events ORDER BY ts DESC").df) == 502
        recent = wh.materialize("recent", "SELECT * FROM events WHERE ts > TIMESTAMP '2024-02-01'")
        assert wh.scalar(f"SELECT count(*) FROM {recent}") == 500  # 499 of the 500, the last edge row
    with Warehouse(path) as wh:  # every thread's cursor sees the same rows
        counts = []
        workers = [threading.Thread(target=lambda: counts.append(wh.scalar("SELECT count(*) FROM events")))
                   for _ in range(4)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        assert counts == [502] * 4


def test_the_checksum_covers_the_stored_rows(tmp_path: Path) -> None:
    clean, dirty = tmp_path / "clean.duckdb", tmp_path / "dirty.duckdb"
    for path in (clean, dirty):
        build_database(path)
    con = duckdb.connect(str(dirty))
    con.execute("INSERT INTO events (event_id, ts, user_id, event) VALUES ('late', 'infinity', 'u1', 'x')")
    con.close()
    with Warehouse(clean) as a, Warehouse(dirty) as b:
        assert b.ignored_rows == {"events": 1} and not a.ignored_rows
        assert a.checksum() != b.checksum()


def test_a_database_with_impossible_times_opens_and_every_analysis_runs(impossible_db: Path, tmp_path: Path) -> None:
    with Warehouse(impossible_db) as wh:
        assert wh.ignored_rows == {"events": 4, "users": 1, "experiments": 1, "holidays": 1}
        assert wh.query("SELECT * FROM holidays").df["name"].tolist() == ["xmas", "unknown"]
        assert wh.query("SELECT * FROM users").df["signed_up_at"].notna().all()
        report = scan(wh)
        assert report.suggestions and "Left out 4 events row(s) with a time outside 1990..2099" in report.notes[0]
        assert "Left out 1 users row(s)" in " ".join(report.notes)
        assert check_tracking(wh).title
        with pytest.raises(WarehouseError) as refused:
            wh.run_guarded("SELECT nosuch FROM events")
        assert str(impossible_db) not in str(refused.value)  # errors never reveal where the data lives
        assert run_digest(wh, tmp_path / "digest").week
    with InsightAgent(db=impossible_db, llm=None, state_dir=tmp_path / "state") as agent:
        assert agent.ask("what should we fix first?").suggestions


def test_the_cli_scans_a_database_with_impossible_times(impossible_db: Path, tmp_path: Path) -> None:
    insight = Path(sys.executable).parent / "insight"
    run = subprocess.run([str(insight), "scan", "--db", str(impossible_db)], cwd=tmp_path, capture_output=True,
                         text=True, timeout=300, env={**os.environ, "INSIGHT_STATE_DIR": str(tmp_path / "state")})
    assert run.returncode == 0, run.stderr[-2000:]


def test_a_lake_with_impossible_times_is_read_without_them(impossible_db: Path, tmp_path: Path) -> None:
    export_lake(impossible_db, tmp_path / "lake")
    with Warehouse(tmp_path / "lake") as wh:
        assert wh.ignored_rows == {"events": 4, "users": 1, "experiments": 1}
        assert wh.query("SELECT * FROM events").df["ts"].max().year < MAX_YEAR


MEMORY_SCRIPT = """
import resource, sys
from tools.warehouse import Warehouse, WarehouseError

wh = Warehouse(sys.argv[1], memory_limit="1GB")
for rows in (20, 200):
    try:
        result = wh.run_guarded(f"SELECT repeat('x', 20000000) || 'i' AS s FROM range({rows})")
        print(rows, "truncated" if result.truncated else "complete", len(result.df), flush=True)
    except WarehouseError as error:
        print(rows, "refused" if "result row is over" in str(error) else f"failed {error}", flush=True)
print("peak_mb", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024)
"""


def test_huge_result_values_are_refused_within_bounded_memory(tmp_path: Path) -> None:
    path = tmp_path / "small.duckdb"
    build_database(path)
    limit = 4 * 2**30  # address space: DuckDB's start-up fits, the unbounded pandas conversion does not
    preexec = f"import resource; resource.setrlimit(resource.RLIMIT_AS, ({limit}, {limit}))\n"
    run = subprocess.run([sys.executable, "-c", preexec + textwrap.dedent(MEMORY_SCRIPT), str(path)], cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    lines = run.stdout.splitlines()
    assert lines[:2] == ["20 refused", "200 refused"], run.stdout
    assert int(lines[2].split()[1]) < 2048, run.stdout  # DuckDB's 1 GB limit and the interpreter; was 6.3 GB


def test_results_are_cut_at_the_byte_cap(tmp_path: Path) -> None:
    path = tmp_path / "small.duckdb"
    build_database(path)
    with Warehouse(path, byte_cap=1_000_000) as wh:
        result = wh.run_guarded("SELECT repeat('x', 300) || i AS s FROM range(5000) t(i) ORDER BY i")
        assert result.truncated and 0 < len(result.df) < 5000
        assert result.df.memory_usage(deep=True).sum() <= 1_050_000
        assert result.df["s"].tolist() == ["x" * 300 + str(i) for i in range(len(result.df))]
        assert result.sql == check_sql("SELECT repeat('x', 300) || i AS s FROM range(5000) t(i) ORDER BY i", TABLES)
        with pytest.raises(WarehouseError, match="result row is over 488 bytes"):
            wh.run_guarded("SELECT i, [repeat('y', 600)] AS l FROM range(3) t(i)")
        assert len(wh.query("SELECT repeat('x', 300) || i AS s FROM range(5000) t(i)").df) == 5000  # trusted
        assert not wh.run_guarded("SELECT * FROM events ORDER BY ts LIMIT 1000").truncated


def test_the_timeout_covers_fetching(tmp_path: Path) -> None:
    path = tmp_path / "small.duckdb"
    build_database(path)
    with Warehouse(path, timeout_s=0.5, row_cap=10**9) as wh:
        with pytest.raises(WarehouseError, match="interrupted"):
            wh.run_guarded("SELECT i FROM range(100000000000) t(i) WHERE hash(i) % 1000 = 0")
        assert wh.scalar("SELECT count(*) FROM users") == 200


SETTINGS_READS = [
    "SELECT current_setting('temp_directory')",
    "SELECT * FROM events WHERE current_setting('threads') > 0",
    "SELECT getvariable('x')",
    "SELECT version()",
    "SELECT current_query()",
    "SELECT current_query_id()",
    "SELECT current_database()",
    "SELECT current_catalog",
    "SELECT current_schema",
    "SELECT current_schemas(true)",
    "SELECT current_user",
    "SELECT current_role",
    "SELECT session_user",
    "SELECT user",
    "SELECT \"user\" FROM events LIMIT 1",
    "SELECT current_connection_id()",
    "SELECT current_transaction_id()",
    "SELECT txid_current()",
    "SELECT in_search_path('memory', 'main')",
    "SELECT has_table_privilege('events', 'select')",
    "SELECT pg_get_viewdef(0)",
    "SELECT pg_sleep(1)",
    "SELECT pg_postmaster_start_time()",
    "SELECT stats(ts) FROM events",
    "SELECT write_log('x')",
    "SELECT duckdb_version()",
]


@pytest.mark.parametrize("sql", SETTINGS_READS)
def test_settings_and_session_reads_are_refused(sql: str) -> None:
    with pytest.raises(SqlRefused, match="session state") as refused:
        check_sql(sql, TABLES)
    assert len(str(refused.value)) <= MAX_MESSAGE


@pytest.mark.parametrize("sql", [
    "SELECT current_date, current_timestamp, now(), get_current_timestamp(), typeof(ts) FROM events",
    "WITH t AS (SELECT 1 AS \"user\") SELECT t.\"user\" FROM t",
    "SELECT app_version AS version FROM events",
])
def test_time_and_column_names_like_settings_still_pass(sql: str) -> None:
    check_sql(sql, TABLES)


def test_long_or_large_queries_are_refused_before_the_work() -> None:
    long = "SELECT count(*) FROM events WHERE user_id IN (" + ",".join(f"'u{i}'" for i in range(80_000)) + ")"
    assert len(long) > 600_000
    message = str(pytest.raises(SqlRefused, check_sql, long, TABLES).value)
    assert f"at most {MAX_SQL_CHARS:,} characters" in message and len(message) <= MAX_MESSAGE
    large = "SELECT " + "+".join("1" for _ in range(6_000))
    assert len(large) < MAX_SQL_CHARS
    assert "too large" in str(pytest.raises(SqlRefused, check_sql, large, TABLES).value)
    check_sql("SELECT count(*) FROM events WHERE user_id IN (" + ",".join(f"'u{i}'" for i in range(500)) + ")", TABLES)


def test_cursors_of_ended_threads_are_closed(tmp_path: Path) -> None:
    path = tmp_path / "small.duckdb"
    build_database(path)
    with Warehouse(path) as wh:
        first: list[duckdb.DuckDBPyConnection] = []

        def work() -> None:
            assert wh.scalar("SELECT count(*) FROM users") == 200
            first.append(wh._cursor())

        for _ in range(5):
            workers = [threading.Thread(target=work) for _ in range(10)]
            for worker in workers:
                worker.start()
            for worker in workers:
                worker.join()
        assert wh.scalar("SELECT count(*) FROM events") == 500
        assert len(wh._cursors) <= 2
        with pytest.raises(duckdb.ConnectionException):
            first[0].execute("SELECT 1")
