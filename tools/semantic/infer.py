"""Infer an event map from the data: known vocabularies first, then the order events follow each other.

* Funnel: the e-commerce stages found under any known vocabulary (view -> cart add -> checkout
  -> shipping -> payment -> order), when at least two are present; otherwise a funnel proposed
  from event order (per user, events that usually come later and reach fewer users follow).
* Roles: order, cart add, checkout, search, search click, error, signup and exposure events by
  name; their fields (revenue, query, results count, error code, experiment, variant) among the
  columns and JSON properties that those events carry; load times among all step events' fields.
* Dimensions: every low-cardinality text or boolean column of events and users, and every
  low-cardinality JSON property present on a fair share of events.
Each inferred entry gets a note saying how it was found, which `insight map` shows.
"""

from __future__ import annotations

from typing import Protocol

import pandas as pd

from tools.semantic.eventmap import RESERVED, EventMap, safe_dimension_name, sql_keywords
from tools.semantic.fields import parse_field, quote
from tools.semantic.plan import DimensionRule, EventRule, TrackingPlan
from tools.semantic.vocabularies import (
    FIELDS,
    PLATFORM_NAMES,
    RELEASE_NAMES,
    RELEASE_WORDS,
    ROLES,
    STAGES,
    is_noise,
    preference,
    role_of,
    snake,
    stage_of,
)
from tools.sqltext import lit

CORE = ("event_id", "ts", "user_id", "session_id", "event", "properties")
MAX_VALUES = 250          # a dimension has at most this many distinct values
MAX_NUMBER_VALUES = 12    # ...and a field of numbers at most this many (more is a measure: prices, amounts)
MIN_PRESENT = 0.01        # ...and is filled on at least this share of rows (of the events carrying it)
MAX_TEXT_LENGTH = 60      # longer average values are free text, not a segment
SAMPLE = 200_000          # rows sampled to judge columns and JSON properties
SEQUENCE_USERS = 20_000   # users sampled to propose a funnel from event order
MIN_STEP_USERS = 0.005    # a guessed step is reached by at least this share of users
PRECEDES = 0.6            # ...and usually happens after the step before it
MAX_CANDIDATES = 25
MIN_PARTITION_USERS = 30  # two fields splitting fewer users alike may coincide by chance: both are kept
CONTEXT_NAMES = ("platform", "os", "browser", "country", "app_version", "device_type", "language", "region", "city")
MAX_VARYING = 0.10        # a dimension takes one value per session in at least 90% of sessions
TEXT_TYPES = ("VARCHAR", "BOOLEAN")


class Source(Protocol):
    """What inference reads: a read-only query runner and the tables' columns."""

    tables: dict[str, dict[str, str]]

    def query(self, sql: str, params=None, *, row_cap: int | None = None): ...


def infer_map(source: Source) -> EventMap:
    """The event map inferred from the data of `source` (a warehouse, or a connection adapter)."""
    notes: dict[str, str] = {}
    events = source.query("SELECT event, count(*) AS n, count(DISTINCT user_id) AS users FROM events "
                          "WHERE event IS NOT NULL GROUP BY 1 ORDER BY 2 DESC").df
    counts = dict(zip(events["event"], events["n"].astype(int)))
    funnels, default = _funnel(source, events, notes)
    roles = _roles(counts, notes)
    steps = funnels.get(default, []) if default else []
    for role in ("cart_add", "checkout", "order"):  # a funnel step of that stage, when no name said the role
        step = next((s for s in steps if stage_of(s) == role), None)
        if role not in roles and step:
            roles[role] = {"event": step}
    _role_fields(source, roles, steps, notes)
    dimensions = _dimensions(source, roles, notes)
    release = _named(dimensions, RELEASE_NAMES, RELEASE_WORDS)
    if release:
        platform = _named(dimensions, PLATFORM_NAMES, ("platform",))
        roles["release"] = {"version": release, **({"platform": platform} if platform else {})}
        notes["roles.release"] = f"dimension {release!r} versions releases (by its name)"
    return EventMap.model_validate({"funnels": funnels, "default_funnel": default, "roles": roles,
                                    "dimensions": dimensions, "notes": notes})


def _named(dimensions: dict[str, str], names: tuple[str, ...], words: tuple[str, ...]) -> str | None:
    """The dimension with one of the usual `names`, else one whose name has one of the `words`."""
    by_name = {snake(d): d for d in dimensions}
    return next((by_name[n] for n in names if n in by_name), None) or next(
        (d for d in dimensions if set(snake(d).split("_")) & set(words)), None)


