"""The scope contract (issue 17): every slot a tool accepts is applied in every number it reports.

Each tool of the funnel, drop-off, cart, trend, metric and release analyses runs through the registry (as the
agent calls it) on a real DuckDB file, with every kind of segment filter (an events column, a users column, a
JSON property, a list of values, all mixed) and breakdowns by an events and by a users dimension. The data uses
GA4-like snake_case names with their own event map, and decoy columns: `events.country` and `users.plan` hold
values no filter asks for, while the map reads country from users and plan from events, so reading the wrong
table (or an ambiguous column) shows as a wrong number or an SQL error. Every expected number is counted here in
Python from the generated rows, not by SQL.

Planted: affiliate users (a users dimension) rarely get from begin_checkout to add_payment_info, and release
2.1 on android loses add_to_cart.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import get_args

import duckdb
import pandas as pd
import pytest

from data.schema import TABLES
from tools.format import money
from tools.registry import TOOLS
from tools.result import FactKind, ToolResult, segment_text
from tools.semantic.eventmap import parse_map
from tools.warehouse import Warehouse

T0 = datetime(2026, 3, 2)  # a Monday; the data covers Mar 2-29
STEPS = ("view_item", "add_to_cart", "begin_checkout", "add_payment_info", "purchase")
MAP = """
funnels: {shop: [view_item, add_to_cart, begin_checkout, add_payment_info, purchase]}
roles:
  order: {event: purchase, revenue: value}
  cart_add: {event: add_to_cart}
  checkout: {event: begin_checkout}
  release: {version: app_ver, platform: device}
dimensions:
  device: device
  app_ver: app_ver
  plan: plan
  tier: properties.tier
  country: users.country
  channel: users.channel
