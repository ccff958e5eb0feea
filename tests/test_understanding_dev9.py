"""Understanding added while tuning on the ninth phrasing development set (benchmarks/phrasing/dev9.yaml): search
questions in everyday words ("what are people looking for and not finding", "leave the site straight after
searching", with "searching" no longer corrected to "reaching"); "the single biggest thing we should fix", "if we could
only fix one thing"; a British "trolley" and "wandering off"; "how the checkout flow converts" as the funnel even for
an app version; "compare the funnel for free and pro" as a breakdown; the step not reached in "entered their card
details but never completed the order"; "web only"; "has AOV picked up" as a trend with its premise; "same chart for
chrome" as a follow-up; "cvr"; "what's the add-to-basket rate in the US vs India" and "total visits" as metric
questions; "now for the September signups" after a retention question; "still around after a fortnight" as week-2
retention with no period; competitors' data declined. End to end with the real offline analyst on a generated demo
database, and parsed against data that is not ours (GA4-style values)."""

from __future__ import annotations

import pytest

from agent.api import InsightAgent
from agent.intents import Vocabulary, parse
from tests.answers import assert_declined, assert_first_step, ran

END = "2026-11-23"
GA4 = Vocabulary(
    dimensions={"platform": ["ANDROID", "IOS", "WEB"], "os": ["Android", "iOS", "Windows", "macOS"],
                "country": ["Brazil", "Canada", "Germany", "India", "Japan", "United States"],
                "browser": ["Chrome", "Safari", "Firefox"], "app_version": ["5.6.0", "5.7.0"],
                "traffic_source_medium": ["cpc", "email", "organic", "referral"], "plan": ["free", "plus", "pro"]},
    data_end=END, steps=["view_item", "add_to_cart", "begin_checkout", "add_payment_info", "purchase"],
    metrics={"revenue": "Revenue", "orders": "Orders", "sessions": "Sessions", "aov": "Average order value",
             "buyers": "Buyers", "dau": "Daily active users", "conversion_rate": "Conversion rate",
             "cart_adders": "Cart adders", "searches": "Searches", "add_to_cart_rate": "Add-to-cart rate",
             "error_rate": "Error rate", "cart_abandonment": "Cart abandonment"},
    experiments={"exp_checkout": "One-page checkout"},
    concepts={"platform": "platform", "os": "os", "country": "country", "channel": "traffic_source_medium",
              "plan": "plan", "browser": "browser", "version": "app_version"})


# ------------------------------------------------------------------------------ end to end, offline analyst

@pytest.mark.parametrize(("question", "tool", "args"), [
    ("what are people looking for on the website and not finding?", "search_quality", {"segment": {"platform": "web"}}),
    ("how many people leave the site straight after searching? past fortnight", "search_quality",
     {"period": "last_14_days"}),
    ("what's the single biggest thing we should fix right now?", "scan_frictions", {}),
    ("if we could only fix one thing this quarter, what should it be?", "scan_frictions",
     {"period": "2026-10-01..2026-11-23"}),
    ("people filling their trolley then wandering off - how common is it among Brits?", "cart_abandonment",
     {"segment": {"country": "GB"}}),
    ("I'm curious how the checkout flow converts for people on the newest app version, 5.7", "funnel",
     {"segment": {"app_version": "5.7.0"}}),
    ("compare the funnel for free and pro customers in September", "funnel",
     {"period": "2026-09-01..2026-10-01", "breakdown": "plan"}),
    ("in September, which audiences entered their card details but never completed the order?", "dropoffs",
     {"step": "Order Completed"}),
    ("worst segment for drop-off at add to cart, web only, Q3", "dropoffs",
     {"segment": {"platform": "web"}, "step": "Product Added"}),
    ("Since the 1st of Nov, has the average order value picked up for the pro plan?", "trends",
     {"metric": "aov", "period": "2026-11-01..2026-11-23"}),
    ("cvr by browser, Q3", "metric", {"metric": "conversion_rate", "breakdown": "browser"}),
    ("what's the add-to-basket rate in the US vs India", "metric",
     {"metric": "add_to_cart_rate", "breakdown": "country"}),
    ("total visits over the weekend from social", "metric",
     {"metric": "sessions", "segment": {"acquisition_channel": "social"}}),
    ("are the paid search signups still around after a fortnight?", "retention", {"week_n": 2, "period": "all"}),
])
def test_new_phrasings_run_the_right_analysis_with_their_slots(offline: InsightAgent, question: str, tool: str,
                                                                args: dict) -> None:
    assert_first_step(offline.ask(question, f"dev9-{abs(hash(question))}"), tool, args)


