"""The event data model: table and column definitions shared by the generator and importers."""

from __future__ import annotations

from importlib import resources

import duckdb

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

# Segment-spec e-commerce events, and the default purchase funnel.
EVENTS = (
    "Application Opened",
    "Signed Up",
    "Page Viewed",
    "Products Searched",
    "Search Result Clicked",
    "Product Viewed",
    "Product Added",
    "Cart Viewed",
    "Checkout Started",
    "Payment Info Entered",
    "Order Completed",
    "Error Shown",
)
PURCHASE_FUNNEL = (
    "Product Viewed",
    "Product Added",
    "Checkout Started",
    "Payment Info Entered",
    "Order Completed",
)
# The page a funnel step is shown on; errors and load times on that page belong to the step.
STEP_PAGES = {
    "Product Viewed": "product",
    "Product Added": "product",
    "Cart Viewed": "cart",
    "Checkout Started": "checkout",
    "Payment Info Entered": "payment",
    "Order Completed": "confirmation",
}

# Segment dimensions: on events (context) and on users.
EVENT_DIMENSIONS = ("platform", "os", "app_version", "browser", "country")
USER_DIMENSIONS = ("acquisition_channel", "plan")
DIMENSIONS = EVENT_DIMENSIONS + USER_DIMENSIONS


def ddl() -> str:
    """The CREATE TABLE statements of the data model."""
    return resources.files("data").joinpath("schema.sql").read_text()


def create_tables(con: duckdb.DuckDBPyConnection) -> None:
    """Create every table of the data model on `con`."""
    con.execute(ddl())
