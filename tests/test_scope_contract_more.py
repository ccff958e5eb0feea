"""The scope contract (issue 17) for search, retention, experiments, errors and speed, incidents, the scan and the
tracking check: every slot a tool accepts is applied in every number it reports, and data["applied"] says so.

Each tool runs through the registry (as the agent calls it) on a real DuckDB file with every kind of segment
filter (an events column, a users column, a JSON property, a list of values, all mixed) and breakdowns by an
events and by a users dimension. The data is a grocery-delivery app in its own vocabulary (browse_menu ->
basket_add -> checkout_open -> pay_submit -> order_placed, menu_search, app_fault, render_ms) with its own event
map, and decoy columns: `events.region` and `users.device` hold values no filter asks for, while the map reads
region from users and device from events, so reading the wrong table (or an ambiguous column) shows as a wrong
number or an SQL error. Every expected number is counted here by a hand-written SQL query over the raw tables.

Planted, in segments the demo does not have: region=nordics searches often find nothing, hit payment faults and
lose the experiment's treatment; tier=gold users come back less in their second week; device=tablet menus render
slowly (and fewer of their visits add to the basket); device=kiosk orders collapse on days 20-27 (an incident).
"""

from __future__ import annotations

import json
import random
from datetime import datetime, timedelta
from pathlib import Path
from typing import get_args

import duckdb
import pandas as pd
import pytest
from pydantic import ValidationError

from data.schema import TABLES
from tools.registry import TOOLS
from tools.result import FactKind, ToolResult, segment_text
from tools.semantic.eventmap import parse_map
from tools.warehouse import Warehouse

T0 = datetime(2026, 3, 2)  # a Monday; 6 weeks of data, signups in the first 3
DAYS = 42
STEPS = ("browse_menu", "basket_add", "checkout_open", "pay_submit", "order_placed")
MAP = """
funnels: {order: [browse_menu, basket_add, checkout_open, pay_submit, order_placed]}
roles:
  order: {event: order_placed, revenue: amount}
  cart_add: {event: basket_add}
  checkout: {event: checkout_open}
  search: {event: menu_search, query: properties.term, results: properties.hits}
  search_click: {event: search_pick}
  error: {event: app_fault, code: fault_code}
  page_load: {duration: render_ms}
dimensions:
  device: device
  shell: properties.shell
  region: users.region
  tier: users.tier
"""
PERIOD, START, END, WORDS = "2026-03-16..2026-04-06", "2026-03-16", "2026-04-06", "Mar 16 - Apr 5"
FILTERS = {
    "events column": {"device": "kiosk"},
    "users column": {"region": "nordics"},
    "json property": {"shell": "webview"},
    "list": {"device": ["kiosk", "tablet"]},
    "mixed": {"device": ["kiosk", "phone"], "region": "nordics", "shell": "native"},
}
# the SQL of each dimension in the hand-written queries: events under `e` (or a session's first event), users
# under `u`
COLUMN = {"device": "e.device", "shell": "json_extract_string(e.properties, '$.shell')", "region": "u.region",
          "tier": "u.tier"}
BREAKDOWNS = [("device", {"region": "nordics"}), ("region", {"device": ["kiosk", "phone"]}),
              ("tier", {"shell": "native"}), ("shell", {})]


# ----------------------------------------------------------------------------- the data


def generate(seed: int = 7, users: int = 1200) -> tuple[list[dict], list[dict], list[dict]]:
    """Events, users and assignments of the grocery app (see the module docstring for what is planted)."""
    rnd = random.Random(seed)
    events: list[dict] = []
    people, assignments = [], []
    for u in range(users):
        user = f"u{u}"
        region, tier = rnd.choice(("nordics", "iberia", "benelux")), rnd.choice(("gold", "basic", "basic"))
        device, shell = rnd.choice(("kiosk", "phone", "tablet")), rnd.choice(("native", "webview"))
        signup = T0 + timedelta(days=rnd.randrange(21), minutes=rnd.randrange(480, 1200))
        variant = rnd.choice(("control", "treatment"))
        people.append({"user_id": user, "signed_up_at": signup, "region": region, "tier": tier, "device": "zz"})
        assignments.append({"experiment_id": "menu_layout", "user_id": user, "variant": variant,
                            "assigned_at": signup})
        days = [0] + [d for d in range(1, DAYS - (signup - T0).days)
                      if rnd.random() < (0.03 if tier == "gold" and 7 <= d < 14 else 0.09)]
        for k, d in enumerate(days):
            start = signup if d == 0 else datetime.combine((signup + timedelta(days=d)).date(), datetime.min.time()) \
                + timedelta(minutes=rnd.randrange(480, 1320))
            context = {"user_id": user, "session_id": f"{user}-s{k}", "device": device, "region": "zz",
                       "properties": {"shell": shell}}
            events += session(rnd, start, context, region, device, variant)
    return events, people, assignments


