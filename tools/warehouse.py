"""Read-only access to the analytics data in DuckDB: timeouts, row and byte caps, one cursor per thread.

The data is a DuckDB file, or a Parquet lake directory (tools/lake.py) read in place
through views: DuckDB may read that directory and nothing else. Rows with a time outside
the plausible range (data/schema.py) are left out: each cursor shadows their table with
a TEMP view of the same name.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, TypeVar

import duckdb
import pandas as pd

from data.schema import MAX_YEAR, META_TABLE, MIN_YEAR
from tools.lake import LakeError, is_lake, lake_tables, remote_url, view_select
from tools.semantic.eventmap import EventMap
from tools.semantic.fields import quote
from tools.semantic.store import stored_map
from tools.sql_guard import check_sql

if TYPE_CHECKING:
    import pyarrow as pa

T = TypeVar("T")
_VECTOR_SIZE = 2048  # rows per DuckDB vector; fetch_df_chunk counts in vectors
_TEMPORAL = {"DATE", "TIMESTAMP", "TIMESTAMP_S", "TIMESTAMP_MS", "TIMESTAMP_NS", "TIMESTAMP WITH TIME ZONE"}
_COLUMNS_SQL = """
SELECT table_name, column_name, data_type FROM duckdb_columns()
WHERE database_name = current_database() AND schema_name = 'main' AND NOT internal
ORDER BY table_name, column_index
"""


@dataclass(frozen=True)
class QueryResult:
    """Rows of one query (at most the row cap), whether more existed, the SQL run and its time."""

    df: pd.DataFrame
    truncated: bool
    sql: str
    elapsed_ms: float


class WarehouseError(RuntimeError):
    """The database cannot be opened or a query failed; the message names the file or setting."""


class MappedData:
    """The event map of a warehouse's data: given, stored with the data, or inferred on first use."""

    _event_map: EventMap | None
    _meta: dict[str, str] | None
    ignored_rows: Mapping[str, int] = MappingProxyType({})  # per table, rows left out for an impossible time

    def ignored_notes(self) -> list[str]:
        """One line per table with rows left out for an impossible time."""
        return [f"Left out {n:,} {table} row(s) with a time outside {MIN_YEAR}..{MAX_YEAR - 1} (a clock or unit "
                "error)." for table, n in self.ignored_rows.items()]

    @property
    def event_map(self) -> EventMap:
        with self._map_lock:
            if self._event_map is None:
                self._event_map = stored_map(self, self._meta)
            if self._event_map is None:
                from tools.semantic.infer import infer_map

                self._event_map = infer_map(self)
            return self._event_map