# -- funnel --------------------------------------------------------------------------------------


def _funnel(source: Source, events: pd.DataFrame, notes: dict[str, str]) -> tuple[dict[str, list[str]], str | None]:
    """The e-commerce funnel by name (per stage the most typical name, then the most frequent), else one guessed
    from event order."""
    counts = dict(zip(events["event"], events["n"].astype(int)))
    by_stage = {stage: best for stage, patterns in STAGES.items()
                if (best := _best(counts, patterns, lambda n, s=stage: stage_of(n) == s and role_of(n) is None))}
    steps = [by_stage[s] for s in STAGES if s in by_stage]
    if len(steps) >= 2:
        notes["funnels.purchase"] = "recognized e-commerce events: " + ", ".join(
            f"{by_stage[s]!r} ({s.replace('_', ' ')})" for s in STAGES if s in by_stage)
        return {"purchase": steps}, "purchase"
    guessed = _funnel_from_order(source, events)
    if len(guessed) >= 2:
        notes["funnels.main"] = ("guessed from the order in which users first do these events (check it: "
                                 "`insight map --write FILE`, edit, then --map FILE)")
        return {"main": guessed}, "main"
    notes["funnels"] = "no funnel recognized: name one in the map to enable funnel analyses"
    return {}, None


def _funnel_from_order(source: Source, events: pd.DataFrame) -> list[str]:
    """A chain of events that users reach in order, each by fewer users than the one before (a funnel narrows;
    an event that goes with every step, such as an email opened, reaches as many and is no step)."""
    total_users = float(source.query("SELECT count(DISTINCT user_id) AS n FROM events").df["n"].iloc[0] or 0)
    candidates = [e for e, u in zip(events["event"], events["users"])
                  if not is_noise(e) and role_of(e) not in {"error", "exposure", "search", "search_click"}
                  and u >= MIN_STEP_USERS * total_users][:MAX_CANDIDATES]
    if len(candidates) < 2:
        return []
    firsts = source.query(
        f"SELECT user_id, event, min(ts) AS t FROM events WHERE event IN ({', '.join(lit(c) for c in candidates)}) "
        f"AND hash(user_id) % {max(int(total_users // SEQUENCE_USERS), 1)} = 0 GROUP BY 1, 2").df
    if firsts.empty:
        return []
    wide = firsts.pivot(index="user_id", columns="event", values="t")
    start = wide.min(axis=1)
    offset = wide.sub(start, axis=0)
    users = wide.notna().sum()
    order = sorted(wide.columns, key=lambda e: (offset[e].median(), -users[e], e))
    chain = [order[0]]
    for e in order[1:]:
        last = chain[-1]
        both = wide[last].notna() & wide[e].notna()
        if users[e] < users[last] and both.sum() and (wide.loc[both, last] <= wide.loc[both, e]).mean() >= PRECEDES:
            chain.append(e)
    return chain


# -- roles ---------------------------------------------------------------------------------------


def _best(counts: dict[str, int], patterns: tuple[str, ...], allowed) -> str | None:
    """The event name matching `patterns` best: the most typical name, then the most frequent."""
    matches = [n for n in counts if preference(n, patterns) < 999 and allowed(n)]
    return min(matches, key=lambda n: (preference(n, patterns), -counts[n], n)) if matches else None


def _roles(counts: dict[str, int], notes: dict[str, str]) -> dict[str, dict]:
    """Role events by name (an order, cart add or checkout event is never also a non-funnel role)."""
    roles: dict[str, dict] = {}
    for role in ("order", "cart_add", "checkout"):
        if best := _best(counts, STAGES[role], lambda n, r=role: stage_of(n) == r and role_of(n) is None):
            roles[role] = {"event": best}
    for role, patterns in ROLES.items():
        if best := _best(counts, patterns, lambda n, r=role: role_of(n) == r):
            roles[role] = {"event": best}
    for role, value in roles.items():
        notes[f"roles.{role}"] = f"recognized {value['event']!r}"
    return roles


