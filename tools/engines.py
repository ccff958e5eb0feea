"""Open the warehouse for an engine: DuckDB (a file or a Parquet lake) or Spark (a Parquet lake).

>>> ENGINES
('duckdb', 'spark')
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal, get_args

from tools.semantic.eventmap import EventMap
from tools.warehouse import Warehouse, WarehouseError

Engine = Literal["duckdb", "spark"]
ENGINES: tuple[str, ...] = get_args(Engine)


def open_warehouse(
    path: str | Path,
    engine: Engine | str = "duckdb",
    *,
    spark_remote: str | None = None,
    spark_master: str = "local[2]",
    memory_limit: str = "2GB",
    threads: int = 2,
    timeout_s: float = 30.0,
    row_cap: int = 10_000,
    event_map: EventMap | None = None,
) -> Warehouse:
    """The read-only warehouse over `path` on `engine`; WarehouseError names a bad engine or path.

    Both warehouses have the same interface (query, run_guarded, scalar, materialize, tables,
    event_map); `event_map` overrides the map stored with the data.
    """
    if engine == "duckdb":
        return Warehouse(path, memory_limit=memory_limit, threads=threads, timeout_s=timeout_s, row_cap=row_cap,
                         event_map=event_map)
    if engine == "spark":
        from tools.spark_warehouse import SparkWarehouse

        return SparkWarehouse(path, remote=spark_remote, master=spark_master, timeout_s=timeout_s,
                              row_cap=row_cap, event_map=event_map)  # type: ignore[return-value]
    raise WarehouseError(f"unknown engine {engine!r} (INSIGHT_ENGINE / --engine): use one of {', '.join(ENGINES)}")
