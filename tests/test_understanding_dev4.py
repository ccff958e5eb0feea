"""Understanding added while tuning on the fourth phrasing development set (benchmarks/phrasing/dev4.yaml): more
everyday words for segments, metrics, steps and analyses, more time expressions, comparisons with "than", premises
on metrics where lower is better, and spelling correction that leaves ordinary words alone. End to end with the
real offline analyst on a generated demo database, and parsed against data that is not ours (GA4-style values)."""

from __future__ import annotations

import pytest

from agent.api import InsightAgent
from agent.intents import Vocabulary, parse
from agent.timewords import comparison, period
from tests.answers import assert_declined, assert_first_step, ran

END = "2026-11-23"
GA4 = Vocabulary(
    dimensions={"platform": ["ANDROID", "IOS", "WEB"], "os": ["Android", "iOS", "Windows", "macOS"],
                "country": ["Brazil", "Germany", "United States"], "traffic_source_medium": ["cpc", "email", "organic"],
                "plan": ["free", "pro"]},
    data_end=END, steps=["view_item", "add_to_cart", "begin_checkout", "add_payment_info", "purchase"],
    metrics={"revenue": "Revenue", "orders": "Orders", "sessions": "Sessions", "aov": "Average order value",
             "conversion_rate": "Conversion rate", "cart_adders": "Cart adders", "mau": "Monthly active users",
             "buyers_among_adders": "Buyers among cart adders", "cart_abandonment": "Cart abandonment",
             "searches": "Searches", "zero_result_searches": "Zero-result searches", "error_rate": "Error rate"},
    concepts={"platform": "platform", "os": "os", "country": "country", "channel": "traffic_source_medium",
              "plan": "plan"})


# ------------------------------------------------------------------------------ end to end, offline analyst

@pytest.mark.parametrize(("question", "tool", "args"), [
    ("conversion funnel for phone users in september", "funnel",
     {"segment": {"platform": ["android", "ios"]}, "period": "2026-09-01..2026-10-01"}),
    ("What % of U.S. visitors who look at a product end up buying?", "funnel", {"segment": {"country": "US"}}),
    ("which customer segments churn out between adding to cart and starting checkout", "dropoffs",
     {"step": "Checkout Started"}),
    ("any cohort of users dropping out a lot at checkout in week 46?", "dropoffs",
     {"period": "2026-W46", "step": "Checkout Started"}),
    ("what's the worst-performing segment at the product-added step?", "dropoffs", {"step": "Product Added"}),
    ("share of checkouts that never turned into an order for Indian users", "cart_abandonment",
     {"segment": {"country": "IN"}}),
    ("are Windows users leaving their carts more than Mac users?", "cart_abandonment", {"breakdown": "os"}),
    ("daily searches for the past 3 weeks", "trends", {"metric": "searches", "period": "last_21_days"}),
    ("cart abandonment over time for Germany", "trends", {"metric": "cart_abandonment",
                                                          "segment": {"country": "DE"}}),
    ("show me how revenue moved day to day in the first half of October", "trends",
     {"metric": "revenue", "period": "2026-10-01..2026-10-16"}),
    ("revenue: iOS vs Android vs web, Q3", "metric", {"metric": "revenue", "breakdown": "platform"}),
    ("what share of cart adders went on to buy, last 30 days", "metric", {"metric": "buyers_among_adders"}),
    ("How many people added something to their cart in week 45?", "metric",
     {"metric": "cart_adders", "period": "2026-W45"}),
    ("monthly actives for web in October", "metric", {"metric": "mau", "segment": {"platform": "web"}}),
    ("order volume by plan, week 46", "metric", {"metric": "orders", "breakdown": "plan"}),
    ("how much did shoppers spend per order on the plus plan?", "metric", {"metric": "aov"}),
    ("AOV: November so far vs October", "metric",
     {"metric": "aov", "period": "2026-11-01..2026-11-23", "compare": "2026-10-01..2026-11-01"}),
    ("How sticky are pro users after their first week?", "retention", {"segment": {"plan": "pro"}}),
    ("did the mid-September signups keep using the product?", "retention",
     {"signup_period": "2026-09-11..2026-09-21"}),
    ("timeouts and failures in october, per platform", "errors_and_speed", {"breakdown": "platform"}),
    ("did anything blow up for indian users since Oct 20?", "incidents",
     {"period": "2026-10-20..2026-11-23", "segment": {"country": "IN"}}),
    ("opportunity ranking for the last 14 days", "scan_frictions", {"period": "last_14_days"}),
    ("where should we focus this week?", "scan_frictions", {"period": "last_7_days"}),
])
def test_new_phrasings_run_the_right_analysis_with_their_slots(offline: InsightAgent, question: str, tool: str,
                                                                args: dict) -> None:
    assert_first_step(offline.ask(question, f"dev4-{abs(hash(question))}"), tool, args)