def _keys(source: Source, event: str | None) -> dict[str, str]:
    """Fields an event carries: non-empty columns and JSON property keys -> field reference."""
    where = f"WHERE event = {lit(event)}" if event else ""
    columns = [c for c in source.tables.get("events", {}) if c not in CORE]
    out: dict[str, str] = {}
    if columns:
        present = source.query(f"SELECT {', '.join(f'count({quote(c)}) AS {quote(c)}' for c in columns)}, "
                               f"count(*) AS __n FROM (SELECT * FROM events {where} LIMIT {SAMPLE})").df.iloc[0]
        out = {c: c for c in columns if present["__n"] and present[c] / present["__n"] >= 0.5}
    if "properties" in source.tables.get("events", {}):
        keys = source.query(f"SELECT k, count(*) AS n FROM (SELECT unnest(json_keys(properties)) AS k FROM "
                            f"(SELECT properties FROM events {where} LIMIT {SAMPLE}) WHERE properties IS NOT NULL) "
                            "GROUP BY 1 ORDER BY 2 DESC").df
        for key in keys["k"]:
            if "." not in key:
                out.setdefault(snake(key), f"properties.{key}")
    return out


def _role_fields(source: Source, roles: dict[str, dict], steps: list[str], notes: dict[str, str]) -> None:
    """Fill each role's fields from the fields its event carries, by their usual names."""
    for slot, candidates in FIELDS.items():
        role, key = slot.split(".")
        if role == "page_load":
            fields = {k: v for s in steps for k, v in _keys(source, s).items()} if steps else {}
        elif role in roles:
            fields = _keys(source, roles[role]["event"])
        else:
            continue
        found = next((fields[snake(c)] for c in candidates if snake(c) in fields), None)
        if found is None:
            continue
        roles.setdefault(role, {})[key] = found
        notes[f"roles.{slot}"] = f"field {found!r} (by its name)"
    if "exposure" in roles and not {"experiment", "variant"} <= roles["exposure"].keys():
        notes["roles.exposure"] = f"{roles['exposure']['event']!r} has no experiment and variant fields: not used"
        del roles["exposure"]


# -- dimensions ----------------------------------------------------------------------------------


def _dimensions(source: Source, roles: dict[str, dict], notes: dict[str, str]) -> dict[str, str]:
    """Segment dimensions: text or boolean fields of users, and of events where they hold one value per
    session (context such as platform or country, not per-event attributes such as page or product),
    with few distinct values; JSON properties of events likewise."""
    used = {ref for r in roles.values() for ref in r.values()}
    events = {c: c for c, t in source.tables.get("events", {}).items()
              if t in TEXT_TYPES and c not in CORE and c not in used}
    if "properties" in source.tables.get("events", {}):
        keys = source.query(f"SELECT DISTINCT unnest(json_keys(properties)) AS k FROM (SELECT properties FROM events"
                            f" WHERE properties IS NOT NULL LIMIT {SAMPLE})").df["k"]
        events |= {f"properties.{k}": f"properties.{k}" for k in sorted(keys)
                   if "." not in k and k.strip() and f"properties.{k}" not in used}
    users = {f"users.{c}": c for c, t in source.tables.get("users", {}).items()
             if t in TEXT_TYPES and c not in CORE and c != "signed_up_at" and c not in events}
    found: dict[str, str] = {}
    for table, fields in (("events", events), ("users", users)):
        if not fields:
            continue
        exprs = {ref: parse_field(ref if table == "events" else f"users.{col}").sql() for ref, col in fields.items()}
        stats = _field_stats(source, table, exprs)
        kept = [ref for ref in fields if _is_dimension(fields[ref], stats[ref])
                and (table == "users" or stats[ref]["varies"] <= MAX_VARYING)]
        for ref in _distinct_partitions(source, table, kept, exprs):
            found[_name(fields[ref].removeprefix("properties."), found)] = ref
    if found:
        notes["dimensions"] = (f"discovered {len(found)} fields with at most {MAX_VALUES} values, one per session: "
                               + ", ".join(found))
    return found


def _distinct_partitions(source: Source, table: str, refs: list[str], exprs: dict[str, str]) -> list[str]:
    """`refs` without those splitting the rows exactly as another does (a country code beside the country's
    name): one-to-one values are one dimension, kept under the usual context name (os over device_type).
    Judged only over enough users: on a handful, any two fields of a user's split them alike."""
    if len(refs) < 2:
        return refs
    def rank(ref: str) -> int:  # the usual context names first, in their order
        name = snake(ref.split(".")[-1])
        return CONTEXT_NAMES.index(name) if name in CONTEXT_NAMES else len(CONTEXT_NAMES)

    refs = sorted(refs, key=rank)
    pairs = [(i, j) for i in range(len(refs)) for j in range(i + 1, len(refs))]
    cols = ", ".join(["count(DISTINCT user_id) AS users",
                      *(f"count(DISTINCT {exprs[r]}) AS d{i}" for i, r in enumerate(refs)),
                      *(f"count(DISTINCT ({exprs[refs[i]]}, {exprs[refs[j]]})) AS p{i}_{j}" for i, j in pairs)])
    row = source.query(f"SELECT {cols} FROM (SELECT * FROM {table} LIMIT {SAMPLE})").df.iloc[0]
    same = {j for i, j in pairs if row[f"p{i}_{j}"] == row[f"d{i}"] == row[f"d{j}"]}
    if row["users"] < MIN_PARTITION_USERS:
        same = set()
    kept = {r for k, r in enumerate(refs) if k not in same}
    return [r for r in exprs if r in kept]


