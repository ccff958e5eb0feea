"""The warehouse on Apache Spark: the same interface and the same SQL as tools.warehouse.

Reads a Parquet lake (tools/lake.py) as temp views. Every statement is written in DuckDB's
dialect and transpiled (tools.transpile); untrusted SQL passes the same guard first.
`local[*]` runs in-process (tests); `remote="sc://host:15002"` uses Spark Connect, and a
`master` URL a cluster. Spark runs with ANSI mode off so that, as in DuckDB, x / 0 is NULL.
"""

from __future__ import annotations

import hashlib
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from tools.lake import REQUIRED, LakeError, LakeTable, lake_tables, remote_tables, remote_url, view_select
from tools.semantic.eventmap import EventMap
from tools.sql_guard import check_sql
from tools.transpile import TranspileError, to_spark
from tools.warehouse import MappedData, QueryResult, WarehouseError, relation_name

SPARK_CONF = {
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.ansi.enabled": "false",
    "spark.sql.shuffle.partitions": "8",
    "spark.ui.enabled": "false",
    "spark.sql.legacy.timeParserPolicy": "CORRECTED",
    # results are collected on the calling thread, so its job group (the statement timeout) applies
    "spark.sql.execution.arrow.pyspark.enabled": "false",
}
_LOCAL_CONF = {"spark.driver.host": "127.0.0.1", "spark.driver.bindAddress": "127.0.0.1"}
_sessions: dict[str, Any] = {}
_sessions_lock = threading.Lock()


def spark_session(remote: str | None = None, master: str = "local[2]", memory: str = "2g"):
    """A new Spark session: over Spark Connect when `remote` is given, else on this process's Spark application."""
    try:
        from pyspark.sql import SparkSession
    except ImportError as error:
        raise WarehouseError("the Spark engine needs pyspark: pip install 'product-insight-agent[spark]'") from error
    try:
        if remote:
            builder = SparkSession.builder.remote(remote).appName("insight")
            for name, value in SPARK_CONF.items():
                builder = builder.config(name, value)
            return builder.create()
        with _sessions_lock:
            if master not in _sessions:
                builder = SparkSession.builder.master(master).appName("insight").config("spark.driver.memory", memory)
                for name, value in {**_LOCAL_CONF, **SPARK_CONF}.items():
                    builder = builder.config(name, value)
                _sessions[master] = builder.getOrCreate()
                _sessions[master].sparkContext.setLogLevel("OFF")
            return _sessions[master].newSession()
    except WarehouseError:
        raise
    except Exception as error:  # py4j / gRPC errors have no common base
        raise WarehouseError(f"cannot start Spark ({remote or master}): {_first_line(error)}") from error


