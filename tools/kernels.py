"""Compiled kernels (Numba; imported only where they run, compiled once and cached): grouping rows by a hash,
the per-entity funnel walk (the definition is in tools/funnel_engine.py), the per-session facts walk
(tools/session_engine.py) and a duplicate check of hashes."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def walk_entities(starts: np.ndarray, tk: np.ndarray, codes: int, steps: int, window_us: int,
                  level: np.ndarray, path: np.ndarray) -> None:  # pragma: no cover - compiled
    """Fill `level[g]` and `path[g]` for each entity g from its events `tk[starts[g]:starts[g + 1]]` (time * codes
    + step index k, 1-based; sorted by time, then k): attempts of step j-1 are merged with step-j events in time
    order (attempts first on ties); an event advances the attempt right before it when it is within `window_us`
    of its step 1."""
    longest = 0
    for g in range(starts.size - 1):
        longest = max(longest, starts[g + 1] - starts[g])
    cur = np.empty((longest, steps), np.int64)
    nxt = np.empty((longest, steps), np.int64)
    for g in range(starts.size - 1):
        lo, hi = starts[g], starts[g + 1]
        attempts = 0
        for i in range(lo, hi):
            if tk[i] % codes == 1:
                cur[attempts, 0] = tk[i] // codes
                attempts += 1
        if attempts == 0:
            continue
        level[g] = 1
        path[g, 0] = cur[0, 0]
        for j in range(2, steps + 1):
            a, pending, moved = 0, -1, 0
            for i in range(lo, hi):
                if tk[i] % codes != j:
                    continue
                t = tk[i] // codes
                while a < attempts and cur[a, j - 2] <= t:
                    pending = a
                    a += 1
                if pending >= 0:
                    if t <= cur[pending, 0] + window_us:
                        nxt[moved, :j - 1] = cur[pending, :j - 1]
                        nxt[moved, j - 1] = t
                        moved += 1
                    pending = -1
            if moved == 0:
                break
            cur, nxt = nxt, cur
            attempts = moved
            best = 0
            for a in range(1, moved):
                if cur[a, 0] >= cur[best, 0]:
                    best = a
            level[g] = j
            path[g, :j] = cur[best, :j]


@njit(cache=True, nogil=True)
def _buckets(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:  # pragma: no cover - compiled
    """Each key's bucket by its top bits (buckets of about 2,048 keys), where each bucket starts in bucket order
    (one more entry: the key count), and a power-of-two hash table size of at least twice the largest bucket."""
    n = keys.size
    bits = 0
    while bits < 16 and (n >> (bits + 11)) > 0:
        bits += 1
    bucket = np.empty(n, np.int32)
    count = np.zeros((1 << bits) + 1, np.int64)
    for i in range(n):
        bucket[i] = keys[i] >> np.uint64(63 - bits) >> np.uint64(1)
        count[bucket[i] + 1] += 1
    largest = 1
    for b in range(1 << bits):
        largest = max(largest, count[b + 1])
    size = 2
    while size < 2 * largest:
        size *= 2
    return bucket, np.cumsum(count), size


@njit(cache=True, nogil=True)
def group_sorted(keys: np.ndarray, values: np.ndarray, carry: bool = False
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:  # pragma: no cover - compiled
    """`values` grouped by `keys` (uint64 hashes) and sorted within each group: the values in that order, where
    each group starts in them (one more entry: the row count), each group's key and, with `carry`, the row each
    sorted value came from (else an empty array).

    Cache-friendly: rows are first partitioned by the keys' top bits into buckets of about 2,048 rows (a
    counting sort), then grouped within each bucket by a hash table small enough for the CPU cache, then each
    group's values are sorted in place (insertion sort for short groups)."""
    n = keys.size
    bucket, base, size = _buckets(keys)
    buckets, largest = base.size - 1, size // 2
    fill = base[:buckets].copy()
    part_keys = np.empty(n, np.uint64)
    part_values = np.empty(n, np.int64)
    part_rows = np.empty(n if carry else 0, np.int64)
    for i in range(n):
        b = bucket[i]
        part_keys[fill[b]] = keys[i]
        part_values[fill[b]] = values[i]
        if carry:
            part_rows[fill[b]] = i
        fill[b] += 1
    slot_owner = np.full(size, -1, np.int64)  # the bucket that last used the slot: no clearing between buckets
    slot_keys = np.empty(size, np.uint64)
    slot_group = np.empty(size, np.int64)
    local = np.empty(largest, np.int64)
    group_count = np.empty(largest + 1, np.int64)
    out = np.empty(n, np.int64)
    rows = np.empty(n if carry else 0, np.int64)
    starts = np.empty(n + 1, np.int64)
    group_keys = np.empty(n, np.uint64)
    groups = 0
    for b in range(buckets):
        lo, hi = base[b], base[b + 1]
        found = 0
        for i in range(lo, hi):
            s = np.int64(part_keys[i] & np.uint64(size - 1))
            while slot_owner[s] == b and slot_keys[s] != part_keys[i]:
                s = (s + 1) & (size - 1)
            if slot_owner[s] != b:
                slot_owner[s] = b
                slot_keys[s] = part_keys[i]
                slot_group[s] = found
                group_keys[groups + found] = part_keys[i]
                group_count[found + 1] = 0
                found += 1
            local[i - lo] = slot_group[s]
            group_count[local[i - lo] + 1] += 1
        group_count[0] = lo
        for g in range(found):
            group_count[g + 1] += group_count[g]
            starts[groups + g] = group_count[g]
        for i in range(lo, hi):
            g = local[i - lo]
            out[group_count[g]] = part_values[i]
            if carry:
                rows[group_count[g]] = part_rows[i]
            group_count[g] += 1
        for g in range(groups, groups + found):
            first = starts[g]
            last = starts[g + 1] if g + 1 < groups + found else hi
            if last - first > 32:
                by_value = np.argsort(out[first:last], kind="mergesort")
                out[first:last] = out[first:last][by_value]
                if carry:
                    rows[first:last] = rows[first:last][by_value]
                continue
            for a in range(first + 1, last):
                value = out[a]
                row = rows[a] if carry else 0
                c = a - 1
                while c >= first and out[c] > value:
                    out[c + 1] = out[c]
                    if carry:
                        rows[c + 1] = rows[c]
                    c -= 1
                out[c + 1] = value
                if carry:
                    rows[c + 1] = row
        groups += found
    starts[groups] = n
    return out, starts[:groups + 1].copy(), group_keys[:groups].copy(), rows


