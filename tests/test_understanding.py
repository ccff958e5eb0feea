"""Reading questions against data that is not ours: GA4-style values (country names, upper-case platforms, a
device type, `cpc` for paid search), spelling slips, PM time words and the scored intents."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest
from typer.testing import CliRunner

from agent.cli import app
from agent.intents import Vocabulary, parse
from agent.timewords import before, comparison, period

GA4 = Vocabulary(
    dimensions={"platform": ["ANDROID", "IOS", "WEB"], "os": ["Android", "iOS", "Windows", "macOS"],
                "device_type": ["desktop", "mobile", "tablet"], "browser": ["Chrome", "Safari"],
                "country": ["Brazil", "Germany", "United States"], "traffic_source_medium": ["cpc", "email", "organic"],
                "plan": ["free", "pro"]},
    data_end="2026-11-23", steps=["view_item", "add_to_cart", "begin_checkout", "add_payment_info", "purchase"],
    metrics={"revenue": "Revenue", "conversion_rate": "Conversion rate", "aov": "Average order value",
             "searches": "Searches", "zero_result_searches": "Zero-result searches"},
    concepts={"platform": "platform", "os": "os", "country": "country", "channel": "traffic_source_medium",
              "plan": "plan", "browser": "browser"})


@pytest.mark.parametrize(("text", "segment"), [
    ("Are Brazilian customers struggling to pay?", {"country": "Brazil"}),
    ("cart abandonment in germany", {"country": "Germany"}),
    ("funnel for the USA", {"country": "United States"}),
    ("conversion funnel on iOS last month", {"platform": "IOS"}),       # not also os = iOS
    ("revenue from paid search users in October", {"traffic_source_medium": "cpc"}),
    ("checkout on Safari", {"browser": "Safari"}),
    ("funnel for mobile", {"device_type": "mobile"}),                    # the data's own word wins
])
def test_everyday_names_map_to_the_datas_own_values(text: str, segment: dict) -> None:
    assert parse(text, GA4).segment == segment


def test_two_values_compared_are_a_breakdown_not_a_filter() -> None:
    q = parse("How is mobile doing compared to desktop?", GA4)
    assert (q.intent, q.breakdown, q.segment) == ("funnel", "device_type", {})
    q = parse("do pro users churn more than other plans?", GA4)
    assert (q.intent, q.breakdown, q.segment) == ("retention", "plan", {})


@pytest.mark.parametrize(("text", "intent"), [
    ("revenue from paid search users in October", "metric"),     # 'search' here is a channel, not search health
    ("whats our convertion by platfrom last wk", "metric"),      # slips and short forms
    ("wk2 retension for email users", "retention"),
    ("Where do web users give up?", "dropoffs"),
    ("What's driving the error rate jump on Safari?", "why_change"),
    ("how much did we spend on google ads last month?", "unsupported"),
    ("How is the new onboarding test doing?", "experiments"),    # no such experiment here: all of them
])
def test_scored_intents(text: str, intent: str) -> None:
    assert parse(text, GA4).intent == intent


def test_spelling_leaves_everyday_words_alone() -> None:
    q = parse("do users from email churn more than other channels?", GA4)
    assert q.breakdown == "traffic_source_medium"  # 'other' is not a slip of 'order'
    assert parse("What broke?", GA4).intent == "incidents"


def test_time_words() -> None:
    end = GA4.end
    assert period("this month", end) == "2026-11-01..2026-11-23"
    assert period("between Oct 5 and Oct 18", end) == "2026-10-05..2026-10-19"
    assert period("2026-10-12 through 2026-10-25", end) == "2026-10-12..2026-10-26"
    assert comparison("this month vs last month", end) == ("2026-11-01..2026-11-23", "2026-10-01..2026-11-01")
    assert before("last_7_days", end) == "2026-11-09..2026-11-16"
    q = parse("and the week before that?", GA4, previous=parse("did anything break last week?", GA4))
    assert (q.intent, q.period) == ("incidents", "2026-11-09..2026-11-16")


def test_sql_shows_nulls_as_empty_cells(tmp_path: Path) -> None:
    db = tmp_path / "nulls.duckdb"
    with duckdb.connect(str(db)) as con:
        con.execute("CREATE TABLE users (user_id VARCHAR, signed_up_at TIMESTAMP)")
        con.execute("CREATE TABLE events (event_id VARCHAR, ts TIMESTAMP, user_id VARCHAR, session_id VARCHAR, "
                    "event VARCHAR, browser VARCHAR, load DOUBLE)")
        con.execute("INSERT INTO events VALUES ('e1', TIMESTAMP '2026-01-01', 'u1', 's1', 'x', NULL, NULL), "
                    "('e2', TIMESTAMP '2026-01-02', 'u1', 's1', 'x', 'Chrome', 1.5)")
    out = CliRunner().invoke(app, ["sql", "SELECT browser, load FROM events ORDER BY event_id", "--db", str(db)])
    assert out.exit_code == 0, out.output
    assert "Chrome" in out.output and "1.5" in out.output and "nan" not in out.output.lower()
