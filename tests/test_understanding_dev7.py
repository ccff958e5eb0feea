"""Understanding added while tuning on the seventh phrasing development set (benchmarks/phrasing/dev7.yaml): "N weeks
ago", "YTD" / "year to date", "all month", "September through October" (whole months); everyday names ("Canucks",
"card entry", "ordering"); more verbs for the analyses ("bleeding shoppers", "which cohorts of shoppers never add to
cart", "who's not getting from PDP to cart", "which users are falling off", "a blip in", "number of searches", "how
stable is the app", "any fires / hiccups", "a fix backlog", "still active 4 weeks in"); "fell off a cliff" as a drop,
not a drop-off; follow-ups that swap one value of a segment of several ("same for chrome") or compare with a value
("compare with india"); declines (contracts, warehouses). End to end with the real offline analyst on a generated
demo database, and parsed against data that is not ours (GA4-style values)."""

from __future__ import annotations

import pytest

from agent.api import InsightAgent
from agent.intents import Vocabulary, parse
from agent.timewords import comparison, period
from tests.answers import assert_declined, assert_first_step, ran

END = "2026-11-23"
GA4 = Vocabulary(
    dimensions={"platform": ["ANDROID", "IOS", "WEB"], "os": ["Android", "iOS", "Windows", "macOS"],
                "country": ["Brazil", "Canada", "Germany", "India", "Japan", "United States"],
                "browser": ["Chrome", "Safari", "Firefox"],
                "traffic_source_medium": ["cpc", "email", "organic", "referral"], "plan": ["free", "pro"]},
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
    ("where are we bleeding shoppers between product page and order? MTD", "funnel",
     {"period": "2026-11-01..2026-11-23"}),
    ("funel on desktop browsers YTD", "funnel", {"period": "2026-01-01..2026-11-23", "segment": {"platform": "web"}}),
    ("how many users entered the purchase funnel three weeks ago?", "funnel", {"period": "2026-11-02..2026-11-09"}),
    ("end to end conversion from browsing to paying for Canucks", "funnel", {"segment": {"country": "CA"}}),
    ("which cohorts of shoppers never add anything to the cart, last 60 days", "dropoffs",
     {"period": "last_60_days", "step": "Product Added"}),
    ("segment-level drop off before ordering, Nov 3-9", "dropoffs", {"step": "Order Completed"}),
    ("which users are falling off at the card entry step in week 46?", "dropoffs",
     {"period": "2026-W46", "step": "Payment Info Entered"}),
    ("who's not getting from PDP to cart on iOS, per session", "dropoffs",
     {"segment": {"platform": "ios"}, "step": "Product Added", "entity": "sessions"}),
    ("orders have been going up all month, right?", "trends",
     {"metric": "orders", "period": "2026-11-01..2026-11-23"}),
    ("was there a blip in add to cart rate on Nov 18?", "trends",
     {"metric": "add_to_cart_rate", "period": "2026-11-18..2026-11-19"}),
    ("number of searches on Nov 18", "metric", {"metric": "searches"}),
    ("how many folks added something to their cart YTD", "metric",
     {"metric": "cart_adders", "period": "2026-01-01..2026-11-23"}),
    ("orders fell off a cliff for Edge users last week vs the week before, didn't they", "metric",
     {"metric": "orders", "compare": "2026-11-09..2026-11-16"}),
    ("how many october signups were still active 4 weeks in", "retention",
     {"week_n": 4, "signup_period": "2026-10-01..2026-11-01"}),
    ("how stable is the app on version 5.6", "errors_and_speed", {"segment": {"app_version": "5.6.0"}}),
    ("were there any fires on iOS two weeks ago", "incidents",
     {"period": "2026-11-09..2026-11-16", "segment": {"platform": "ios"}}),
    ("any hiccups for Chrome users in the first week of October?", "incidents",
     {"period": "2026-10-01..2026-10-08", "segment": {"browser": "chrome"}}),
    ("build me a fix backlog from the last 6 weeks", "scan_frictions", {"period": "last_42_days"}),
])
def test_new_phrasings_run_the_right_analysis_with_their_slots(offline: InsightAgent, question: str, tool: str,
                                                                args: dict) -> None:
    assert_first_step(offline.ask(question, f"dev7-{abs(hash(question))}"), tool, args)


