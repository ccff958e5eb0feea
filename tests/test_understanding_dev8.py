"""Understanding added while tuning on the eighth phrasing development set (benchmarks/phrasing/dev8.yaml):
exclusions as the values left ("everyone except web users", "excluding Brazil", "non-mobile", "all markets but
Japan"); values joined by "and", "&" or "+" ("plus & pro", "web + ios"); "since the start of the quarter / month /
year"; a follow-up that names another step ("what about at checkout?"); values compared that are not words of the
question ("organic vs paid search" is not about search); everyday metric names ("average basket", "GMV", "share of
visits that end in a purchase", "we sold more"); "anything odd in", "did conversion tank"; retention ("keep users
around", "their 3rd week", the signup period after "cohort retention for users who signed up in ..."); "builds that
tanked"; incidents ("was checkout down", "anything go wrong"); "what's the deal with number 2" after a ranked list;
declines (sales reps, deals). End to end with the real offline analyst on a generated demo database, and parsed
against data that is not ours (GA4-style values)."""

from __future__ import annotations

import pytest

from agent.api import InsightAgent
from agent.intents import Vocabulary, parse
from agent.timewords import period
from tests.answers import assert_declined, assert_first_step, ran

END = "2026-11-23"
GA4 = Vocabulary(
    dimensions={"platform": ["ANDROID", "IOS", "WEB"], "os": ["Android", "iOS", "Windows", "macOS"],
                "country": ["Brazil", "Canada", "Germany", "India", "Japan", "United States"],
                "browser": ["Chrome", "Safari", "Firefox"],
                "traffic_source_medium": ["cpc", "email", "organic", "referral"], "plan": ["free", "plus", "pro"]},
    data_end=END, steps=["view_item", "add_to_cart", "begin_checkout", "add_payment_info", "purchase"],
    metrics={"revenue": "Revenue", "orders": "Orders", "sessions": "Sessions", "aov": "Average order value",
             "buyers": "Buyers", "dau": "Daily active users", "conversion_rate": "Conversion rate",
             "cart_adders": "Cart adders", "searches": "Searches", "add_to_cart_rate": "Add-to-cart rate",
             "error_rate": "Error rate", "cart_abandonment": "Cart abandonment"},
    experiments={"exp_checkout": "One-page checkout"},
    concepts={"platform": "platform", "os": "os", "country": "country", "channel": "traffic_source_medium",
              "plan": "plan", "browser": "browser"})


# ------------------------------------------------------------------------------ end to end, offline analyst

@pytest.mark.parametrize(("question", "tool", "args"), [
    ("funnel for everyone except web users, in October", "funnel",
     {"period": "2026-10-01..2026-11-01", "segment": {"platform": ["android", "ios"]}}),
    ("cart abandonment for non-mobile users over the past fortnight", "cart_abandonment",
     {"period": "last_14_days", "segment": {"platform": "web"}}),
    ("revenue from paying plans (plus & pro) yesterday", "metric",
     {"metric": "revenue", "segment": {"plan": ["plus", "pro"]}}),
    ("zero-result rate per day, web + ios, first half of November", "trends",
     {"metric": "zero_result_rate", "segment": {"platform": ["ios", "web"]}}),
    ("For India, how have orders been trending since the start of the quarter?", "trends",
     {"metric": "orders", "period": "2026-10-01..2026-11-23"}),
    ("visits from organic vs paid search, past fortnight", "metric",
     {"metric": "sessions", "breakdown": "acquisition_channel"}),
    ("For pro users this month, what's the average basket?", "metric", {"metric": "aov", "segment": {"plan": "pro"}}),
    ("gmv for free-plan users, 10/12 to 10/25", "metric",
     {"metric": "revenue", "period": "2026-10-12..2026-10-26", "segment": {"plan": "free"}}),
    ("share of visits that end in a purchase for referral traffic, last 90 days", "metric",
     {"metric": "conversion_rate", "segment": {"acquisition_channel": "referral"}}),
    ("we sold more in October than in September, right?", "metric",
     {"metric": "revenue", "period": "2026-10-01..2026-11-01", "compare": "2026-09-01..2026-10-01"}),
    ("anything odd in searches over the weekend?", "trends",
     {"metric": "searches", "period": "2026-11-21..2026-11-23"}),
    ("did conversion tank for Brazil over the weekend?", "trends",
     {"metric": "conversion_rate", "segment": {"country": "BR"}}),
    ("hey, how well do we keep users around after week 1, by plan?", "retention", {"week_n": 1, "breakdown": "plan"}),
    ("do ppl who joined via google ads come back in their 3rd week", "retention", {"week_n": 3}),
    ("cohort retention for users who signed up in mid-October", "retention",
     {"signup_period": "2026-10-11..2026-10-21"}),
    ("any builds that tanked the add-to-cart step in Q3", "release_regressions",
     {"period": "2026-07-01..2026-10-01"}),
    ("was checkout down at any point in week 45?", "incidents", {"period": "2026-W45"}),
    ("anything go wrong on the site for firefox users mid-November?", "incidents",
     {"period": "2026-11-11..2026-11-21", "segment": {"browser": "firefox"}}),
])
def test_new_phrasings_run_the_right_analysis_with_their_slots(offline: InsightAgent, question: str, tool: str,
                                                                args: dict) -> None:
    assert_first_step(offline.ask(question, f"dev8-{abs(hash(question))}"), tool, args)


