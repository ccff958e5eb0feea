"""Data-quality checks that hold on real data, and plan checks that need the team's plan.

Without a plan: near-duplicate event names (`product_viewed` beside `Product Viewed`), duplicate
event ids, timestamps in the future, an event whose share of all events collapses (judged against
its own usual share, so a traffic dip or an incomplete last week is not "broken tracking"), and a
field that stops being filled on an event that used to carry it (so `app_version` never being on
web events is not "missing"). Events before signup are not checked: anonymous browsing precedes
signup in real data.

With the team's tracking plan (the event map's `tracking_plan`, or `--plan FILE`): unplanned
events, required properties and their types, allowed values and required dimensions.

Each problem becomes a `tracking_issue` finding: it joins the scan in its own data-quality
section and never outranks a product friction.
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import yaml
from pydantic import ValidationError

from tools.distinct_users import distinct_users
from tools.format import count
from tools.period import Period
from tools.result import Friction, ToolResult, applied, facts
from tools.semantic.eventmap import EventMap
from tools.semantic.fields import parse_field
from tools.semantic.plan import TrackingPlan
from tools.sqltext import lit
from tools.stats import bh, two_proportion_p
from tools.warehouse import Warehouse

MAX_NULL_SHARE = 0.01   # a required value missing on more than this share of rows is a problem
MIN_ROWS = 20           # fewer rows than this: nothing to judge
DROP_RATIO = 0.5        # an event's share of all events falls below half its usual share
PRESENT_RATIO = 0.5     # a field is filled on less than half the share of rows it used to fill
SIGNIFICANT_P = 0.001
BASELINE_DAYS = 28      # "usual" = the four weeks before the last seven days
# json_type() of each planned type; JSON has one number type, so a whole number is a valid DOUBLE.
JSON_TYPES = {"VARCHAR": ("VARCHAR",), "INTEGER": ("BIGINT", "UBIGINT"),
              "DOUBLE": ("DOUBLE", "BIGINT", "UBIGINT"), "BOOLEAN": ("BOOLEAN",)}


class PlanError(ValueError):
    """A tracking plan that cannot be read; the message names the file and the field."""


def load_plan(path: str | Path) -> TrackingPlan:
    """The tracking plan in a YAML file (the `tracking_plan` of an event map file, or a plan on its own)."""
    where = str(path)
    try:
        raw = yaml.safe_load(Path(path).read_text())
        if isinstance(raw, dict) and "tracking_plan" in raw:
            raw = raw["tracking_plan"]
        return TrackingPlan.model_validate(raw)
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


def _event_users(wh: Warehouse, events: list[str], period: Period) -> dict[str, int]:
    if not events:
        return {}
    df = wh.query(f"SELECT event, count(DISTINCT user_id) AS users FROM events WHERE event IN "
                  f"({', '.join(lit(e) for e in events)}) AND {period.where()} GROUP BY event").df
    return dict(zip(df["event"], df["users"].astype(int)))


def _event_names(wh: Warehouse, plan: TrackingPlan | None, period: Period) -> list[Friction]:
    """Near-duplicate names (always) and unplanned events (with a plan)."""
    sql = f"SELECT event, count(*) AS n FROM events WHERE {period.where()} GROUP BY event ORDER BY n DESC, event"
    df = wh.query(sql).df
    planned = set(plan.events) if plan else set()
    groups: dict[str, list[str]] = {}
    for name in [*planned, *df["event"]]:  # planned names first: they are the canonical ones
        groups.setdefault(normalize_name(name), [])
        if name not in groups[normalize_name(name)]:
            groups[normalize_name(name)].append(name)
    odd = {}
    for r in df.itertuples():
        group = groups[normalize_name(r.event)]
        if r.event != group[0]:
            odd[r.event] = (r.n, group[0], "near_duplicate_of")
        elif plan and r.event not in planned:
            odd[r.event] = (r.n, r.event, "unplanned")
    users = _event_users(wh, list(odd), period)
    out = []
    for event, (n, other, check) in odd.items():
        if check == "near_duplicate_of":
            text = f"Event '{event}' is a near-duplicate of '{other}' ({n} events)"
        else:
            text = f"Unplanned event '{event}' ({n} events)"
        out.append(_issue(text, "events", n, 0, n, users.get(event, 0), sql, period, event, {check: other}))
    return out


def _properties(wh: Warehouse, plan: TrackingPlan, period: Period) -> list[Friction]:
    """Missing required properties and JSON properties of the wrong type, per planned event."""
    columns = wh.tables.get("events", {})
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


def _plan_dimensions(wh: Warehouse, emap: EventMap, plan: TrackingPlan, period: Period) -> list[Friction]:
    """Values outside the plan's allowed sets, and required dimensions missing where the plan requires them."""
    out = []
    for table in ("events", "users"):
        rules = {d: r for d, r in plan.dimensions.items() if d in emap.dimensions
                 and (d in emap.event_dims) == (table == "events")}
        where = period.where() if table == "events" else period.where("signed_up_at")
        checks = []
        for dim, rule in rules.items():
            expr = emap.dim_sql(dim)
            if rule.allowed:
                checks.append((dim, "allowed", f"{expr} IS NOT NULL AND {expr} NOT IN "
                               f"({', '.join(lit(v) for v in rule.allowed)})", "TRUE"))
            if table == "events" and (rule.required or rule.required_on):
                scope = " AND ".join(f"{emap.dim_sql(d)} IN ({', '.join(lit(v) for v in values)})"
                                     for d, values in rule.required_on.items() if d in emap.event_dims) or "TRUE"
                checks.append((dim, "missing", f"{expr} IS NULL", scope))
        if not checks:
            continue
        cols = ", ".join(f"count(*) FILTER (WHERE {scope}) AS n{i}, count(*) FILTER (WHERE {scope} AND {cond}) AS x{i}"
                         for i, (_, _, cond, scope) in enumerate(checks))
        row = wh.query(f"SELECT {cols} FROM {table} WHERE {where}").df.iloc[0]
        for i, (dim, kind, cond, scope) in enumerate(checks):
            n, x = int(row[f"n{i}"]), int(row[f"x{i}"])
            if n < MIN_ROWS or x == 0 or (kind == "missing" and x / n <= MAX_NULL_SHARE):
                continue
            detail_sql = (f"SELECT {emap.dim_sql(dim)} AS value, count(*) AS n FROM {table} "
                          f"WHERE {where} AND {scope} AND {cond} GROUP BY 1 ORDER BY 2 DESC")
            users = int(wh.scalar(f"SELECT count(DISTINCT user_id) FROM {table} WHERE {where} AND {scope} AND {cond}"))
            if kind == "allowed":
                bad = wh.query(detail_sql).df
                shown = ", ".join(f"'{v}' ({c})" for v, c in bad[["value", "n"]].head(5).itertuples(index=False))
                out.append(_issue(f"{dim} has values outside the plan: {shown}", "unexpected_values", float(x), 0, x,
                                  users, detail_sql, period, None, {"dimension": dim, "check": "allowed"}))
            else:
                out.append(_issue(f"{dim} is missing on {x / n:.1%} of {n} events"
                                  + (f" ({scope})" if scope != "TRUE" else ""), "null_share", x / n, MAX_NULL_SHARE,
                                  x, users, detail_sql, period, None, {"dimension": dim, "check": "missing"}))
    return out