@pytest.mark.parametrize("question", [
    "write a haiku about conversion", "how many orders were returned in October?",
    "what's our churned MRR this quarter?", "estimate revenue for December", "who is the product manager for search?",
    "how many people called customer service about late deliveries?",
])
def test_questions_outside_the_data_are_declined(offline: InsightAgent, question: str) -> None:
    assert_declined(offline.ask(question, f"decline-{abs(hash(question))}"))


def test_follow_ups_name_another_week_or_go_deeper_on_an_item(offline: InsightAgent) -> None:
    offline.ask("did anything go down in week 45?", "weeks")
    assert ran(offline.ask("what about week 46?", "weeks")) == [("incidents", {"period": "2026-W46"})]
    offline.ask("What should we fix first?", "deeper")
    steps = ran(offline.ask("go deeper on the fourth one", "deeper"))
    assert [t for t, _ in steps][0] == "scan_frictions" and len(steps) == 2


def test_a_presumed_slip_gets_the_measured_direction_first(offline: InsightAgent) -> None:
    answer = offline.ask("is AOV slipping on the web this month?", "slip")
    ((tool, args),) = ran(answer)
    assert tool == "trends" and args["metric"] == "aov" and args["segment"] == {"platform": "web"}
    second = answer.text.split("\n\n")[1]
    assert second.startswith("Aov ") and ("it did not drop" in second or " fell " in second)


# ------------------------------------------------------------------------------ parsing, on data that is not ours

def test_time_words() -> None:
    end = GA4.end
    assert period("first half of october", end) == "2026-10-01..2026-10-16"
    assert period("second half of sept", end) == "2026-09-16..2026-10-01"
    assert period("the first week of november", end) == "2026-11-01..2026-11-08"
    assert period("the last week of october", end) == "2026-10-25..2026-11-01"  # not the data's last week
    assert period("since the start of november", end) == "2026-11-01..2026-11-23"
    assert comparison("aov: november so far vs october", end) == ("2026-11-01..2026-11-23", "2026-10-01..2026-11-01")
    q = parse("did we get more orders in week 47 than in week 46?", GA4)
    assert (q.intent, q.period, q.compare, q.premise) == ("metric", "2026-W47", "2026-W46", "rise")


def test_everyday_words_for_segments_and_metrics() -> None:
    assert parse("funnel for smartphone users", GA4).segment == {"platform": ["ANDROID", "IOS"]}
    assert parse("U.S. revenue last week", GA4).segment == {"country": "United States"}
    q = parse("are web users stickier than app users?", GA4)
    assert (q.intent, q.breakdown, q.segment) == ("retention", "platform", {})
    assert parse("session count last week", GA4).metric_name == "sessions"
    assert parse("share of sessions that end in an order", GA4).metric_name == "conversion_rate"
    assert parse("count of zero-result searches in Q3", GA4).intent == "metric"
    assert parse("errors on the add-to-cart step", GA4).step == "add_to_cart"
    q = parse("errors on the cart page for Android", GA4)  # errors at a page, not cart abandonment
    assert (q.intent, q.step) == ("errors", "add_to_cart")


def test_premises_on_metrics_where_lower_is_better() -> None:
    assert parse("cart abandonment got better in week 47, why?", GA4).premise == "drop"
    assert parse("why did the error rate get worse on android?", GA4).premise == "rise"
    assert parse("why did conversion improve among pro users?", GA4).premise == "rise"


def test_spelling_leaves_ordinary_words_alone() -> None:
    q = parse("give me the numbers for each funnel stage", GA4)  # 'stage' is not 'strange' (an anomaly cue)
    assert q.intent == "funnel"
    assert parse("what did competitors charge for shipping?", GA4).intent != "trends"  # not 'slipping'
    assert parse("opportunity ranking for the last 14 days", GA4).intent == "scan"  # not 'tracking'