def session(rnd: random.Random, t: datetime, context: dict, region: str, device: str, variant: str) -> list[dict]:
    """One visit: the menu (slow on tablets), maybe a search, then a prefix of the funnel; a payment fault."""
    out = []

    def emit(event: str, **fields) -> None:
        nonlocal t
        props = {**context["properties"], **fields.pop("properties", {})}
        out.append({**context, "ts": t, "event": event, **fields, "properties": json.dumps(props)})
        t += timedelta(minutes=1)

    slow = rnd.random() < (0.6 if device == "tablet" else 0.04)
    emit("browse_menu", render_ms=rnd.randint(2200, 3200) if slow else rnd.randint(500, 1100))
    if rnd.random() < 0.5:
        hits = 0 if rnd.random() < (0.35 if region == "nordics" else 0.05) else rnd.randint(1, 30)
        emit("menu_search", properties={"term": rnd.choice(("pizza", "sushi", "vegan bowl", "tacos")),
                                        "hits": hits})
        if hits and rnd.random() < 0.6:
            emit("search_pick")
    day = (t - T0).days
    order = 0.15 if device == "kiosk" and 20 <= day < 28 else 0.85
    if variant == "treatment" and region == "nordics":
        order *= 0.6
    for step, p in zip(STEPS[1:], (0.35 if device == "tablet" else 0.6, 0.7, 0.8, order)):
        if rnd.random() >= p:
            return out
        emit(step, amount=float(rnd.randrange(10, 60)) if step == "order_placed" else None)
        if step == "pay_submit" and rnd.random() < (0.25 if region == "nordics" else 0.03):
            emit("app_fault", fault_code="CARD_DECLINED")
            if rnd.random() < 0.7:
                return out
    return out


def write(path: Path, events: list[dict], people: list[dict], assignments: list[dict]) -> Path:
    """A DuckDB file in the app's own columns, with the decoys `events.region` and `users.device`."""
    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE users (user_id VARCHAR, signed_up_at TIMESTAMP, region VARCHAR, tier VARCHAR, "
                "device VARCHAR)")
    con.execute("CREATE TABLE events (event_id VARCHAR, ts TIMESTAMP, user_id VARCHAR, session_id VARCHAR, "
                "event VARCHAR, device VARCHAR, region VARCHAR, render_ms INTEGER, fault_code VARCHAR, "
                "amount DOUBLE, properties JSON)")
    for table, columns in TABLES.items():
        if table not in ("events", "users"):
            con.execute(f"CREATE TABLE {table} ({', '.join(f'{c} {t}' for c, t in columns.items())})")
    cols = ["event_id", "ts", "user_id", "session_id", "event", "device", "region", "render_ms", "fault_code",
            "amount", "properties"]
    frame = pd.DataFrame([{"event_id": f"e{i}", **e} for i, e in enumerate(events)]).reindex(columns=cols)
    frame["render_ms"] = frame["render_ms"].astype("Int64")
    for table, rows in (("events", frame), ("users", pd.DataFrame(people)), ("assignments", pd.DataFrame(assignments))):
        con.register("new_rows", rows)
        con.execute(f"INSERT INTO {table} ({', '.join(rows.columns)}) SELECT * FROM new_rows")
        con.unregister("new_rows")
    con.execute("INSERT INTO experiments (experiment_id, name, started_at, ended_at, primary_metric) VALUES "
                f"('menu_layout', 'Menu layout', TIMESTAMP '{T0}', NULL, 'order_placed')")
    con.close()
    return path


@pytest.fixture(scope="module")
def grocer(tmp_path_factory: pytest.TempPathFactory) -> Warehouse:
    db = write(tmp_path_factory.mktemp("scope_more") / "grocer.duckdb", *generate())
    wh = Warehouse(db, event_map=parse_map(MAP, "test map"))
    yield wh
    wh.close()


