"""The DuckDB path's search rows (tools/search.py: `searches_sql`), without the window over searches and clicks.

DuckDB reads the searches (the SQL's `s`). Their sessions are grouped by the hash of their id (each group's ids
compared byte by byte: a collision falls back to the SQL) and numbered; DuckDB joins those numbers back to the
events for each session's last event, last order and clicks. A compiled walk over each session's searches and
clicks, sorted by time (tools/kernels.py), finds per search the first click at or after it and the first search
at a later time. Same rows as `searches_sql`, which stays the definition and the evidence (the Spark path runs
it whole; tests/test_search_engine.py holds both to the same rows).

The SQL orders a session's searches at one instant by event_id: all but the last of them have a next search
at that instant (they are reformulated). Those ties are rare; the last is picked by comparing ids as DuckDB
orders them (NULL last); ids of another type than text or integer fall back to the SQL.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from tools.search import CLICK_S, REFORMULATE_S, searches_cte, searches_sql
from tools.sqltext import lit

if TYPE_CHECKING:
    import pyarrow as pa

    from tools.period import Period
    from tools.semantic.eventmap import EventMap, SegmentValue
    from tools.warehouse import Warehouse

NONE = np.iinfo(np.int64).min  # a time that does not exist
US = 1_000_000


def search_rows(wh: Warehouse, period: Period, emap: EventMap, segment: dict[str, SegmentValue] | None = None,
                breakdown: str | None = None) -> pa.Table:
    """The rows of `searches_sql(period, emap, segment, breakdown)`; by that SQL when two session ids share a
    hash, session ids are not text, or event ids are neither text nor integers."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from tools.kernels import frozen, group_sorted, loading
    from tools.session_engine import grouped_exactly

    with loading():
        s = wh.arrow(f"WITH {searches_cte(period, emap, segment, breakdown)} SELECT ts, epoch_us(ts) AS t, event_id,"
                     " user_id, session_id, hash(session_id) AS h, results_count, q, by_value FROM s").combine_chunks()
    if not s.num_rows or not (pa.types.is_string(s.column("event_id").type)
                              or pa.types.is_integer(s.column("event_id").type)):
        return wh.arrow(searches_sql(period, emap, segment, breakdown))
    ids = s.column("session_id").chunk(0)
    has = ids.is_valid().to_numpy(zero_copy_only=False)
    inside = np.flatnonzero(has)  # searches with a session
    t = s.column("t").to_numpy(zero_copy_only=False)
    _, starts, keys, rows = group_sorted(frozen(s.column("h").to_numpy()[inside]), frozen(t[inside] * 2), True)
    if not grouped_exactly(ids, inside[rows], starts):
        return wh.arrow(searches_sql(period, emap, segment, breakdown))
    g = np.full(s.num_rows, -1, np.int64)  # the session's number: its group
    g[inside[rows]] = np.repeat(np.arange(starts.size - 1), np.diff(starts))
    numbered = pa.table({"session_id": ids.take(pa.array(inside[rows[starts[:-1]]])),
                         "g": pa.array(np.arange(starts.size - 1))})
    click, order = emap.event_of("search_click"), emap.event_of("order")
    with wh.registered("search_sessions", numbered) as name:
        ends = wh.arrow(f"SELECT n.g, max(epoch_us(e.ts)) AS last, max(epoch_us(e.ts)) FILTER (WHERE e.event = "
                        f"{lit(order) if order else 'NULL'}) AS ordered FROM events e JOIN {name} n USING (session_id)"
                        " GROUP BY n.g")
        clicks = wh.arrow(f"SELECT n.g, epoch_us(e.ts) AS t FROM events e JOIN {name} n USING (session_id)"
                          f" WHERE e.event = {lit(click) if click else 'NULL'}")
    near_click, reformulated = _walk(keys, g, t, inside, clicks, s.column("event_id"))
    last, ordered = _per_session(ends, starts.size - 1)
    at = np.where(has, g, 0)  # rows without a session read session 0 (or the spare slot), masked by `has`
    results = s.column("results_count")
    with_results = pc.fill_null(pc.greater(results, 0), False).to_numpy(zero_copy_only=False)
    # `results_count > 0 AND <the rest>`: NULL where the count is NULL and the rest holds, as in SQL
    clicked = pa.array(with_results & near_click, mask=results.is_null().to_numpy(zero_copy_only=False) & near_click)
    out = s.select(["ts", "user_id", "session_id", "q", "by_value"])
    for column, values in (("zero", pc.fill_null(pc.equal(results, 0), False)),
                           ("clicked", clicked),
                           ("exited", pa.array(has & (t >= last[at]))),
                           ("reformulated", pa.array(reformulated)),
                           ("ordered", pa.array(has & (ordered[at] != NONE) & (ordered[at] >= t)))):
        out = out.append_column(column, values)
    return out


def _walk(keys: np.ndarray, g: np.ndarray, t: np.ndarray, inside: np.ndarray, clicks: pa.Table,
          event_ids: pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
    """Per search: whether a click at or after it comes within CLICK_S, and whether it is reformulated; each
    session's searches and clicks grouped (by the session's hash) and sorted by time, a click after a search at
    its instant."""
    from tools.kernels import frozen, group_sorted, walk_searches

    cg = clicks.column("g").to_numpy(zero_copy_only=False)
    both = np.concatenate([keys[g[inside]], keys[cg]])
    tk = np.concatenate([t[inside] * 2, clicks.column("t").to_numpy(zero_copy_only=False) * 2 + 1])
    tk, starts, _, rows = group_sorted(frozen(both), frozen(tk), True)
    near, again, tied = (np.zeros(tk.size, np.bool_) for _ in range(3))
    walk_searches(starts, tk, rows, CLICK_S * US, REFORMULATE_S * US, near, again, tied)
    near_click, reformulated = np.zeros(t.size, np.bool_), np.zeros(t.size, np.bool_)
    near_click[inside], reformulated[inside] = near[:inside.size], again[:inside.size]
    if tied.any():  # at one instant, every search but the last by event_id has its next search then
        ids = event_ids.to_pylist()
        for instant in _instants(inside[np.flatnonzero(tied[:inside.size])], g, t):
            last = max(instant, key=lambda r: (ids[r] is None, ids[r] if ids[r] is not None else 0))
            reformulated[instant[instant != last]] = True
    return near_click, reformulated


def _instants(rows: np.ndarray, g: np.ndarray, t: np.ndarray) -> list[np.ndarray]:
    """`rows` split by (session, time)."""
    rows = rows[np.lexsort((t[rows], g[rows]))]
    cut = np.flatnonzero((np.diff(g[rows]) != 0) | (np.diff(t[rows]) != 0)) + 1
    return np.split(rows, cut)


def _per_session(ends: pa.Table, sessions: int) -> tuple[np.ndarray, np.ndarray]:
    """Each session's last event and last order time (NONE without one), indexed by session number; one slot
    at least, for searches without a session."""
    last, ordered = np.full(max(sessions, 1), NONE), np.full(max(sessions, 1), NONE)
    g = ends.column("g").to_numpy(zero_copy_only=False)
    last[g] = ends.column("last").to_numpy(zero_copy_only=False)
    ordered[g] = ends.column("ordered").fill_null(NONE).to_numpy(zero_copy_only=False)
    return last, ordered
