"""The phrasing benchmark itself works: its sets parse and fit the contract and the data, its scoring is right
on hand-built answers, and its runner asks the real agent end to end. The agent's score is not asserted here."""

from __future__ import annotations

import json
import re
from dataclasses import asdict
from pathlib import Path

import pytest

from agent.api import Answer, InsightAgent, Step
from benchmarks.phrasing import (
    CONTRACT_SLOTS,
    DECLINE,
    SETS,
    Call,
    Expected,
    Item,
    Scope,
    expected_result,
    heading,
    load_set,
    run_items,
    scope_violations,
    score_item,
    slot_problems,
    stated_direction,
    summarize,
    validate,
)
from data.generate import generate
from data.scenario import load_scenario
from tools.registry import TOOLS
from tools.semantic.eventmap import shipped_map


@pytest.fixture(scope="module")
def agent(tmp_path_factory) -> InsightAgent:
    """The real agent (offline analyst) on a small demo: the demo scenario with few users, same dates."""
    root = tmp_path_factory.mktemp("phrasing")
    db = root / "demo.duckdb"
    generate(load_scenario("demo").model_copy(update={"users": 1500}), db)
    with InsightAgent(db, llm=None, state_dir=root / "state") as agent:
        yield agent


@pytest.fixture(scope="module")
def scope(agent) -> Scope:
    return Scope.from_warehouse(agent.warehouse)


@pytest.fixture(scope="module")
def sets() -> dict[str, list[Item]]:
    return {name: load_set(name)[0] for name in SETS}


def answer(text: str, *steps: Step) -> Answer:
    return Answer(text=text, steps=list(steps))


def step(tool: str, ms: float | None = 5.0, **args) -> Step:
    return Step(tool=tool, args=args, ms=ms)


# ------------------------------------------------------------------------------------------ the sets

def test_the_sets_parse_and_fit_the_contract_the_map_and_the_data(sets, agent, scope):
    dev, dev2, dev3, test = sets["dev"], sets["dev2"], sets["dev3"], sets["test"]
    assert len(dev) + len(test) >= 300 and len(dev) >= 170 and len(test) >= 120 and len(dev2) >= 140
    assert len(dev3) >= 110 and len(sets["dev4"]) >= 120 and len(sets["dev5"]) >= 110
    assert len(sets["dev6"]) >= 110 and len(sets["dev7"]) >= 100 and len(sets["dev8"]) >= 110
    assert len(sets["dev9"]) >= 110
    every = [item for items in sets.values() for item in items]
    assert len({i.id for i in every}) == len(every)  # ids are unique within and across the sets
    for name in SETS:
        if name not in ("dev", "test"):  # dev2-001, ..., dev9-126
            assert all(i.id.startswith(f"{name}-") for i in sets[name]), name
    experiments = agent.warehouse.query("SELECT experiment_id FROM experiments").df["experiment_id"]
    assert validate(every, shipped_map("demo"), experiments) == []
    for name, items in sets.items():
        assert load_set(name)[1] == str(scope.data_end.date())  # the periods were written for this end
        assert {i.tool for i in items} == {*CONTRACT_SLOTS, DECLINE}, f"{name} misses an analysis"
        assert sum(i.premise is not None for i in items) >= 5 and sum(i.decline for i in items) >= 5
        assert sum(bool(i.context) for i in items) >= 10


def test_every_tool_and_segment_key_exists(sets):
    dims = shipped_map("demo").dims
    for item in (item for items in sets.values() for item in items):
        for call in item.calls:
            assert call.tool in TOOLS, item.id
            assert set(call.args.get("segment") or {}) <= set(dims), item.id


def test_no_set_repeats_a_question_of_another(sets):
    # compared as normalized strings; a failure names only the dev ids, so no one reads test.yaml to check dev2/dev3
    def words(q: str) -> str:
        return " ".join(re.findall(r"[a-z0-9]+", q.lower()))

    earlier = {words(i.question) for i in sets["test"]}
    for name in (n for n in SETS if n != "test"):  # each development set against test and the sets before it
        assert not [i.id for i in sets[name] if words(i.question) in earlier]
        earlier |= {words(i.question) for i in sets[name]}


def test_validate_names_what_is_wrong():
    bad = [Item("x1", "q", calls=(Call("funel", {}, "conversion"),)),
           Item("x2", "q", calls=(Call("funnel", {"segment": {"platfrom": "ios"}}, "conversion"),)),
           Item("x3", "q", calls=(Call("funnel", {}, "lift"),)),
           Item("x4", "q", calls=(Call("scan_frictions", {"segment": {"platform": "ios"}}, "suggestions"),)),
           Item("x5", "q", calls=(Call("trends", {"metric": "revenue", "period": "last week"}, "change"),),
                premise="drop"),
           Item("x6", "q", calls=(Call("funnel", {"segment": {"country": "BR"}, "breakdown": "country"},
                                       "conversion"),))]
    problems = " ".join(validate(bad, shipped_map("demo")))
    for expected in ("'funel'", "'platfrom'", "'lift'", "no slot 'segment'", "last week", "which the segment fixes"):
        assert expected in problems


