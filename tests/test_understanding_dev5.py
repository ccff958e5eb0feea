"""Understanding added while tuning on the fifth phrasing development set (benchmarks/phrasing/dev5.yaml): more
everyday words for the analyses ("stage by stage", "walk away", "money on the table", "lift"), day-first dates and
"month to date" comparisons, apps compared with the web, follow-ups that switch a value, and spelling correction
that no longer turns ordinary words into cues ("whether" is not "weather", "switch" is not SQL's "with"). End to
end with the real offline analyst on a generated demo database, and parsed against data that is not ours (GA4-style
values)."""

from __future__ import annotations

import pytest

from agent.api import InsightAgent
from agent.intents import Vocabulary, parse
from agent.timewords import comparison, period
from tests.answers import assert_declined, assert_first_step, ran

END = "2026-11-23"
GA4 = Vocabulary(
    dimensions={"platform": ["ANDROID", "IOS", "WEB"], "os": ["Android", "iOS", "Windows", "macOS"],
                "country": ["Brazil", "Germany", "Japan", "United States"],
                "traffic_source_medium": ["cpc", "email", "organic"], "plan": ["free", "pro"]},
    data_end=END, steps=["view_item", "add_to_cart", "begin_checkout", "add_payment_info", "purchase"],
    metrics={"revenue": "Revenue", "orders": "Orders", "sessions": "Sessions", "aov": "Average order value",
             "conversion_rate": "Conversion rate", "cart_adders": "Cart adders",
             "buyers_among_adders": "Buyers among cart adders", "cart_abandonment": "Cart abandonment",
             "searches": "Searches", "add_to_cart_rate": "Add-to-cart rate", "error_rate": "Error rate"},
    experiments={"exp_onboarding": "New onboarding"},
    concepts={"platform": "platform", "os": "os", "country": "country", "channel": "traffic_source_medium",
              "plan": "plan"})


# ------------------------------------------------------------------------------ end to end, offline analyst

@pytest.mark.parametrize(("question", "tool", "args"), [
    ("stage-by-stage numbers for shoppers who came via the newsletter", "funnel",
     {"segment": {"acquisition_channel": "email"}}),
    ("out of everyone who viewed an item in Q3, how many completed an order?", "funnel",
     {"period": "2026-07-01..2026-10-01"}),
    ("How many visitors on a MacBook got from the product page through to an order?", "funnel",
     {"segment": {"os": "macos"}}),
    ("funnel for the plus tier, since 1 October", "funnel",
     {"segment": {"plan": "plus"}, "period": "2026-10-01..2026-11-23"}),
    ("segment breakdown of where Safari sessions exit the funnel", "dropoffs", {"segment": {"browser": "safari"}}),
    ("how often do people put stuff in the cart and then walk away, on android", "cart_abandonment",
     {"segment": {"platform": "android"}}),
    ("% of started checkouts that get dropped, edge users, past 2 months", "cart_abandonment",
     {"segment": {"browser": "edge"}, "period": "last_60_days"}),
    ("did the add to cart rate get worse on iPhone in week 47?", "trends",
     {"metric": "add_to_cart_rate", "period": "2026-W47"}),
    ("any spikes in cart abandonment in the second half of October?", "trends",
     {"metric": "cart_abandonment", "period": "2026-10-16..2026-11-01"}),
    ("conversion rate month to date vs last month, mobile", "metric",
     {"metric": "conversion_rate", "period": "2026-11-01..2026-11-23", "compare": "2026-10-01..2026-11-01"}),
    ("of the people who added items to the basket in October, what share ended up paying?", "metric",
     {"metric": "buyers_among_adders"}),
    ("Did we sell more in October than in September?", "metric",
     {"metric": "revenue", "period": "2026-10-01..2026-11-01", "compare": "2026-09-01..2026-10-01"}),
    ("what share of the October signups came back in week 2", "retention",
     {"week_n": 2, "signup_period": "2026-10-01..2026-11-01"}),
    ("week 3 retention, web vs app", "retention", {"week_n": 3, "breakdown": "platform"}),
    ("are users who registered in early November returning?", "retention",
     {"signup_period": "2026-11-01..2026-11-11"}),
    ("how much did the new onboarding lift orders among mobile users?", "experiments",
     {"experiment_id": "exp_onboarding"}),
    ("check whether any new build hurt conversion for Japanese users", "release_regressions",
     {"segment": {"country": "JP"}}),
    ("what are the top three things to fix this month?", "scan_frictions", {"period": "2026-11-01..2026-11-23"}),
    ("where are we leaving the most money on the table?", "scan_frictions", {}),
    ("which issues deserve our attention from week 46?", "scan_frictions", {"period": "2026-W46"}),
])
def test_new_phrasings_run_the_right_analysis_with_their_slots(offline: InsightAgent, question: str, tool: str,
                                                                args: dict) -> None:
    assert_first_step(offline.ask(question, f"dev5-{abs(hash(question))}"), tool, args)


