"""The DuckDB funnel engine (tools/funnel_engine.py) against the funnel SQL (tools/funnel.py, docs/ANALYTICS.md
Funnel): the same level and best path for every entity, the same counts and medians for every kind of spec,
on random event streams dense in timestamp ties, repeated steps and window edges."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from tools import facts_store, funnel_engine
from tools.funnel import FunnelSpec, funnel, levels_sql, step_counts_sql
from tools.funnel_engine import NULL_US, entity_paths, runs, step_counts
from tools.period import Period
from tools.warehouse import Warehouse

T0 = datetime(2026, 3, 2)
STEPS = ("Product Viewed", "Product Added", "Checkout Started", "Payment Info Entered", "Order Completed")
NOISE = "Page Viewed"


def random_rows(seed: int, users: int = 80) -> tuple[list[dict], list[dict]]:
    """Events on a coarse clock (many ties), steps in any order and repeated, sessions of a few events."""
    rng = np.random.default_rng(seed)
    events, people = [], []
    for u in range(users):
        user = f"user-{seed}-{u}"
        people.append({"user_id": user, "country": str(rng.choice(["BR", "DE", "US"])),
                       "plan": str(rng.choice(["free", "pro"]))})
        session = 0
        for _ in range(int(rng.integers(0, 30))):
            session += int(rng.random() < 0.3)
            # hours on a 12-day clock: ties at the same second, gaps around the 1- and 3-day windows
            t = T0 + timedelta(hours=int(rng.integers(0, 12 * 24)), seconds=int(rng.integers(0, 3)) * 30)
            event = str(rng.choice([*STEPS, NOISE], p=[0.3, 0.2, 0.15, 0.12, 0.13, 0.1]))
            events.append({"user_id": user, "ts": t, "event": event, "session_id": f"{user}-s{session}",
                           "platform": str(rng.choice(["ios", "android", "web"]))})
    return events, people


def sql_levels(wh: Warehouse, spec: FunnelSpec) -> pd.DataFrame:
    """Per entity from the SQL: hash, level and best path in microseconds (NULL_US where not reached)."""
    times = ", ".join(f"coalesce(epoch_us({'path_t1' if i == 1 else f't{i}'}), {NULL_US}) AS p{i}"
                      for i in range(1, len(spec.steps) + 1))
    df = wh.query(f"SELECT hash(entity) AS h, level, {times} FROM ({levels_sql(spec, wh.event_map)}) x").df
    return df.sort_values("h").reset_index(drop=True)


def engine_levels(wh: Warehouse, spec: FunnelSpec) -> pd.DataFrame:
    hashes, level, path = entity_paths(wh, spec)
    df = pd.DataFrame({"h": hashes, "level": level.astype(int),
                       **{f"p{i + 1}": path[:, i] for i in range(len(spec.steps))}})
    return df.sort_values("h").reset_index(drop=True)


def same_counts(a: pd.DataFrame, b: pd.DataFrame) -> None:
    keys = [c for c in a.columns if not c.startswith(("n", "m"))]
    a, b = (x.sort_values(keys or ["n1"]).reset_index(drop=True) for x in (a, b))
    assert list(a.columns) == list(b.columns) and len(a) == len(b)
    for column in a.columns:
        if column.startswith("m"):
            assert np.allclose(a[column].astype(float), b[column].astype(float), rtol=0, atol=1e-9, equal_nan=True)
        else:
            assert a[column].astype(object).fillna("-").tolist() == b[column].astype(object).fillna("-").tolist()


MIDDLE = Period("middle", pd.Timestamp(T0 + timedelta(days=3)), pd.Timestamp(T0 + timedelta(days=8)))
SPECS = [
    FunnelSpec(STEPS),
    FunnelSpec(STEPS, window_days=1),
    FunnelSpec(STEPS, window_days=3, entity="sessions"),
    FunnelSpec(STEPS[2:]),
    FunnelSpec(STEPS, window_days=2, period=MIDDLE),
    FunnelSpec((STEPS[4], STEPS[0], STEPS[1])),  # any order of events is a funnel
]


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("spec", SPECS, ids=lambda s: f"{len(s.steps)}-{s.window_days:g}d-{s.entity}-{s.period.label}")
def test_every_entity_has_the_level_and_best_path_of_the_sql(make_wh, seed: int, spec: FunnelSpec) -> None:
    events, users = random_rows(seed)
    wh = make_wh(events, users)
    assert runs(wh, spec)
    expected, got = sql_levels(wh, spec), engine_levels(wh, spec)
    assert len(got) > 20 and got["level"].nunique() > 2  # the streams exercise several levels
    pd.testing.assert_frame_equal(got, expected, check_dtype=False)


@pytest.mark.parametrize("seed", [4, 5])
@pytest.mark.parametrize(("spec", "group_by"), [
    (FunnelSpec(STEPS), ()),
    (FunnelSpec(STEPS, window_days=1, entity="sessions"), ()),
    (FunnelSpec(STEPS), ("platform",)),                                   # an event dimension, first touch
    (FunnelSpec(STEPS, entity="sessions"), ("plan",)),                    # a user dimension
    (FunnelSpec(STEPS, where={"platform": "ios"}), ("country",)),         # event filter, user breakdown
    (FunnelSpec(STEPS, where={"country": ["BR", "DE"], "plan": "pro"}), ()),  # user filters, a list of values
    (FunnelSpec(STEPS[:3], exclusions=(NOISE,)), ()),
    (FunnelSpec(STEPS, window_days=2, period=MIDDLE, exclusions=(NOISE,)), ("platform",)),
])
def test_counts_and_medians_match_the_sql(make_wh, seed: int, spec: FunnelSpec, group_by: tuple[str, ...]) -> None:
    events, users = random_rows(seed)
    wh = make_wh(events, users)
    same_counts(step_counts(wh, spec, group_by), wh.query(step_counts_sql(spec, wh.event_map, group_by)).df)


def test_funnel_tool_reports_the_engines_counts_and_shows_the_sql_that_gives_them(make_wh) -> None:
    events, users = random_rows(6, users=150)
    wh = make_wh(events, users)
    spec = FunnelSpec(STEPS[:3], window_days=5)
    result = funnel(wh, spec, breakdown="plan")
    rerun = wh.query(result.sql[0]).df.iloc[0]
    assert result.table["entities"].tolist() == [int(rerun[f"n{i}"]) for i in range(1, 4)]
    assert result.table["entities"].iloc[-1] > 0
    assert set(result.data["breakdown"]["plan"]) == {"free", "pro"}


def test_an_empty_scope_counts_nobody(make_wh) -> None:
    events, users = random_rows(7)
    wh = make_wh(events, users)
    empty = Period("before", pd.Timestamp("2020-01-01"), pd.Timestamp("2020-01-02"))
    same_counts(step_counts(wh, FunnelSpec(STEPS, period=empty)),
                wh.query(step_counts_sql(FunnelSpec(STEPS, period=empty), wh.event_map)).df)


def test_without_distinct_hashes_the_sql_runs_and_gives_the_same_counts(make_wh, monkeypatch) -> None:
    events, users = random_rows(8)
    wh = make_wh(events, users)
    spec = FunnelSpec(STEPS, window_days=1)
    fast = step_counts(wh, spec, ("platform",))
    monkeypatch.setattr(funnel_engine, "hashes_unique", lambda wh, entity: False)  # as if two ids shared a hash
    assert not runs(wh, spec)
    monkeypatch.setattr(funnel_engine, "entity_paths", None)  # the engine must not run at all
    same_counts(step_counts(wh, spec, ("platform",)), fast)


def test_hash_uniqueness_is_a_fact_of_the_data_version_kept_in_the_state(make_wh, tmp_path) -> None:
    events, users = random_rows(9)
    wh = make_wh(events, users)
    facts_store.bind(wh, tmp_path / "state")
    assert funnel_engine.hashes_unique(wh, "user_id") is True
    (entry,) = (tmp_path / "state" / "facts" / "hashes").glob("*.json")
    entry.write_text(json.dumps({"key": entry.stem, "value": False}))  # what another process found
    facts_store._memory.clear()
    assert funnel_engine.hashes_unique(wh, "user_id") is False  # read back, not recomputed
    entry.write_text("{truncated")
    facts_store._memory.clear()
    assert funnel_engine.hashes_unique(wh, "user_id") is True  # a damaged entry is computed again


@pytest.mark.parametrize("rows", [0, 1, 5_000, 300_000])
def test_grouping_by_hash_keeps_every_row_of_every_group_sorted(rows: int) -> None:
    """group_sorted partitions by the hash's top bits first (many buckets from 4,096 rows on): every row lands
    in its own key's group, each group sorted, as a stable sort by (key, value) gives them; with `carry`, the
    source row of each sorted value."""
    from tools.kernels import group_sorted

    rng = np.random.default_rng(rows)
    # hashes spread over 64 bits (bucketed by their top bits), a few thousand keys, repeated values (ties)
    keys = rng.integers(0, 2**63, size=max(rows // 40, 1), dtype=np.uint64)[rng.integers(0, max(rows // 40, 1), rows)]
    keys = keys * np.uint64(2) + (keys & np.uint64(1))  # top bit set on about half of them
    values = rng.integers(-(2**40), 2**40, size=rows) // 7
    out, starts, group_keys, sources = group_sorted(keys, values, True)
    assert sorted(sources.tolist()) == list(range(rows)) and np.array_equal(values[sources], out)
    assert np.array_equal(keys[sources], np.repeat(group_keys, np.diff(starts)))  # each row carried with its value
    assert np.array_equal(group_sorted(keys, values)[0], out)
    assert starts[0] == 0 and starts[-1] == rows and len(group_keys) == len(starts) - 1 == len(np.unique(keys))
    expected = pd.DataFrame({"k": keys, "v": values}).sort_values(["k", "v"])
    got = pd.DataFrame({"k": np.repeat(group_keys, np.diff(starts)), "v": out}).sort_values(["k"], kind="stable")
    assert got["k"].tolist() == expected["k"].tolist()
    assert got["v"].tolist() == expected["v"].tolist()


@pytest.mark.parametrize("rows", [1, 5_000, 300_000])
def test_a_repeated_hash_is_found_wherever_it_lands(rows: int) -> None:
    """has_duplicates partitions by the hash's top bits like group_sorted: a repeat is found in any bucket."""
    from tools.kernels import has_duplicates

    rng = np.random.default_rng(rows)
    keys = rng.permutation(np.unique(rng.integers(0, 2**64 - 1, size=rows, dtype=np.uint64)))
    assert not has_duplicates(keys)
    for copied in rng.choice(keys.size, 3):
        assert has_duplicates(np.insert(keys, int(rng.integers(0, keys.size)), keys[copied]))