class SparkWarehouse(MappedData):
    """Read-only analytics over a Parquet lake on Spark, with timeouts and row caps."""

    dialect = "spark"

    def __init__(
        self,
        path: str | Path,
        *,
        remote: str | None = None,
        master: str = "local[2]",
        timeout_s: float = 120.0,
        row_cap: int = 10_000,
        event_map: EventMap | None = None,
    ) -> None:
        url = remote_url(path)
        self.path = url or Path(path)
        self.timeout_s = timeout_s
        self.row_cap = row_cap
        try:
            tables = remote_tables(url) if url else lake_tables(self.path)
        except LakeError as error:
            raise WarehouseError(f"{error} (the Spark engine reads a Parquet lake: `insight export`)") from error
        self._remote = remote
        self._meta, self._event_map, self._map_lock = None, event_map, threading.Lock()
        self.spark = spark_session(remote, master)  # a session of its own: temp views are per session
        self._prefix = f"lake_{uuid.uuid4().hex[:8]}_"
        self._materialize_lock = threading.Lock()
        self._cached: list[str] = []
        self._views: list[str] = []
        self.tables: dict[str, dict[str, str]] = {}
        for table in tables:
            self._register(table)

    def _register(self, table: LakeTable) -> None:
        """A temp view over the table's Parquet files: the data model's columns with their types, and the files'
        other columns as they are (empty if absent)."""
        source, present = "", []
        if table.location is not None:
            raw = self._prefix + table.name
            try:
                frame = self.spark.read.option("mergeSchema", "true").parquet(table.location)
                frame.createOrReplaceTempView(raw)
                self._views.append(raw)
                source, present = raw, list(frame.columns)
            except Exception as error:  # noqa: BLE001 - a missing path raises an AnalysisException
                if table.name in REQUIRED:
                    raise WarehouseError(f"cannot read table {table.name!r} at {table.location}: "
                                         f"{_first_line(error)}") from error
                table = LakeTable(table.name, None)
        view = to_spark(view_select(table, source, present, json_type="VARCHAR"))
        self._execute(f"CREATE OR REPLACE TEMP VIEW {table.name} AS {view}")
        self._views.append(table.name)
        types = {f.name: f.dataType.simpleString().upper() for f in self.spark.table(table.name).schema.fields}
        self.tables[table.name] = {c: table.columns.get(c, types[c]) for c in types}

    def query(self, sql: str, params: Sequence[Any] | None = None, *, row_cap: int | None = None) -> QueryResult:
        """Run trusted SQL (DuckDB dialect) on Spark; `row_cap=None` returns every row."""
        started = time.perf_counter()
        df, truncated = self._run(sql, params, row_cap)
        return QueryResult(df, truncated, sql, (time.perf_counter() - started) * 1000)

    def run_guarded(self, sql: str, *, row_cap: int | None = None) -> QueryResult:
        """Run untrusted SQL: the same guard as DuckDB's, then the row cap."""
        return self.query(check_sql(sql, self.tables), row_cap=self.row_cap if row_cap is None else row_cap)

    def scalar(self, sql: str, params: Sequence[Any] | None = None) -> Any:
        df, _ = self._run(sql, params, 1)
        return None if df.empty else df.iat[0, 0]

    def materialize(self, prefix: str, sql: str, compute: object = None) -> str:
        """Cache the result of trusted `sql` as a temp view of this warehouse's session; returns its name
        (`prefix` and a digest of `sql`). `compute` (DuckDB's other way to the same rows) is not used here.

        The lake does not change under a warehouse, so an existing view of that name already holds this
        result and is kept (threads share it).
        """
        name = relation_name(prefix, sql)
        with self._materialize_lock:
            if not self.spark.catalog.tableExists(name):
                self._execute(f"CACHE TABLE {name} AS {self._spark_sql(sql)}")
                self._cached.append(name)
                self._views.append(name)
        return name

    def checksum(self) -> str:
        """SHA-256 over every table's schema, row count and an order-independent hash of its rows."""
        digest = hashlib.sha256()
        for table in sorted(self.tables):
            row = self.spark.sql(
                f"SELECT count(*), sum(xxhash64(to_json(struct(*)))) FROM {table}").collect()[0]
            digest.update(repr((table, sorted(self.tables[table].items()), row[0], row[1])).encode())
        return digest.hexdigest()

    def close(self) -> None:
        """Uncache and drop this warehouse's views (the shared Spark application stays up)."""
        try:
            for name in self._cached:
                self.spark.catalog.uncacheTable(name)
            for name in self._views:
                self.spark.catalog.dropTempView(name)
        except Exception:  # noqa: BLE001 - closing must not fail when Spark already stopped
            pass

    def __enter__(self) -> SparkWarehouse:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _cancellation(self, label: str) -> tuple[Callable[[], None], Callable[[], None], Callable[[], None]]:
        """(start, cancel, stop) for this thread's next query: a job group in-process, a tag over Spark Connect."""
        if self._remote:
            return (lambda: self.spark.addTag(label), lambda: self.spark.interruptTag(label),
                    lambda: self.spark.removeTag(label))
        context = self.spark.sparkContext
        return (lambda: context.setJobGroup(label, "insight query", interruptOnCancel=True),
                lambda: context.cancelJobGroup(label), lambda: context.setLocalProperty("spark.jobGroup.id", None))

    def _spark_sql(self, sql: str) -> str:
        try:
            return to_spark(sql)
        except TranspileError as error:
            raise WarehouseError(str(error)) from error

    def _execute(self, spark_sql: str) -> None:
        try:
            self.spark.sql(spark_sql).collect()
        except Exception as error:  # noqa: BLE001 - Spark raises many unrelated types
            raise WarehouseError(f"Spark statement failed: {_first_line(error)}") from error

    def _run(self, sql: str, params: Sequence[Any] | None, row_cap: int | None) -> tuple[pd.DataFrame, bool]:
        """Execute under the statement timeout: the query's jobs are cancelled from a timer."""
        spark_sql = self._spark_sql(sql)
        label = f"insight-{uuid.uuid4().hex}"
        start, cancel, stop = self._cancellation(label)
        start()
        timer = threading.Timer(self.timeout_s, cancel)
        timer.daemon = True
        timer.start()
        try:
            df = self.spark.sql(spark_sql, args=list(params) if params else None)
            if row_cap is not None:
                df = df.limit(max(row_cap, 0) + 1)
            out = df.toPandas()
        except Exception as error:  # noqa: BLE001
            if not timer.is_alive():
                raise WarehouseError(f"query interrupted after {self.timeout_s:g} s (timeout_s)") from error
            raise WarehouseError(f"Spark query failed: {_first_line(error)}\n{spark_sql[:2000]}") from error
        finally:
            timer.cancel()
            stop()
        if row_cap is not None and len(out) > row_cap:
            return out.iloc[:row_cap].reset_index(drop=True), True
        return out, False


def _first_line(error: Exception) -> str:
    text = str(error).strip()
    return text.splitlines()[0][:500] if text else type(error).__name__