class Warehouse(MappedData):
    """A read-only DuckDB connection with external access off and its configuration locked.

    `path` is a DuckDB file or a Parquet lake directory; `event_map` overrides the map stored
    with the data (or inferred from it). `byte_cap` bounds an untrusted result's memory.
    `ignored_rows` counts, per table, the rows left out for a time outside the plausible range.
    """

    dialect = "duckdb"

    def __init__(
        self,
        path: str | Path,
        *,
        memory_limit: str = "2GB",
        threads: int = 2,
        timeout_s: float = 30.0,
        row_cap: int = 10_000,
        byte_cap: int = 64 * 2**20,
        event_map: EventMap | None = None,
    ) -> None:
        self.path = Path(path)
        self.timeout_s = timeout_s
        self.row_cap = row_cap
        self.byte_cap = byte_cap
        self._con = _connect(self.path, memory_limit=memory_limit, threads=threads)
        self._local = threading.local()
        self._cursors: dict[threading.Thread, duckdb.DuckDBPyConnection] = {}
        self._lock = threading.Lock()
        self.tables: dict[str, dict[str, str]] = {}
        for table, column, data_type in self._con.execute(_COLUMNS_SQL).fetchall():
            self.tables.setdefault(table, {})[column] = data_type
        self._meta = self.tables.pop(META_TABLE, None)  # metadata, not data: no query of the analyses sees it
        self._stored = quote(self._con.execute("SELECT current_database()").fetchone()[0]) + ".main."
        self.ignored_rows, self._shadows = self._implausible_rows()
        self._event_map = event_map
        self._map_lock = threading.Lock()

    def query(self, sql: str, params: Sequence[Any] | None = None, *, row_cap: int | None = None) -> QueryResult:
        """Run trusted SQL from our own code; `row_cap=None` returns every row."""
        return self._result(sql, sql, params, lambda cur: _fetch(cur, row_cap))

    def run_guarded(self, sql: str, *, row_cap: int | None = None) -> QueryResult:
        """Run untrusted SQL: refuse (SqlRefused) anything but one read-only query, cap the rows and bytes.

        A result past `byte_cap` bytes (in pandas) is truncated; a row longer than byte_cap / 2048 bytes
        as text fails in DuckDB, before it reaches Python, so no fetched vector exceeds the cap.
        """
        checked = check_sql(sql, self.tables)
        row_cap = max(self.row_cap if row_cap is None else row_cap, 0)
        bounded = _bounded(checked, row_cap, self.byte_cap // _VECTOR_SIZE)
        return self._result(checked, bounded, None, lambda cur: _fetch(cur, row_cap, self.byte_cap))

    def scalar(self, sql: str, params: Sequence[Any] | None = None) -> Any:
        """The first column of the first row (None when there is no row)."""
        row = self._run(sql, params, lambda cur: cur.fetchone())
        return None if row is None else row[0]

    def arrow(self, sql: str) -> pa.Table:
        """Every row of trusted `sql` as an Arrow table (columnar, no pandas conversion)."""
        return self._run(sql, None, lambda cur: cur.to_arrow_table(), lazy=True)

    def register(self, name: str, table: pa.Table) -> None:
        """`table` readable as `name` by this thread's queries from now on."""
        if not name.isidentifier():
            raise WarehouseError(f"bad relation name {name!r}")
        cursor = self._cursor()
        cursor.complete()  # an earlier statement's open result would block the registration
        cursor.register(name, table)

    @contextmanager
    def registered(self, name: str, table: pa.Table) -> Iterator[str]:
        """`table` readable as `name` by this thread's queries for the duration; yields the name."""
        self.register(name, table)
        try:
            yield name
        finally:
            cursor = self._cursor()
            cursor.complete()
            cursor.unregister(name)

    def materialize(self, prefix: str, sql: str, compute: Callable[[], pa.Table] | None = None) -> str:
        """The result of trusted `sql` readable by this thread's queries under the returned name (`prefix` and a
        digest of `sql`): a fact of the data version (tools/facts_store.py), computed once (by `compute` when
        given: another way to the same rows) and kept beside the state when the warehouse is bound to one."""
        from tools.facts_store import TABLES, remembered

        name = relation_name(prefix, sql)
        self.register(name, remembered(self, "relation", (sql,), compute or (lambda: self.arrow(sql)), TABLES))
        return name

    def checksum(self) -> str:
        """SHA-256 over every data table's columns and rows (order-independent), computed in SQL; the stored
        event map is metadata, not data."""
        digest = hashlib.sha256()
        columns = self._run(_COLUMNS_SQL, None, lambda cur: cur.fetchall())
        for table in sorted({table for table, _, _ in columns} - {META_TABLE}):
            name = self._stored + quote(table)  # the stored rows, ignored ones included
            rows, content = self._run(
                f"SELECT count(*), md5(coalesce(string_agg(h, '' ORDER BY h), '')) "
                f"FROM (SELECT md5(CAST(to_json(t) AS VARCHAR)) AS h FROM {name} AS t)",
                None,
                lambda cur: cur.fetchone(),
            )
            schema = [(column, data_type) for owner, column, data_type in columns if owner == table]
            digest.update(repr((table, schema, rows, content)).encode())
        return digest.hexdigest()

    def close(self) -> None:
        """Close every per-thread cursor and the connection."""
        with self._lock:
            for cursor in self._cursors.values():
                cursor.close()
            self._cursors.clear()
        self._con.close()

    def __enter__(self) -> Warehouse:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _implausible_rows(self) -> tuple[dict[str, int], list[str]]:
        """Rows per table with a DATE/TIMESTAMP outside [MIN_YEAR, MAX_YEAR), and the TEMP views leaving them out."""
        counts: dict[str, int] = {}
        views: list[str] = []
        for table, columns in self.tables.items():
            keep = " AND ".join(_plausible(column, data_type) for column, data_type in columns.items()
                                if data_type in _TEMPORAL)
            if not keep:
                continue
            stored = self._stored + quote(table)
            try:
                count = self._con.execute(f"SELECT count(*) FROM {stored} WHERE NOT ({keep})").fetchone()[0]
            except duckdb.Error as error:
                self._con.close()
                raise WarehouseError(f"cannot read {table} in {self.path}: {error}") from error
            if count:
                counts[table] = count
                views.append(f"CREATE TEMP VIEW {quote(table)} AS SELECT * FROM {stored} WHERE {keep}")
        return counts, views

    def _cursor(self) -> duckdb.DuckDBPyConnection:
        """This thread's cursor, with the shadowing views; making one closes the cursors of ended threads."""
        cursor = getattr(self._local, "cursor", None)
        if cursor is None:
            with self._lock:
                for thread in [thread for thread in self._cursors if not thread.is_alive()]:
                    self._cursors.pop(thread).close()
                cursor = self._con.cursor()
                self._cursors[threading.current_thread()] = cursor
            for view in self._shadows:
                cursor.execute(view)
            self._local.cursor = cursor
        return cursor

    def _result(self, sql: str, run: str, params: Sequence[Any] | None,
                fetch: Callable[[duckdb.DuckDBPyConnection], tuple[pd.DataFrame, bool]]) -> QueryResult:
        """Run `run` (`sql`, or `sql` bounded) and time it; the result names `sql`."""
        started = time.perf_counter()
        df, truncated = self._run(run, params, fetch)
        return QueryResult(df, truncated, sql, (time.perf_counter() - started) * 1000)

    def _run(self, sql: str, params: Sequence[Any] | None, fetch: Callable[[Any], T], *, lazy: bool = False) -> T:
        """Execute on this thread's cursor under the statement timeout; translate DuckDB errors. `lazy` hands
        `fetch` the query's relation instead of the executed cursor (its result is read once, by `fetch`)."""
        try:
            cursor = self._cursor()
        except duckdb.Error as error:
            raise WarehouseError(f"warehouse {self.path} is closed: {error}") from error
        timer = threading.Timer(self.timeout_s, cursor.interrupt)
        timer.daemon = True
        timer.start()
        try:
            if lazy:
                cursor.complete()  # a relation cannot start while an earlier statement's result is open
                return fetch(cursor.sql(sql))
            cursor.execute(sql, params)
            return fetch(cursor)
        except duckdb.InterruptException as error:
            raise WarehouseError(
                f"query interrupted after {self.timeout_s:g} s (timeout_s): {_shorten(sql)}"
            ) from error
        except duckdb.Error as error:
            raise WarehouseError(f"query failed: {error}") from error
        finally:
            timer.cancel()
            timer.join()  # a late interrupt() must land before the next statement starts


def relation_name(prefix: str, sql: str) -> str:
    """The name of `sql`'s materialized result: `prefix`, then a digest of `sql`."""
    return f"{prefix}_{hashlib.sha1(sql.encode()).hexdigest()[:12]}"


def _connect(path: Path, *, memory_limit: str, threads: int) -> duckdb.DuckDBPyConnection:
    if remote_url(path):
        raise WarehouseError(f"{remote_url(path)} is shared storage: DuckDB reads a local file or lake directory;"
                             " use the Spark engine (--engine spark / INSIGHT_ENGINE=spark) for it")
    if is_lake(path):
        return _connect_lake(path, memory_limit=memory_limit, threads=threads)
    if not path.exists():
        raise WarehouseError(f"database file not found: {path} (run `insight generate` or `insight import`)")
    config = {
        "enable_external_access": False,
        "autoinstall_known_extensions": False,
        "autoload_known_extensions": False,
        "memory_limit": memory_limit,
        "threads": threads,
    }
    try:
        con = duckdb.connect(str(path), read_only=True, config=config)
    except duckdb.ConnectionException as error:
        raise WarehouseError(
            f"cannot open {path} read-only: this process already holds it read-write "
            f"or with other settings ({error})"
        ) from error
    except duckdb.Error as error:
        message = str(error)
        if "Could not set lock" in message:
            raise WarehouseError(f"cannot open {path}: another process is writing it ({message})") from error
        if "not a valid DuckDB database" in message:
            raise WarehouseError(f"not a DuckDB database file: {path}") from error
        raise WarehouseError(f"cannot open database file {path}: {message}") from error
    # The DuckDB instance is shared per file within a process; another Warehouse may have locked it.
    if not con.execute("SELECT current_setting('lock_configuration')").fetchone()[0]:
        con.execute("SET lock_configuration = true")
    return con


def _connect_lake(root: Path, *, memory_limit: str, threads: int) -> duckdb.DuckDBPyConnection:
    """An in-memory database whose tables are views over the lake's Parquet files.

    Only the lake directory is readable (`allowed_directories`), then external access is off
    and the configuration locked, as for a file.
    """
    try:
        tables = lake_tables(root)
    except LakeError as error:
        raise WarehouseError(str(error)) from error
    con = duckdb.connect(config={
        "autoinstall_known_extensions": False,
        "autoload_known_extensions": False,
        "memory_limit": memory_limit,
        "threads": threads,
    })
    try:
        con.execute("SET allowed_directories = ?", [[str(root.resolve()) + "/"]])
        con.execute("SET enable_external_access = false")
        for table in tables:
            source = f"read_parquet('{table.glob}', hive_partitioning = true, union_by_name = true)"
            present = [r[0] for r in con.execute(f"DESCRIBE SELECT * FROM {source}").fetchall()] if table.glob else []
            con.execute(f"CREATE VIEW {table.name} AS {view_select(table, source, present)}")
            if table.glob:
                con.execute(f"SELECT * FROM {table.name} LIMIT 0").fetchall()
        con.execute("SET lock_configuration = true")
    except duckdb.Error as error:
        con.close()
        raise WarehouseError(f"cannot read lake {root}: {error}") from error
    return con


def _fetch(cursor: duckdb.DuckDBPyConnection, row_cap: int | None,
           byte_cap: int | None = None) -> tuple[pd.DataFrame, bool]:
    """The result as a DataFrame (DuckDB's own dtypes), cut at `row_cap` rows and, fetched a vector at a
    time, at about `byte_cap` bytes of pandas memory; and whether it was cut."""
    if row_cap is None:
        return cursor.fetch_df(), False
    row_cap = max(row_cap, 0)
    vectors = 1 if byte_cap is not None else max(1, -(-(row_cap + 1) // _VECTOR_SIZE))
    chunks: list[pd.DataFrame] = []
    rows = size = 0
    while rows <= row_cap and (byte_cap is None or size <= byte_cap):
        chunk = cursor.fetch_df_chunk(vectors)
        if chunk.empty:
            break
        chunks.append(chunk)
        rows += len(chunk)
        if byte_cap is not None:
            size += int(chunk.memory_usage(deep=True, index=False).sum())
    if not chunks:
        return chunk, False
    df = chunks[0] if len(chunks) == 1 else pd.concat(chunks, ignore_index=True)
    if byte_cap is not None and size > byte_cap:
        keep = min(row_cap, len(df) * byte_cap // size)
        return df.iloc[:keep].reset_index(drop=True), True
    return df.iloc[:row_cap].reset_index(drop=True), rows > row_cap


def _bounded(sql: str, row_cap: int, row_bytes: int) -> str:
    """Checked `sql` cut at `row_cap` + 1 rows in DuckDB, failing on a row longer than `row_bytes` as text.

    The LIMIT comes first, so no filter of the query's own runs after the check; `row(*COLUMNS(*))` is
    the whole row whatever its columns are named. EXPLAIN cannot be a subquery; its result is a plan.
    """
    if sql.startswith("EXPLAIN "):
        return sql
    too_long = f"a result row is over {row_bytes} bytes: select fewer or shorter values, e.g. left(column, 200)"
    return (f"SELECT * FROM (SELECT * FROM ({sql}) LIMIT {row_cap + 1}) "
            f"WHERE CASE WHEN strlen(CAST(row(*COLUMNS(*)) AS VARCHAR)) > {row_bytes} "
            f"THEN error('{too_long}') ELSE true END")


def _plausible(column: str, data_type: str) -> str:
    """SQL true when `column` is NULL or within [MIN_YEAR, MAX_YEAR)."""
    name = quote(column)
    return (f"coalesce({name} >= CAST('{MIN_YEAR}-01-01' AS {data_type}) "
            f"AND {name} < CAST('{MAX_YEAR}-01-01' AS {data_type}), true)")


def _shorten(sql: str, limit: int = 200) -> str:
    flat = " ".join(sql.split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."