@pytest.mark.parametrize("question", [
    "what's our churn rate on annual contracts?", "which warehouse ships the most orders?",
])
def test_questions_outside_the_data_are_declined(offline: InsightAgent, question: str) -> None:
    assert_declined(offline.ask(question, f"decline-{abs(hash(question))}"))


def test_follow_ups_swap_one_value_and_compare_with_another(offline: InsightAgent) -> None:
    offline.ask("could you pull up the shopping funnel for free users on safari two weeks ago", "swap")
    ((tool, args),) = ran(offline.ask("same for chrome pls", "swap"))
    assert (tool, args["segment"], args["period"]) == (
        "funnel", {"plan": "free", "browser": "chrome"}, "2026-11-09..2026-11-16")
    offline.ask("abandoned cart % for Japan, last 6 weeks", "compare")
    ((tool, args),) = ran(offline.ask("compare with india", "compare"))
    assert (tool, args["segment"], args["period"]) == ("cart_abandonment", {"country": "IN"}, "last_42_days")
    offline.ask("which users are falling off at the card entry step in week 46?", "ago")
    ((tool, args),) = ran(offline.ask("and three weeks ago?", "ago"))
    assert (tool, args["period"], args["step"]) == ("dropoffs", "2026-11-02..2026-11-09", "Payment Info Entered")


# ------------------------------------------------------------------------------ parsing, on data that is not ours

def test_time_words() -> None:
    end = GA4.end
    assert period("three weeks ago", end) == period("orders 3 weeks ago", end) == "2026-11-02..2026-11-09"
    assert period("two weeks ago", end) == period("the week before last", end) == "2026-11-09..2026-11-16"
    assert period("ytd", end) == period("year to date", end) == period("so far this year", end) \
        == "2026-01-01..2026-11-23"
    assert period("orders went up all month", end) == period("mtd", end) == "2026-11-01..2026-11-23"
    assert period("September through October", end) == period("from sept to oct", end) \
        == period("between September and October", end) == "2026-09-01..2026-11-01"
    assert period("compare September to October", end) == "2026-09-01..2026-10-01"  # a comparison, not a range
    assert comparison("October vs September", end) == ("2026-10-01..2026-11-01", "2026-09-01..2026-10-01")
    assert period("oct 5 to oct 18", end) == "2026-10-05..2026-10-19"
    assert period("past 48 hrs", end) == "last_2_days" and period("in the last 24h", end) == "last_1_days"
    assert period("last couple of weeks", end) == "last_14_days" and period("last few days", end) == "last_3_days"
    assert period("trailing 30 days", end) == "last_30_days" and period("rolling 7 days", end) == "last_7_days"


def test_everyday_words_for_segments_steps_and_metrics() -> None:
    assert parse("funnel for Canucks", GA4).segment == {"country": "Canada"}
    assert parse("which segments drop at the card entry step?", GA4).step == "add_payment_info"
    assert parse("segment-level drop off before ordering", GA4).step == "purchase"
    q = parse("number of searches last week", GA4)
    assert (q.intent, q.metric_name) == ("metric", "searches")


def test_everyday_words_for_analyses_and_premises() -> None:
    assert parse("where are we bleeding shoppers?", GA4).intent == "funnel"
    assert parse("which cohorts of shoppers never add anything to the cart", GA4).intent == "dropoffs"
    assert parse("who's not getting from product page to cart?", GA4).intent == "dropoffs"
    assert parse("which users are falling off at checkout?", GA4).intent == "dropoffs"
    q = parse("orders fell off a cliff last week vs the week before", GA4)
    assert q.intent != "dropoffs" and q.premise == "drop"
    assert parse("any blips in conversion last week?", GA4).intent == "trends"
    assert parse("how stable is the app?", GA4).intent == "errors"
    assert parse("were there any fires last week?", GA4).intent == "incidents"
    assert parse("any hiccups yesterday?", GA4).intent == "incidents"
    assert parse("build me a fix backlog", GA4).intent == "scan"
    assert parse("retention of September signups 4 weeks in", GA4).week_n == 4
    for question in ("what's our churn rate on annual contracts?", "which warehouse ships the most orders?"):
        assert parse(question, GA4).intent == "unsupported", question
