"""The DuckDB path's funnel engine: each entity's level and best path in one compiled pass.

DuckDB reads the funnel's events in the spec's scope as (hash of the entity, time and step index).
A Numba kernel groups them by entity: partitioned by the hash's top bits, then small hash tables that
stay in the CPU cache. The hash is exact: it is used only while the data's entity values have distinct
hashes, a fact of the data version; otherwise the SQL runs. It sorts each entity's events by time then
step index and walks them once per step, exactly as `levels_sql` defines the funnel (ANALYTICS.md,
Funnel): every step-1 event starts an attempt; a step-j event advances the attempt immediately before
it (in time, ties by step index) when it is within the window of that attempt's step 1, so only the
latest-starting of several waiting attempts moves on; the level is the furthest step of any attempt,
the path that of the latest-starting attempt that got that far, or the first step-1 event when no
attempt got past step 1.

Counts and medians without a segment, breakdown or exclusion come straight from the paths; the
others join the paths (a table registered on this thread's cursor) to the same SQL that defines
first-touch values, exclusions and filters. The Spark path runs `levels_sql` whole; the parity
tests hold both to the same counts and medians.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from tools.facts_store import json_codec, remembered
from tools.sqltext import lit

if TYPE_CHECKING:
    from tools.funnel import FunnelSpec
    from tools.warehouse import Warehouse

NULL_US = np.iinfo(np.int64).min  # a path time that was never reached
STEP_CODES = 32  # step indexes ride in the time's low bits: tk = t * 32 + k
UNIQUE = json_codec("hashes", 64, bool, bool)


def supports(wh: object) -> bool:
    """Whether `wh` runs the engine (DuckDB); other engines run the funnel SQL whole."""
    return getattr(wh, "dialect", None) == "duckdb"


def events_sql(spec: FunnelSpec) -> str:
    """The funnel's events in scope as (h: the entity's hash, tk: time in microseconds * 32 + step index 1..K).

    Step-1 events must fall in the period; later steps may follow until the window after its end."""
    from tools.funnel import entity_scope

    entity, scope = entity_scope(spec)
    index = " ".join(f"WHEN {lit(s)} THEN {i}" for i, s in enumerate(spec.steps, 1))
    return (f"SELECT hash({entity}) AS h, epoch_us(ts) * {STEP_CODES} + CASE event {index} END AS tk FROM events"
            f" WHERE event IN ({', '.join(lit(s) for s in spec.steps)}) AND {scope}")


def hashes_unique(wh: Warehouse, entity: str) -> bool:
    """Whether the data's distinct values of `entity` (user_id, session_id) have distinct hashes (a fact of the
    data version: the engine groups by hash only then)."""
    sql = f"SELECT count(DISTINCT {entity}) = count(DISTINCT hash({entity})) FROM events"
    return remembered(wh, "hashes_unique", (entity,), lambda: bool(wh.scalar(sql)), UNIQUE)


def runs(wh: Warehouse, spec: FunnelSpec) -> bool:
    """Whether the engine computes this funnel (DuckDB, at most STEP_CODES - 1 steps, hashes unique)."""
    entity = "user_id" if spec.entity == "users" else "session_id"
    return supports(wh) and len(spec.steps) < STEP_CODES and hashes_unique(wh, entity)


def walk(starts: np.ndarray, tk: np.ndarray, steps: int, window_us: int) -> tuple[np.ndarray, np.ndarray]:
    """Per entity (events `tk[starts[g]:starts[g + 1]]`, sorted): its level (0 without step 1) and best path
    (steps columns of microseconds, NULL_US past the level)."""
    from tools.kernels import walk_entities

    level = np.zeros(starts.size - 1, np.int8)
    path = np.full((starts.size - 1, steps), NULL_US, np.int64)
    if starts.size > 1:
        walk_entities(starts, tk, STEP_CODES, steps, window_us, level, path)
    return level, path


def entity_paths(wh: Warehouse, spec: FunnelSpec) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Entities that reached step 1 (their hashes), their levels and best paths."""
    from tools.kernels import group_sorted, loading

    with loading():
        table = wh.arrow(events_sql(spec))
    tk, starts, hashes, _ = group_sorted(table.column("h").to_numpy(), table.column("tk").to_numpy(), False)
    level, path = walk(starts, tk, len(spec.steps), int(spec.window_days * 86400) * 1_000_000)
    entered = level > 0
    return hashes[entered], level[entered], path[entered]


def quantile_median(values: np.ndarray) -> float | None:
    """The median as DuckDB's `median` computes it (interpolated: lo + (hi - lo) * 0.5), None when empty."""
    if values.size == 0:
        return None
    middle = ((values.size - 1) // 2, values.size // 2)
    lo, hi = np.partition(values, middle)[list(middle)]
    return float(lo + (hi - lo) * 0.5)


def counts_row(level: np.ndarray, path: np.ndarray, steps: int) -> pd.DataFrame:
    """The step-counts row (n1..nK, m2..mK) of `step_counts_sql`, from levels and paths."""
    row: dict[str, object] = {f"n{i}": int((level >= i).sum()) for i in range(1, steps + 1)}
    for i in range(2, steps + 1):
        reached = level >= i
        row[f"m{i}"] = quantile_median((path[reached, i - 1] - path[reached, i - 2]) / 1_000_000)
    return pd.DataFrame([row])


@contextmanager
def registered_paths(wh: Warehouse, spec: FunnelSpec) -> Iterator[str]:
    """The best paths of entities past step 1 as a relation `best` (entity: its hash, level, t1..tK) of
    `levels_sql`, registered on this thread's cursor for the duration. Only when `runs(wh, spec)`."""
    import pyarrow as pa

    hashes, level, path = entity_paths(wh, spec)
    past = level >= 2
    columns = {"entity": pa.array(hashes[past]), "level": pa.array(level[past].astype(np.int32))}
    for i in range(len(spec.steps)):
        times = path[past, i]
        columns[f"t{i + 1}"] = pa.array(times, pa.int64(), mask=times == NULL_US).cast(pa.timestamp("us"))
    with wh.registered("funnel_best_paths", pa.table(columns)) as name:
        yield name


def step_counts(wh: Warehouse, spec: FunnelSpec, group_by: tuple[str, ...] = ()) -> pd.DataFrame:
    """What `step_counts_sql(spec, map, group_by)` returns, computed by the engine."""
    from tools.funnel import step_counts_sql

    if not runs(wh, spec):
        return wh.query(step_counts_sql(spec, wh.event_map, group_by)).df
    if not group_by and not spec.where and not spec.exclusions:
        _, level, path = entity_paths(wh, spec)
        return counts_row(level, path, len(spec.steps))
    with registered_paths(wh, spec) as best:
        return wh.query(step_counts_sql(spec, wh.event_map, group_by, best=best)).df
