"""Ordered funnels with a conversion window (ANALYTICS.md, Funnel).

Every step-1 event starts an attempt; each later step is the earliest matching event at or
after the previous one (ties on timestamp count, ordered by step index) and within `window`
of step 1. An entity's level is the furthest step of any attempt; its best path is the
latest-starting attempt that gets that far (the most window left, as ClickHouse's
`windowFunnel` keeps); its segment values come from its first step-1 event (first touch).
The SQL uses window functions and aggregates only, so it transpiles to other engines.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import pandas as pd

from tools.charts import funnel_chart
from tools.facts_store import frame
from tools.format import count, pct
from tools.funnel_engine import step_counts
from tools.period import Period
from tools.result import ToolResult, applied, facts, scope_words
from tools.semantic.eventmap import EventMap, MapError, SegmentValue, segment_values, value_match
from tools.sqltext import FIRST, first_of, lit, unpack_first
from tools.warehouse import Warehouse

NOT_SET = "(not set)"  # the breakdown value of entities without one (app_version on web), as analytics tools say


class FunnelError(ValueError):
    """Bad funnel parameters (unknown step or dimension, too few steps)."""


@dataclass(frozen=True)
class FunnelSpec:
    """What to count: steps in order, window, entity, period, exclusions, segment filter."""

    steps: tuple[str, ...]
    window_days: float = 7.0
    entity: str = "users"
    period: Period = field(default_factory=lambda: Period("all", None, None))
    exclusions: tuple[str, ...] = ()
    where: Mapping[str, SegmentValue] = field(default_factory=dict)

    def validate(self, known_events: set[str], emap: EventMap) -> None:
        if len(self.steps) < 2:
            raise FunnelError("a funnel needs at least two steps (the event map defines none: `insight map`)"
                              if not self.steps else "a funnel needs at least two steps")
        if len(set(self.steps)) != len(self.steps):
            raise FunnelError("funnel steps must be distinct events")
        unknown = [s for s in (*self.steps, *self.exclusions) if s not in known_events]
        if unknown:
            raise FunnelError(f"unknown event {unknown[0]!r}; events in the data: {', '.join(sorted(known_events))}")
        if self.entity not in {"users", "sessions"}:
            raise FunnelError("entity must be 'users' or 'sessions'")
        if self.window_days <= 0:
            raise FunnelError("window must be positive")
        check_dimensions(emap, self.where)


def check_dimensions(emap: EventMap, dims: Iterable[str] | Mapping[str, SegmentValue]) -> None:
    """Refuse (FunnelError) a name that is not a segment dimension of the event map; of a segment (a
    mapping), also a value that is neither a string nor a non-empty list of strings."""
    try:
        emap.check_dimensions(dims)
    except MapError as exc:
        raise FunnelError(str(exc)) from None
    for name, value in dims.items() if isinstance(dims, Mapping) else ():
        values = segment_values(value)
        if not values or not all(isinstance(v, str) for v in values):
            raise FunnelError(f"segment {name}: give a value or a non-empty list of values")


def check_scope(emap: EventMap, segment: Mapping[str, SegmentValue] | None, *breakdowns: str | None) -> None:
    """Refuse (FunnelError, naming the slot) a segment or breakdown this map cannot apply, and a breakdown by a
    dimension the segment fixes to one value (a list of values may be broken down)."""
    segment = segment or {}
    check_dimensions(emap, segment)
    named = [b for b in breakdowns if b]
    check_dimensions(emap, named)
    for b in named:
        if b in segment and len(segment_values(segment[b])) == 1:
            raise FunnelError(f"breakdown {b}: the segment fixes {b} to one value; break down by another dimension")


def entity_scope(spec: FunnelSpec) -> tuple[str, str]:
    """The entity column and the condition on the events a funnel reads: step-1 events in the period, later
    steps until the window after its end."""
    entity = "user_id" if spec.entity == "users" else "session_id"
    p = spec.period
    late = Period(p.label, p.start, None if p.end is None else p.end + pd.Timedelta(days=spec.window_days))
    return entity, f"{entity} IS NOT NULL AND {late.where()} AND (event <> {lit(spec.steps[0])} OR {p.where()})"


def levels_sql(spec: FunnelSpec, emap: EventMap, dims: tuple[str, ...] = (), best: str | None = None) -> str:
    """One row per entity: entity, user_id, t1 (first step 1), dims, level, path_t1, t2..tK (best path).

    `best` names a relation of the best paths past step 1 (the entity's hash, level, t1..tK) computed
    elsewhere (the DuckDB engine, tools/funnel_engine.py); without it the SQL computes them as follows.

    One pass per step, from window functions and aggregates only (so it transpiles to other
    engines). Pass j sorts each entity's attempts that reached step j-1 (at their step j-1 time)
    with its step-j events, by time then step index. A step-j event right after an attempt is that
    attempt's earliest step j, and `lag` reads the attempt's times from that row; it counts if it
    is within the window of the attempt's step 1. An attempt followed first by a later attempt
    would share that attempt's path with less window left, so dropping it changes no level, and a
    step-j event after another one is no attempt's earliest. Every step-1 event is an attempt
    that reached step 1. The best path is the latest-starting attempt of the furthest level.
    """
    k = len(spec.steps)
    entity, scope = entity_scope(spec)
    window = f"INTERVAL {int(spec.window_days * 86400)} SECOND"
    ev_dims = {d: emap.dim_sql(d) for d in dict.fromkeys((*dims, *spec.where)) if d in emap.event_dims}
    user_dims = [d for d in dims if d in emap.user_dims]
    first = lit(spec.steps[0])
    # a user entity is its own user; a session's user is that of its first step-1 event
    user_id, first_cols = (("entity AS user_id", ev_dims) if spec.entity == "users"
                           else (f"{FIRST}.user_id AS user_id", {"user_id": "user_id", **ev_dims}))
    ctes = [
        f"firsts AS (SELECT entity, {user_id}, t1{unpack_first(ev_dims)} FROM (SELECT {entity} AS entity,"
        f" min(ts) AS t1{first_of(first_cols)} FROM events"
        f" WHERE event = {first} AND {scope} GROUP BY {entity}) g)",
        *([f"best AS (SELECT * FROM {best})"] if best else _path_ctes(spec, entity, scope, window)),
    ]
    # an entity without step 2 has level 1; its path starts at its first step 1
    times = "".join(f", b.t{i}" for i in range(2, k + 1))
    ctes.append(
        f"per_entity AS (SELECT f.*, coalesce(b.level, 1) AS level, coalesce(b.t1, f.t1) AS path_t1{times}"
        f" FROM firsts f LEFT JOIN best b ON b.entity = {'hash(f.entity)' if best else 'f.entity'})"
    )
    body = "per_entity"
    if spec.exclusions:
        excl = ", ".join(lit(e) for e in spec.exclusions)
        last = "coalesce(" + ", ".join(f"t{i}" for i in range(k, 1, -1)) + ", path_t1)"
        ctes.append(
            f"excluded AS (SELECT DISTINCT p.entity FROM per_entity p JOIN events x ON x.{entity} = p.entity"
            f" WHERE x.event IN ({excl}) AND x.ts >= p.path_t1 AND x.ts <= {last})"
        )
        ctes.append(
            "kept AS (SELECT p.* FROM per_entity p LEFT JOIN excluded e ON e.entity = p.entity"
            " WHERE e.entity IS NULL)"
        )
        body = "kept"
    # a segment filter applies to the entity's first-touch value (its first step-1 event), as a breakdown does
    where = " AND ".join(value_match(emap.dim_sql(d, 'u') if d in emap.user_dims else 'b.' + d, v, d)
                         for d, v in spec.where.items())
    cols = "".join(f", {emap.dim_sql(d, 'u')} AS {d}" for d in user_dims)
    join = " LEFT JOIN users u ON u.user_id = b.user_id" if user_dims or where else ""
    return "WITH " + ",\n".join(ctes) + f"\nSELECT b.*{cols} FROM {body} b{join}" + (f" WHERE {where}" if where else "")


def _path_ctes(spec: FunnelSpec, entity: str, scope: str, window: str) -> list[str]:
    """The CTEs a1..aK (attempts reaching each step) and `best` (one best path per entity past step 1)."""
    k = len(spec.steps)
    order = "PARTITION BY entity ORDER BY ts, k"
    index = " ".join(f"WHEN {lit(s)} THEN {i}" for i, s in enumerate(spec.steps[1:], 2))
    ctes = [
        # every step-1 event starts an attempt
        f"a1 AS (SELECT {entity} AS entity, ts AS t1 FROM events WHERE event = {lit(spec.steps[0])} AND {scope})",
        f"later AS (SELECT {entity} AS entity, ts, CASE event {index} END AS k FROM events"
        f" WHERE event IN ({', '.join(lit(s) for s in spec.steps[1:])}) AND {scope})",
    ]
    for j in range(2, k + 1):
        times = ", ".join(f"t{i}" for i in range(1, j))
        ctes.append(
            f"a{j} AS (SELECT entity, {times}, ts AS t{j} FROM (SELECT entity, ts, k,"
            f" {', '.join(f'lag(t{i}) OVER ({order}) AS t{i}' for i in range(1, j))}"
            f" FROM (SELECT entity, t{j - 1} AS ts, {j - 1} AS k, {times} FROM a{j - 1} UNION ALL"
            f" SELECT entity, ts, k, {', '.join(f'NULL AS t{i}' for i in range(1, j))} FROM later WHERE k = {j}) u) m"
            f" WHERE k = {j} AND ts <= t1 + {window})"
        )
    # the best path: the latest-starting attempt of the furthest level, ranked in exact integer
    # microseconds (a double of epoch seconds this large cannot tell starts a few microseconds apart)
    reached = " UNION ALL ".join(
        f"SELECT entity, {j} AS level, {', '.join(f't{i}' for i in range(1, j + 1))}"
        f"{''.join(f', NULL AS t{i}' for i in range(j + 1, k + 1))} FROM a{j}" for j in range(2, k + 1))
    rank = "level * 10000000000000000 + epoch_us(t1)"
    picks = ", ".join(f"arg_max(t{i}, {rank}) AS t{i}" for i in range(1, k + 1))
    return [*ctes, f"best AS (SELECT entity, max(level) AS level, {picks} FROM ({reached}) x GROUP BY entity)"]


def step_counts_sql(spec: FunnelSpec, emap: EventMap, group_by: tuple[str, ...] = (), best: str | None = None) -> str:
    """Entities reaching each step (n1..nK) and median seconds from the previous step (m2..mK); `best` as in
    `levels_sql`."""
    k = len(spec.steps)
    dims = tuple(dict.fromkeys(group_by))
    reach = ", ".join(f"count(*) FILTER (WHERE level >= {i}) AS n{i}" for i in range(1, k + 1))
    med = ", ".join(
        f"median((epoch_us({_step_time(i)}) - epoch_us({_step_time(i - 1)})) / 1000000)"
        f" FILTER (WHERE level >= {i}) AS m{i}"
        for i in range(2, k + 1)
    )
    select = "".join(f"{d}, " for d in dims)
    group = f" GROUP BY {', '.join(dims)} ORDER BY n1 DESC" if dims else ""
    return f"WITH levels AS ({levels_sql(spec, emap, dims, best)})\nSELECT {select}{reach}, {med} FROM levels{group}"


def _step_time(i: int) -> str:
    """The best path's time of step i, a column of the levels relation (step 1's is `path_t1`)."""
    return "path_t1" if i == 1 else f"t{i}"


def downstream_rates(reached: list[float], steps: tuple[str, ...]) -> dict[str, float]:
    """For each step, the share of entities reaching it that go on to reach the last step.

    `reached[i]` counts the entities reaching step i (a product of the later step conversions).
    """
    return {step: (reached[-1] / reached[i] if reached[i] else 0.0) for i, step in enumerate(steps)}


def funnel_table(row: pd.Series, steps: tuple[str, ...]) -> pd.DataFrame:
    """Per-step report from one row of step counts."""
    n = [int(row[f"n{i}"]) for i in range(1, len(steps) + 1)]
    out = []
    for i, step in enumerate(steps):
        prev = n[i - 1] if i else n[0]
        out.append({
            "step": step, "entities": n[i],
            "overall_conversion": n[i] / n[0] if n[0] else 0.0,
            "step_conversion": n[i] / prev if prev else 0.0,
            "dropoff": prev - n[i],
            "median_seconds_from_previous": None if i == 0 or pd.isna(row[f"m{i + 1}"]) else float(row[f"m{i + 1}"]),
        })
    return pd.DataFrame(out)


def known_events(wh: Warehouse) -> set[str]:
    """Event names present in the data (a fact of the data version)."""
    return set(frame(wh, "SELECT DISTINCT event FROM events")["event"].dropna())


def funnel(wh: Warehouse, spec: FunnelSpec, breakdown: str | None = None) -> ToolResult:
    """The funnel report, optionally broken down by one dimension."""
    emap = wh.event_map
    spec.validate(known_events(wh), emap)
    check_scope(emap, spec.where, breakdown)
    overall_sql = step_counts_sql(spec, emap)  # the evidence: the engine computes the same counts and medians
    table = funnel_table(step_counts(wh, spec).iloc[0], spec.steps)
    scope = applied(spec.period, spec.where, breakdown, entity=spec.entity, steps=list(spec.steps),
                    window_days=spec.window_days)
    entered, converted = int(table["entities"].iloc[0]), int(table["entities"].iloc[-1])
    data: dict = {"steps": list(spec.steps), "entity": spec.entity, "window_days": spec.window_days,
                  "applied": scope, "facts": facts(conversion=(converted / entered if entered else None, "rate"),
                                                   entered=(entered, "count"), converted=(converted, "count"))}
    summary, sql = funnel_words(table, spec, scope), [overall_sql]
    if breakdown:
        by_sql = step_counts_sql(spec, emap, (breakdown,))
        data["breakdown"] = breakdown_table(step_counts(wh, spec, (breakdown,)), breakdown, len(spec.steps))
        sql.append(by_sql)
        summary += f" Conversion by {breakdown}: " + "; ".join(
            f"{v} {pct(c)} ({count(x)} of {count(n)})"
            for v, n, x, c in data["breakdown"].itertuples(index=False)) + "."
    return ToolResult(title="Funnel", summary=summary, table=table, chart=funnel_chart(table), sql=sql, data=data)


def breakdown_table(by: pd.DataFrame, breakdown: str, k: int) -> pd.DataFrame:
    """Entered, converted and conversion per value of the breakdown (unset values as `(not set)`)."""
    by[breakdown] = by[breakdown].astype(object).where(by[breakdown].notna(), NOT_SET)
    by["conversion"] = (by[f"n{k}"] / by["n1"]).where(by["n1"] > 0, 0.0)
    return by[[breakdown, "n1", f"n{k}", "conversion"]].rename(columns={"n1": "entered", f"n{k}": "converted"})


def funnel_words(table: pd.DataFrame, spec: FunnelSpec, scope: dict) -> str:
    """The verdict (conversion of the entities entering, in scope), the biggest drop, then every step."""
    entity = spec.entity
    first, last = table.iloc[0], table.iloc[-1]
    text = (f"{pct(last['overall_conversion'])} of {entity} entering the funnel converted ({scope_words(scope)}): "
            f"{count(last['entities'])} of {count(first['entities'])} went from {spec.steps[0]} to {spec.steps[-1]} "
            f"within {spec.window_days:g} days.")
    if first["entities"]:
        worst = table.iloc[1:].sort_values("step_conversion").iloc[0]
        text += (f" Biggest drop: into {worst['step']}, {count(worst['dropoff'])} {entity} lost "
                 f"({pct(worst['step_conversion'])} of the previous step continued).")
    return text + " Steps: " + "; ".join(f"{r.step} {count(r.entities)} ({pct(r.step_conversion)} of previous)"
                                         for r in table.iloc[1:].itertuples()) + "."
