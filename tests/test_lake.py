"""DuckDB reads a Parquet lake in place: export, layouts, types, confinement, clear errors."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from data.export import ExportError, export_lake
from data.generate import generate
from data.scenario import load_scenario
from tools.funnel import FunnelSpec, funnel
from tools.warehouse import Warehouse, WarehouseError


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("lake")
    db, lake = root / "demo.duckdb", root / "lake"
    generate(load_scenario("demo").model_copy(update={"users": 1500}), db)
    export_lake(db, lake)
    return db, lake


def test_export_partitions_events_by_day_and_keeps_every_row(demo) -> None:
    db, lake = demo
    days = sorted(p.name for p in (lake / "events").iterdir())
    assert days and all(d.startswith("day=") for d in days)
    with Warehouse(db) as file_wh, Warehouse(lake) as lake_wh:
        n_days = file_wh.scalar("SELECT count(DISTINCT CAST(ts AS DATE)) FROM events")
        assert len(days) == n_days
        assert lake_wh.tables == file_wh.tables  # same columns and types, partition column dropped
        assert lake_wh.checksum() == file_wh.checksum()


def test_export_refuses_to_overwrite_and_leaves_nothing_half_written(demo, tmp_path) -> None:
    db, lake = demo
    with pytest.raises(ExportError, match="exists"):
        export_lake(db, lake)
    with pytest.raises(ExportError, match="database file not found"):
        export_lake(tmp_path / "nope.duckdb", tmp_path / "out")
    assert not (tmp_path / "out").exists()
    assert [p.name for p in tmp_path.iterdir()] == []  # no staging directory left behind


def test_a_lake_from_other_tools_is_read_with_the_schema_types(demo, tmp_path) -> None:
    db, _ = demo
    lake = tmp_path / "other"
    (lake / "events" / "platform=web").mkdir(parents=True)
    (lake / "events" / "platform=ios").mkdir(parents=True)
    with duckdb.connect(str(db), read_only=True) as con:
        # wider integer types, an extra column, hive partitions on a schema column, users as one file
        for platform in ("web", "ios"):
            con.execute(
                f"COPY (SELECT * EXCLUDE (platform, results_count), CAST(results_count AS BIGINT) AS results_count,"
                f" 'x' AS extra FROM events WHERE platform = '{platform}')"
                f" TO '{lake / 'events' / f'platform={platform}' / 'part-0.parquet'}' (FORMAT parquet)")
        con.execute(f"COPY users TO '{lake / 'users.parquet'}' (FORMAT parquet)")
        expected = con.execute("SELECT count(*) FROM events WHERE platform IN ('web', 'ios')").fetchone()[0]
    with Warehouse(lake) as wh:
        assert wh.tables["events"]["results_count"] == "INTEGER"
        assert wh.tables["events"]["extra"] == "VARCHAR"  # a team's own columns are kept, not refused
        assert wh.scalar("SELECT count(*) FROM events") == expected
        assert set(wh.query("SELECT DISTINCT platform FROM events").df["platform"]) == {"web", "ios"}
        assert wh.scalar("SELECT count(*) FROM experiments") == 0  # optional tables read as empty
        assert funnel(wh, FunnelSpec(wh.event_map.steps)).table["entities"].iloc[0] > 0


def test_the_lake_warehouse_reads_its_directory_and_nothing_else(demo) -> None:
    _, lake = demo
    with Warehouse(lake) as wh:
        with pytest.raises(WarehouseError, match="disabled by configuration|Permission"):
            wh.query("SELECT * FROM read_csv('/etc/passwd')")
        with pytest.raises(WarehouseError, match="lock|configuration"):
            wh.query("SET enable_external_access = true")
        with pytest.raises(Exception, match="(?i)read_parquet|not allowed|refus"):
            wh.run_guarded(f"SELECT * FROM read_parquet('{lake}/users/*.parquet')")


def test_lake_errors_name_the_directory_table_and_file(tmp_path) -> None:
    with pytest.raises(WarehouseError, match="lake directory|database file not found"):
        Warehouse(tmp_path / "missing")
    (tmp_path / "l" / "events").mkdir(parents=True)
    with pytest.raises(WarehouseError, match=r"no Parquet files for table 'users'.*'events'"):
        Warehouse(tmp_path / "l")
    (tmp_path / "l" / "events" / "bad.parquet").write_bytes(b"not parquet at all")
    (tmp_path / "l" / "users").mkdir()
    (tmp_path / "l" / "users" / "u.parquet").write_bytes(b"PAR1garbage")
    with pytest.raises(WarehouseError, match=r"bad\.parquet|u\.parquet"):
        Warehouse(tmp_path / "l")


def test_duckdb_says_storage_urls_need_spark() -> None:
    with pytest.raises(WarehouseError, match=r"s3a://bucket/lake is shared storage.*--engine spark"):
        Warehouse("s3a://bucket/lake")
    with pytest.raises(WarehouseError, match=r"s3a://bucket/lake is shared storage"):
        Warehouse(Path("s3a://bucket/lake"))  # as typer hands it over: '//' folded by pathlib