@pytest.mark.parametrize("question", [
    "which sales rep closed the most deals in October?", "how much did the sales team sell in Q3?",
])
def test_questions_outside_the_data_are_declined(offline: InsightAgent, question: str) -> None:
    assert_declined(offline.ask(question, f"decline-{abs(hash(question))}"))


def test_follow_ups_name_another_step_or_ask_about_a_ranked_item(offline: InsightAgent) -> None:
    offline.ask("hey - which segments are dropping out at the payment step, last 10 days?", "step")
    ((tool, args),) = ran(offline.ask("what about at checkout?", "step"))
    assert (tool, args["period"], args["step"]) == ("dropoffs", "last_10_days", "Checkout Started")
    offline.ask("give me a prioritised list of fixes for the team", "item")
    assert parse("ok what's the deal with number 2", GA4, previous=parse("what should we fix first?", GA4)).item == 2
    steps = ran(offline.ask("ok what's the deal with number 2", "item"))  # the list, then the analysis behind #2
    assert len(steps) == 2 and steps[0][0] == "scan_frictions" and steps[1][0] != "metric_definition"


# ------------------------------------------------------------------------------ parsing, on data that is not ours

def test_time_words() -> None:
    end = GA4.end
    assert period("orders since the start of the quarter", end) == "2026-10-01..2026-11-23"
    assert period("since the beginning of the month", end) == "2026-11-01..2026-11-23"
    assert period("since the start of the year", end) == "2026-01-01..2026-11-23"
    assert period("since the start of this week", end) == "last_7_days"


def test_exclusions_are_the_values_left() -> None:
    assert parse("funnel for everyone except web users", GA4).segment == {"platform": ["ANDROID", "IOS"]}
    assert parse("cart abandonment for non-mobile users last week", GA4).segment == {"platform": "WEB"}
    assert parse("revenue excluding Germany", GA4).segment == {
        "country": ["Brazil", "Canada", "India", "Japan", "United States"]}
    assert parse("sessions for all markets but Japan", GA4).segment["country"] == [
        "Brazil", "Canada", "Germany", "India", "United States"]
    assert parse("orders apart from the free plan", GA4).segment == {"plan": ["plus", "pro"]}
    assert parse("how many searches end w/o a click on the web", GA4).segment == {"platform": "WEB"}


def test_values_joined_by_and_or_plus_mean_both() -> None:
    assert parse("revenue from plus & pro yesterday", GA4).segment == {"plan": ["plus", "pro"]}
    assert parse("zero-result rate, web + ios", GA4).segment == {"platform": ["IOS", "WEB"]}


def test_everyday_words_for_metrics_and_analyses() -> None:
    assert parse("what's the average basket for pro users?", GA4).metric_name == "aov"
    assert parse("gmv last week", GA4).metric_name == "revenue"
    q = parse("visits from organic vs paid search", GA4)
    assert (q.intent, q.metric_name, q.breakdown) == ("metric", "sessions", "traffic_source_medium")
    assert parse("share of visits that end in a purchase", GA4).metric_name == "conversion_rate"
    q = parse("we sold more in October than in September, right?", GA4)
    assert (q.intent, q.metric_name, q.premise) == ("metric", "revenue", "rise")
    assert parse("anything odd in searches last week?", GA4).intent == "trends"
    q = parse("did conversion tank for Brazil over the weekend?", GA4)
    assert (q.intent, q.premise) == ("trends", "drop")
    assert parse("how well do we keep users around?", GA4).intent == "retention"
    assert parse("do users come back in their 3rd week", GA4).week_n == 3
    assert parse("cohort retention for users who signed up in mid-October", GA4).signup_period == \
        "2026-10-11..2026-10-21"
    assert parse("any builds that tanked the add-to-cart step?", GA4).intent == "release"
    assert parse("was checkout down at any point last week?", GA4).intent == "incidents"
    assert parse("anything go wrong on the site yesterday?", GA4).intent == "incidents"
    assert parse("which sales rep closed the most deals?", GA4).intent == "unsupported"