@pytest.mark.parametrize("question", [
    "how do our prices compare with our competitors'?", "which of our rivals converts better?",
])
def test_questions_about_competitors_are_declined(offline: InsightAgent, question: str) -> None:
    assert_declined(offline.ask(question, f"decline-{abs(hash(question))}"))


@pytest.mark.parametrize(("first", "then", "tool", "args"), [
    ("plot the error rate for safari users over the last 14 days", "same chart for chrome pls", "trends",
     {"metric": "error_rate", "period": "last_14_days", "segment": {"browser": "chrome"}}),
    ("week-3 retention for people who signed up in October, by country", "now for the September signups", "retention",
     {"week_n": 3, "signup_period": "2026-09-01..2026-10-01", "breakdown": "country", "period": "all"}),
])
def test_follow_ups_keep_the_question_and_change_what_they_name(offline: InsightAgent, first: str, then: str,
                                                                tool: str, args: dict) -> None:
    thread = f"follow-{abs(hash(first))}"
    offline.ask(first, thread)
    ((ran_tool, ran_args),) = ran(offline.ask(then, thread))
    assert ran_tool == tool and {k: ran_args.get(k) for k in args} == args


# ------------------------------------------------------------------------------ parsing, on data that is not ours

@pytest.mark.parametrize(("question", "field", "value"), [
    ("what are people looking for and not finding?", "intent", "search"),
    ("how many shoppers leave straight after searching?", "intent", "search"),
    ("the single biggest thing we should fix?", "intent", "scan"),
    ("if we could only fix one thing, what would it be?", "intent", "scan"),
    ("people filling their trolley then wandering off", "intent", "cart"),
    ("how the checkout flow converts for people on app version 5.7", "intent", "funnel"),
    ("compare the funnel for free and pro users", "breakdown", "plan"),
    ("which groups entered their card details but never completed the order?", "step", "purchase"),
    ("drop-off at add to cart, web only", "segment", {"platform": "WEB"}),
    ("drop-off at checkout, only web", "segment", {"platform": "WEB"}),
    ("has the average order value picked up since Nov 1?", "intent", "trends"),
    ("cvr by browser", "metric_name", "conversion_rate"),
    ("total visits from email last week", "intent", "metric"),
    ("are the cpc signups still around after a fortnight?", "week_n", 2),
    ("are the cpc signups still around after a fortnight?", "signup_period", None),
    ("how do our prices compare with our competitors'?", "intent", "unsupported"),
])
def test_parsed_slots(question: str, field: str, value: object) -> None:
    assert getattr(parse(question, GA4), field) == value


@pytest.mark.parametrize(("first", "then", "field", "value"), [
    ("plot the error rate on safari last week", "same chart for chrome", "period", "last_7_days"),
    ("plot the error rate on safari last week", "same chart for chrome", "metric", "error_rate"),
    ("week-3 retention for people who signed up in October", "now for the September signups", "signup_period",
     "2026-09-01..2026-10-01"),
    ("week-3 retention for people who signed up in October", "now for the September signups", "period", "all"),
])
def test_parsed_follow_ups(first: str, then: str, field: str, value: object) -> None:
    assert getattr(parse(then, GA4, previous=parse(first, GA4)), field) == value
