"""Segment tests shared by the detectors (ANALYTICS.md, Drop-off drill-down).

A segment is one dimension = value, or a pair of them. Each is compared with the rest by
a two-proportion z-test; the whole family is corrected with Benjamini-Hochberg; a finding
needs significance, a relative gap of at least 10% and enough support (every expected count of the
comparison at least 5, `tools.stats.testable`). Then: segments with
the same members as a simpler one are dropped, a child that accounts for >= 80% of a
significant parent's lost users replaces the parent, and a child that is no worse than the
rest of its significant parent is dropped (it only repeats the parent). Pairs, being many,
must clear a stricter level (`pair_q`); a finding must lose at least `min_lost` units.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations
from typing import Literal

import numpy as np
import pandas as pd

from tools.stats import MIN_EXPECTED, bh, testable, two_proportion_p

EXPLAINS_SHARE = 0.8


@dataclass(frozen=True)
class SegmentRules:
    """Thresholds of a segment finding."""

    min_expected: float = MIN_EXPECTED
    q: float = 0.05
    min_relative_gap: float = 0.10
    pair_q: float = 0.01
    min_lost: float = 10.0


def grouping_sets(dims: tuple[str, ...], pairs: bool = True, always: tuple[str, ...] = ()) -> str:
    """`GROUPING SETS ((), (a), (b), (a, b), ...)` over `dims`, each set also grouped by `always`."""
    sets = [()] + [(d,) for d in dims]
    if pairs:
        sets += list(combinations(dims, 2))
    return "GROUPING SETS (" + ", ".join("(" + ", ".join((*always, *s)) + ")" for s in sets) + ")"


def rollup_sql(source: str, dims: tuple[str, ...], counts: dict[str, str], pairs: bool = True,
               always: tuple[str, ...] = ()) -> str:
    """Counts per segment over `source`: first one GROUP BY on every dimension (few distinct
    combinations), then grouping sets summing those partial counts (cheap).

    `counts` maps output names to count expressions over the rows of `source`
    (e.g. {"n1": "count(*) FILTER (WHERE level >= 1)"}).
    """
    keys = [*always, *dims]
    partial = ", ".join(f"{expr} AS {name}" for name, expr in counts.items())
    total = ", ".join(f"sum({name})::BIGINT AS {name}" for name in counts)
    outer = ", ".join([*always, *dims, *([grouping_flags(dims)] if dims else []), total])
    return (f"WITH base AS (SELECT {', '.join([*keys, partial])} FROM {source} GROUP BY ALL)\n"
            f"SELECT {outer} FROM base GROUP BY {grouping_sets(dims, pairs, always)}")


def grouping_flags(dims: tuple[str, ...]) -> str:
    """Select-list items telling which dimensions a grouping-set row is grouped by."""
    return ", ".join(f"GROUPING({d}) = 0 AS g_{d}" for d in dims)


def attach_segments(df: pd.DataFrame, dims: tuple[str, ...]) -> pd.DataFrame:
    """Add `segment` (dict), `depth` and `seg_key`; drop rows grouped on a NULL value."""
    segs, keep = [], []
    for row in df[[*dims, *(f"g_{d}" for d in dims)]].itertuples(index=False):
        values, flags = row[: len(dims)], row[len(dims):]
        seg = {d: str(v) for d, v, g in zip(dims, values, flags) if g}
        ok = all(not pd.isna(v) for v, g in zip(values, flags) if g)
        segs.append(seg)
        keep.append(ok)
    out = df.assign(segment=segs, depth=[len(s) for s in segs], seg_key=[segment_key(s, dims) for s in segs])
    return out[np.array(keep, dtype=bool)].reset_index(drop=True)


def segment_key(segment: dict[str, str], dims: tuple[str, ...]) -> str:
    """A stable order of segments, by dimension (the order of `dims`, the event map's), then value.

    Engines return grouping-set rows in no fixed order; this decides between equal segments
    (`platform=ios` and `os=ios` can hold the same users) the same way on every engine.
    """
    return "|".join(f"{dims.index(d) if d in dims else len(dims):02d}{d}={v}" for d, v in segment.items())


def compare(df: pd.DataFrame, worse: Literal["lower", "higher"] = "lower") -> pd.DataFrame:
    """Add rates, p-value, relative gap and `lost` from columns n, x, n_rest, x_rest.

    `lost` counts entities the segment loses versus the rest: n * (p_rest - p) when lower is
    worse, n * (p - p_rest) when higher is worse.
    """
    out = df.copy()
    with np.errstate(divide="ignore", invalid="ignore"):
        out["rate"] = out["x"] / out["n"]
        out["rate_rest"] = out["x_rest"] / out["n_rest"]
        out["sign"] = sign = 1 if worse == "lower" else -1
        out["gap"] = sign * (out["rate_rest"] - out["rate"])
        out["relative_gap"] = (out["gap"] / out["rate_rest"]).replace([np.inf, -np.inf], np.nan).fillna(0.0)
    out["p_value"] = two_proportion_p(out["x"], out["n"], out["x_rest"], out["n_rest"])
    out["lost"] = out["n"] * out["gap"]
    return out.fillna({"rate": 0.0, "rate_rest": 0.0, "gap": 0.0})


def select(df: pd.DataFrame, rules: SegmentRules, key: str, include_total: bool = False) -> pd.DataFrame:
    """Significant, large-enough segment rows, with redundant parents and children removed.

    `key` names the column that makes a family member distinct besides the segment (a step,
    a cohort, ...). Expects the columns of `compare` plus `segment`, `depth` and `seg_key`. With
    `include_total` the everyone row of each key is tested too (a whole cohort can dip) and
    is the parent of the single segments.
    """
    supported = testable(df["x"], df["n"], df["x_rest"], df["n_rest"], rules.min_expected)
    tested = df[((df["depth"] > 0) | include_total) & supported].copy()
    if tested.empty:
        return tested.assign(q_value=[])
    tested["q_value"] = bh(tested["p_value"])
    q_limit = np.where(tested["depth"] > 1, rules.pair_q, rules.q)
    hits = tested[(tested["q_value"] < q_limit) & (tested["gap"] > 0) & (tested["lost"] >= rules.min_lost)
                  & (tested["relative_gap"] >= rules.min_relative_gap)]
    hits = hits.sort_values(["depth", "lost", "seg_key"], ascending=[True, False, True], kind="stable")
    hits = hits.drop_duplicates(subset=[key, "n", "x"], keep="first")
    kept = _explain(hits, df, rules, key, include_total)
    return kept.sort_values(["lost", "seg_key"], ascending=[False, True], kind="stable").reset_index(drop=True)


def _explain(hits: pd.DataFrame, df: pd.DataFrame, rules: SegmentRules, key: str,
             include_total: bool) -> pd.DataFrame:
    """Keep a pair only if it is worse than the rest of each parent (and of any flagged wider pair,
    `platform=web, app_version=5.6.0` for `os=windows, app_version=5.6.0`); let children replace parents.

    A single segment A is explained by another flagged single B when their overlap is a strict
    part of A yet accounts for >= 80% of A's lost units (`platform=web` by `browser=safari`).
    """
    # every row by (key, segment) as plain dicts of the counts a parent is read for: Series per row,
    # or dicts of every column, cost more than the whole test
    rows = {(k, frozenset(seg.items())): {"n": n, "x": x, "lost": lost, "_index": i}
            for i, k, seg, n, x, lost in zip(df.index, df[key], df["segment"], df["n"], df["x"], df["lost"])}
    within = _subset_items(df, key)
    drop: set[int] = set()
    for idx, child in hits[hits["depth"] > (0 if include_total else 1)].iterrows():
        items = list(child["segment"].items())
        parents = [rows.get((child[key], frozenset(items[:i] + items[i + 1:]))) for i in range(len(items))]
        if any(p is None or not _worse_within(child, p, rules) for p in parents):
            drop.add(idx)
            continue
        wider = [rows.get((child[key], frozenset([*items[:i], big, *items[i + 1:]])))
                 for i, item in enumerate(items) for big in within.get(item, ())]
        if any(w is not None and w["_index"] in hits.index and not _worse_within(child, w, rules) for w in wider):
            drop.add(idx)
            continue
        for pidx, parent in hits[(hits["depth"] == child["depth"] - 1) & (hits[key] == child[key])].iterrows():
            if _contains(child["segment"], parent["segment"]) and child["lost"] >= EXPLAINS_SHARE * parent["lost"]:
                drop.add(pidx)
    flagged = hits[hits["depth"] == 1].sort_values("lost")
    for aidx, a in flagged.iterrows():
        for bidx, b in flagged.iterrows():
            if aidx == bidx or bidx in drop or a[key] != b[key]:
                continue
            overlap = rows.get((a[key], frozenset([_item(a), _item(b)])))
            if overlap is not None and overlap["n"] < a["n"] and overlap["lost"] >= EXPLAINS_SHARE * a["lost"]:
                drop.add(aidx)
                break
    return hits.drop(index=list(drop))


def _subset_items(df: pd.DataFrame, key: str) -> dict[tuple, set[tuple]]:
    """item -> the items of other dimensions containing it (`os=windows` -> {`platform=web`}).

    Read off the pair rows: a pair with exactly the counts of one of its singles means that
    single lies inside the other item.
    """
    def rows(depth: int) -> zip:
        part = df[df["depth"] == depth]
        return zip(part[key], part["segment"], part["n"], part["x"])

    singles = {(k, next(iter(seg.items()))): (n, x) for k, seg, n, x in rows(1)}
    out: dict[tuple, set[tuple]] = {}
    for k, seg, n, x in rows(2):
        a, b = seg.items()
        for small, big in ((a, b), (b, a)):
            if n > 0 and singles.get((k, small)) == (n, x) and singles.get((k, big)) != (n, x):
                out.setdefault(small, set()).add(big)
    return out


def _item(row: pd.Series | dict) -> tuple[str, str]:
    return next(iter(row["segment"].items()))


def _contains(child: dict, parent: dict) -> bool:
    return all(child.get(k) == v for k, v in parent.items())


def _worse_within(child: pd.Series, parent: dict, rules: SegmentRules) -> bool:
    """Is the child significantly and materially worse than the rest of its parent?"""
    n_rest, x_rest = parent["n"] - child["n"], parent["x"] - child["x"]
    if not testable(child["x"], child["n"], x_rest, n_rest, rules.min_expected):
        return False  # the child is nearly all of its parent: the parent says it
    rest = x_rest / n_rest
    gap = child["sign"] * (rest - child["rate"])
    p = float(two_proportion_p(child["x"], child["n"], x_rest, n_rest))
    return rest > 0 and gap / rest >= rules.min_relative_gap and p < rules.pair_q