def _field_stats(source: Source, table: str, exprs: dict[str, str]) -> dict[str, dict]:
    """Per field (on a sample): rows, filled rows, distinct values, mean length, and for events the share of
    multi-event sessions in which it takes more than one value."""
    items = list(exprs.items())
    cols = ", ".join(f"count({e}) AS n{i}, approx_count_distinct({e}) AS d{i}, "
                     f"avg(length(CAST({e} AS VARCHAR))) AS l{i}, count(TRY_CAST({e} AS DOUBLE)) AS x{i}"
                     for i, (_, e) in enumerate(items))
    row = source.query(f"SELECT count(*) AS rows, {cols} FROM (SELECT * FROM {table} LIMIT {SAMPLE})").df.iloc[0]
    out = {ref: {"rows": row["rows"], "present": row[f"n{i}"], "distinct": row[f"d{i}"], "length": row[f"l{i}"],
                 "numbers": row[f"x{i}"], "varies": 0.0} for i, (ref, _) in enumerate(items)}
    if table == "events" and "session_id" in source.tables["events"]:
        sessions = float(source.query("SELECT count(DISTINCT session_id) AS n FROM (SELECT session_id FROM events "
                                      f"LIMIT {SAMPLE})").df["n"].iloc[0] or 1)
        every = max(int(sessions // 5000), 1)
        per = ", ".join(f"count(DISTINCT {e}) AS c{i}" for i, (_, e) in enumerate(items))
        share = ", ".join(f"avg((c{i} > 1)::INT) AS v{i}" for i in range(len(items)))
        varies = source.query(f"SELECT {share} FROM (SELECT session_id, {per} FROM events WHERE session_id IS NOT NULL"
                              f" AND hash(session_id) % {every} = 0 GROUP BY 1 HAVING count(*) > 1)").df.iloc[0]
        for i, (ref, _) in enumerate(items):
            out[ref]["varies"] = float(varies[f"v{i}"]) if not pd.isna(varies[f"v{i}"]) else 0.0
    return out


def _is_dimension(column: str, st: dict) -> bool:
    name = snake(column)
    looks_like_id = name in {"id", "uuid", "url", "email", "ip", "library", "lib", "sdk"} or name.endswith(
        ("_id", "_uuid", "_url", "_ip", "_email", "_path", "_referrer", "_title", "_hash"))
    measure = st["numbers"] == st["present"] and st["distinct"] > MAX_NUMBER_VALUES  # prices, amounts, durations
    return (not looks_like_id and not measure and st["rows"] > 0 and st["present"] >= MIN_PRESENT * st["rows"]
            and 2 <= st["distinct"] <= MAX_VALUES and (0 if pd.isna(st["length"]) else st["length"]) <= MAX_TEXT_LENGTH)


def _name(raw: str, taken: dict[str, str]) -> str:
    name = safe_dimension_name(snake(raw) or raw)
    while name in taken or name in RESERVED or name in sql_keywords():
        name = f"{name}_2"
    return name



def draft_plan(source: Source, max_values: int = 20) -> TrackingPlan:
    """A tracking plan to start from: every event seen, and for each dimension of few values those values."""
    emap = getattr(source, "event_map", None)
    events = source.query("SELECT DISTINCT event FROM events WHERE event IS NOT NULL ORDER BY 1").df["event"]
    dims: dict[str, DimensionRule] = {}
    for name in (emap.dims if emap is not None else ()):
        table = "events" if name in emap.event_dims else "users"
        expr = emap.dim_sql(name)
        values = source.query(f"SELECT DISTINCT CAST({expr} AS VARCHAR) AS v FROM {table} WHERE {expr} IS NOT NULL "
                              f"ORDER BY 1 LIMIT {max_values + 1}").df["v"]
        dims[name] = DimensionRule(allowed=list(values) if len(values) <= max_values else [])
    return TrackingPlan(dimensions=dims, events={e: EventRule() for e in events})
