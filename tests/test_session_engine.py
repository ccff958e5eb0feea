"""The DuckDB path's session facts (tools/session_engine.py) against their SQL definition (`Facts.select_sql`,
tools/sessions.py): the same rows and types for every kind of facts, on random sessions dense in timestamp ties
across steps, repeated steps, errors after steps and missing loads; and the SQL whenever hashes cannot be trusted."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from tools import kernels
from tools.period import Period
from tools.session_engine import facts_table, grouped_exactly
from tools.sessions import Facts
from tools.warehouse import Warehouse

T0 = datetime(2026, 3, 2)
STEPS = ("Product Viewed", "Product Added", "Checkout Started", "Payment Info Entered", "Order Completed")
ERROR, NOISE = "Error Shown", "Page Viewed"


def random_sessions(seed: int, users: int = 60) -> tuple[list[dict], list[dict]]:
    """Sessions of up to 25 events on a coarse clock (steps of different kinds tie often), errors anywhere, loads
    on most steps; each session keeps one platform and country (its first event's values are then certain)."""
    rng = np.random.default_rng(seed)
    events, people, seen = [], [], set()
    for u in range(users):
        user = f"user-{seed}-{u}"
        people.append({"user_id": user, "plan": str(rng.choice(["free", "pro"]))})
        for s in range(int(rng.integers(0, 4))):
            session, start = f"{user}-s{s}", T0 + timedelta(days=int(rng.integers(0, 12)))
            platform, country = str(rng.choice(["ios", "android", "web"])), str(rng.choice(["BR", "DE", "US"]))
            for _ in range(int(rng.integers(1, 25))):
                t = start + timedelta(seconds=int(rng.integers(0, 12)) * 10)
                event = str(rng.choice([*STEPS, ERROR, NOISE], p=[0.25, 0.2, 0.15, 0.1, 0.1, 0.12, 0.08]))
                if (session, event, t) in seen:  # one event of a kind per instant: the first load is certain
                    continue
                seen.add((session, event, t))
                load = None if event == ERROR or rng.random() < 0.2 else int(rng.integers(100, 5000))
                events.append({"user_id": user, "session_id": session, "ts": t, "event": event,
                               "platform": platform, "country": country, "load_time_ms": load,
                               **({"error_code": "E1"} if event == ERROR else {})})
    return events, people


def rows(table: pa.Table) -> pd.DataFrame:
    return table.to_pandas().sort_values("session_id").reset_index(drop=True)


def assert_same_facts(wh: Warehouse, facts: Facts) -> pd.DataFrame:
    expected, got = wh.arrow(facts.select_sql()), facts_table(wh, facts)
    assert got.schema == expected.schema
    pd.testing.assert_frame_equal(rows(got), rows(expected))
    return rows(got)


MIDDLE = Period("middle", pd.Timestamp(T0 + timedelta(days=3)), pd.Timestamp(T0 + timedelta(days=8)))
EVERYTHING = Period("all", None, None)


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize(("period", "steps", "dims"), [
    (EVERYTHING, (), None),                      # the map's funnel, every dimension, cart level
    (MIDDLE, (), None),                          # a period
    (EVERYTHING, STEPS[1:4], ("platform",)),     # other steps (no cart level: NULL), one event dimension
    (EVERYTHING, (STEPS[4], STEPS[0]), ("plan",)),  # steps in any order, a user dimension only
], ids=["funnel", "period", "steps-dim", "reordered-user-dim"])
def test_the_walk_gives_the_rows_of_the_sql(make_wh, seed: int, period: Period, steps: tuple, dims) -> None:
    wh = make_wh(*random_sessions(seed))
    got = assert_same_facts(wh, Facts(period, wh.event_map, steps, dims))
    assert len(got) > 30 and got["level"].nunique() > 2  # several levels
    assert got.filter(like="error_").to_numpy().any() and got.filter(like="load_").isna().to_numpy().any()


def test_no_session_in_the_period_gives_no_rows_of_the_same_types(make_wh) -> None:
    wh = make_wh(*random_sessions(4))
    empty = Period("before", pd.Timestamp(T0 - timedelta(days=30)), pd.Timestamp(T0 - timedelta(days=20)))
    assert len(assert_same_facts(wh, Facts(empty, wh.event_map))) == 0


def test_the_demo_sessions_are_the_same(small_demo: Path) -> None:
    with Warehouse(small_demo) as wh:
        got = assert_same_facts(wh, Facts(EVERYTHING, wh.event_map))
    assert len(got) > 1000


def test_sessions_whose_ids_share_a_hash_are_computed_by_the_sql(make_wh, monkeypatch: pytest.MonkeyPatch) -> None:
    wh = make_wh(*random_sessions(5))
    facts = Facts(EVERYTHING, wh.event_map)
    expected = rows(wh.arrow(facts.select_sql()))
    grouped = kernels.group_sorted

    def colliding(keys: np.ndarray, values: np.ndarray, carry: bool = False):  # every id has the same hash
        return grouped(np.zeros_like(keys), values, carry)

    monkeypatch.setattr(kernels, "group_sorted", colliding)
    pd.testing.assert_frame_equal(rows(facts_table(wh, facts)), expected)


def test_groups_agree_only_when_every_id_of_a_group_is_the_same() -> None:
    ids = pa.array(["s1", "s2", "s1", "s10", "s2"])
    starts = np.array([0, 2, 4, 5])
    assert grouped_exactly(ids, np.array([0, 2, 1, 4, 3]), starts)
    assert not grouped_exactly(ids, np.array([0, 3, 1, 4, 2]), starts)  # s1 and s10: same start, other length
    assert not grouped_exactly(ids, np.array([0, 2, 1, 3, 4]), starts)
    assert not grouped_exactly(pa.array([1, 2, 1, 3, 2]), np.array([0, 2, 1, 4, 3]), starts)  # not strings: SQL
    assert grouped_exactly(ids.slice(0, 0), np.zeros(0, np.int64), np.zeros(1, np.int64))


@pytest.mark.parametrize("export", ["ga4", "amplitude", "mixpanel"])  # the PostHog fixture infers no funnel
def test_imported_exports_have_the_same_sessions(export: str, tmp_path: Path) -> None:
    """Other tools' exports (their own names, ids and property columns), imported with their inferred event map."""
    from data.importers import import_source

    db = tmp_path / "imported.duckdb"
    import_source(Path(__file__).parent / "fixtures" / "exports" / export, db)
    with Warehouse(db) as wh:
        assert wh.event_map.steps
        got = assert_same_facts(wh, Facts(EVERYTHING, wh.event_map))
    assert len(got) > 0


WARM_UP_THEN_ENGINES = """
import sys
import numpy as np
import pyarrow as pa
from tools import kernels
from tools.funnel import FunnelSpec
from tools.funnel_engine import entity_paths
from tools.period import Period
from tools.search_engine import search_rows
from tools.session_engine import facts_table, grouped_exactly
from tools.sessions import Facts
from tools.warehouse import Warehouse

names = ("group_sorted", "walk_sessions", "walk_entities", "groups_agree", "walk_searches")
kernels.load_all()
warmed = {name: sorted(map(str, getattr(kernels, name).signatures)) for name in names}
with Warehouse(sys.argv[1]) as wh:
    assert facts_table(wh, Facts(Period("all", None, None), wh.event_map)).num_rows > 0
    assert entity_paths(wh, FunnelSpec(tuple(wh.event_map.steps)))[0].size > 0
    assert search_rows(wh, Period("all", None, None), wh.event_map).num_rows > 0
# ids whose chunks were combined sit in fresh, writable buffers: compared with the same compiled version
ids = pa.chunked_array([["a", "b"], ["a"]]).combine_chunks()
assert grouped_exactly(ids, np.array([0, 2, 1]), np.array([0, 2, 3]))
called = {name: sorted(map(str, getattr(kernels, name).signatures)) for name in names}
assert called == warmed, (warmed, called)
"""


def test_the_warm_up_loads_exactly_the_compiled_versions_the_engines_call(small_demo: Path) -> None:
    """A call site passing another dtype or a writable array instead of Arrow's read-only one would compile a second
    version (seconds, once per machine) that the background warm-up never loads: a fresh process shows it."""
    import subprocess
    import sys

    run = subprocess.run([sys.executable, "-c", WARM_UP_THEN_ENGINES, str(small_demo)], capture_output=True, text=True,
                         cwd=Path(__file__).parent.parent, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
