"""Tracking-plan checks: does the data keep the contract of data/tracking_plan.yaml?

Each problem becomes a `tracking_issue` finding, so it joins the scan and the digest.
"""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path
from typing import Literal

import pandas as pd
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from data.schema import EVENT_DIMENSIONS, TABLES
from tools.distinct_users import distinct_users
from tools.period import Period
from tools.result import Friction, ToolResult
from tools.sqltext import lit
from tools.warehouse import Warehouse

MAX_NULL_SHARE = 0.01
MIN_ROWS = 20
DROP_RATIO = 0.5
REQUIRED_ON = "platform"  # the events column a rule's `required_on` values name
# json_type() of each planned type; JSON has one number type, so a whole number is a valid DOUBLE.
JSON_TYPES = {"VARCHAR": ("VARCHAR",), "INTEGER": ("BIGINT", "UBIGINT"),
              "DOUBLE": ("DOUBLE", "BIGINT", "UBIGINT"), "BOOLEAN": ("BOOLEAN",)}
SqlType = Literal["VARCHAR", "INTEGER", "DOUBLE", "BOOLEAN"]


class PlanError(ValueError):
    """A tracking plan that cannot be read; the message names the file and the field."""


class DimensionRule(BaseModel):
    model_config = ConfigDict(extra="forbid")
    allowed: list[str] = Field(default_factory=list)
    required: bool = False
    required_on: list[str] = Field(default_factory=list, description="platforms where it must be present")


class EventRule(BaseModel):
    model_config = ConfigDict(extra="forbid")
    owner: str
    required: dict[str, SqlType] = Field(default_factory=dict)
    optional: dict[str, SqlType] = Field(default_factory=dict)


class TrackingPlan(BaseModel):
    model_config = ConfigDict(extra="forbid")
    version: int = 1
    dimensions: dict[str, DimensionRule]
    events: dict[str, EventRule]


def load_plan(path: str | Path | None = None) -> TrackingPlan:
    """The shipped plan, or the YAML file at `path`."""
    where = str(path or "data/tracking_plan.yaml")
    try:
        text = Path(path).read_text() if path else resources.files("data").joinpath("tracking_plan.yaml").read_text()
        return TrackingPlan.model_validate(yaml.safe_load(text))
    except FileNotFoundError:
        raise PlanError(f"tracking plan not found: {where}") from None
    except yaml.YAMLError as exc:
        raise PlanError(f"{where}: not valid YAML: {exc}") from None
    except ValidationError as exc:
        first = exc.errors()[0]
        raise PlanError(f"{where}: {'.'.join(map(str, first['loc']))}: {first['msg']}") from None


def normalize_name(name: str) -> str:
    """'Product Viewed', 'product_viewed' and 'productViewed' all become 'productviewed'."""
    return re.sub(r"[^a-z0-9]", "", name.lower())


def _issue(problem: str, metric: str, observed: float, baseline: float, rows: int, users: int, sql: str,
           period: Period, step: str | None = None, where: dict[str, str] | None = None) -> Friction:
    return Friction(kind="tracking_issue", title=problem, metric=metric, step=step, segment=where or {},
                    period=period.label, baseline=baseline, observed=observed, affected_users=users,
                    est_lost_conversions=0.0, evidence_sql=sql, detail={"problem": problem, "rows": rows})