# ------------------------------------------------------------------------------------------ scoring

MOBILE_WEEK = Item("h1", "conv for mobile last wk", calls=(
    Call("funnel", {"period": "last_7_days", "segment": {"platform": ["ios", "android"]}}, "conversion"),))
FACTS = {MOBILE_WEEK.calls[0].key(): Expected(facts={"conversion": {"value": 0.0412, "kind": "rate"}})}
RIGHT_TEXT = "**Purchase funnel for mobile, Nov 16-22: 4.1% of users converted.**\n\nDetails: ..."


def test_a_right_answer_scores_right(scope):
    # the week by its ISO name and the segment in another order are the same slots
    s = score_item(MOBILE_WEEK, answer(RIGHT_TEXT, step("funnel", period="2026-W47",
                                                       segment={"platform": ["android", "ios"]})), FACTS, scope)
    assert (s.analysis, s.slots, s.number, s.full, s.violations) == (True, True, True, True, [])


@pytest.mark.parametrize("text, steps, wrong", [
    # the filter was dropped, and the heading still claims it
    (RIGHT_TEXT, [step("funnel", period="last_7_days")], {"slots", "scope"}),
    # another analysis; a step still running; another period
    (RIGHT_TEXT, [step("dropoffs", period="last_7_days", segment={"platform": ["ios", "android"]})],
     {"analysis", "slots"}),
    (RIGHT_TEXT, [step("funnel", ms=None, period="last_7_days", segment={"platform": ["ios", "android"]})],
     {"analysis", "slots"}),
    ("**Purchase funnel for mobile, Oct 24 - Nov 22: 4.1%**",
     [step("funnel", period="last_30_days", segment={"platform": ["ios", "android"]})], {"slots"}),
    # a part of the segment; another number; a number that only contains the right one
    (RIGHT_TEXT, [step("funnel", period="last_7_days", segment={"platform": "ios"})], {"slots", "scope"}),
    ("**Purchase funnel for mobile, Nov 16-22: 4.2%**", [step("funnel", period="last_7_days",
                                                             segment={"platform": ["ios", "android"]})], {"number"}),
    ("**Purchase funnel for mobile, Nov 16-22: 14.1%**", [step("funnel", period="last_7_days",
                                                              segment={"platform": ["ios", "android"]})], {"number"}),
])
def test_a_wrong_answer_scores_wrong(scope, text, steps, wrong):
    s = score_item(MOBILE_WEEK, answer(text, *steps), FACTS, scope)
    assert not s.full
    got = {k for k in ("analysis", "slots", "number") if not getattr(s, k)} | ({"scope"} if s.violations else set())
    assert got == wrong, (s.problems, s.violations)


def test_a_tool_without_facts_or_an_expected_call_that_raises_is_wrong_not_fatal(scope, agent):
    item = Item("h2", "funnel", calls=(Call("funnel", {}, "conversion"),))
    no_facts = score_item(item, answer("4.1%", step("funnel")), {item.calls[0].key(): Expected()}, scope)
    assert no_facts.analysis and no_facts.slots and not no_facts.number and not no_facts.full
    broken = expected_result(agent.warehouse, Call("funnel", {"segment": {"no_such_dim": "x"}}, "conversion"))
    assert broken.error
    s = score_item(item, answer("4.1%", step("funnel")), {item.calls[0].key(): broken}, scope)
    assert s.error == broken.error and not s.number


def test_slots_compare_periods_by_dates_and_know_the_contract_defaults(scope):
    assert slot_problems({"period": "last_7_days"}, {"period": "2026-11-16..2026-11-23"}, scope) == []
    assert slot_problems({"period": "all"}, {}, scope) == []
    assert slot_problems({"week_n": 1}, {}, scope) == []
    # no compare: the equal span before the period, which for the last 7 days is the ISO week before
    assert slot_problems({"compare": "2026-W46"}, {"period": "last_7_days"}, scope) == []
    assert slot_problems({"compare": "2026-W45"}, {"period": "last_7_days"}, scope)
    assert slot_problems({"metric": "revenue"}, {"metric": "Revenue"}, scope) == []
    assert slot_problems({"step": "Payment Info Entered"}, {}, scope)
    assert slot_problems({"segment": {"country": "BR"}}, {"segment": {"country": "BR", "plan": "pro"}}, scope)
    assert slot_problems({"signup_period": "2026-09-21..2026-10-01"}, {"period": "2026-09-21..2026-10-01"}, scope)