@pytest.mark.parametrize("question", [
    "how many users unsubscribed from push notifications?", "draft a slack message announcing the funnel results",
    "what's our market share in Brazil?", "what's the salary budget for the data team?",
])
def test_questions_outside_the_data_are_declined(offline: InsightAgent, question: str) -> None:
    assert_declined(offline.ask(question, f"decline-{abs(hash(question))}"))


def test_follow_ups_switch_a_value_reshape_or_go_deeper_on_an_item(offline: InsightAgent) -> None:
    offline.ask("conversion funnel pls, canada, last six weeks", "switch")
    assert ran(offline.ask("switch to Japan", "switch")) == [
        ("funnel", {"period": "last_42_days", "segment": {"country": "JP"}, "entity": "users"})]
    offline.ask("stage-by-stage numbers for shoppers who came via the newsletter, 2026-W43", "reshape")
    ((tool, args),) = ran(offline.ask("split it by device", "reshape"))
    assert (tool, args["breakdown"], args["segment"]) == ("funnel", "platform", {"acquisition_channel": "email"})
    offline.ask("What should we fix first?", "sixth")
    steps = ran(offline.ask("unpack the sixth item", "sixth"))
    assert [t for t, _ in steps][0] == "scan_frictions" and len(steps) == 2  # the list, then its sixth item
    offline.ask("where are we leaving the most money on the table?", "about")
    steps = ran(offline.ask("what's the first one about?", "about"))
    assert [t for t, _ in steps][0] == "scan_frictions" and len(steps) == 2


def test_a_presumed_shrink_gets_the_measured_direction_first(offline: InsightAgent) -> None:
    answer = offline.ask("has revenue from India been shrinking over the last 6 weeks?", "shrink")
    ((tool, args),) = ran(answer)
    assert (tool, args["metric"], args["period"]) == ("trends", "revenue", "last_42_days")
    second = answer.text.split("\n\n")[1]
    assert " rose " in second or " fell " in second or "did not" in second


# ------------------------------------------------------------------------------ parsing, on data that is not ours

def test_time_words() -> None:
    end = GA4.end
    assert period("since 1 october", end) == "2026-10-01..2026-11-23"
    assert period("between 5th of oct and 18 oct", end) == "2026-10-05..2026-10-19"
    assert period("the second week of october", end) == "2026-10-08..2026-10-15"
    assert period("last six weeks", end) == "last_42_days"
    assert period("version 5.7 in october", end) == "2026-10-01..2026-11-01"  # a version is no day of a month
    assert period("sessions between 1 and 15 October", end) == "2026-10-01..2026-10-16"
    assert period("funnel from 3rd to 9th November", end) == period("orders nov 3-9", end) == "2026-11-03..2026-11-10"
    assert period("how many orders on Nov 12", end) == period("conversion on 12 November", end) == (
        "2026-11-12..2026-11-13")
    assert period("orders in the last 48 hours", end) == "last_2_days"
    assert period("revenue for October 2026", end) == "2026-10-01..2026-11-01"
    assert period("do they stick with us past week one?", end) is None  # "week one" is a retention week
    assert comparison("conversion month to date vs last month", end) == (
        "2026-11-01..2026-11-23", "2026-10-01..2026-11-01")


def test_everyday_words_for_segments_metrics_and_analyses() -> None:
    q = parse("week 3 retention, web vs app", GA4)
    assert (q.intent, q.breakdown, q.week_n) == ("retention", "platform", 3)
    assert parse("add to cart rate, app vs web", GA4).breakdown == "platform"
    assert parse("web traffic only: funnel", GA4).segment == {"platform": "WEB"}
    assert parse("Did we sell more in October than in September?", GA4).metric == "revenue"
    q = parse("how often do people put stuff in the cart and then walk away?", GA4)
    assert q.intent == "cart"
    assert parse("how many people put something in their cart last week?", GA4).metric_name == "cart_adders"
    assert parse("how much did the new onboarding lift orders?", GA4).intent == "experiments"
    assert parse("biggest opportunities to lift conversion this week?", GA4).intent == "scan"


def test_spelling_leaves_ordinary_words_alone() -> None:
    assert parse("check whether any new build hurt conversion", GA4).intent == "release"  # not 'weather'
    assert parse("switch to Japan", GA4).intent != "run_sql"  # not 'with'
    assert parse("with x as (select 1) select * from x", GA4).intent == "run_sql"