def _event_names(wh: Warehouse, plan: TrackingPlan, period: Period) -> list[Friction]:
    sql = f"SELECT event, count(*) AS n FROM events WHERE {period.where()} GROUP BY event ORDER BY n DESC"
    df = wh.query(sql).df
    odd = [e for e in df["event"] if e not in plan.events]
    users = wh.query("SELECT event, count(DISTINCT user_id) AS users FROM events WHERE event IN ("
                     + ", ".join(lit(e) for e in odd) + f") AND {period.where()} GROUP BY event").df if odd else None
    df = df.assign(users=df["event"].map(dict(zip(users["event"], users["users"]))) if odd else 0).fillna(0)
    out = []
    groups: dict[str, set[str]] = {}
    for name in [*df["event"], *plan.events]:
        groups.setdefault(normalize_name(name), set()).add(name)
    for r in df.itertuples():
        if r.event in plan.events:
            continue
        twins = sorted(groups[normalize_name(r.event)] - {r.event})
        if twins:
            out.append(_issue(f"Event '{r.event}' is a near-duplicate of {', '.join(repr(t) for t in twins)}"
                              f" ({r.n} events)", "events", r.n, 0, r.n, r.users, sql, period, r.event,
                              {"near_duplicate_of": twins[0]}))
        else:
            out.append(_issue(f"Unplanned event '{r.event}' ({r.n} events)", "events", r.n, 0, r.n, r.users, sql,
                              period, r.event, {"unplanned": r.event}))
    return out


def _properties(wh: Warehouse, plan: TrackingPlan, period: Period) -> list[Friction]:
    """Missing required properties and JSON properties of the wrong type, per planned event."""
    columns = TABLES["events"]
    checks = []
    for event, rule in plan.events.items():
        for prop, typ in {**rule.required, **rule.optional}.items():
            required = prop in rule.required
            if prop in columns:
                if required:
                    checks.append((event, prop, "missing", f"{prop} IS NULL"))
            else:
                path = lit(f"$.{prop}")
                if required:
                    checks.append((event, prop, "missing", f"json_extract(properties, {path}) IS NULL"))
                checks.append((event, prop, "type", f"json_extract(properties, {path}) IS NOT NULL AND "
                               f"json_type(properties, {path}) NOT IN ({', '.join(map(lit, JSON_TYPES[typ]))})"))
    if not checks:
        return []
    by_event: dict[str, dict[str, int]] = {}
    branches = []
    for event in plan.events:
        mine = [(i, cond) for i, (e, _, _, cond) in enumerate(checks) if e == event]
        if mine:
            cols = ", ".join(f"count(*) FILTER (WHERE {cond})" for _, cond in mine)
            branches.append(f"SELECT {lit(event)} AS event, count(*) AS n, [{cols}] AS x FROM events "
                            f"WHERE event = {lit(event)} AND {period.where()}")
    sql = "\nUNION ALL\n".join(branches)
    for r in wh.query(sql).df.itertuples():
        mine = [i for i, c in enumerate(checks) if c[0] == r.event]
        by_event[r.event] = {"n": int(r.n), **{f"x{i}": int(v) for i, v in zip(mine, r.x)}}
    failing = []
    for i, (event, prop, kind, cond) in enumerate(checks):
        n, x = by_event[event]["n"], by_event[event][f"x{i}"]
        if n >= MIN_ROWS and x > 0 and (kind == "type" or x / n > MAX_NULL_SHARE):
            failing.append((event, prop, kind, cond, n, x))
    users = distinct_users(wh, "", "events", [f"event = {lit(e)} AND {c}" for e, _, _, c, _, _ in failing],
                           where=period.where())
    out = []
    for (event, prop, kind, _, n, x), affected in zip(failing, users, strict=True):
        text = (f"'{event}': required property {prop} is missing on {x / n:.1%} of {n} events" if kind == "missing"
                else f"'{event}': property {prop} has the wrong type on {x} of {n} events")
        out.append(_issue(text, f"{kind}_share", x / n, MAX_NULL_SHARE if kind == "missing" else 0.0, x,
                          affected, sql, period, event, {"property": prop, "check": kind}))
    return out


