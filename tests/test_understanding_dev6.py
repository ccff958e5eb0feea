"""Understanding added while tuning on the sixth phrasing development set (benchmarks/phrasing/dev6.yaml): weekends,
"the week before last", "the week of Nov 9", US dates ("11/1 to 11/15"), quarters to date and the calendar quarter
before, "since the 1st", "since mid-October", "Nov 1st onwards", "the last 2 weeks of October", "last 30d" and
"W46"; everyday metric names ("turnover", "transactions", "paying customers", "ATC rate", "CR", "daily uniques",
"ticket size", "traffic", "empty searches", "sessions that hit an error"); everyday segment names ("the States",
"referred users", "app sessions", "free-tier Germans", a value alone between commas); more verbs for the analyses
("leaky", "can't get past", "heading south", "what made X jump", "outliers", "treatment vs control", "stat sig",
"version-over-version", "downtime", "went sideways", "low-hanging fruit", "walk me through number 3"), premises
("dragging", "crept up", "we lost") and declines (CSAT, taxes, stock, followers, ads' click-through, forecasts).
End to end with the real offline analyst on a generated demo database, and parsed against data that is not ours
(GA4-style values)."""

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
                "traffic_source_medium": ["cpc", "email", "organic", "referral"], "plan": ["free", "pro"]},
    data_end=END, steps=["view_item", "add_to_cart", "begin_checkout", "add_payment_info", "purchase"],
    metrics={"revenue": "Revenue", "orders": "Orders", "sessions": "Sessions", "aov": "Average order value",
             "buyers": "Buyers", "dau": "Daily active users", "conversion_rate": "Conversion rate",
             "cart_adders": "Cart adders", "buyers_among_adders": "Buyers among cart adders",
             "zero_result_searches": "Zero-result searches", "error_sessions": "Sessions with an error",
             "add_to_cart_rate": "Add-to-cart rate", "error_rate": "Error rate",
             "cart_abandonment": "Cart abandonment"},
    experiments={"exp_checkout": "One-page checkout"},
    concepts={"platform": "platform", "os": "os", "country": "country", "channel": "traffic_source_medium",
              "plan": "plan"})


# ------------------------------------------------------------------------------ end to end, offline analyst

@pytest.mark.parametrize(("question", "tool", "args"), [
    ("PDP to purchase funnel for the States, last 4 weeks", "funnel",
     {"segment": {"country": "US"}, "period": "last_28_days"}),
    ("how leaky is our checkout funnel for Brazilians on android?", "funnel",
     {"segment": {"country": "BR", "platform": "android"}}),
    ("of the people who hit a product page over the weekend, how many checked out and paid?", "funnel",
     {"period": "2026-11-21..2026-11-23"}),
    ("what % of app users go from viewing something to buying it, 11/1 to 11/15", "funnel",
     {"segment": {"platform": ["android", "ios"]}, "period": "2026-11-01..2026-11-16"}),
    ("conversion funnel, Japan + India, this quarter", "funnel", {"period": "2026-10-01..2026-11-23"}),
    ("Brazilian users - which sub-groups can't get past payment?", "dropoffs",
     {"segment": {"country": "BR"}, "step": "Payment Info Entered"}),
    ("who falls out of the funnel the most among free-tier Germans", "dropoffs",
     {"segment": {"country": "DE", "plan": "free"}}),
    ("drop-off hotspots by segment at add-to-basket, week before last", "dropoffs",
     {"period": "2026-11-09..2026-11-16", "step": "Product Added"}),
    ("is CR heading south on Safari since mid-October?", "trends",
     {"metric": "conversion_rate", "period": "2026-10-11..2026-11-23", "segment": {"browser": "safari"}}),
    ("what made buyers jump in week 45 on the web?", "trends", {"metric": "buyers", "period": "2026-W45"}),
    ("has basket abandonment crept up in Germany in the last 3 weeks?", "trends",
     {"metric": "cart_abandonment", "period": "last_21_days"}),
    ("ATC rate day over day for android, last 2 weeks of October", "trends",
     {"metric": "add_to_cart_rate", "period": "2026-10-18..2026-11-01"}),
    ("turnover last quarter by country", "metric",
     {"metric": "revenue", "period": "2026-07-01..2026-10-01", "breakdown": "country"}),
    ("how many transactions did Linux users make in October", "metric",
     {"metric": "orders", "segment": {"os": "linux"}}),
    ("average ticket size on the pro plan, past 90 days", "metric", {"metric": "aov", "period": "last_90_days"}),
    ("how much traffic did the website get over the weekend?", "metric",
     {"metric": "sessions", "segment": {"platform": "web"}, "period": "2026-11-21..2026-11-23"}),
    ("CR for SEO traffic, this week versus last", "metric",
     {"metric": "conversion_rate", "period": "last_7_days", "compare": "2026-11-09..2026-11-16"}),
    ("purchase rate of cart adders on mobile, this month", "metric", {"metric": "buyers_among_adders"}),
    ("number of people adding to cart from paid search in Q3", "metric", {"metric": "cart_adders"}),
    ("how many sessions hit an error on firefox in week 47", "metric", {"metric": "error_sessions"}),
    ("share of searches nobody clicks on, web, since the 1st of Oct", "search_quality",
     {"segment": {"platform": "web"}, "period": "2026-10-01..2026-11-23"}),
    ("how many of the signups from the first half of October were back in their second week?", "retention",
     {"week_n": 2, "signup_period": "2026-10-01..2026-10-16"}),
    ("is week-two retention any better on the web than on phones?", "retention",
     {"week_n": 2, "breakdown": "platform"}),
    ("repeat visit rate for users who joined via referral", "retention",
     {"segment": {"acquisition_channel": "referral"}}),
    ("treatment arm vs control in the onboarding flow on android, this month", "experiments",
     {"experiment_id": "exp_onboarding"}),
    ("perf at the add-to-cart step on windows, Oct", "errors_and_speed", {"step": "Product Added"}),
    ("version-over-version conversion check for the UK", "release_regressions", {"segment": {"country": "GB"}}),
    ("any builds in Q4 so far that made iOS worse?", "release_regressions", {"period": "2026-10-01..2026-11-23"}),
    ("service disruptions hitting Mac users this quarter", "incidents", {"segment": {"os": "macos"}}),
    ("what went sideways for Germany last weekend?", "incidents", {"period": "2026-11-21..2026-11-23"}),
    ("is anything down right now?", "incidents", {}),
    ("low-hanging fruit for the last 30d?", "scan_frictions", {"period": "last_30_days"}),
    ("what's our #1 opportunity right now", "scan_frictions", {}),
])
def test_new_phrasings_run_the_right_analysis_with_their_slots(offline: InsightAgent, question: str, tool: str,
                                                                args: dict) -> None:
    assert_first_step(offline.ask(question, f"dev6-{abs(hash(question))}"), tool, args)


