"""The compiled search rows (tools/search_engine.py) are the rows of the SQL that defines them (tools/search.py)."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from tools.period import Period
from tools.search import searches_sql
from tools.search_engine import search_rows
from tools.warehouse import Warehouse

T0 = datetime(2026, 3, 2)
SEARCH, CLICK, ORDER, NOISE = "Products Searched", "Search Result Clicked", "Order Completed", "Page Viewed"
EVERYTHING = Period("all", None, None)
MIDDLE = Period("middle", pd.Timestamp(T0 + timedelta(days=3)), pd.Timestamp(T0 + timedelta(days=8)))


def random_searches(seed: int, users: int = 50) -> tuple[list[dict], list[dict]]:
    """Sessions on a coarse clock: searches tie with each other and with clicks at one instant, follow each other
    within and beyond 60 s, clicks within and beyond 5 minutes; result counts of 0, some, or none; event ids in
    another order than the rows; searches without a session."""
    rng = np.random.default_rng(seed)
    events, people, ids = [], [], rng.permutation(100_000)
    for u in range(users):
        user = f"user-{seed}-{u}"
        people.append({"user_id": user, "plan": str(rng.choice(["free", "pro"]))})
        for s in range(int(rng.integers(0, 4))):
            session = None if rng.random() < 0.08 else f"{user}-s{s}"
            start, platform = T0 + timedelta(days=int(rng.integers(0, 12))), str(rng.choice(["ios", "web"]))
            for _ in range(int(rng.integers(1, 20))):
                # steps of 40 s: the next search 40 s later reformulates, 80 s later does not; a click 280 or 320 s
                # later is within or beyond 5 minutes
                t = start + timedelta(seconds=int(rng.integers(0, 10)) * 40)
                event = str(rng.choice([SEARCH, CLICK, ORDER, NOISE], p=[0.45, 0.3, 0.05, 0.2]))
                event_id = f"x{ids[len(events)]}"
                results = {SEARCH: rng.choice([0, 3, 12, None], p=[0.3, 0.3, 0.3, 0.1])}.get(event)
                events.append({"event_id": event_id, "user_id": user, "session_id": session, "ts": t,
                               "event": event, "platform": platform,
                               "country": str(rng.choice(["BR", "DE", "US"])),
                               **({"search_query": str(rng.choice(["Red Shoes", "red shoe", "vegan  bag", "Mug"])),
                                   "results_count": None if results is None else int(results)}
                                  if event == SEARCH else {})})
    return events, people


def rows(table: pa.Table) -> pd.DataFrame:
    df = table.to_pandas()
    return df.sort_values(list(df.columns), na_position="first").reset_index(drop=True)


def assert_same_rows(wh: Warehouse, period: Period, segment: dict | None = None,
                     breakdown: str | None = None) -> pd.DataFrame:
    expected = wh.arrow(searches_sql(period, wh.event_map, segment, breakdown))
    got = search_rows(wh, period, wh.event_map, segment, breakdown)
    assert got.schema == expected.schema
    pd.testing.assert_frame_equal(rows(got), rows(expected))
    return rows(got)


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize(("period", "segment", "breakdown"), [
    (EVERYTHING, None, None),
    (MIDDLE, None, None),                       # a period: clicks and last events outside it still count
    (EVERYTHING, {"platform": "ios"}, None),    # a segment of the searches
    (EVERYTHING, None, "country"),              # an event dimension's value on each search
    (MIDDLE, {"platform": "web"}, "plan"),      # a user dimension
])
def test_the_walk_gives_the_rows_of_the_sql(make_wh, seed: int, period: Period, segment, breakdown) -> None:
    got = assert_same_rows(make_wh(*random_searches(seed)), period, segment, breakdown)
    assert len(got) > 20
    # every outcome occurs both ways, so a flag computed wrong in either direction shows
    for flag in ("zero", "clicked", "exited", "reformulated", "ordered"):
        assert got[flag].eq(True).any() and got[flag].eq(False).any(), flag


def test_tied_searches_are_reformulated_but_the_last_by_event_id(make_wh) -> None:
    """Three searches at one instant, ids in another order than the rows: the SQL orders them by event_id, so the
    two first have a next search then; the last has none within 60 s."""
    base = {"user_id": "u", "session_id": "s", "ts": T0, "event": SEARCH, "search_query": "mug", "results_count": 2}
    events = [{**base, "event_id": "b"}, {**base, "event_id": "c"}, {**base, "event_id": "a"},
              {**base, "event_id": "d", "ts": T0 + timedelta(seconds=90)}]
    got = assert_same_rows(make_wh(events, [{"user_id": "u"}]), EVERYTHING)
    assert got["reformulated"].tolist().count(True) == 2


def test_searches_without_any_session_count_as_none_of_the_session_outcomes(make_wh) -> None:
    events = [{"user_id": "u", "session_id": None, "ts": T0 + timedelta(seconds=10 * i), "event": SEARCH,
               "search_query": "mug", "results_count": i % 2} for i in range(4)]
    got = assert_same_rows(make_wh(events, [{"user_id": "u"}]), EVERYTHING)
    assert got["zero"].sum() == 2 and not got[["clicked", "exited", "reformulated", "ordered"]].any().any()


def test_no_search_gives_no_rows_of_the_same_types(make_wh) -> None:
    wh = make_wh(*random_searches(4))
    empty = Period("before", pd.Timestamp(T0 - timedelta(days=30)), pd.Timestamp(T0 - timedelta(days=20)))
    assert len(assert_same_rows(wh, empty)) == 0


def test_sessions_whose_ids_share_a_hash_are_computed_by_the_sql(make_wh, monkeypatch: pytest.MonkeyPatch) -> None:
    from tools import session_engine

    wh = make_wh(*random_searches(5))
    monkeypatch.setattr(session_engine, "grouped_exactly", lambda *a: False)  # as if two ids shared a hash
    assert len(assert_same_rows(wh, EVERYTHING)) > 20


def test_the_demo_searches_are_the_same(small_demo: Path) -> None:
    with Warehouse(small_demo) as wh:
        got = assert_same_rows(wh, EVERYTHING, {"platform": ["ios", "android"]}, "country")
    assert len(got) > 1000


@pytest.mark.parametrize("export", ["ga4", "amplitude", "mixpanel"])  # the PostHog fixture has no search
def test_imported_exports_have_the_same_searches(export: str, tmp_path: Path) -> None:
    """Other tools' exports with their inferred maps: no click role, a results count or none."""
    from data.importers import import_source

    db = tmp_path / "imported.duckdb"
    import_source(Path(__file__).parent / "fixtures" / "exports" / export, db)
    with Warehouse(db) as wh:
        assert wh.event_map.roles.search is not None
        assert len(assert_same_rows(wh, EVERYTHING)) > 0