def _dimensions(wh: Warehouse, plan: TrackingPlan, period: Period) -> list[Friction]:
    """Values outside the allowed sets, and missing required dimensions (one pass per table)."""
    out = []
    for table in ("events", "users"):
        rules = {d: r for d, r in plan.dimensions.items() if (d in EVENT_DIMENSIONS) == (table == "events")}
        where = period.where() if table == "events" else period.where("signed_up_at")
        checks = []
        for dim, rule in rules.items():
            if rule.allowed:
                checks.append((dim, "allowed", f"{dim} IS NOT NULL AND {dim} NOT IN "
                               f"({', '.join(lit(v) for v in rule.allowed)})", "TRUE"))
            scope = "TRUE" if rule.required else (
                f"{REQUIRED_ON} IN ({', '.join(lit(p) for p in rule.required_on)})" if rule.required_on else None)
            if scope and table == "events":
                checks.append((dim, "missing", f"{dim} IS NULL", scope))
        if not checks:
            continue
        # count the rows per combination of the dimensions first: the checks then run on a few hundred
        # rows instead of evaluating every check on every event
        keys = ", ".join(dict.fromkeys([*rules, *([REQUIRED_ON] if table == "events" else [])]))
        cols = ", ".join(f"coalesce(sum(n) FILTER (WHERE {scope}), 0) AS n{i},"
                         f" coalesce(sum(n) FILTER (WHERE {scope} AND {cond}), 0) AS x{i}"
                         for i, (_, _, cond, scope) in enumerate(checks))
        sql = f"WITH g AS (SELECT {keys}, count(*) AS n FROM {table} WHERE {where} GROUP BY ALL) SELECT {cols} FROM g"
        row = wh.query(sql).df.iloc[0]
        for i, (dim, kind, cond, scope) in enumerate(checks):
            n, x = int(row[f"n{i}"]), int(row[f"x{i}"])
            if n < MIN_ROWS or x == 0 or (kind == "missing" and x / n <= MAX_NULL_SHARE):
                continue
            detail_sql = (f"SELECT {dim} AS value, count(*) AS n, count(DISTINCT user_id) AS users FROM {table} "
                          f"WHERE {where} AND {scope} AND {cond} GROUP BY 1 ORDER BY 2 DESC")
            bad = wh.query(detail_sql).df
            users = int(bad["users"].sum())
            if kind == "allowed":
                shown = ", ".join(f"'{v}' ({c})" for v, c in bad[["value", "n"]].head(5).itertuples(index=False))
                out.append(_issue(f"{dim} has values outside the plan: {shown}", "unexpected_values", float(x), 0, x,
                                  users, detail_sql, period, None, {"dimension": dim, "check": "allowed"}))
            else:
                out.append(_issue(f"{dim} is missing on {x / n:.1%} of {n} events"
                                  + (f" ({scope})" if scope != "TRUE" else ""), "null_share", x / n, MAX_NULL_SHARE,
                                  x, users, detail_sql, period, None, {"dimension": dim, "check": "missing"}))
    return out


def _integrity(wh: Warehouse, period: Period) -> list[Friction]:
    """Duplicate event ids, timestamps in the future or before the user's signup."""
    sql = f"""SELECT count(*) - count(DISTINCT event_id) AS duplicates,
       count(*) FILTER (WHERE ts > now()::TIMESTAMP + INTERVAL 1 DAY) AS future,
       count(DISTINCT e.user_id) FILTER (WHERE ts > now()::TIMESTAMP + INTERVAL 1 DAY) AS future_users,
       count(*) FILTER (WHERE ts < u.signed_up_at - INTERVAL 1 MINUTE) AS before_signup,
       count(DISTINCT e.user_id) FILTER (WHERE ts < u.signed_up_at - INTERVAL 1 MINUTE) AS before_users,
       count(*) AS n
FROM events e LEFT JOIN users u USING (user_id) WHERE {period.where('e.ts')}"""
    # Distinct hashes imply distinct ids (a collision only sends it to the exact query); hashing
    # the ids first is about 20% faster than a distinct over the strings.
    quick = wh.query(f"SELECT count(*) = count(DISTINCT hash(event_id)) AS unique_ids, "
                     f"count(*) FILTER (WHERE ts > now()::TIMESTAMP + INTERVAL 1 DAY) AS future, "
                     f"min(ts) < (SELECT min(signed_up_at) FROM users) - INTERVAL 1 MINUTE AS early "
                     f"FROM events WHERE {period.where()}").df.iloc[0]
    if quick["unique_ids"] and not quick["future"] and not quick["early"] and not _any_before_signup(wh, period):
        return []
    r = wh.query(sql).df.iloc[0]
    n = max(int(r["n"]), 1)
    out = []
    if r["duplicates"] > 0:
        out.append(_issue(f"{int(r['duplicates'])} events share an event_id with another event", "duplicate_ids",
                          r["duplicates"] / n, 0, int(r["duplicates"]), 0, sql, period, None, {"check": "event_id"}))
    if r["future"] > 0:
        out.append(_issue(f"{int(r['future'])} events have timestamps in the future", "future_timestamps",
                          r["future"] / n, 0, int(r["future"]), int(r["future_users"]), sql, period, None,
                          {"check": "future_ts"}))
    if r["before_signup"] > 0:
        out.append(_issue(f"{int(r['before_signup'])} events happen before their user's signup",
                          "before_signup", r["before_signup"] / n, 0, int(r["before_signup"]),
                          int(r["before_users"]), sql, period, None, {"check": "before_signup"}))
    return out