# ----------------------------------------------------------------------------- hand-written counts


def where(segment: dict) -> str:
    """The segment over events `e` joined to users `u` (or a session's first event `e`), written here by hand."""
    parts = []
    for dim, value in segment.items():
        values = value if isinstance(value, list) else [value]
        parts.append(f"{COLUMN[dim]} IN ({', '.join(repr(v) for v in values)})")
    return " AND ".join(parts) or "TRUE"


def rows(wh: Warehouse, sql: str) -> pd.DataFrame:
    return wh.query(sql).df


def searches(wh: Warehouse, segment: dict, by: str | None = None) -> pd.DataFrame:
    """Searches in the period and segment, and those with no results (per value of `by`)."""
    key = f"{COLUMN[by]} AS value, " if by else ""
    return rows(wh, f"""SELECT {key}count(*) AS n,
        count(*) FILTER (WHERE CAST(json_extract_string(e.properties, '$.hits') AS INT) = 0) AS zero
        FROM events e JOIN users u ON u.user_id = e.user_id
        WHERE e.event = 'menu_search' AND e.ts >= '{START}' AND e.ts < '{END}' AND {where(segment)}
        {'GROUP BY 1' if by else ''}""")


def week_one(wh: Warehouse, segment: dict, by: str | None = None, signups: tuple[str, str] | None = None
             ) -> pd.DataFrame:
    """Users of the complete weekly cohorts (event dimensions of their first event) and those with an event 7
    to 14 days after signing up."""
    key = f"{COLUMN[by]} AS value, " if by else ""
    when = f"AND u.signed_up_at >= '{signups[0]}' AND u.signed_up_at < '{signups[1]}'" if signups else ""
    return rows(wh, f"""WITH first AS (SELECT DISTINCT ON (user_id) * FROM events ORDER BY user_id, ts)
        SELECT {key}count(*) AS n, count(*) FILTER (WHERE EXISTS (SELECT 1 FROM events a WHERE a.user_id = u.user_id
            AND a.ts >= u.signed_up_at + INTERVAL 7 DAY AND a.ts < u.signed_up_at + INTERVAL 14 DAY)) AS x
        FROM users u JOIN first e ON e.user_id = u.user_id
        WHERE date_trunc('week', u.signed_up_at) + INTERVAL 21 DAY <= TIMESTAMP '{T0 + timedelta(days=DAYS)}'
          AND {where(segment)} {when} {'GROUP BY 1' if by else ''}""")


def variants(wh: Warehouse, segment: dict) -> dict[str, tuple[int, int]]:
    """Per variant: users of the segment (event dimensions on any of their events), and those ordering after
    assignment."""
    events_part = {d: v for d, v in segment.items() if COLUMN[d].startswith(("e.", "json"))}
    users_part = {d: v for d, v in segment.items() if d not in events_part}
    df = rows(wh, f"""SELECT a.variant, count(*) AS n, count(*) FILTER (WHERE EXISTS (SELECT 1 FROM events o
            WHERE o.user_id = a.user_id AND o.event = 'order_placed' AND o.ts >= a.assigned_at)) AS x
        FROM assignments a JOIN users u ON u.user_id = a.user_id
        WHERE {where(users_part)} AND EXISTS (SELECT 1 FROM events e WHERE e.user_id = a.user_id
            AND {where(events_part)}) GROUP BY 1""")
    return {r.variant: (int(r.n), int(r.x)) for r in df.itertuples()}


def error_sessions(wh: Warehouse, segment: dict, step: str = STEPS[0], by: str | None = None) -> pd.DataFrame:
    """Sessions in the period reaching `step` (dimensions of their first event), and those with a fault (every
    fault follows a payment, so it is at a step in scope of any step up to it)."""
    key = f"{COLUMN[by]} AS value, " if by else ""
    return rows(wh, f"""WITH s AS (SELECT session_id, bool_or(event = '{step}') AS reached,
            bool_or(event = 'app_fault') AS fault FROM events
            WHERE ts >= '{START}' AND ts < '{END}' GROUP BY 1),
        first AS (SELECT DISTINCT ON (session_id) * FROM events WHERE ts >= '{START}' AND ts < '{END}'
            AND event <> 'menu_search' AND event <> 'search_pick' ORDER BY session_id, ts)
        SELECT {key}count(*) AS n, count(*) FILTER (WHERE fault) AS x
        FROM s JOIN first e USING (session_id) JOIN users u ON u.user_id = e.user_id
        WHERE s.reached AND {where(segment)} {'GROUP BY 1' if by else ''}""")