@njit(cache=True, nogil=True)
def walk_sessions(starts: np.ndarray, tk: np.ndarray, rows: np.ndarray, position: np.ndarray, codes: int,
                  error_code: int, cart: np.ndarray, load: np.ndarray, has_load: np.ndarray, level: np.ndarray,
                  cart_level: np.ndarray, errors: np.ndarray, loads: np.ndarray, loaded: np.ndarray
                  ) -> None:  # pragma: no cover - compiled
    """Per session g (its events `tk[starts[g]:starts[g + 1]]`: time * codes + step index 0..steps-1, or
    `error_code`, sorted; `rows` their source rows), written at `position[g]`: the furthest step reached in order
    (`level`), the same over the `cart` step indexes, whether an error directly follows a step-j event
    (`errors[j]`) and the load of the first step-j event that has one (`loads[j]`, `loaded[j]`; `load` and
    `has_load` by source row). Steps are the rows of `errors`."""
    steps = errors.shape[0]
    for g in range(starts.size - 1):
        at = position[g]
        reached, in_cart, previous = 0, 0, -1
        for p in range(starts[g], starts[g + 1]):
            code = tk[p] % codes
            if code == error_code:
                if 0 <= previous < steps:
                    errors[previous, at] = True
            else:
                if reached < steps and code == reached:
                    reached += 1
                if in_cart < cart.size and code == cart[in_cart]:
                    in_cart += 1
                if not loaded[code, at] and has_load[rows[p]]:
                    loads[code, at] = load[rows[p]]
                    loaded[code, at] = True
            previous = code
        level[at] = reached
        cart_level[at] = in_cart


@njit(cache=True, nogil=True)
def walk_searches(starts: np.ndarray, tk: np.ndarray, rows: np.ndarray, click_us: int, reformulate_us: int,
                  near_click: np.ndarray, reformulated: np.ndarray, tied: np.ndarray
                  ) -> None:  # pragma: no cover - compiled
    """Per session g (its searches and clicks `tk[starts[g]:starts[g + 1]]`: time * 2, plus 1 for a click, sorted;
    `rows` their source rows), for each search's row: whether the first click at or after it comes
    within `click_us` (`near_click`), whether the first search at a later time comes within `reformulate_us`
    (`reformulated`), and whether another search shares its time (`tied`)."""
    for g in range(starts.size - 1):
        has_click, click_t, has_now, now_t, has_later, later_t, previous = False, 0, False, 0, False, 0, -1
        for p in range(starts[g + 1] - 1, starts[g] - 1, -1):
            t = tk[p] >> 1
            if tk[p] & 1:
                has_click, click_t = True, t
                continue
            r = rows[p]
            if has_now and t != now_t:
                has_later, later_t = True, now_t
            elif has_now:
                tied[r] = True
                tied[previous] = True
            has_now, now_t, previous = True, t, r
            near_click[r] = has_click and click_t <= t + click_us
            reformulated[r] = has_later and later_t <= t + reformulate_us


