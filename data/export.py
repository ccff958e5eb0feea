"""Export a DuckDB analytics file to a Parquet lake (the layout of tools/lake.py).

Events are hive-partitioned by day (`events/day=YYYY-MM-DD/*.parquet`); the other tables are
one folder each; the stored event map goes beside them as event_map.yaml. The lake is written to
a temporary sibling directory and renamed into place, so a failed export leaves nothing behind
and never a half-written lake.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import duckdb

from data.schema import MAP_KEY, META_TABLE, TABLES

LAKE_MAP = "event_map.yaml"  # the dataset's event map, beside the lake's tables
DAY_PARTITION = "day"  # events are partitioned by this DATE (of ts); readers drop it, it is no data of its own


class ExportError(RuntimeError):
    """The export cannot run: names the file or directory at fault."""


def export_lake(db: str | Path, out: str | Path, *, overwrite: bool = False) -> dict[str, int]:
    """Write every table of `db` under `out`; returns rows per table."""
    db, out = Path(db), Path(out)
    if not db.is_file():
        raise ExportError(f"database file not found: {db}")
    if out.exists() and not (overwrite and out.is_dir()):
        raise ExportError(f"{out} exists (pass overwrite=True / --overwrite to replace a lake directory)")
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    rows: dict[str, int] = {}
    try:
        with duckdb.connect(str(db), read_only=True) as con:
            present = {r[0] for r in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
            for table in TABLES:
                if table not in present:
                    continue
                rows[table] = con.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
                target = staging / table
                if table == "events":
                    con.execute(
                        f"COPY (SELECT *, CAST(ts AS DATE) AS {DAY_PARTITION} FROM events) TO '{target}'"
                        f" (FORMAT parquet, PARTITION_BY ({DAY_PARTITION}))"
                    )
                else:
                    target.mkdir()
                    con.execute(f"COPY {table} TO '{target / 'part-0.parquet'}' (FORMAT parquet)")
            if META_TABLE in present:
                stored = con.execute(f"SELECT value FROM {META_TABLE} WHERE key = ?", [MAP_KEY]).fetchone()
                if stored:
                    (staging / LAKE_MAP).write_text(stored[0], encoding="utf-8")
        if out.exists():
            shutil.rmtree(out)
        os.replace(staging, out)
    except (duckdb.Error, OSError) as error:
        shutil.rmtree(staging, ignore_errors=True)
        raise ExportError(f"cannot export {db} to {out}: {error}") from error
    return rows
