"""The metrics layer (tools/metrics.py over data/metrics.yaml, read through the demo's event map) on a
small hand-built DuckDB.

Every expected value is worked out by hand in the comments below, never with the code under test.

Time: T0 = Monday 2026-01-05 00:00 UTC (ISO week 2026-W02); `d` = days after T0. The data runs
from d0 (Mon Jan 5) to d34 (Sun Feb 8): 35 days, ISO weeks W02..W06 (d0-6, d7-13, d14-20,
d21-27, d28-34), months January (d0-26) and February (d27-34).

Users (platform of all their events, plan, signup):
  u1  web      free  d0 09:00
  u2  android  pro   d0 10:00
  u3  ios      free  d1 08:00
  u4  web      plus  d7 12:00
  u5  ios      pro   2025-12-20  -- opens the app every day d0..d34 at 08:00 (no day without events)

Sessions are a user's events of one day (`u1-d0`): u1 3 (d0, d1, d8), u2 3 (d0, d2, d9), u3 2 (d1, d30),
u4 2 (d7, d15), u5 35 -> 45 sessions. No error events.

Events besides u5's:
  u1  d0  Product Viewed, Product Added, Order Completed 40;  d1 Products Searched x2 (0 and 5 results);
      d8  Product Viewed, Order Completed 20
  u2  d0  Product Viewed, Product Added;  d2 Products Searched (3);  d9 Order Completed 100
  u3  d1  Product Viewed, Products Searched (0), Product Added, Order Completed 60;  d30 Application Opened
  u4  d7  Product Viewed, Products Searched (7), Product Added;  d15 Application Opened
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import duckdb
import pytest
import yaml

from data.schema import create_tables
from tools.metrics import MetricError, compute_metric, describe_metric
from tools.period import Period
from tools.semantic.eventmap import shipped_map
from tools.semantic.metrics import catalog, find
from tools.warehouse import Warehouse

DEMO_MAP = shipped_map("demo")


def definitions() -> dict:
    return catalog(DEMO_MAP)

T0 = datetime(2026, 1, 5)
ALL = Period("all", None, None)
W03 = Period.parse("2026-W03", None)  # d7..d13
ROOT = Path(__file__).resolve().parents[1]

USERS = {  # user: (platform, plan, signup)
    "u1": ("web", "free", T0 + timedelta(hours=9)),
    "u2": ("android", "pro", T0 + timedelta(hours=10)),
    "u3": ("ios", "free", T0 + timedelta(days=1, hours=8)),
    "u4": ("web", "plus", T0 + timedelta(days=7, hours=12)),
    "u5": ("ios", "pro", datetime(2025, 12, 20)),
}
EVENTS = [  # (user, day, hour, minute, event, columns)
    ("u1", 0, 10, 0, "Product Viewed", {"product_id": "p1", "price": 20.0}),
    ("u1", 0, 10, 1, "Product Added", {"product_id": "p1", "price": 20.0}),
    ("u1", 0, 10, 5, "Order Completed", {"product_id": "p1", "revenue": 40.0}),
    ("u1", 1, 11, 0, "Products Searched", {"search_query": "shoes", "results_count": 0}),
    ("u1", 1, 11, 1, "Products Searched", {"search_query": "red shoes", "results_count": 5}),
    ("u1", 8, 12, 0, "Product Viewed", {"product_id": "p2", "price": 20.0}),
    ("u1", 8, 12, 5, "Order Completed", {"product_id": "p2", "revenue": 20.0}),
    ("u2", 0, 11, 0, "Product Viewed", {"product_id": "p3", "price": 100.0}),
    ("u2", 0, 11, 2, "Product Added", {"product_id": "p3", "price": 100.0}),
    ("u2", 2, 9, 0, "Products Searched", {"search_query": "lamp", "results_count": 3}),
    ("u2", 9, 9, 0, "Order Completed", {"product_id": "p3", "revenue": 100.0}),
    ("u3", 1, 9, 0, "Product Viewed", {"product_id": "p4", "price": 60.0}),
    ("u3", 1, 9, 1, "Products Searched", {"search_query": "vegan", "results_count": 0}),
    ("u3", 1, 9, 2, "Product Added", {"product_id": "p4", "price": 60.0}),
    ("u3", 1, 9, 5, "Order Completed", {"product_id": "p4", "revenue": 60.0}),
    ("u3", 30, 9, 0, "Application Opened", {}),
    ("u4", 7, 13, 0, "Product Viewed", {"product_id": "p5", "price": 30.0}),
    ("u4", 7, 13, 1, "Products Searched", {"search_query": "watch", "results_count": 7}),
    ("u4", 7, 13, 2, "Product Added", {"product_id": "p5", "price": 30.0}),
    ("u4", 15, 13, 0, "Application Opened", {}),
    *[("u5", d, 8, 0, "Application Opened", {}) for d in range(35)],
]

# Week-1 retention windows [signup + 7 days, signup + 14 days):
#   u1 [d7 09:00, d14 09:00): d8 events -> retained      u2 [d7 10:00, d14 10:00): d9 order -> retained
#   u3 [d8 08:00, d15 08:00): next event d30 -> not      u4 [d14 12:00, d21 12:00): d15 -> retained
#   u5 [Dec 27, Jan 3): first event d0 (Jan 5) -> not
# All cohorts end by d21 <= the data end (midnight after d34), so every user counts.
EXPECTED: dict[tuple[str, str], float | None] = {
    # --- period all, everyone
    # DAU: u5 alone on 27 days; 3 users on d0 (u5,u1,u2) and d1 (u5,u1,u3); 2 users on d2 (u2), d7 (u4),
    # d8 (u1), d9 (u2), d15 (u4), d30 (u3): (27 + 2*3 + 6*2) / 35 = 45/35
    ("dau", ""): 45 / 35,
    # WAU: W02 u5,u1,u2,u3 = 4; W03 u5,u4,u1,u2 = 4; W04 u5,u4 = 2; W05 u5 = 1; W06 u5,u3 = 2 -> 13/5
    ("wau", ""): 13 / 5,
    # MAU: January all 5; February u5,u3 = 2 -> 7/2
    ("mau", ""): 3.5,
    ("orders", ""): 4,  # u1 x2, u2, u3
    ("revenue", ""): 220.0,  # 40 + 20 + 100 + 60
    ("aov", ""): 55.0,  # 220 / 4
    ("buyers", ""): 3,  # u1, u2, u3
    ("funnel_entrants", ""): 4,  # u1..u4 viewed a product (the funnel's first step)
    ("sessions", ""): 45,
    ("converting_sessions", ""): 4,  # u1-d0, u1-d8, u2-d9, u3-d1
    ("conversion_rate", ""): 4 / 45,
    ("funnel_sessions", ""): 5,  # u1-d0, u1-d8, u2-d0, u3-d1, u4-d7
    ("cart_sessions", ""): 4,  # u1-d0, u2-d0, u3-d1, u4-d7
    ("add_to_cart_rate", ""): 0.8,  # 4 / 5
    ("error_sessions", ""): 0,
    ("error_rate", ""): 0.0,
    ("cart_adders", ""): 4,  # u1..u4
    ("buyers_among_adders", ""): 3,  # u1, u2, u3
    ("cart_abandonment", ""): 0.25,  # 1 - 3/4
    ("searches", ""): 5,  # u1 x2, u2, u3, u4
    ("zero_result_searches", ""): 2,  # u1 'shoes', u3 'vegan'
    ("zero_result_rate", ""): 0.4,  # 2 / 5
    ("week_1_retention", ""): 0.6,  # u1, u2, u4 of 5
    # --- event dimension platform=web (u1, u4)
    ("orders", "platform=web"): 2,  # u1's two
    ("revenue", "platform=web"): 60.0,
    ("aov", "platform=web"): 30.0,
    ("buyers", "platform=web"): 1,
    ("funnel_entrants", "platform=web"): 2,
    ("sessions", "platform=web"): 5,  # u1 3, u4 2
    ("converting_sessions", "platform=web"): 2,  # u1-d0, u1-d8
    ("conversion_rate", "platform=web"): 0.4,
    ("funnel_sessions", "platform=web"): 3,  # u1-d0, u1-d8, u4-d7
    ("cart_sessions", "platform=web"): 2,  # u1-d0, u4-d7
    ("add_to_cart_rate", "platform=web"): 2 / 3,
    ("error_sessions", "platform=web"): 0,
    ("error_rate", "platform=web"): 0.0,
    ("cart_adders", "platform=web"): 2,
    ("buyers_among_adders", "platform=web"): 1,
    ("cart_abandonment", "platform=web"): 0.5,  # 1 - 1/2
    ("searches", "platform=web"): 3,  # u1 (0, 5), u4 (7)
    ("zero_result_searches", "platform=web"): 1,
    ("zero_result_rate", "platform=web"): 1 / 3,
    # --- event dimension platform=ios (u3, u5): active every day thanks to u5
    ("dau", "platform=ios"): 37 / 35,  # 2 users on d1 and d30, else 1
    ("wau", "platform=ios"): 7 / 5,  # W02 2, W03-W05 1, W06 2
    ("mau", "platform=ios"): 2.0,  # January u5,u3; February u5,u3
    # --- user dimension plan=free (u1, u3)
    ("orders", "plan=free"): 3,
    ("revenue", "plan=free"): 120.0,
    ("aov", "plan=free"): 40.0,
    ("buyers", "plan=free"): 2,
    ("funnel_entrants", "plan=free"): 2,
    ("sessions", "plan=free"): 5,  # u1 3, u3 2
    ("converting_sessions", "plan=free"): 3,  # u1-d0, u1-d8, u3-d1
    ("conversion_rate", "plan=free"): 0.6,
    ("funnel_sessions", "plan=free"): 3,  # u1-d0, u1-d8, u3-d1
    ("cart_sessions", "plan=free"): 2,  # u1-d0, u3-d1
    ("add_to_cart_rate", "plan=free"): 2 / 3,
    ("error_sessions", "plan=free"): 0,
    ("error_rate", "plan=free"): 0.0,
    ("cart_adders", "plan=free"): 2,
    ("buyers_among_adders", "plan=free"): 2,
    ("cart_abandonment", "plan=free"): 0.0,
    ("searches", "plan=free"): 3,  # u1 (0, 5), u3 (0)
    ("zero_result_searches", "plan=free"): 2,
    ("zero_result_rate", "plan=free"): 2 / 3,
    ("week_1_retention", "plan=free"): 0.5,  # u1 yes, u3 no
    # --- user dimension plan=pro (u2, u5): active every day thanks to u5
    ("dau", "plan=pro"): 38 / 35,  # 2 users on d0, d2, d9, else 1
    ("wau", "plan=pro"): 7 / 5,  # W02 2, W03 2 (u2 d9), W04-W06 1
    ("mau", "plan=pro"): 1.5,  # January u5,u2; February u5
    ("orders", "plan=pro"): 1,
    ("revenue", "plan=pro"): 100.0,
    ("aov", "plan=pro"): 100.0,
    ("conversion_rate", "plan=pro"): 1 / 38,  # u2-d9 of u2's 3 and u5's 35 sessions
    ("week_1_retention", "plan=pro"): 0.5,  # u2 yes, u5 no
    ("week_1_retention", "plan=plus"): 1.0,  # u4
}
# Period 2026-W03 (d7..d13): u5 daily, u4 d7, u1 d8, u2 d9.
EXPECTED_W03: dict[str, float] = {
    "dau": 10 / 7,  # 2 users on d7, d8, d9; 1 on d10..d13
    "wau": 4,
    "mau": 4,  # January: u5, u4, u1, u2
    "orders": 2,  # u1 20, u2 100
    "revenue": 120.0,
    "aov": 60.0,
    "buyers": 2,
    "funnel_entrants": 2,  # u1 d8, u4 d7
    "sessions": 10,  # u5 d7..d13, u4-d7, u1-d8, u2-d9
    "conversion_rate": 0.2,  # u1-d8, u2-d9 of 10
    "add_to_cart_rate": 0.5,  # u4-d7 added, of u4-d7 and u1-d8 viewing
    "cart_adders": 1,  # u4
    "searches": 1,  # u4 (7 results)
    "zero_result_searches": 0,
    "zero_result_rate": 0.0,
    "week_1_retention": 1.0,  # cohort signed up in W03: u4, retained
}


@pytest.fixture(scope="module")
def wh(tmp_path_factory: pytest.TempPathFactory) -> Warehouse:
    path = tmp_path_factory.mktemp("metrics") / "hand.duckdb"
    con = duckdb.connect(str(path))
    create_tables(con)
    for user, (_, plan, signup) in USERS.items():
        con.execute("INSERT INTO users VALUES (?, ?, 'US', 'organic', ?)", [user, signup, plan])
    for i, (user, day, hour, minute, event, cols) in enumerate(EVENTS):
        platform = USERS[user][0]
        os_ = {"web": "macos", "ios": "ios", "android": "android"}[platform]
        values = {"event_id": f"e{i:03d}", "ts": T0 + timedelta(days=day, hours=hour, minutes=minute),
                  "user_id": user, "session_id": f"{user}-{day}", "event": event, "platform": platform, "os": os_,
                  "app_version": "5.1.0", "browser": "chrome" if platform == "web" else None, "country": "US", **cols}
        con.execute(f"INSERT INTO events ({', '.join(values)}) VALUES ({', '.join('?' * len(values))})",
                    list(values.values()))
    con.close()
    with Warehouse(path, event_map=DEMO_MAP) as warehouse:
        yield warehouse


def segment_of(text: str) -> dict[str, str]:
    return dict([text.split("=")]) if text else {}


def test_every_metric_has_a_hand_computed_value() -> None:
    """The cases below cover every metric of data/metrics.yaml, overall and per segment."""
    keys = set(yaml.safe_load((ROOT / "data" / "metrics.yaml").read_text()))
    assert set(definitions()) == keys
    assert {k for k, seg in EXPECTED if seg == ""} == keys
    assert {k for k, seg in EXPECTED if seg.startswith("platform=")} == keys - {"week_1_retention"}
    assert {k for k, seg in EXPECTED if seg.startswith("plan=")} == keys


@pytest.mark.parametrize(("key", "segment"), list(EXPECTED), ids=[f"{k}[{s or 'all'}]" for k, s in EXPECTED])
def test_metric_equals_hand_computed_value(wh: Warehouse, key: str, segment: str) -> None:
    result = compute_metric(wh, key, ALL, segment_of(segment))
    assert result.data["metric"] == key
    assert result.data["value"] == pytest.approx(EXPECTED[key, segment], abs=1e-9)
    assert float(result.table["value"].iloc[0]) == pytest.approx(EXPECTED[key, segment], abs=1e-9)
    assert definitions()[key].name in result.summary and definitions()[key].owner in result.summary


@pytest.mark.parametrize("key", list(EXPECTED_W03))
def test_metric_in_a_bounded_period(wh: Warehouse, key: str) -> None:
    assert compute_metric(wh, key, W03).data["value"] == pytest.approx(EXPECTED_W03[key], abs=1e-9)


@pytest.mark.parametrize("name", ["MAU", "mau", "Monthly active users", "monthly  ACTIVE users"])
def test_metrics_are_found_by_key_or_name(wh: Warehouse, name: str) -> None:
    assert find(name, definitions()).key == "mau"
    assert compute_metric(wh, name, ALL).data["value"] == pytest.approx(3.5)


def test_summary_formats_the_value(wh: Warehouse) -> None:
    assert compute_metric(wh, "conversion_rate", ALL).summary.startswith("Conversion rate: 8.9% of sessions over all")
    assert "Revenue: $220 over all time" in compute_metric(wh, "revenue", ALL).summary
    assert "$55.00 per order" in compute_metric(wh, "Average order value", ALL).summary
    assert "platform=web" in compute_metric(wh, "orders", ALL, {"platform": "web"}).summary


def test_no_data_is_none(wh: Warehouse) -> None:
    """A ratio over an empty denominator is NULL, not an error."""
    result = compute_metric(wh, "zero_result_rate", Period.parse("2026-W05", None))  # no searches in W05
    assert result.data["value"] is None and "no data" in result.summary


def test_how_is_mau_defined() -> None:
    raw = yaml.safe_load((ROOT / "data" / "metrics.yaml").read_text())["mau"]
    text = describe_metric(DEMO_MAP, "MAU").summary
    assert raw["description"] in text
    assert raw["owner"] in text
    assert "Monthly active users" in text and "per month" in text


def test_describe_all_metrics() -> None:
    result = describe_metric(DEMO_MAP)
    assert set(result.table["key"]) == set(definitions())
    for d in definitions().values():
        assert d.description in result.summary


def test_undefined_metric_is_refused(wh: Warehouse) -> None:
    with pytest.raises(MetricError, match="'NPS' is not defined") as err:
        compute_metric(wh, "NPS", ALL)
    for key in definitions():
        assert key in str(err.value)
    text = describe_metric(DEMO_MAP, "NPS").summary
    assert "not defined" in text and "NPS" in text
    assert "mau (Monthly active users)" in text


def test_bad_segments_are_refused(wh: Warehouse) -> None:
    with pytest.raises(MetricError, match="defined on users"):
        compute_metric(wh, "week_1_retention", ALL, {"platform": "web"})
    with pytest.raises(ValueError, match="unknown dimension 'colour'"):
        compute_metric(wh, "orders", ALL, {"colour": "red"})


# Known bugs, worked out by hand the same way.


def test_actives_average_over_every_day_of_the_period(wh: Warehouse) -> None:
    # platform=web: one user on d0, d1, d7, d8, d15 and none on the other 30 days -> 5/35
    assert compute_metric(wh, "dau", ALL, {"platform": "web"}).data["value"] == pytest.approx(5 / 35)


def test_cart_abandonment_in_a_bounded_period(wh: Warehouse) -> None:
    # W03: the only cart adder is u4 (d7), who did not buy -> 1 - 0/1 = 1.0;
    # the code counts u1 and u2 (bought in W03, added in W02) as buyers among adders -> 1 - 2/1 = -1.0
    assert compute_metric(wh, "cart_abandonment", W03).data["value"] == pytest.approx(1.0)