@pytest.mark.parametrize("question", [
    "what's our CSAT for October?", "how many items are out of stock right now?",
    "what's the CTR on our Instagram ads?", "what will DAU look like over the holidays?",
    "write release notes for version 5.7", "what's the average age of our buyers?",
    "how much sales tax did we collect on orders in October?",
])
def test_questions_outside_the_data_are_declined(offline: InsightAgent, question: str) -> None:
    assert_declined(offline.ask(question, f"decline-{abs(hash(question))}"))


def test_follow_ups_try_swap_narrow_and_walk_through_an_item(offline: InsightAgent) -> None:
    offline.ask("PDP to purchase funnel for the States, last 4 weeks", "try")
    assert ran(offline.ask("try Canada", "try")) == [
        ("funnel", {"period": "last_28_days", "segment": {"country": "CA"}, "entity": "users"})]
    offline.ask("turnover last quarter by country", "so-far")
    ((tool, args),) = ran(offline.ask("just Q4 so far", "so-far"))
    assert (tool, args["metric"], args["period"], args["breakdown"]) == (
        "metric", "revenue", "2026-10-01..2026-11-23", "country")
    offline.ask("how much traffic did the website get over the weekend?", "app")
    ((tool, args),) = ran(offline.ask("and the app?", "app"))
    assert (tool, args["metric"], sorted(args["segment"]["platform"])) == ("metric", "sessions", ["android", "ios"])
    for n, words in ((3, "walk me through number 3"), (5, "ok what's up with #5"), (8, "break down the 8th one")):
        offline.ask("What should we fix first?", f"item-{n}")
        steps = ran(offline.ask(words, f"item-{n}"))
        assert [t for t, _ in steps][0] == "scan_frictions" and len(steps) == 2, (words, steps)


def test_presumptions_in_new_words_get_the_measured_direction_first(offline: InsightAgent) -> None:
    for question in ("what's dragging on revenue in France over the past month",
                     "we lost revenue in Japan in week 47 vs week 46, didn't we?"):
        answer = offline.ask(question, f"premise-{abs(hash(question))}")
        second = answer.text.split("\n\n")[1]
        assert " rose " in second or " fell " in second or "did not" in second, (question, second)


# ------------------------------------------------------------------------------ parsing, on data that is not ours