COMPILED_FROM = 4_000_000


def _repeated_hashes(wh: Warehouse, period: Period, rows: int) -> bool:
    """Whether two of the period's `rows` events share the hash of their event_id: a compiled check on DuckDB from
    COMPILED_FROM rows (below that, loading it in a new process costs more than the distinct count in SQL)."""
    if wh.dialect != "duckdb" or rows < COMPILED_FROM:
        return bool(wh.scalar(f"SELECT count(*) > count(DISTINCT hash(event_id)) FROM events WHERE {period.where()}"))
    from tools.kernels import has_duplicates

    return bool(has_duplicates(wh.arrow(f"SELECT hash(event_id) AS h FROM events WHERE {period.where()}")
                               .column("h").to_numpy()))


def _integrity(wh: Warehouse, period: Period) -> list[Friction]:
    """Duplicate event ids and timestamps in the future."""
    future = "ts > now()::TIMESTAMP + INTERVAL 1 DAY"
    sql = f"""SELECT count(*) - count(DISTINCT event_id) AS duplicates, count(*) FILTER (WHERE {future}) AS future,
       count(DISTINCT user_id) FILTER (WHERE {future}) AS future_users, count(*) AS n
FROM events WHERE {period.where()}"""
    # Distinct hashes imply distinct ids (a collision only sends it to the exact query); a compiled hash set over
    # the ids' hashes is several times faster than a distinct count in SQL.
    rows, future_rows = wh.query(f"SELECT count(*) AS n, count(*) FILTER (WHERE {future}) AS f FROM events "
                                 f"WHERE {period.where()}").df.iloc[0]
    if not future_rows and not _repeated_hashes(wh, period, int(rows)):
        return []
    r = wh.query(sql).df.iloc[0]
    n = max(int(r["n"]), 1)
    out = []
    if r["duplicates"] > 0:
        repeated = f"SELECT event_id FROM events WHERE {period.where()} GROUP BY 1 HAVING count(*) > 1"
        dup_users = int(wh.scalar(f"SELECT count(DISTINCT user_id) FROM events WHERE {period.where()} "
                                  f"AND event_id IN ({repeated})"))
        out.append(_issue(f"{int(r['duplicates'])} events share an event_id with another event", "duplicate_ids",
                          r["duplicates"] / n, 0, int(r["duplicates"]), dup_users, sql, period, None,
                          {"check": "event_id"}))
    if r["future"] > 0:
        out.append(_issue(f"{int(r['future'])} events have timestamps in the future", "future_timestamps",
                          r["future"] / n, 0, int(r["future"]), int(r["future_users"]), sql, period, None,
                          {"check": "future_ts"}))
    return out