@njit(cache=True, nogil=True)
def groups_agree(offsets: np.ndarray, data: np.ndarray, rows: np.ndarray, starts: np.ndarray
                 ) -> bool:  # pragma: no cover - compiled
    """Whether every row of each group (`rows[starts[g]:starts[g + 1]]`) holds the same string as the group's
    first row; strings are Arrow's (`offsets` into the bytes `data`)."""
    for g in range(starts.size - 1):
        head = rows[starts[g]]
        lo, size = offsets[head], offsets[head + 1] - offsets[head]
        for p in range(starts[g] + 1, starts[g + 1]):
            other = offsets[rows[p]]
            if offsets[rows[p] + 1] - other != size:
                return False
            for b in range(size):
                if data[other + b] != data[lo + b]:
                    return False
    return True


@njit(cache=True, nogil=True)
def has_duplicates(keys: np.ndarray) -> bool:  # pragma: no cover - compiled
    """Whether any value occurs twice in `keys` (uint64 hashes): partitioned by their top bits (as group_sorted),
    then one small open-addressing set per bucket."""
    bucket, base, size = _buckets(keys)
    fill = base[:-1].copy()
    part = np.empty(keys.size, np.uint64)
    for i in range(keys.size):
        part[fill[bucket[i]]] = keys[i]
        fill[bucket[i]] += 1
    slot_owner = np.full(size, -1, np.int64)
    slot_keys = np.empty(size, np.uint64)
    for b in range(base.size - 1):
        for i in range(base[b], base[b + 1]):
            s = np.int64(part[i] & np.uint64(size - 1))
            while slot_owner[s] == b:
                if slot_keys[s] == part[i]:
                    return True
                s = (s + 1) & (size - 1)
            slot_owner[s] = b
            slot_keys[s] = part[i]
    return False


_loaded = threading.Event()


def frozen(values: np.ndarray) -> np.ndarray:
    """A read-only view, the kind of array Arrow's columns give: `group_sorted` has one compiled version, for
    read-only inputs, and a writable array would compile (and load) a second."""
    view = values.view()
    view.flags.writeable = False
    return view


def load_all() -> None:
    """Call every kernel once on tiny inputs of the types the engines pass (Arrow's read-only columns, the
    kernels' own outputs), so that each compiled version is loaded from Numba's cache."""
    import pyarrow as pa

    keys, values = pa.array([1], pa.uint64()).to_numpy(), pa.array([33], pa.int64()).to_numpy()
    group_sorted(keys, values, False)
    tk, starts, _, rows = group_sorted(keys, values, True)
    one = np.zeros(1, np.int64)
    walk_sessions(starts, tk, rows, one, 32, 31, one, np.zeros(1), np.ones(1, np.bool_), np.zeros(1, np.int32),
                  np.zeros(1, np.int32), np.zeros((1, 1), np.bool_), np.zeros((1, 1)), np.zeros((1, 1), np.bool_))
    groups_agree(np.frombuffer(b"\0\0\0\0\1\0\0\0", np.int32), np.frombuffer(b"a", np.uint8), rows, starts)
    walk_entities(starts, tk, 32, 1, 1, np.zeros(1, np.int8), np.zeros((1, 1), np.int64))
    flags = np.zeros(1, np.bool_)
    walk_searches(starts, tk, rows, 1, 1, flags, flags, flags)
    _loaded.set()


@contextmanager
def loading() -> Iterator[None]:
    """The kernels loaded in a background thread during the block (the first time in a process): Numba's start-up
    costs about a second of one core in a new process, and overlaps the block's work (DuckDB reading the rows
    the kernels will get) instead of following it."""
    if _loaded.is_set():
        yield
        return
    thread = threading.Thread(target=load_all, name="kernels", daemon=True)
    thread.start()
    try:
        yield
    finally:
        thread.join()