# ----------------------------------------------------------------------------- the contract


def run(wh: Warehouse, tool: str, **args) -> ToolResult:
    t = TOOLS[tool]
    return t.run(wh, t.params(**args))


def first_paragraph(result: ToolResult) -> str:
    return result.summary.split("\n\nDetails:")[0]


def check_contract(result: ToolResult, period: str, segment: dict, breakdown: str | None = None,
                   step: str | None = None) -> None:
    """applied says what was passed; facts are JSON scalars of a known kind; the verdict speaks PM and names the
    segment; p-values and tests stay in the details."""
    applied = result.data["applied"]
    assert (applied["period"], applied["segment"], applied["breakdown"], applied["step"]) == (
        period, segment, breakdown, step)
    assert applied["compare"] is None
    json.dumps(result.data["facts"])
    assert all(set(f) == {"value", "kind"} and f["kind"] in get_args(FactKind)
               for f in result.data["facts"].values())
    head = first_paragraph(result)
    for analyst in ("e+0", "e-0", "p=", "p<", "BH", "q<", "Benjamini", "z-test", "period 2026", "period all"):
        assert analyst not in head, f"{analyst!r} in the verdict: {head}"
    if segment:
        assert segment_text(segment) in head


def rate(facts: dict, name: str) -> float:
    return facts[name]["value"]


# ----------------------------------------------------------------------------- search


@pytest.mark.parametrize("kind", FILTERS)
def test_search_counts_only_the_segments_searches(grocer, kind: str) -> None:
    segment = FILTERS[kind]
    result = run(grocer, "search_quality", period=PERIOD, segment=segment)
    check_contract(result, WORDS, segment)
    want = searches(grocer, segment).iloc[0]
    assert rate(result.data["facts"], "searches") == want["n"]
    assert rate(result.data["facts"], "zero_result_rate") == pytest.approx(want["zero"] / want["n"])
    assert rate(result.data["facts"], "searches") < rate(run(grocer, "search_quality", period=PERIOD).data["facts"],
                                                          "searches")


@pytest.mark.parametrize(("by", "segment"), BREAKDOWNS, ids=[b for b, _ in BREAKDOWNS])
def test_search_breaks_down_by_a_dimension_of_either_table(grocer, by: str, segment: dict) -> None:
    result = run(grocer, "search_quality", period=PERIOD, segment=segment, breakdown=by)
    check_contract(result, WORDS, segment, by)
    got = result.data["breakdown"].set_index(by)
    want = searches(grocer, segment, by).set_index("value")
    assert got["searches"].to_dict() == want["n"].to_dict()
    assert got["zero_result_rate"].to_dict() == pytest.approx((want["zero"] / want["n"]).to_dict())
    assert f"By {by} " in first_paragraph(result)


def test_search_finds_the_nordic_catalog_gap(grocer) -> None:
    by_region = run(grocer, "search_quality", period=PERIOD, breakdown="region").data["breakdown"]
    assert by_region.sort_values("zero_result_rate")["region"].iloc[-1] == "nordics"


# ----------------------------------------------------------------------------- retention


@pytest.mark.parametrize("kind", FILTERS)
def test_retention_counts_only_the_segments_users(grocer, kind: str) -> None:
    segment = FILTERS[kind]
    result = run(grocer, "retention", segment=segment)
    check_contract(result, "all time", segment)
    want = week_one(grocer, segment).iloc[0]
    assert rate(result.data["facts"], "retention") == pytest.approx(want["x"] / want["n"])
    assert rate(result.data["facts"], "cohorts") == 3
    assert f"of {want['n']:,} users came back" in first_paragraph(result)