def _any_before_signup(wh: Warehouse, period: Period) -> bool:
    """Is any user's first event more than a minute before their signup? (per-user minimum, cheap)"""
    return bool(wh.scalar(f"SELECT count(*) > 0 FROM (SELECT user_id, min(ts) AS first FROM events WHERE "
                          f"{period.where()} GROUP BY user_id) f JOIN users u USING (user_id) "
                          "WHERE f.first < u.signed_up_at - INTERVAL 1 MINUTE"))


def _volume(wh: Warehouse, plan: TrackingPlan, period: Period) -> list[Friction]:
    """Planned events whose last full week has less than half the volume of the week before."""
    # the last day of data, ignoring timestamps in the future (reported by _integrity) unless all are
    sql = f"""WITH last AS (SELECT date_trunc('day', coalesce(max(ts) FILTER (WHERE ts <= now()::TIMESTAMP
    + INTERVAL 1 DAY), max(ts))) AS d FROM events WHERE {period.where()})
SELECT event, count(*) FILTER (WHERE ts >= last.d - INTERVAL 7 DAY AND ts < last.d) AS now,
       count(*) FILTER (WHERE ts >= last.d - INTERVAL 14 DAY AND ts < last.d - INTERVAL 7 DAY) AS before
FROM events, last WHERE {period.where()} GROUP BY event"""
    df = wh.query(sql).df
    out = []
    for r in df.itertuples():
        if r.event in plan.events and r.before >= 100 and r.now < DROP_RATIO * r.before:
            out.append(_issue(f"'{r.event}' volume dropped: {r.now} events in the last 7 days vs {r.before} the 7 "
                              "days before (tracking broken?)", "weekly_events", float(r.now), float(r.before),
                              int(r.before - r.now), 0, sql, period, r.event, {"check": "volume"}))
    return out


def check_tracking(wh: Warehouse, plan: TrackingPlan | None = None, period: Period = Period("all", None, None)
                   ) -> ToolResult:
    """Every tracking check; each problem is a tracking_issue finding."""
    plan = plan or load_plan()
    findings = (_event_names(wh, plan, period) + _properties(wh, plan, period) + _dimensions(wh, plan, period)
                + _integrity(wh, period) + _volume(wh, plan, period))
    table = pd.DataFrame([{"problem": f.title, "event": f.step, "rows": f.detail["rows"],
                           "users": f.affected_users} for f in findings])
    summary = (f"Tracking check (period {period.label}): " + (f"{len(findings)} problem(s): " + "; ".join(
        f.title for f in findings[:8]) if findings else "the data keeps the tracking plan; no problem found."))
    return ToolResult("Tracking plan", summary, table, None, sorted({f.evidence_sql for f in findings}), findings)
