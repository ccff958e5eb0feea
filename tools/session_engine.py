"""The DuckDB path's session facts (tools/sessions.py): one compiled walk over each session's events.

DuckDB reads the period's step and error events with a session as (hash of the session, time and step
code, load, and the columns the first event gives: session_id, ts, user_id, event dimensions). A Numba
kernel groups them by session (tools/kernels.py), sorts each session's events by time then code and walks
them once: the furthest step reached in order (what the SQL's `s LIKE '%a%b%'` patterns give), the same
over the cart steps, the steps an error directly follows, the first load of each step and the first event.
The user dimensions are then joined in SQL. Same rows as `Facts.select_sql`, which stays the definition
and the evidence (the Spark path runs it whole; tests/test_session_engine.py holds both to the same rows).

Grouping by hash is exact only while the sessions' ids hash to distinct values: each group's ids are compared
(compiled, over Arrow's string buffers) and a collision, or ids that are not strings, fall back to the SQL.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from tools.sessions import ERROR_CODE

if TYPE_CHECKING:
    import pyarrow as pa

    from tools.sessions import Facts
    from tools.warehouse import Warehouse

CODES = 32  # step codes ride in the time's low bits: tk = epoch_us * 32 + code


def events_sql(facts: Facts) -> str:
    """The walk's input: one row per step or error event of a session in the period."""
    dims = "".join(f", {sql} AS {d}" for d, sql in facts.event_dims().items())
    return (f"SELECT hash(session_id) AS h, epoch_us(ts) * {CODES} + ord AS tk, {facts.load_sql()} AS load, "
            f"session_id, ts AS start_ts, user_id{dims} FROM ({facts.events_sql()})")


def grouped_exactly(ids: pa.Array | None, rows: np.ndarray, starts: np.ndarray) -> bool:
    """Whether each group of rows (by hash) holds one session id: compared byte by byte for string ids."""
    import pyarrow as pa

    from tools.kernels import frozen, groups_agree

    if ids is None:
        return True
    if not (pa.types.is_string(ids.type) or pa.types.is_large_string(ids.type)) or ids.offset:
        return False
    _, offsets, data = ids.buffers()
    offsets = np.frombuffer(offsets, np.int64 if pa.types.is_large_string(ids.type) else np.int32)[:len(ids) + 1]
    data = np.frombuffer(data, np.uint8) if data else np.zeros(0, np.uint8)
    # read-only whether Arrow's buffers are (a column read in one piece) or not (chunks combined): one compiled version
    return groups_agree(frozen(offsets), frozen(data), rows, starts)


def facts_table(wh: Warehouse, facts: Facts) -> pa.Table:
    """The rows of `facts.select_sql()`, computed by the session walk (by the SQL if two session ids share a
    hash)."""
    import pyarrow as pa

    from tools.kernels import group_sorted, loading, walk_sessions

    with loading():
        events = wh.arrow(events_sql(facts)).combine_chunks()
    tk, starts, _, rows = group_sorted(events.column("h").to_numpy(), events.column("tk").to_numpy(), True)
    if not grouped_exactly(events.column("session_id").chunk(0) if events.num_rows else None, rows, starts):
        return wh.arrow(facts.select_sql())
    groups, k = starts.size - 1, len(facts.steps)
    # one row per session, at its first event's place in the source (taking rows in order is several times
    # faster than at random)
    first = np.zeros(events.num_rows, np.bool_)
    first[rows[starts[:-1]]] = True
    position = np.cumsum(first)[rows[starts[:-1]]] - 1
    cart = np.array([facts.steps.index(s) for s in facts.emap.cart_steps or () if s in facts.steps], np.int64)
    level, cart_level = np.zeros(groups, np.int32), np.zeros(groups, np.int32)
    errors, loaded, loads = np.zeros((k, groups), np.bool_), np.zeros((k, groups), np.bool_), np.zeros((k, groups))
    load = events.column("load")
    values = np.require(load.to_numpy(zero_copy_only=False), requirements="W")  # one compiled version: writable
    walk_sessions(starts, tk, rows, position, CODES, ERROR_CODE, cart, values,
                  load.is_valid().to_numpy(zero_copy_only=False), level, cart_level, errors, loads, loaded)
    table = events.select(["session_id", "start_ts", "user_id", *facts.event_dims()]).filter(pa.array(first))
    del events, tk, rows, values  # every event's row: not held while DuckDB joins the sessions' users
    for name, column in (*((f"load_{i + 1}", pa.array(loads[i], mask=~loaded[i])) for i in range(k)),
                         ("level", pa.array(level)), ("cart_level", pa.array(cart_level)),
                         *((f"error_{i + 1}", pa.array(errors[i])) for i in range(k))):
        table = table.append_column(name, column)
    with wh.registered("walked_sessions", table) as walked:
        return wh.arrow(facts.columns_sql(walked, walked=True))
