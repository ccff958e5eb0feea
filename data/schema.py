"""The storage model: table and column definitions shared by the generator and importers.

What the events and columns mean lives in the event map (tools/semantic), not here."""

from __future__ import annotations

from importlib import resources

import duckdb

# Stored times lie in [MIN_YEAR, MAX_YEAR): anything else is a clock or unit error, never real data. Importers
# refuse it; the warehouse leaves out rows already stored with it.
MIN_YEAR, MAX_YEAR = 1990, 2100

# Table -> ordered {column: DuckDB type}; mirrors schema.sql exactly.
TABLES: dict[str, dict[str, str]] = {
    "users": {
        "user_id": "VARCHAR",
        "signed_up_at": "TIMESTAMP",
        "country": "VARCHAR",
        "acquisition_channel": "VARCHAR",
        "plan": "VARCHAR",
    },
    "events": {
        "event_id": "VARCHAR",
        "ts": "TIMESTAMP",
        "user_id": "VARCHAR",
        "session_id": "VARCHAR",
        "event": "VARCHAR",
        "platform": "VARCHAR",
        "os": "VARCHAR",
        "app_version": "VARCHAR",
        "browser": "VARCHAR",
        "country": "VARCHAR",
        "page": "VARCHAR",
        "product_id": "VARCHAR",
        "category": "VARCHAR",
        "price": "DOUBLE",
        "revenue": "DOUBLE",
        "search_query": "VARCHAR",
        "results_count": "INTEGER",
        "error_code": "VARCHAR",
        "load_time_ms": "INTEGER",
        "properties": "JSON",
    },
    "experiments": {
        "experiment_id": "VARCHAR",
        "name": "VARCHAR",
        "started_at": "TIMESTAMP",
        "ended_at": "TIMESTAMP",
        "hypothesis": "VARCHAR",
        "primary_metric": "VARCHAR",
    },
    "assignments": {
        "experiment_id": "VARCHAR",
        "user_id": "VARCHAR",
        "variant": "VARCHAR",
        "assigned_at": "TIMESTAMP",
    },
    "products": {
        "product_id": "VARCHAR",
        "name": "VARCHAR",
        "category": "VARCHAR",
        "price": "DOUBLE",
    },
}

REQUIRED_TABLES = ("users", "events")

# Columns an importer cannot do without; every other column may be absent (NULL).
REQUIRED_COLUMNS: dict[str, tuple[str, ...]] = {
    "users": ("user_id",),
    "events": ("event_id", "ts", "user_id", "event"),
    "experiments": ("experiment_id",),
    "assignments": ("experiment_id", "user_id", "variant"),
    "products": ("product_id",),
}

# Metadata of a dataset, inside its DuckDB file: (key, value) rows, e.g. the event map's YAML under
# MAP_KEY. Stored by the generator and the importers in the same all-or-nothing write as the data.
META_TABLE = "insight_meta"
MAP_KEY = "event_map"


def write_meta(con: duckdb.DuckDBPyConnection, key: str, value: str) -> None:
    """Store one metadata value in the database of a read-write connection (replacing an older one)."""
    con.execute(f"CREATE TABLE IF NOT EXISTS {META_TABLE} (key VARCHAR PRIMARY KEY, value VARCHAR)")
    con.execute(f"INSERT OR REPLACE INTO {META_TABLE} VALUES (?, ?)", [key, value])


def ddl() -> str:
    """The CREATE TABLE statements of the data model."""
    return resources.files("data").joinpath("schema.sql").read_text()


def create_tables(con: duckdb.DuckDBPyConnection) -> None:
    """Create every table of the data model on `con`."""
    con.execute(ddl())