def test_an_accepted_alternative_scores_right(scope):
    item = Item("h3", "conv by platform", calls=(
        Call("metric", {"metric": "conversion_rate", "breakdown": "platform"}, "value"),
        Call("funnel", {"breakdown": "platform"}, "conversion")))
    facts = {item.calls[0].key(): Expected(facts={"value": {"value": 0.037, "kind": "rate"}}),
             item.calls[1].key(): Expected(facts={"conversion": {"value": 0.174, "kind": "rate"}})}
    s = score_item(item, answer("**Funnel by platform: 17.4%**", step("funnel", breakdown="platform")), facts, scope)
    assert s.full and s.matched == "funnel"


PREMISE = Item("h4", "Why did checkout conversion drop last week?", premise="drop", calls=(
    Call("trends", {"metric": "conversion_rate", "period": "last_7_days"}, "change"),))
ROSE = {PREMISE.calls[0].key(): Expected(facts={"change": {"value": 0.183, "kind": "change"}})}


@pytest.mark.parametrize("text, right", [
    ("Checkout conversion rose 18% last week (4.1% vs 3.5%); it did not drop.", True),
    ("It did not drop: checkout conversion is up +18% on the week before.", True),
    ("Checkout conversion dropped for these segments; overall +18%.", False),
    ("Here is how the metric moved: +18%.", False),
])
def test_a_premise_is_checked_against_the_measured_direction(scope, text, right):
    s = score_item(PREMISE, answer(text, step("trends", metric="conversion_rate", period="last_7_days")), ROSE, scope)
    assert s.premise is right and s.full  # the premise is its own score


def test_stated_direction_skips_negations_and_drop_offs():
    assert stated_direction("The drop-off at payment is 30%; revenue fell 8%.") == "drop"
    assert stated_direction("Orders didn't fall; they increased 22%.") == "rise"
    assert stated_direction("Sign up to see more. Nothing moved.") is None


def test_a_decline_is_right_only_without_tools(scope):
    item = Item("h5", "Will it rain tomorrow?")
    text = "I can't answer that from the event data: forecasts are not something I compute."
    assert score_item(item, answer(text), {}, scope).full
    assert not score_item(item, answer(text, step("trends")), {}, scope).full
    assert not score_item(item, answer("Revenue was $87.5k."), {}, scope).full


@pytest.mark.parametrize("head, steps, violations", [
    ("Funnel for country = BR", [{"tool": "funnel", "args": {}}], 1),
    ("**Funnel for acquisition_channel = paid_search**", [{"tool": "funnel", "args": {}}], 1),
    ("Funnel for Brazil", [{"tool": "funnel", "args": {"segment": {"country": "BR"}}}], 0),
    ("Brazil converts worst at payment", [{"tool": "dropoffs", "args": {}}], 0),  # a finding, not a scope
    ("Funnel by country", [{"tool": "funnel", "args": {}}], 1),
    ("Funnel by country", [{"tool": "funnel", "args": {"breakdown": "country"}}], 0),
    ("Funnel, Nov 16-22", [{"tool": "funnel", "args": {"period": "all"}}], 1),
    ("Funnel, Nov 16-22", [{"tool": "funnel", "args": {"period": "last_7_days"}}], 0),
    ("Conversion last week", [{"tool": "funnel", "args": {"period": "last_30_days"}}], 1),
    ("Funnel for mobile users", [{"tool": "funnel", "args": {"segment": {"platform": "ios"}}}], 1),
    ("Retention of the late September signups", [{"tool": "retention", "args": {}}], 0),
    ("Revenue in October", [{"tool": "metric", "args": {"period": "2026-10-01..2026-11-01"}}], 0),
    ("Revenue in October", [{"tool": "metric", "args": {"period": "2026-09-01..2026-10-01"}}], 1),
    ("Is the free plan converting? Funnel for pro users", [{"tool": "funnel", "args": {"segment": {"plan": "pro"}}}],
     1),
])
def test_scope_honesty_of_the_heading(scope, head, steps, violations):
    found = scope_violations(heading(head), steps, scope)
    assert len(found) == violations, found


# ------------------------------------------------------------------------------------------ the runner

def test_the_runner_asks_the_agent_end_to_end(agent, scope, sets, tmp_path: Path):
    by_tool: dict[str, Item] = {}
    for item in sets["dev"]:
        by_tool.setdefault(item.tool, item)
    items = list(by_tool.values())[:11] + [next(i for i in sets["dev"] if i.context)]
    seen = []
    scores = run_items(agent, items, scope, progress=lambda done, total, s: seen.append((done, total)))
    assert [s.id for s in scores] == [i.id for i in items] and seen[-1] == (len(items), len(items))
    for s, item in zip(scores, items):
        assert s.seconds is not None and s.seconds >= 0, s.problems
        if item.decline:
            assert s.decline is not None and s.analysis is None
        else:
            assert {type(s.analysis), type(s.slots), type(s.number)} == {bool}
    summary = summarize(scores)
    assert summary["n"] == len(items) and set(summary["per_tool"]) == {i.tool for i in items}
    (tmp_path / "out.json").write_text(json.dumps([asdict(s) for s in scores], default=str))
