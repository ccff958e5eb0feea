"""What the import tests share."""

from __future__ import annotations

from pathlib import Path

import duckdb

from data.schema import create_tables


def existing_database(tmp_path: Path) -> Path:
    """An existing analytics database, alone in its folder, that failed imports must not touch."""
    path = tmp_path / "dbdir" / "insight.duckdb"
    path.parent.mkdir()
    with duckdb.connect(str(path)) as con:
        create_tables(con)
        con.execute("INSERT INTO users (user_id) VALUES ('old-user')")
    return path