@pytest.mark.parametrize(("by", "segment"), BREAKDOWNS, ids=[b for b, _ in BREAKDOWNS])
def test_retention_breaks_down_by_a_dimension_of_either_table(grocer, by: str, segment: dict) -> None:
    """"week-1 retention by tier": the values of the dimension, not only the cohorts."""
    result = run(grocer, "retention", segment=segment, breakdown=by)
    check_contract(result, "all time", segment, by)
    got = result.data["breakdown"].set_index(by)
    want = week_one(grocer, segment, by).set_index("value")
    assert got["users"].to_dict() == want["n"].to_dict()
    assert got["retention"].to_dict() == pytest.approx((want["x"] / want["n"]).to_dict())


def test_retention_of_the_users_who_signed_up_in_a_period(grocer) -> None:
    """"Did people who signed up in the second week stop coming back?" (on kiosks)"""
    segment = {"device": "kiosk"}
    result = run(grocer, "retention", segment=segment, signup_period="2026-03-09..2026-03-16")
    check_contract(result, "all time", segment)
    assert result.data["applied"]["signup_period"] == "Mar 9-15"
    want = week_one(grocer, segment, signups=("2026-03-09", "2026-03-16")).iloc[0]
    assert rate(result.data["facts"], "retention") == pytest.approx(want["x"] / want["n"])
    assert rate(result.data["facts"], "cohorts") == 1
    assert "signed up Mar 9-15" in first_paragraph(result)


def test_gold_users_come_back_less(grocer) -> None:
    by_tier = run(grocer, "retention", breakdown="tier").data["breakdown"].set_index("tier")["retention"]
    assert by_tier["gold"] < 0.6 * by_tier["basic"]


# ----------------------------------------------------------------------------- experiments


@pytest.mark.parametrize("kind", FILTERS)
def test_experiments_count_only_the_segments_users(grocer, kind: str) -> None:
    segment = FILTERS[kind]
    result = run(grocer, "experiments", segment=segment)
    check_contract(result, "all time", segment)
    want = variants(grocer, segment)
    table = result.table.set_index("variant")
    assert {v: (int(table.loc[v, "users"]), int(table.loc[v, "converted"])) for v in want} == want
    (n_c, x_c), (n_t, x_t) = want["control"], want["treatment"]
    assert rate(result.data["facts"], "lift") == pytest.approx((x_t / n_t - x_c / n_c) / (x_c / n_c))


def test_the_treatment_loses_in_the_nordics(grocer) -> None:
    nordics = run(grocer, "experiments", segment={"region": "nordics"})
    assert [(f.kind, f.segment["variant"]) for f in nordics.findings] == [("experiment_loser", "treatment")]
    assert "treatment loses" in first_paragraph(nordics)
    assert run(grocer, "experiments", segment={"region": ["iberia", "benelux"]}).findings == []


# ----------------------------------------------------------------------------- errors and speed


@pytest.mark.parametrize("kind", FILTERS)
@pytest.mark.parametrize("step", [None, "pay_submit"])
def test_errors_count_only_the_segments_sessions(grocer, kind: str, step: str | None) -> None:
    segment = FILTERS[kind]
    result = run(grocer, "errors_and_speed", period=PERIOD, segment=segment, step=step)
    check_contract(result, WORDS, segment, step=step)
    want = error_sessions(grocer, segment, step or STEPS[0]).iloc[0]
    assert rate(result.data["facts"], "sessions") == want["n"]
    assert rate(result.data["facts"], "error_rate") == pytest.approx(want["x"] / want["n"])
    if step:
        assert list(result.table["step"]) == [step]
        assert f"sessions reaching {step} hit an error" in first_paragraph(result)


@pytest.mark.parametrize(("by", "segment"), BREAKDOWNS, ids=[b for b, _ in BREAKDOWNS])
def test_errors_break_down_by_a_dimension_of_either_table(grocer, by: str, segment: dict) -> None:
    result = run(grocer, "errors_and_speed", period=PERIOD, segment=segment, step="pay_submit", breakdown=by)
    check_contract(result, WORDS, segment, by, "pay_submit")
    got = result.data["breakdown"].set_index(by)
    want = error_sessions(grocer, segment, "pay_submit", by).set_index("value")
    assert got["sessions"].to_dict() == want["n"].to_dict()
    assert got["error_rate"].to_dict() == pytest.approx((want["x"] / want["n"]).to_dict())
    assert set(result.table[by]) == set(want.index)