def _windows(period: Period) -> str:
    """The CTE `last`: the last day of data (ignoring future timestamps unless all are); RECENT and USUAL
    are the 7 days before it and the BASELINE_DAYS before those."""
    return (f"last AS (SELECT date_trunc('day', coalesce(max(ts) FILTER (WHERE ts <= now()::TIMESTAMP"
            f" + INTERVAL 1 DAY), max(ts))) AS d FROM events WHERE {period.where()})")


RECENT = "ts >= last.d - INTERVAL 7 DAY AND ts < last.d"
USUAL = f"ts >= last.d - INTERVAL {7 + BASELINE_DAYS} DAY AND ts < last.d - INTERVAL 7 DAY"


def _volume(wh: Warehouse, period: Period) -> list[Friction]:
    """Events whose share of all events in the last 7 days fell below half their usual share. Exposure events
    follow the experiments' schedule (they stop when an experiment ends), not tracking, and are not judged."""
    sql = f"""WITH {_windows(period)}
SELECT event, count(*) FILTER (WHERE {RECENT}) AS now, count(*) FILTER (WHERE {USUAL}) AS before
FROM events, last WHERE {period.where()} AND ts >= last.d - INTERVAL {7 + BASELINE_DAYS} DAY GROUP BY event"""
    df = wh.query(sql).df
    total_now, total_before = float(df["now"].sum()), float(df["before"].sum())
    df = df[df["event"] != wh.event_map.event_of("exposure")]
    if not total_now or not total_before:
        return []
    df["share_now"], df["share_before"] = df["now"] / total_now, df["before"] / total_before
    df["p"] = two_proportion_p(df["now"], total_now, df["before"], total_before)
    hits = df[(df["share_before"] * total_now >= 100) & (df["share_now"] < DROP_RATIO * df["share_before"])
              & (df["p"] < SIGNIFICANT_P)]
    return [_issue(f"'{r.event}' fell to {r.share_now:.2%} of all events in the last 7 days from its usual "
                   f"{r.share_before:.2%} (tracking broken?)", "event_share", float(r.share_now),
                   float(r.share_before), int(round(r.share_before * total_now - r.now)), 0, sql, period, r.event,
                   {"check": "volume"}) for r in hits.sort_values("event").itertuples()]


def _fields(emap: EventMap) -> dict[str, tuple[str, str]]:
    """Every events field the map reads -> (its SQL, the events it belongs on): dimensions on all events,
    role fields on their role's event (the page_load duration on the funnel's steps)."""
    out = {d: (emap.dim_sql(d), "TRUE") for d in emap.event_dims}
    for role, value in emap.roles:
        for key in ("revenue", "query", "results", "code", "duration", "experiment", "variant"):
            ref = getattr(value, key, None) if value is not None else None
            if ref and f"{role}.{key}" not in out:
                events = [value.event] if getattr(value, "event", None) else list(emap.steps)
                scope = f"event IN ({', '.join(lit(e) for e in events)})" if events else "FALSE"
                out[f"{role}.{key}"] = (parse_field(ref).sql(), scope)
    return out


