"""The facts store (tools/facts_store.py): what scans and questions share is computed once per data version and
event map, kept beside the state (never in the analytics file), and rebuilt, never trusted, when stale or damaged."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from data.generate import generate
from data.scenario import load_scenario
from tools import facts_store
from tools.facts_store import bind, frame
from tools.funnel import FunnelSpec, funnel
from tools.period import resolve_period
from tools.scan import scan
from tools.sessions import Facts
from tools.warehouse import Warehouse


@pytest.fixture
def db(small_demo_copy: Path) -> Path:
    return small_demo_copy


@pytest.fixture(autouse=True)
def new_process(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test starts with nothing in memory, as a new process does."""
    monkeypatch.setattr(facts_store, "_memory", type(facts_store._memory)())


class Computations:
    """Counts the relations a warehouse computes (by their SQL) instead of finding them stored."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.sql: list[str] = []
        original = facts_store.remembered

        def counted(wh: Warehouse, name: str, parts: tuple, compute, codec=None):
            def computed():
                self.sql.append(parts[0])
                return compute()
            return original(wh, name, parts, computed, codec)

        monkeypatch.setattr(facts_store, "remembered", counted)


def session_facts(wh: Warehouse):
    p = resolve_period(wh, "all")
    facts = Facts(p, wh.event_map).materialize(wh)
    return wh.query(f"SELECT * FROM {facts.table} ORDER BY session_id").df


def test_session_facts_are_computed_once_and_read_back_by_the_next_process(db: Path, tmp_path: Path,
                                                                            monkeypatch: pytest.MonkeyPatch):
    state = tmp_path / "state"
    with Warehouse(db) as wh:
        bind(wh, state)
        first = session_facts(wh)
    (stored,) = (state / "facts" / "tables").glob("*.parquet")
    facts_store._memory.clear()  # the next process
    runs = Computations(monkeypatch)
    with Warehouse(db) as wh:
        bind(wh, state)
        again = session_facts(wh)
    assert runs.sql == [] and len(again) == len(first) > 100
    assert again.equals(first)
    assert stored.stat().st_size > 0


@pytest.mark.parametrize("damage", ["garbage", "truncated", "another key"])
def test_a_damaged_or_foreign_entry_is_rebuilt(damage: str, db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    state = tmp_path / "state"
    with Warehouse(db) as wh:
        bind(wh, state)
        first = session_facts(wh)
    (stored,) = (state / "facts" / "tables").glob("*.parquet")
    if damage == "another key":  # a valid table stored for other data
        other = state / "other"
        with Warehouse(db) as wh:
            bind(wh, other)
            wh.materialize("some_other_relation", "SELECT 1 AS x")
        (foreign,) = (other / "facts" / "tables").glob("*.parquet")
        shutil.copyfile(foreign, stored)
    else:
        data = stored.read_bytes()
        stored.write_bytes(b"\x00not parquet" if damage == "garbage" else data[: len(data) // 2])
    facts_store._memory.clear()
    runs = Computations(monkeypatch)
    with Warehouse(db) as wh:
        bind(wh, state)
        again = session_facts(wh)
    assert len(runs.sql) == 1 and again.equals(first)


def test_an_import_or_a_map_change_makes_new_facts(db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    state = tmp_path / "state"
    with Warehouse(db) as wh:
        bind(wh, state)
        before = session_facts(wh)
    new = tmp_path / "new.duckdb"
    generate(load_scenario("demo").model_copy(update={"users": 400, "seed": 11}), new)
    os.replace(new, db)  # what an import does
    facts_store._memory.clear()
    runs = Computations(monkeypatch)
    with Warehouse(db) as wh:
        bind(wh, state)
        after = session_facts(wh)
        assert len(runs.sql) == 1 and len(after) < len(before)
        emap = wh.event_map
        name = emap.default_funnel or next(iter(emap.funnels))
        remapped = emap.model_copy(update={"funnels": {**emap.funnels, name: list(emap.steps[:3])}})
    with Warehouse(db, event_map=remapped) as wh:
        bind(wh, state)
        session_facts(wh)
    assert len(runs.sql) == 2


def test_the_analytics_file_is_never_written(db: Path, tmp_path: Path):
    before = (db.stat().st_size, db.stat().st_mtime_ns)
    with Warehouse(db) as wh:
        bind(wh, tmp_path / "state")
        scan(wh, "all")
        funnel(wh, FunnelSpec(wh.event_map.steps))
    assert (db.stat().st_size, db.stat().st_mtime_ns) == before
    assert list((tmp_path / "state" / "facts").rglob("*.parquet"))


def test_a_stored_frame_is_a_copy_callers_may_change(db: Path):
    with Warehouse(db) as wh:
        sql = "SELECT event, count(*) AS n FROM events GROUP BY 1 ORDER BY 1"
        first = frame(wh, sql)
        first["n"] = -1
        assert (frame(wh, sql)["n"] > 0).all()


def test_an_unwritable_state_only_costs_a_computation(db: Path, tmp_path: Path):
    blocked = tmp_path / "blocked"
    blocked.write_text("a file where the state directory should be")
    with Warehouse(db) as wh:
        bind(wh, blocked)
        assert len(session_facts(wh)) > 100
