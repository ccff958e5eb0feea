"""The SQL guard refuses every attack, admits real analysis SQL, and nothing ever changes the data."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from data.schema import TABLES, create_tables
from tools.sql_guard import MAX_MESSAGE, SqlRefused, check_sql
from tools.warehouse import Warehouse, WarehouseError

# "{out}" is replaced by a temporary folder that must stay empty.
ATTACKS = [
    "SELECT * FROM '/etc/passwd'",
    "SELECT * FROM read_csv('/etc/passwd')",
    "SELECT * FROM read_csv_auto('/etc/passwd')",
    "SELECT * FROM read_parquet('{out}/x.parquet')",
    "SELECT * FROM read_json_auto('{out}/x.json')",
    "SELECT * FROM read_text('/etc/passwd')",
    "SELECT * FROM read_blob('/etc/passwd')",
    "SELECT * FROM glob('/*')",
    "SELECT * FROM events e, LATERAL read_csv('/etc/passwd')",
    "SELECT * FROM events WHERE event IN (SELECT * FROM read_csv('/etc/passwd'))",
    "SELECT * FROM 'https://example.invalid/x.parquet'",
    "COPY events TO '{out}/x.csv'",
    "COPY (SELECT 1) TO '{out}/y.csv'",
    "EXPORT DATABASE '{out}/export'",
    "ATTACH '{out}/x.duckdb' AS x",
    "DETACH x",
    "INSTALL httpfs",
    "LOAD httpfs",
    "SET memory_limit='10GB'",
    "SET enable_external_access = true",
    "RESET threads",
    "PRAGMA enable_profiling",
    "CALL pragma_version()",
    "DELETE FROM events",
    "UPDATE users SET plan = 'x'",
    "INSERT INTO users VALUES ('evil', NULL, NULL, NULL, NULL)",
    "DROP TABLE events",
    "CREATE TABLE x AS SELECT 1",
    "CREATE TEMP TABLE x AS SELECT 1",
    "CREATE MACRO m() AS 1",
    "ALTER TABLE events ADD COLUMN x INT",
    "TRUNCATE events",
    "WITH t AS (DELETE FROM events RETURNING *) SELECT * FROM t",
    "WITH t AS (INSERT INTO users VALUES ('evil', NULL, NULL, NULL, NULL) RETURNING *) SELECT * FROM t",
    "SELECT * FROM (WITH t AS (UPDATE users SET plan = 'x' RETURNING *) SELECT * FROM t)",
    "SELECT 1; DROP TABLE events",
    "SELECT 1; SELECT 2",
    "SELECT * FROM query('DELETE FROM events')",
    "SELECT * FROM query_table('events')",
    "SELECT getenv('HOME')",
    "SELECT * FROM duckdb_settings()",
    "SELECT * FROM duckdb_secrets()",
    "SELECT * FROM which_secret('s3://x', 's3')",
    "SELECT * FROM pragma_table_info('events')",
    "SELECT * FROM sqlite_scan('{out}/x.db', 't')",
    "SELECT * FROM information_schema.tables",
    "SELECT * FROM main.events",
    "SELECT * FROM secrets",
    "WITH a AS (SELECT * FROM duckdb_settings), duckdb_settings AS (SELECT 1) SELECT * FROM a",
    "SELECT * FROM (WITH secrets AS (SELECT 1) SELECT * FROM secrets) AS x, secrets",
    "CHECKPOINT",
    "VACUUM",
    "BEGIN TRANSACTION",
    "COMMIT",
    "SELECT * INTO t FROM events",
    "DESCRIBE SELECT * FROM read_csv('/etc/passwd')",
    "DESCRIBE secrets",
    "SHOW DATABASES",
    "EXPLAIN ANALYZE DELETE FROM events",
    "EXPLAIN SELECT * FROM read_csv('/etc/passwd')",
    "USE other",
    "",
    "-- nothing here",
]

LEGIT = [
    "SELECT count(*) AS n FROM events",
    "SELECT u.plan, count(*) AS n FROM events AS e JOIN users AS u USING (user_id) GROUP BY 1 ORDER BY 1",
    "SELECT a.variant, count(DISTINCT e.user_id) FROM assignments a LEFT JOIN events e "
    "ON e.user_id = a.user_id AND e.event = 'Order Completed' GROUP BY ALL",
    "WITH s AS (SELECT session_id, count(*) AS n FROM events GROUP BY 1) SELECT avg(n) FROM s",
    "SELECT user_id, ts, row_number() OVER (PARTITION BY user_id ORDER BY ts) AS rn FROM events QUALIFY rn = 1",
    "SELECT event, lag(event) OVER (PARTITION BY session_id ORDER BY ts) AS previous FROM events",
    "SELECT user_id FROM users UNION SELECT user_id FROM events",
    "SELECT user_id FROM users INTERSECT SELECT user_id FROM assignments",
    "SELECT user_id FROM users EXCEPT SELECT user_id FROM events",
    "DESCRIBE events",
    "SHOW TABLES",
    "SUMMARIZE users",
    "EXPLAIN SELECT count(*) FROM events",
    "EXPLAIN ANALYZE SELECT count(*) FROM events",
    "SELECT date_trunc('week', ts) AS week, count(*) FROM events GROUP BY 1 ORDER BY 1",
    "SELECT strftime(ts, '%Y-%m-%d') AS day FROM events WHERE ts >= TIMESTAMP '2024-03-01' - INTERVAL 7 DAY",
    "SELECT day FROM range(DATE '2024-01-01', DATE '2024-01-08', INTERVAL 1 DAY) AS d(day)",
    "SELECT json_extract_string(properties, '$.source') AS source, count(*) FROM events GROUP BY 1",
    "SELECT properties->>'$.source' AS source FROM events LIMIT 3",
    "SELECT regexp_replace(lower(search_query), '\\s+', ' ', 'g') AS q FROM events "
    "WHERE regexp_matches(search_query, '^sh')",
    "SELECT quantile_cont(load_time_ms, 0.95) AS p95, count(*) FILTER (WHERE error_code IS NOT NULL) FROM events",
    "SELECT * FROM users WHERE user_id IN (SELECT user_id FROM assignments WHERE variant = 'B')",
    "FROM events SELECT event, count(*) GROUP BY ALL",
    "WITH RECURSIVE t(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM t WHERE n < 5) SELECT * FROM t",
    "SELECT count(*) FROM \"Events\"",
    "SELECT p.category, sum(e.revenue) FROM events e JOIN products p USING (product_id) GROUP BY 1",
    "SELECT x.name, x.started_at FROM experiments AS x ORDER BY 1",
    "SELECT 1;",
]


def build_database(path: Path) -> None:
    """A small database with every table of the data model filled."""
    con = duckdb.connect(str(path))
    create_tables(con)
    con.execute(
        "INSERT INTO users SELECT 'u' || i, TIMESTAMP '2024-01-01' + i * INTERVAL 1 HOUR, "
        "['US', 'DE', 'BR'][i % 3 + 1], ['ads', 'organic'][i % 2 + 1], ['free', 'pro'][i % 2 + 1] "
        "FROM range(200) t(i)"
    )
    con.execute(
        "INSERT INTO products SELECT 'p' || i, 'Product ' || i, ['shoes', 'hats'][i % 2 + 1], 10 + i FROM range(20) t(i)"
    )
    con.execute(
        "INSERT INTO experiments VALUES ('x1', 'New checkout', '2024-02-01', '2024-03-01', 'Shorter is better', "
        "'Order Completed')"
    )
    con.execute(
        "INSERT INTO assignments SELECT 'x1', 'u' || i, ['A', 'B'][i % 2 + 1], '2024-02-01' FROM range(100) t(i)"
    )
    con.execute(
        "INSERT INTO events SELECT 'e' || i, TIMESTAMP '2024-02-01' + i * INTERVAL 7 MINUTE, 'u' || (i % 150), "
        "'s' || (i % 60), ['Page Viewed', 'Products Searched', 'Product Viewed', 'Order Completed'][i % 4 + 1], "
        "'web', ['ios', 'android'][i % 2 + 1], '5.2.0', 'safari', 'US', 'home', 'p' || (i % 20), 'shoes', 10.0, "
        "CASE WHEN i % 4 = 3 THEN 25.0 END, ['shoes', 'shirt', 'sh oes'][i % 3 + 1], i % 5, "
        "CASE WHEN i % 11 = 0 THEN 'E500' END, 100 + i, json_object('source', ['ad', 'mail'][i % 2 + 1]) "
        "FROM range(600) t(i)"
    )
    con.close()


@pytest.fixture(scope="module")
def out_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("out")


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory: pytest.TempPathFactory):
    path = tmp_path_factory.mktemp("db") / "events.duckdb"
    build_database(path)
    with Warehouse(path, timeout_s=2.0) as wh:
        yield wh


@pytest.fixture(scope="module")
def original_checksum(warehouse: Warehouse) -> str:
    return warehouse.checksum()


@pytest.mark.parametrize("attack", ATTACKS)
def test_attack_is_refused_and_changes_nothing(
    attack: str, warehouse: Warehouse, original_checksum: str, out_dir: Path
) -> None:
    sql = attack.format(out=out_dir)
    with pytest.raises(SqlRefused) as refused:
        check_sql(sql, TABLES)
    assert str(refused.value).startswith("Refused: ")
    assert len(str(refused.value)) <= MAX_MESSAGE
    with pytest.raises(SqlRefused):
        warehouse.run_guarded(sql)
    assert warehouse.checksum() == original_checksum
    assert list(out_dir.iterdir()) == []


@pytest.mark.parametrize("attack", ATTACKS)
def test_attack_without_the_guard_is_still_harmless(
    attack: str, warehouse: Warehouse, original_checksum: str, out_dir: Path
) -> None:
    """Defence in depth: the connection alone (read-only, no external access, locked) stops each attack."""
    with Warehouse(warehouse.path, timeout_s=2.0) as unguarded:
        try:
            unguarded.query(attack.format(out=out_dir))
        except WarehouseError:
            pass
    assert warehouse.checksum() == original_checksum
    assert list(out_dir.iterdir()) == []


def test_refusal_names_what_was_found_and_the_allowed_tables() -> None:
    message = str(pytest.raises(SqlRefused, check_sql, "COPY events TO 'x.csv'", TABLES).value)
    assert "found COPY" in message and "events" in message and "users" in message
    assert "read_csv()" in str(pytest.raises(SqlRefused, check_sql, "FROM read_csv('x')", TABLES).value)
    assert "'secrets'" in str(pytest.raises(SqlRefused, check_sql, "SELECT * FROM secrets", TABLES).value)
    assert "parse" in str(pytest.raises(SqlRefused, check_sql, "SELEC * FROM events", TABLES).value)
    long_tables = [f"table_{i}_with_a_long_name" for i in range(50)]
    assert len(str(pytest.raises(SqlRefused, check_sql, "DROP TABLE x", long_tables).value)) <= MAX_MESSAGE


@pytest.mark.parametrize("sql", LEGIT)
def test_legit_query_passes(sql: str, warehouse: Warehouse, original_checksum: str) -> None:
    normalized = check_sql(sql, TABLES)
    assert check_sql(normalized, TABLES) == normalized
    result = warehouse.run_guarded(sql)
    assert result.sql == normalized
    assert len(result.df.columns) > 0
    assert warehouse.checksum() == original_checksum


def test_cte_named_like_a_table_reads_the_cte(warehouse: Warehouse) -> None:
    sql = "WITH events AS (SELECT * FROM events WHERE os = 'ios') SELECT count(*) AS n FROM events"
    assert warehouse.run_guarded(sql).df["n"].iloc[0] == 300


def test_guarded_results_are_capped(warehouse: Warehouse) -> None:
    result = warehouse.run_guarded("SELECT * FROM events", row_cap=50)
    assert len(result.df) == 50 and result.truncated
    assert not warehouse.run_guarded("SELECT * FROM users").truncated


FRAGMENTS = [
    "SELECT", "*", "FROM", "events", "users", "t", "e", ",", "(", ")", ";", "WITH t AS (", "AS", "WHERE", "1=1",
    "UNION ALL", "JOIN", "ON", "TRUE", "LATERAL", "count(*)", "LIMIT 5", "ORDER BY 1", "GROUP BY ALL",
    "DELETE FROM events", "RETURNING *", "INSERT INTO users VALUES ('h', NULL, NULL, NULL, NULL)",
    "UPDATE users SET plan = 'h'", "DROP TABLE events", "CREATE TABLE h AS", "COPY", "TO", "'/tmp/h.csv'",
    "ATTACH", "'/etc/passwd'", "read_csv('/etc/passwd')", "query('DELETE FROM events')", "query_table('events')",
    "DESCRIBE", "SHOW", "TABLES", "EXPLAIN", "ANALYZE", "SET threads = 1", "PRAGMA", "CALL", "INSTALL", "LOAD",
    "--", "/*", "*/", '"events"', "'", "INTO", "e.user_id", "json_extract(properties, '$.a')", "range(3)",
]


@settings(max_examples=200, deadline=None)
@given(
    sql=st.one_of(
        st.text(max_size=200),
        st.lists(st.sampled_from(FRAGMENTS), min_size=1, max_size=12).map(" ".join),
    )
)
def test_any_input_is_refused_or_answered_and_changes_nothing(
    sql: str, warehouse: Warehouse, original_checksum: str
) -> None:
    try:
        warehouse.run_guarded(sql)
    except (SqlRefused, WarehouseError):
        pass
    assert warehouse.checksum() == original_checksum