def _dropouts(wh: Warehouse, emap: EventMap, period: Period) -> list[Friction]:
    """Fields that stopped being filled: over the last 7 days, on the events they belong on, present on under
    half the share of rows they usually fill, within one value of another dimension (platform=android,
    browser=firefox) or overall. Judged within each value, a change in traffic mix is not a dropout; a field
    some events never carry (app_version on web events) is not missing. Significant after Benjamini-Hochberg
    over every field and place; one finding per field, for the place where most rows lost it."""
    fields = _fields(emap)
    if not fields:
        return []
    names, strata = list(fields), list(emap.event_dims)
    cols = ", ".join(
        f"coalesce(sum(c) FILTER (WHERE recent AND {scope}), 0)::BIGINT AS n_now_{i}, "
        f"coalesce(sum(c) FILTER (WHERE recent AND {scope} AND has_{i}), 0)::BIGINT AS now_{i}, "
        f"coalesce(sum(c) FILTER (WHERE NOT recent AND {scope}), 0)::BIGINT AS n_before_{i}, "
        f"coalesce(sum(c) FILTER (WHERE NOT recent AND {scope} AND has_{i}), 0)::BIGINT AS before_{i}"
        for i, (_, scope) in enumerate(fields.values()))
    # rows first counted per (window, event, which fields are present, dimension values): the grouping sets
    # then add up a few thousand counts instead of reading every row once per set
    has = "".join(f", {expr} IS NOT NULL AS has_{i}" for i, (expr, _) in enumerate(fields.values()))
    keys = "".join(f", {emap.dim_sql(d)} AS s_{d}" for d in strata)  # s_: a name no events column has
    sets = ", ".join(["()", *(f"(s_{d})" for d in strata)])
    flags = "".join(f", GROUPING(s_{d}) = 0 AS g_{d}" for d in strata)
    sql = f"""WITH {_windows(period)}, window_rows AS (
    SELECT {RECENT} AS recent, event{has}{keys}, count(*) AS c FROM events, last
    WHERE {period.where()} AND ts >= last.d - INTERVAL {7 + BASELINE_DAYS} DAY AND ts < last.d GROUP BY ALL)
SELECT {''.join(f's_{d}, ' for d in strata)}{flags.removeprefix(', ')}{', ' if strata else ''}{cols}
FROM window_rows GROUP BY GROUPING SETS ({sets})"""
    df = wh.query(sql).df
    df["where"] = [next((f"{d}={row[f's_{d}']}" for d in strata if row[f"g_{d}"] and not pd.isna(row[f"s_{d}"])),
                        None if any(row[f"g_{d}"] for d in strata) else "") for _, row in df.iterrows()]
    df = df[df["where"].notna()].reset_index(drop=True)
    tests = []
    for i, name in enumerate(names):
        t = pd.DataFrame({"field": name, "where": df["where"], "n_now": df[f"n_now_{i}"], "now": df[f"now_{i}"],
                          "n_before": df[f"n_before_{i}"], "before": df[f"before_{i}"]})
        tests.append(t[~t["where"].str.startswith(f"{name}=")])  # not judged within its own values
    t = pd.concat(tests, ignore_index=True)
    t = t[(t["n_now"] >= MIN_ROWS) & (t["n_before"] >= MIN_ROWS)].reset_index(drop=True)
    if t.empty:
        return []
    share_now, share_before = t["now"] / t["n_now"], t["before"] / t["n_before"]
    t["lost"] = ((share_before - share_now) * t["n_now"]).clip(lower=0)
    t["q"] = bh(two_proportion_p(t["now"], t["n_now"], t["before"], t["n_before"]))
    hits = t[(share_before >= 0.05) & (share_now < PRESENT_RATIO * share_before) & (t["q"] < SIGNIFICANT_P)
             & (t["lost"] >= MIN_ROWS)]
    out = []
    for name, h in hits.sort_values(["lost", "where"], ascending=[False, True]).groupby("field", sort=False):
        r = h.iloc[0]
        now, before = r["now"] / r["n_now"], r["before"] / r["n_before"]
        place = f" for {r['where']}" if r["where"] else ""
        out.append(_issue(f"{name} stopped being filled{place}: on {now:.0%} of its events in the last 7 days, "
                          f"usually on {before:.0%} ({round(r['lost'])} events without it)", "present_share",
                          float(now), float(before), int(round(r["lost"])), 0, sql, period, None,
                          {"field": name, "check": "dropout"}))
    return sorted(out, key=lambda f: f.segment["field"])


def check_tracking(wh: Warehouse, plan: TrackingPlan | None = None, period: Period = Period("all", None, None)
                   ) -> ToolResult:
    """Every data-quality check; the plan ones against `plan`, else the event map's plan, else none."""
    emap = wh.event_map
    plan = plan or emap.tracking_plan
    findings = (_event_names(wh, plan, period) + _integrity(wh, period) + _volume(wh, period)
                + _dropouts(wh, emap, period))
    if plan is not None:
        findings += _properties(wh, plan, period) + _plan_dimensions(wh, emap, plan, period)
    table = pd.DataFrame([{"problem": f.title, "event": f.step, "rows": f.detail["rows"],
                           "users": f.affected_users} for f in findings])
    n = len(findings)
    summary = (f"Data quality ({period.words()}): " + (f"{count(n)} problem{'s' if n > 1 else ''}: " + "; ".join(
        f.title for f in findings[:8]) + "." if findings else "no problem found."))
    if plan is None:
        summary += (" No tracking plan: plan checks (unplanned events, required properties, allowed values) were "
                    "not run; `insight map --write FILE` starts one from the data.")
    data = {"applied": applied(period, plan=plan is not None), "facts": facts(problems=(n, "count"))}
    return ToolResult("Data quality", summary, table, None, sorted({f.evidence_sql for f in findings}), findings,
                      data)
