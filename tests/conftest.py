"""Fixtures shared by the test modules."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import pytest

from data.generate import generate
from data.scenario import load_scenario
from data.schema import TABLES, create_tables
from tools.semantic.eventmap import shipped_map
from tools.warehouse import Warehouse


def _insert(con: duckdb.DuckDBPyConnection, table: str, rows: Iterable[dict[str, Any]]) -> None:
    rows = list(rows)
    if not rows:
        return
    used = [c for c in TABLES[table] if any(c in row for row in rows)]
    frame = pd.DataFrame([[row.get(c) for c in used] for row in rows], columns=used, dtype=object)
    con.register("new_rows", frame)
    con.execute(f"INSERT INTO {table} ({', '.join(used)}) SELECT {', '.join(used)} FROM new_rows")
    con.unregister("new_rows")


@pytest.fixture
def make_wh(tmp_path: Path) -> Iterable[Callable[..., Warehouse]]:
    """Factory: write the given rows into a fresh DuckDB file and open it as a read-only Warehouse."""
    opened: list[Warehouse] = []

    def make(events: Iterable[dict] = (), users: Iterable[dict] = (), experiments: Iterable[dict] = (),
             assignments: Iterable[dict] = ()) -> Warehouse:
        path = tmp_path / f"analytics_{len(opened)}.duckdb"
        con = duckdb.connect(str(path))
        create_tables(con)
        events = [{"event_id": f"e{i}", **row} for i, row in enumerate(events)]
        for table, rows in (("events", events), ("users", users), ("experiments", experiments),
                            ("assignments", assignments)):
            _insert(con, table, rows)
        con.close()
        wh = Warehouse(path, event_map=shipped_map("demo"))  # Segment names, read with the demo's event map
        opened.append(wh)
        return wh

    yield make
    for wh in opened:
        wh.close()


@pytest.fixture(scope="session")
def small_demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo scenario with 1,500 users, generated once per test run: copy it before changing it."""
    db = tmp_path_factory.mktemp("small_demo") / "source.duckdb"
    generate(load_scenario("demo").model_copy(update={"users": 1500}), db)
    return db


@pytest.fixture
def small_demo_copy(small_demo: Path, tmp_path: Path) -> Path:
    """A copy of the small demo of its own (a file no cache has seen, that a test may replace)."""
    copy = tmp_path / "data.duckdb"
    shutil.copyfile(small_demo, copy)
    return copy


@pytest.fixture(scope="session")
def demo_4000(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo scenario with 4,000 users, generated once per test run (read-only)."""
    path = tmp_path_factory.mktemp("demo_4000") / "demo.duckdb"
    generate(load_scenario("demo").model_copy(update={"users": 4000}), path)
    return path


@pytest.fixture(scope="module")
def offline(demo_4000: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """The offline analyst (no model) on `demo_4000`, with a state directory of the test module's own."""
    from agent.api import InsightAgent

    with InsightAgent(db=demo_4000, llm=None, state_dir=tmp_path_factory.mktemp("offline-state")) as agent:
        yield agent