def test_time_words() -> None:
    end = GA4.end
    assert period("over the weekend", end) == period("sales last weekend", end) == "2026-11-21..2026-11-23"
    assert period("the week before last", end) == period("orders 2 weeks ago", end) == "2026-11-09..2026-11-16"
    assert period("funnel for the week of Nov 9", end) == period("the week of November 11th", end) == "2026-W46"
    assert period("11/1 to 11/15", end) == period("orders 11/1-11/15", end) == "2026-11-01..2026-11-16"
    assert period("since 11/3", end) == "2026-11-03..2026-11-23"
    assert period("3/4 of users", end) is None and period("a/b test", end) is None  # no date without a cue
    assert period("this quarter", end) == period("Q4 so far", end) == period("qtd", end) == "2026-10-01..2026-11-23"
    assert period("last quarter", end) == "2026-07-01..2026-10-01" and period("past quarter", end) == "last_90_days"
    assert period("since the 1st", end) == period("Nov 1st onwards", end) == "2026-11-01..2026-11-23"
    assert period("since the 20th of October", end) == "2026-10-20..2026-11-23"
    assert period("since mid-October", end) == "2026-10-11..2026-11-23"
    assert period("the last 2 weeks of October", end) == "2026-10-18..2026-11-01"
    assert period("the first two weeks of November", end) == "2026-11-01..2026-11-15"
    assert period("the 2nd half of October", end) == "2026-10-16..2026-11-01"
    assert period("last 30d", end) == period("L30D", end) == "last_30_days"
    assert period("last 2 weeks", end) == "last_14_days"  # no month: counted back from the end
    assert comparison("conversion, this week versus last", end) == ("last_7_days", "2026-11-09..2026-11-16")


def test_everyday_words_for_segments_and_metrics() -> None:
    assert parse("funnel for the States", GA4).segment == {"country": "United States"}
    assert parse("funnel for Brazilians", GA4).segment == {"country": "Brazil"}
    assert parse("orders from referred users", GA4).segment == {"traffic_source_medium": "referral"}
    assert parse("why are app sessions down?", GA4).segment == {"platform": ["ANDROID", "IOS"]}
    assert parse("crashes by app version", GA4).segment == {}  # "app version" is a dimension, not the apps
    assert parse("dropoffs among free-tier Germans", GA4).segment == {"country": "Germany", "plan": "free"}
    assert parse("searches nobody clicks on, web, last week", GA4).segment == {"platform": "WEB"}
    assert parse("funnel W46", GA4).period == "2026-W46"
    for words, metric in (("turnover by country", "revenue"), ("how many transactions last week", "orders"),
                          ("paying customers by plan", "buyers"), ("unique purchasers yesterday", "buyers"),
                          ("average ticket size by plan", "aov"), ("ATC rate by platform", "add_to_cart_rate"),
                          ("CR by platform", "conversion_rate"), ("app traffic last week", "sessions"),
                          ("how many empty searches last week", "zero_result_searches"),
                          ("number of people adding to cart last week", "cart_adders"),
                          ("purchase rate of cart adders", "buyers_among_adders"),
                          ("how many sessions hit an error yesterday", "error_sessions")):
        q = parse(words, GA4)
        assert (q.intent, q.metric_name or q.metric) == ("metric", metric), (words, q.intent, q.metric_name)
    assert parse("daily uniques by country", GA4).metric_name == "dau"


def test_everyday_words_for_analyses_and_premises() -> None:
    assert parse("how leaky is the checkout funnel?", GA4).intent == "funnel"
    assert parse("biggest leak at payment?", GA4).intent == "dropoffs"
    assert parse("which groups can't make it past checkout?", GA4).intent == "dropoffs"
    q = parse("is CR heading south on the web?", GA4)
    assert (q.intent, q.premise) == ("trends", "drop")
    assert parse("what made orders jump last week?", GA4).intent == "why_change"
    assert parse("zero-result searches over the last 4 weeks - any outliers?", GA4).intent == "trends"
    assert parse("is the one page checkout stat sig?", GA4).intent == "experiments"
    assert parse("treatment vs control for the checkout test", GA4).intent == "experiments"
    assert parse("release-over-release conversion check", GA4).intent == "release"
    assert parse("any downtime last week?", GA4).intent == "incidents"
    assert parse("low hanging fruit?", GA4).intent == "scan"
    assert parse("what's dragging on revenue?", GA4).premise == "drop"
    assert parse("has cart abandonment crept up lately?", GA4).premise == "rise"
    scan = parse("What should we fix first?", GA4)
    assert parse("walk me through number 3", GA4, previous=scan).item == 3
    assert parse("break down the 8th one for me", GA4, previous=scan).item == 8
    funnel = parse("funnel by platform", GA4)
    assert parse("break it down by country", GA4, previous=funnel).intent == "funnel"  # a reshape, not an item
    for question in ("what's our CSAT score?", "VAT collected in October", "Instagram followers gained this month",
                     "what will revenue look like at Christmas?"):
        assert parse(question, GA4).intent == "unsupported", question
    assert parse("what would be the top priority for us?", GA4).intent == "scan"  # "would" is no forecast