def test_errors_and_slow_menus_are_found_where_planted(grocer) -> None:
    result = run(grocer, "errors_and_speed", period=PERIOD)
    found = {(f.kind, f.step, tuple(f.segment.items())) for f in result.findings}
    assert ("error_spike", "pay_submit", (("region", "nordics"),)) in found
    assert ("slow_page", "browse_menu", (("device", "tablet"),)) in found


def test_a_step_outside_the_funnel_is_refused(grocer) -> None:
    with pytest.raises(ValueError, match="step 'menu_search' is not a step of the funnel"):
        run(grocer, "errors_and_speed", step="menu_search")


# ----------------------------------------------------------------------------- incidents


def kiosk_outage(result: ToolResult):
    return [f for f in result.findings if f.step == "order_placed" and f.segment.get("device") == "kiosk"]


@pytest.mark.parametrize("kind", FILTERS)
def test_incidents_are_those_that_touched_the_segment(grocer, kind: str) -> None:
    """The kiosk outage is reported for every segment whose sessions it hit, and named as what it hit."""
    segment = FILTERS[kind]
    result = run(grocer, "incidents", segment=segment)
    check_contract(result, "all time", segment)
    touched = rows(grocer, f"""SELECT count(*) AS n FROM (SELECT DISTINCT ON (session_id) * FROM events
        WHERE ts >= '2026-03-22' AND ts < '2026-03-30' ORDER BY session_id, ts) e JOIN users u USING (user_id)
        WHERE e.device = 'kiosk' AND {where(segment)}""")["n"].iloc[0]
    assert bool(kiosk_outage(result)) == (touched > 0), result.summary
    everyone = sum(not f.segment for f in result.findings)
    assert result.data["applied"]["hit_everyone"] == everyone
    assert rate(result.data["facts"], "incidents") == len(result.findings)
    assert f"{everyone} hit everyone" in first_paragraph(result) or not everyone


def test_the_kiosk_outage_is_dated_and_left_out_for_phones(grocer) -> None:
    everything = run(grocer, "incidents")
    (outage,) = kiosk_outage(everything)
    assert outage.detail["incident"]["start"] in ("2026-03-21", "2026-03-22", "2026-03-23")
    assert "Mar 2" in outage.title and "2026-" not in outage.title
    assert kiosk_outage(run(grocer, "incidents", segment={"device": "phone"})) == []
    assert kiosk_outage(run(grocer, "incidents", segment={"device": "phone"}, period="2026-03-01..2026-03-10")) == []


# ----------------------------------------------------------------------------- breakdowns the segment fixes


@pytest.mark.parametrize("tool", ["search_quality", "retention", "errors_and_speed"])
def test_a_breakdown_by_the_dimension_the_segment_fixes_is_refused(grocer, tool: str) -> None:
    with pytest.raises(ValueError, match="breakdown region"):
        run(grocer, tool, segment={"region": "nordics"}, breakdown="region")
    listed = run(grocer, tool, segment={"region": ["nordics", "iberia"]}, breakdown="region")
    assert set(listed.data["breakdown"]["region"]) == {"nordics", "iberia"}


@pytest.mark.parametrize("tool", ["search_quality", "retention", "experiments", "errors_and_speed", "incidents"])
def test_an_unknown_dimension_is_refused(grocer, tool: str) -> None:
    with pytest.raises(ValueError, match="colour"):
        run(grocer, tool, segment={"colour": "red"})


# ----------------------------------------------------------------------------- period-only tools


def test_the_scan_takes_a_period_only_and_says_which_days(grocer) -> None:
    result = run(grocer, "scan_frictions")
    check_contract(result, "all time", {})
    assert first_paragraph(result).startswith("Scan of all time (Mar 2 - Apr 12): ")
    assert rate(result.data["facts"], "suggestions") == len(result.data["report"].suggestions) > 0
    week = run(grocer, "scan_frictions", period="2026-W12")
    assert week.data["applied"]["period"] == "Mar 16-22" and first_paragraph(week).startswith("Scan of Mar 16-22: ")
    for tool in ("scan_frictions", "check_tracking"):
        with pytest.raises(ValidationError):
            TOOLS[tool].params(segment={"device": "kiosk"})


def test_tracking_speaks_of_the_period_in_words(grocer) -> None:
    result = run(grocer, "check_tracking", period=PERIOD)
    check_contract(result, WORDS, {})
    assert result.summary.startswith(f"Data quality ({WORDS}): ")