"""
PERIOD, START, END = "2026-03-16..2026-03-30", datetime(2026, 3, 16), datetime(2026, 3, 30)
BEFORE = (datetime(2026, 3, 2), START)  # the equal-length period just before
EVENT_DIMS, USER_DIMS = ("device", "app_ver", "plan"), ("country", "channel")

FILTERS = {
    "events column": {"device": "ios"},
    "users column": {"country": "BR"},
    "json property": {"tier": "gold"},
    "list": {"device": ["ios", "android"]},
    "mixed": {"plan": "pro", "country": ["BR", "DE"], "tier": "gold"},
}


# ----------------------------------------------------------------------------- the data


@dataclass(frozen=True)
class Row:
    """One event with every dimension of its user (as the map reads them)."""

    user: str
    session: str
    ts: datetime
    event: str
    dims: dict
    value: float | None


def generate(seed: int = 17, users: int = 600) -> tuple[list[Row], list[dict]]:
    """Users with four single-day sessions each; every session walks a prefix of the funnel."""
    rnd = random.Random(seed)
    rows: list[Row] = []
    people = []
    for u in range(users):
        person = {"user_id": f"u{u}", "signed_up_at": T0, "country": rnd.choice(("BR", "DE", "US", "JP")),
                  "channel": rnd.choice(("organic", "affiliate", "ads")), "plan": "zzz"}  # users.plan: a decoy
        people.append(person)
        device, plan = rnd.choice(("ios", "android", "web")), rnd.choice(("free", "free", "pro"))
        tier = rnd.choice(("basic", "gold"))
        for k, day in enumerate(rnd.sample(range(28), 4)):
            version = None if device == "web" else ("2.1" if day >= 12 and rnd.random() < 0.6 else "2.0")
            dims = {"device": device, "plan": plan, "tier": tier, "app_ver": version,
                    "country": person["country"], "channel": person["channel"]}
            add = 0.2 if (device, version) == ("android", "2.1") else 0.5
            pay = 0.3 if person["channel"] == "affiliate" else 0.8
            t = T0 + timedelta(days=day, minutes=rnd.randrange(600))
            for step, p in zip(STEPS, (1.0, add, 0.6, pay, 0.85)):
                if rnd.random() >= p:
                    break
                value = float(rnd.randrange(20, 120)) if step == "purchase" else None
                rows.append(Row(f"u{u}", f"u{u}-s{k}", t, step, dims, value))
                t += timedelta(minutes=1)
    return rows, people


def write(path: Path, rows: list[Row], people: list[dict]) -> Path:
    """A DuckDB file: events with the events dimensions, a JSON property and a decoy `country` column;
    users with the users dimensions and a decoy `plan` column."""
    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE users (user_id VARCHAR, signed_up_at TIMESTAMP, country VARCHAR, channel VARCHAR, "
                "plan VARCHAR)")
    con.execute("CREATE TABLE events (event_id VARCHAR, ts TIMESTAMP, user_id VARCHAR, session_id VARCHAR, "
                "event VARCHAR, device VARCHAR, app_ver VARCHAR, plan VARCHAR, country VARCHAR, value DOUBLE, "
                "properties JSON)")
    for table, columns in TABLES.items():
        if table not in ("events", "users"):
            con.execute(f"CREATE TABLE {table} ({', '.join(f'{c} {t}' for c, t in columns.items())})")
    events = pd.DataFrame([{
        "event_id": f"e{i}", "ts": r.ts, "user_id": r.user, "session_id": r.session, "event": r.event,
        "device": r.dims["device"], "app_ver": r.dims["app_ver"], "plan": r.dims["plan"], "country": "XX",
        "value": r.value, "properties": json.dumps({"tier": r.dims["tier"]})} for i, r in enumerate(rows)])
    con.register("new_events", events)
    con.execute("INSERT INTO events SELECT * FROM new_events")
    con.register("new_users", pd.DataFrame(people))
    con.execute("INSERT INTO users SELECT user_id, signed_up_at, country, channel, plan FROM new_users")
    con.close()
    return path


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> tuple[Warehouse, list[Row]]:
    rows, people = generate()
    db = write(tmp_path_factory.mktemp("scope") / "ga4.duckdb", rows, people)
    wh = Warehouse(db, event_map=parse_map(MAP, "test map"))
    yield wh, rows
    wh.close()


# ----------------------------------------------------------------------------- expected numbers, in Python


def matches(row: Row, segment: dict) -> bool:
    return all(row.dims[d] in (v if isinstance(v, list) else [v]) for d, v in segment.items())


def inside(row: Row, start: datetime = START, end: datetime = END) -> bool:
    return start <= row.ts < end


def entered(rows: list[Row], segment: dict, event: str = STEPS[0]) -> int:
    """Users with the event in the period, in the segment (every user's dimensions but app_ver are fixed)."""
    return len({r.user for r in rows if r.event == event and inside(r) and matches(r, segment)})


def converted(rows: list[Row], segment: dict) -> int:
    """Users with a purchase in the period (sessions walk the funnel in order, within minutes)."""
    return entered(rows, segment, STEPS[-1])


def ordered_after_add(rows: list[Row], segment: dict, window: timedelta = timedelta(days=7)) -> int:
    """Users adding to cart in the period who order within the window of one of their adds."""
    adds = [r for r in rows if r.event == "add_to_cart" and inside(r) and matches(r, segment)]
    orders = [r for r in rows if r.event == "purchase"]
    return len({a.user for a in adds if any(o.user == a.user and a.ts <= o.ts <= a.ts + window for o in orders)})


def orders(rows: list[Row], segment: dict, start: datetime = START, end: datetime = END) -> int:
    return sum(r.event == "purchase" and inside(r, start, end) and matches(r, segment) for r in rows)


def revenue(rows: list[Row], segment: dict, start: datetime = START, end: datetime = END) -> float:
    return sum(r.value for r in rows if r.event == "purchase" and inside(r, start, end) and matches(r, segment))


def session_conversion(rows: list[Row], segment: dict) -> float:
    sessions = {r.session for r in rows if inside(r) and matches(r, segment)}
    bought = {r.session for r in rows if r.event == "purchase" and inside(r) and matches(r, segment)}
    return len(bought) / len(sessions)


def run(wh: Warehouse, tool: str, **args) -> ToolResult:
    t = TOOLS[tool]
    return t.run(wh, t.params(**args))


def first_paragraph(result: ToolResult) -> str:
    return result.summary.split("\n\nDetails:")[0]


def check_contract(result: ToolResult, segment: dict, breakdown: str | None = None) -> None:
    """applied says what was passed; facts are JSON scalars of a known kind; the verdict speaks PM."""
    applied = result.data["applied"]
    assert applied["period"] == "Mar 16-29"
    assert applied["segment"] == segment and applied["breakdown"] == breakdown
    assert {"period", "segment", "breakdown", "step", "compare"} <= set(applied)
    json.dumps(result.data["facts"])
    assert all(f["kind"] in get_args(FactKind) for f in result.data["facts"].values())
    head = first_paragraph(result)
    for analyst in ("e+0", "p=", "p<", "BH", "q<", "period 2026", "rate +0.0", "mix -0.0", "mix +0.0"):
        assert analyst not in head, f"{analyst!r} in the verdict: {head}"
    if segment:
        assert segment_text(segment) in head


# ----------------------------------------------------------------------------- every tool, every filter

NUMBER: dict[str, tuple[dict, Callable[[ToolResult, list[Row], dict], None]]] = {
    "funnel": ({}, lambda r, rows, seg: (
        r.data["facts"]["entered"]["value"] == entered(rows, seg) and r.data["facts"]["converted"]["value"]
        == converted(rows, seg)) or pytest.fail(f"funnel {r.data['facts']} vs {entered(rows, seg)}")),
    "cart_abandonment": ({}, lambda r, rows, seg: (
        r.data["added"] == entered(rows, seg, "add_to_cart") and r.data["ordered"] == ordered_after_add(rows, seg))
        or pytest.fail(f"cart {r.data['added']}, {r.data['ordered']}")),
    "trends": ({"metric": "orders"}, lambda r, rows, seg: (
        r.data["facts"]["value"]["value"] == orders(rows, seg) and r.data["facts"]["previous"]["value"]
        == orders(rows, seg, *BEFORE)) or pytest.fail(f"trends {r.data['facts']}")),
    "metric": ({"metric": "revenue"}, lambda r, rows, seg: (
        r.data["facts"]["value"]["value"] == pytest.approx(revenue(rows, seg)) and r.data["facts"]["previous"]
        ["value"] == pytest.approx(revenue(rows, seg, *BEFORE))) or pytest.fail(f"metric {r.data['facts']}")),
    "dropoffs": ({}, lambda r, rows, seg: None),
    "release_regressions": ({}, lambda r, rows, seg: None),
}


@pytest.mark.parametrize("kind", FILTERS)
@pytest.mark.parametrize("tool", NUMBER)
def test_every_tool_applies_every_kind_of_filter(shop, tool: str, kind: str) -> None:
    wh, rows = shop
    segment = FILTERS[kind]
    args, check_number = NUMBER[tool]
    result = run(wh, tool, period=PERIOD, segment=segment, **args)
    check_contract(result, segment)
    check_number(result, rows, segment)


BREAKDOWNS = [("device", {"country": "BR"}), ("country", {"plan": "pro"}), ("tier", {"channel": "organic"}),
              ("channel", {"device": ["ios", "android"], "tier": "basic"})]


@pytest.mark.parametrize(("by", "segment"), BREAKDOWNS, ids=[b for b, _ in BREAKDOWNS])
def test_funnel_and_cart_break_down_by_a_dimension_of_either_table(shop, by: str, segment: dict) -> None:
    wh, rows = shop
    values = sorted({r.dims[by] for r in rows})
    funnel = run(wh, "funnel", period=PERIOD, segment=segment, breakdown=by)
    check_contract(funnel, segment, by)
    table = funnel.data["breakdown"].set_index(by)
    assert {v: int(table.loc[v, "entered"]) for v in values} == {
        v: entered(rows, {**segment, by: v}) for v in values}
    cart = run(wh, "cart_abandonment", period=PERIOD, segment=segment, breakdown=by)
    check_contract(cart, segment, by)
    table = cart.data["breakdown"].set_index(by)
    assert {v: int(table.loc[v, "added"]) for v in values} == {
        v: entered(rows, {**segment, by: v}, "add_to_cart") for v in values}


@pytest.mark.parametrize(("by", "segment"), BREAKDOWNS, ids=[b for b, _ in BREAKDOWNS])
def test_metric_and_trends_break_down_by_a_dimension_of_either_table(shop, by: str, segment: dict) -> None:
    wh, rows = shop
    values = sorted({r.dims[by] for r in rows})
    metric = run(wh, "metric", metric="conversion_rate", period=PERIOD, segment=segment, breakdown=by)
    check_contract(metric, segment, by)
    table = metric.data["breakdown"].set_index(by)["value"]
    assert table.to_dict() == pytest.approx({v: session_conversion(rows, {**segment, by: v}) for v in values})
    assert metric.data["facts"]["value"]["value"] == pytest.approx(session_conversion(rows, segment))
    rate = run(wh, "trends", metric="conversion_rate", period=PERIOD, segment=segment, dimension=by)
    check_contract(rate, segment, by)
    assert rate.data["facts"]["value"]["value"] == pytest.approx(session_conversion(rows, segment))
    assert rate.data["explain"]["total"].sum() == pytest.approx(
        rate.data["facts"]["value"]["value"] - rate.data["facts"]["previous"]["value"], abs=1e-9)
    count = run(wh, "trends", metric="orders", period=PERIOD, segment=segment, dimension=by)
    check_contract(count, segment, by)
    now = count.data["explain"].set_index(by)["value_now"]
    assert {v: now.get(v, 0.0) for v in values} == {v: orders(rows, {**segment, by: v}) for v in values}


def test_the_ambiguous_column_question_runs(shop) -> None:
    """"daily conversion trend by country for pro plan users": country lives in users and (as a decoy) in
    events, plan in events and (as a decoy) in users."""
    wh, rows = shop
    result = run(wh, "trends", metric="conversion_rate", period=PERIOD, dimension="country", segment={"plan": "pro"})
    assert result.data["facts"]["value"]["value"] == pytest.approx(session_conversion(rows, {"plan": "pro"}))
    assert "Change by country:" in result.summary


# ----------------------------------------------------------------------------- the slots of each tool


def test_dropoffs_at_one_step_within_a_segment_find_the_planted_segment(shop) -> None:
    """"Which segments drop off at payment, on iOS?": only add_payment_info rows, only iOS sessions."""
    wh, rows = shop
    result = run(wh, "dropoffs", period=PERIOD, segment={"device": "ios"}, step="add_payment_info")
    assert result.data["applied"]["step"] == "add_payment_info"
    assert {f.step for f in result.findings} == {"add_payment_info"}
    worst = result.findings[0]
    assert worst.segment == {"channel": "affiliate"}
    segment = {"device": "ios", "channel": "affiliate"}
    reached = {r.session for r in rows if r.event == "begin_checkout" and inside(r) and matches(r, segment)}
    paid = {r.session for r in rows if r.event == "add_payment_info" and inside(r) and matches(r, segment)}
    assert (worst.detail["entered"], worst.detail["converted"]) == (len(reached), len(paid))
    assert result.data["facts"]["worst_rate"]["value"] == pytest.approx(len(paid) / len(reached))
    assert result.data["facts"]["segments"]["value"] == len(result.findings)
    assert first_paragraph(result).startswith("1 segment converts significantly worse than the rest at "
                                              "add_payment_info (per session, Mar 16-29, device=ios)")
    everywhere = run(wh, "dropoffs", period=PERIOD)
    assert {f.step for f in everywhere.findings} > {"add_payment_info"}


def test_dropoffs_refuse_a_step_that_nothing_drops_into(shop) -> None:
    wh, _ = shop
    with pytest.raises(ValueError, match="step 'view_item'"):
        run(wh, "dropoffs", period=PERIOD, step="view_item")


def test_release_regressions_within_a_segment(shop) -> None:
    wh, _ = shop
    android = run(wh, "release_regressions", segment={"device": "android"})
    assert [(f.detail["platform"], f.detail["version"], f.step) for f in android.findings] == [
        ("android", "2.1", "add_to_cart")]
    assert android.data["facts"]["regressions"]["value"] == 1
    assert run(wh, "release_regressions", segment={"device": "ios"}).findings == []
    named = run(wh, "release_regressions", segment={"app_ver": "2.0"})
    assert named.findings == [] and named.data["applied"]["segment"] == {"app_ver": "2.0"}


def test_trends_and_metric_report_a_total_against_the_period_before(shop) -> None:
    """"How much revenue did we make in the last two weeks?": a total with its comparison, in money words."""
    wh, rows = shop
    now, before = revenue(rows, {}), revenue(rows, {}, *BEFORE)
    for tool in ("trends", "metric"):
        result = run(wh, tool, metric="revenue", period=PERIOD)
        facts = result.data["facts"]
        assert (facts["value"]["kind"], facts["value"]["value"]) == ("money", pytest.approx(now))
        assert facts["previous"]["value"] == pytest.approx(before)
        assert facts["change"]["value"] == pytest.approx((now - before) / before)
        assert result.data["applied"]["compare"] == "Mar 2-15"
        assert first_paragraph(result).startswith(f"Revenue: {money(now)} in Mar 16-29, ")
        assert "on the 14 days before" in first_paragraph(result)


def test_a_comparison_period_can_be_named(shop) -> None:
    wh, rows = shop
    result = run(wh, "trends", metric="orders", period="2026-W12", compare="2026-W10")
    assert result.data["applied"]["compare"] == "Mar 2-8"
    weeks = [(datetime(2026, 3, 16), datetime(2026, 3, 23)), (datetime(2026, 3, 2), datetime(2026, 3, 9))]
    assert [result.data["facts"][k]["value"] for k in ("value", "previous")] == [orders(rows, {}, *w) for w in weeks]
    assert "on Mar 2-8" in first_paragraph(result)


def test_cart_says_per_user_and_per_session_once_each(shop) -> None:
    wh, _ = shop
    text = first_paragraph(run(wh, "cart_abandonment", period=PERIOD))
    assert text.count("per user") == 1 and text.count("per session") == 1


@pytest.mark.parametrize("tool,args", [
    ("funnel", {"breakdown": "device"}), ("cart_abandonment", {"breakdown": "device"}),
    ("trends", {"dimension": "device"}), ("metric", {"metric": "orders", "breakdown": "device"})])
def test_a_breakdown_by_the_dimension_the_segment_fixes_is_refused(shop, tool: str, args: dict) -> None:
    wh, _ = shop
    with pytest.raises(ValueError, match="breakdown device"):
        run(wh, tool, segment={"device": "ios"}, **args)
    by_platform = run(wh, tool, period=PERIOD, segment={"device": ["ios", "android"]}, **args)  # mobile, by device
    assert by_platform.data["applied"]["breakdown"] == "device"


@pytest.mark.parametrize("tool", NUMBER)
def test_an_empty_list_matches_nobody_and_is_refused(shop, tool: str) -> None:
    wh, _ = shop
    with pytest.raises(ValueError, match="segment device"):
        run(wh, tool, segment={"device": []}, **NUMBER[tool][0])
