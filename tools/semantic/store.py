"""Where a dataset's event map lives: inside its DuckDB file, or beside a Parquet lake's tables.

Importers and the generator store the map with the data they write (in the same all-or-nothing
swap), so data and meaning never disagree; a dataset without a stored map gets one inferred.
An import also stores what the map derives: experiments from exposure events, when the export
has no assignments table.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING

import duckdb

from data.export import LAKE_MAP
from data.schema import MAP_KEY, META_TABLE, write_meta
from tools.semantic.eventmap import EventMap, parse_map
from tools.semantic.fields import parse_field
from tools.sqltext import lit

if TYPE_CHECKING:
    from tools.warehouse import Warehouse


def write_map(con: duckdb.DuckDBPyConnection, emap: EventMap) -> None:
    """Store `emap` in the database of a read-write connection (replacing a stored one)."""
    write_meta(con, MAP_KEY, emap.to_yaml())


def stored_map(wh: Warehouse, meta_columns: dict[str, str] | None) -> EventMap | None:
    """The map stored with the warehouse's data: in its meta table, or a lake's event_map.yaml."""
    if meta_columns is not None:
        text = wh.scalar(f"SELECT value FROM {META_TABLE} WHERE key = ?", [MAP_KEY])
        return parse_map(text, f"{wh.path} (stored event map)") if text else None
    lake_file = Path(str(wh.path)) / LAKE_MAP
    if lake_file.is_file():
        return parse_map(lake_file.read_text(encoding="utf-8"), str(lake_file))
    return None


class ConnectionSource:
    """A read-write import connection seen as inference's data source (tables and query)."""

    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self.con = con
        self.tables: dict[str, dict[str, str]] = {}
        for table, column, kind in con.execute(
                "SELECT table_name, column_name, data_type FROM duckdb_columns() WHERE schema_name = 'main' "
                "AND NOT internal AND database_name = current_database() ORDER BY table_name, column_index").fetchall():
            if table != META_TABLE:
                self.tables.setdefault(table, {})[column] = kind

    def query(self, sql: str, params=None, *, row_cap: int | None = None) -> SimpleNamespace:
        return SimpleNamespace(df=self.con.execute(sql, params).df())


def finish_import(given: EventMap | None) -> Callable[[duckdb.DuckDBPyConnection], None]:
    """What an import runs last, in its all-or-nothing write: infer the map (unless `given`), derive
    experiments from the map's exposure events when the export has no assignments, store the map."""
    def finish(con: duckdb.DuckDBPyConnection) -> None:
        from tools.semantic.infer import infer_map

        emap = given or infer_map(ConnectionSource(con))
        derive_experiments(con, emap)
        write_map(con, emap)
    return finish


def derive_experiments(con: duckdb.DuckDBPyConnection, emap: EventMap) -> int:
    """Experiments and assignments from exposure events (a user's first exposure gives the variant and the
    assignment time); none when the data has assignments already or the map no exposure role. An experiment
    exposing users until the last day of the data is still running (no end). Returns the experiments made."""
    exposure = emap.roles.exposure
    if exposure is None or con.execute("SELECT count(*) FROM assignments").fetchone()[0]:
        return 0
    primary = emap.event_of("order") or (emap.steps[-1] if emap.steps else None)
    exp, variant = parse_field(exposure.experiment).sql(), parse_field(exposure.variant).sql()
    exposed = (f"SELECT CAST({exp} AS VARCHAR) AS experiment_id, CAST({variant} AS VARCHAR) AS variant, user_id, ts "
               f"FROM events WHERE event = {lit(exposure.event)} AND {exp} IS NOT NULL AND {variant} IS NOT NULL")
    con.execute(f"INSERT INTO assignments SELECT experiment_id, user_id, arg_min(variant, ts), min(ts) "
                f"FROM ({exposed}) GROUP BY experiment_id, user_id")
    con.execute(f"INSERT INTO experiments SELECT experiment_id, experiment_id, min(ts), CASE WHEN max(ts) >= "
                f"(SELECT max(ts) FROM events) - INTERVAL 1 DAY THEN NULL ELSE max(ts) END, NULL, "
                f"{lit(primary) if primary else 'NULL'} FROM ({exposed}) GROUP BY experiment_id")
    return con.execute("SELECT count(*) FROM experiments").fetchone()[0]
