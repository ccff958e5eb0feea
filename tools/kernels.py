"""Compiled kernels (Numba; imported only where they run, compiled once and cached): grouping rows by a hash,
the per-entity funnel walk (the definition is in tools/funnel_engine.py) and a duplicate check of hashes."""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def walk_entities(starts: np.ndarray, order: np.ndarray, tk: np.ndarray, codes: int, steps: int, window_us: int,
                  level: np.ndarray, path: np.ndarray) -> None:  # pragma: no cover - compiled
    """Fill `level[g]` and `path[g]` for each entity g from its events `order[starts[g]:starts[g + 1]]` of `tk`
    (time * codes + step index k, 1-based; sorted by time, then k): attempts of step j-1 are merged with step-j
    events in time order (attempts first on ties); an event advances the attempt right before it when it is
    within `window_us` of its step 1."""
    n = order.size
    t = np.empty(n, np.int64)
    k = np.empty(n, np.int64)
    for i in range(n):
        t[i] = tk[order[i]] // codes
        k[i] = tk[order[i]] % codes
    longest = 0
    for g in range(starts.size - 1):
        longest = max(longest, starts[g + 1] - starts[g])
    cur = np.empty((longest, steps), np.int64)
    nxt = np.empty((longest, steps), np.int64)
    for g in range(starts.size - 1):
        lo, hi = starts[g], starts[g + 1]
        attempts = 0
        for i in range(lo, hi):
            if k[i] == 1:
                cur[attempts, 0] = t[i]
                attempts += 1
        if attempts == 0:
            continue
        level[g] = 1
        path[g, 0] = cur[0, 0]
        for j in range(2, steps + 1):
            a, pending, moved = 0, -1, 0
            for i in range(lo, hi):
                if k[i] != j:
                    continue
                while a < attempts and cur[a, j - 2] <= t[i]:
                    pending = a
                    a += 1
                if pending >= 0:
                    if t[i] <= cur[pending, 0] + window_us:
                        nxt[moved, :j - 1] = cur[pending, :j - 1]
                        nxt[moved, j - 1] = t[i]
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
def group_rows(keys: np.ndarray, order_key: np.ndarray) -> tuple[np.ndarray, np.ndarray]:  # pragma: no cover
    """Rows grouped by `keys` (first-seen order of groups) and sorted by `order_key` within each group: the row
    order, and where each group starts in it (one more entry: the row count). One hash-table pass, a counting
    sort, then a sort of each group (insertion sort for short groups)."""
    n = keys.size
    size = 1
    while size < 2 * n:
        size *= 2
    slots = np.full(size, -1, np.int64)
    slot_keys = np.empty(size, np.uint64)
    group = np.empty(n, np.int64)
    count = np.zeros(n + 1, np.int64)
    groups = 0
    for i in range(n):
        s = np.int64(keys[i] & np.uint64(size - 1))
        while slots[s] >= 0 and slot_keys[s] != keys[i]:
            s = (s + 1) & (size - 1)
        if slots[s] < 0:
            slots[s] = groups
            slot_keys[s] = keys[i]
            groups += 1
        group[i] = slots[s]
        count[slots[s] + 1] += 1
    starts = np.cumsum(count[:groups + 1])
    fill = starts[:groups].copy()
    order = np.empty(n, np.int64)
    for i in range(n):
        order[fill[group[i]]] = i
        fill[group[i]] += 1
    for g in range(groups):
        lo, hi = starts[g], starts[g + 1]
        if hi - lo > 32:
            part = order[lo:hi]
            order[lo:hi] = part[np.argsort(order_key[part], kind="mergesort")]
            continue
        for a in range(lo + 1, hi):
            row = order[a]
            b = a - 1
            while b >= lo and order_key[order[b]] > order_key[row]:
                order[b + 1] = order[b]
                b -= 1
            order[b + 1] = row
    return order, starts


@njit(cache=True, nogil=True)
def has_duplicates(keys: np.ndarray) -> bool:  # pragma: no cover - compiled
    """Whether any value occurs twice in `keys` (uint64 hashes): one pass over an open-addressing set."""
    size = 1
    while size < 2 * keys.size:
        size *= 2
    used = np.zeros(size, np.bool_)
    slot_keys = np.empty(size, np.uint64)
    for i in range(keys.size):
        s = np.int64(keys[i] & np.uint64(size - 1))
        while used[s]:
            if slot_keys[s] == keys[i]:
                return True
            s = (s + 1) & (size - 1)
        used[s] = True
        slot_keys[s] = keys[i]
    return False
