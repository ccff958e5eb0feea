"""Incidents in time (docs/ANALYTICS.md, Incidents): the temporal scan, incidents on hand-built data
with known dates, a small generated product with two incidents, the digest's incident section, and
the questions and periods that ask for them."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from agent.digest import run_digest, week_incidents
from agent.intents import Vocabulary, parse
from benchmarks.detection import HERE as BENCHMARKS
from data.generate import generate
from data.scenario import load_scenario
from tests.test_analytics import ALL, CS, OC, PA, PIE, PV, SEARCHED, E
from tools import TOOLS
from tools.incidents import incidents
from tools.period import Period, resolve_period
from tools.scan import scan
from tools.sessions import Facts
from tools.timescan import MIN_BASELINE_DAYS, best_window
from tools.warehouse import Warehouse

DAY0 = datetime(2026, 1, 5)


# ------------------------------------------------------------------------------ the scan


def test_scan_finds_the_window_and_sets_it_aside_for_a_second() -> None:
    # 60 days of 100 trials at 0.8, with 0.3 on days 10-19 and 0.5 on days 40-44.
    x = np.full(60, 80.0)
    x[10:20], x[40:45] = 30, 50
    n = np.full(60, 100.0)
    first = best_window(x, n, "lower")
    assert (first.start, first.end) == (10, 20) and first.p_value < 1e-12
    masked = np.zeros(60, bool)
    masked[first.start:first.end] = True
    second = best_window(x, n, "lower", masked)
    assert (second.start, second.end) == (40, 45)
    assert second.rate == pytest.approx(0.5) and second.baseline == pytest.approx(0.8)


def test_scan_looks_only_the_harmful_way() -> None:
    x = np.full(40, 20.0)
    x[25:30] = 60  # a rise of an error rate is harmful, of a conversion rate it is not
    n = np.full(40, 100.0)
    assert best_window(x, n, "higher").start == 25
    low = best_window(x, n, "lower")
    assert low is None or low.p_value > 0.05


def test_scan_discounts_days_that_swing_more_than_a_binomial_would() -> None:
    # Day-to-day swings of +-10 points at n=1000 (binomial sd 1.3 points): no window stands out once the
    # statistic is scaled by the series' own dispersion.
    rng = np.random.default_rng(7)
    n = np.full(90, 1000.0)
    x = np.round(n * np.clip(0.5 + rng.normal(0, 0.1, 90), 0, 1))
    w = best_window(x, n, "lower")
    assert w.dispersion > 10 and w.p_value > 0.05


def test_scan_needs_a_baseline_week_outside_the_window() -> None:
    assert best_window([1.0] * (MIN_BASELINE_DAYS + 1), [10.0] * (MIN_BASELINE_DAYS + 1), "lower") is None


# ------------------------------------------------------------------------------ hand-built data


def collapse(rate_during: float, segment_only: str | None = None, seed: int = 11) -> list[dict]:
    """600 users over 180 days, about six sessions a day (half in DE, half in FR). Product Viewed ->
    Product Added converts 85% of sessions, except on days 80-100, where it converts `rate_during`
    (only in `segment_only`'s sessions when given): about 130 sessions in those 21 days."""
    rng = np.random.default_rng(seed)
    events = []
    for s in range(1080):
        day = s // 6
        user, country = f"u{s % 600}", ("DE", "FR")[s % 2]
        t = DAY0 + timedelta(days=day, hours=8 + s % 6, minutes=int(rng.integers(0, 50)))
        hit = 80 <= day <= 100 and (segment_only is None or country == segment_only)
        events.append(E(user, t, PV, f"s{s}", country=country, platform="web"))
        if rng.random() < (rate_during if hit else 0.85):
            events.append(E(user, t + timedelta(minutes=2), PA, f"s{s}", country=country, platform="web"))
    return events


def found(wh: Warehouse) -> list:
    return incidents(wh, Facts(ALL, wh.event_map).materialize(wh)).findings


def test_a_collapse_over_130_sessions_of_600_users_is_found_with_its_dates(make_wh) -> None:
    (f,) = found(make_wh(collapse(0.35)))
    inc = f.detail["incident"]
    assert f.kind == "funnel_dropoff" and f.step == PA and f.segment == {}
    assert abs((date.fromisoformat(inc["start"]) - date(2026, 3, 26)).days) <= 3  # day 80
    assert abs((date.fromisoformat(inc["end"]) - date(2026, 4, 16)).days) <= 3  # day 101: recovered
    assert inc["status"] == "recovered"
    assert f.baseline == pytest.approx(0.85, abs=0.04) and f.observed == pytest.approx(0.35, abs=0.1)
    assert f.detail["sessions"] == pytest.approx(126, abs=20) and f.p_value < 1e-6
    assert f"{inc['start']}.." in f.period and f.title.startswith(f"{PV} -> {PA} conversion fell")


def test_a_one_point_wobble_on_the_same_data_is_not_an_incident(make_wh) -> None:
    assert found(make_wh(collapse(0.84))) == []


def test_an_incident_in_one_country_is_reported_for_that_country(make_wh) -> None:
    (f,) = found(make_wh(collapse(0.3, segment_only="FR", seed=5)))
    assert f.segment == {"country": "FR"} and f.detail["incident"]["status"] == "recovered"
    assert abs((date.fromisoformat(f.detail["incident"]["start"]) - date(2026, 3, 26)).days) <= 3


def test_an_incident_running_at_the_end_is_ongoing(make_wh) -> None:
    events = [e for e in collapse(0.35) if e["ts"] < DAY0 + timedelta(days=95)]
    (f,) = found(make_wh(events))
    assert f.detail["incident"]["status"] == "ongoing" and f.detail["incident"]["end"] is None
    assert "(ongoing)" in f.title


def test_a_zero_result_burst_is_an_incident_of_the_catalog_share(make_wh) -> None:
    # 20 searches a day for 60 days, 2 with no results (10%), 14 (70%) on days 30-39: the zero-result rate
    # of the metric catalog is scanned for everyone. The funnel's sessions stay steady; the conversion rate
    # moves with nothing, so only the share's incident is reported.
    events = []
    for day in range(60):
        for k in range(20):
            t = DAY0 + timedelta(days=day, minutes=10 * k)
            empty = k < (14 if 30 <= day < 40 else 2)
            events += [E(f"u{k}", t, PV, f"s{day}-{k}", platform="web"),
                       E(f"u{k}", t + timedelta(minutes=1), SEARCHED, f"s{day}-{k}", platform="web",
                         search_query="shoes", results_count=0 if empty else 12)]
    (f,) = found(make_wh(events))
    assert (f.kind, f.metric, f.step, f.segment) == ("failed_search", "zero_result_rate", None, {})
    assert (f.detail["incident"]["start"], f.detail["incident"]["end"]) == ("2026-02-04", "2026-02-14")
    assert (f.baseline, f.observed) == pytest.approx((0.1, 0.7))
    assert f.title.startswith("Zero-result rate rose from 10.0% to 70.0% for everyone Feb 4-13")


def test_a_segment_that_only_lived_through_an_outage_is_left_to_the_incident(make_wh) -> None:
    # 60 days, 40 sessions a day; Product Viewed -> Product Added converts 80% in DE and 60% in FR (always),
    # and 30% for everyone on days 30-39 (an outage). Version 2.0 ran exactly on those days: over the period
    # it converts far worse than the rest, but outside the outage it has no sessions left to be worse with.
    rng = np.random.default_rng(3)
    events = []
    for day in range(60):
        for k in range(40):
            country, version = ("DE", "FR")[k % 2], "2.0" if 30 <= day < 40 else "1.0"
            t, sid = DAY0 + timedelta(days=day, minutes=10 * k), f"s{day}-{k}"
            rate = 0.3 if 30 <= day < 40 else (0.8 if country == "DE" else 0.6)
            cols = {"country": country, "platform": "ios", "app_version": version}
            events.append(E(f"u{day % 7}-{k}", t, PV, sid, **cols))
            if rng.random() < rate:
                events.append(E(f"u{day % 7}-{k}", t + timedelta(minutes=1), PA, sid, **cols))
                if k < 2:  # a few sessions go on to the order, so that every step of the funnel is seen
                    events += [E(f"u{day % 7}-{k}", t + timedelta(minutes=m), e, sid, **cols)
                               for m, e in ((2, CS), (3, PIE), (4, OC))]
    report = scan(make_wh(events))
    drops = [f for f in report.findings if f.kind == "funnel_dropoff"]
    (outage,) = [f for f in drops if "incident" in f.detail]
    assert outage.segment == {} and outage.detail["incident"]["start"] == "2026-02-04"
    assert any("app_version=2.0" in title for title in outage.detail["explains"])
    lasting = [f.segment for f in drops if "incident" not in f.detail]
    assert {"country": "FR"} in lasting and not any("app_version" in s for s in lasting)


# ------------------------------------------------------------------------------ a small product


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> Callable[[], Warehouse]:
    """eval_small: 800 users over six months, a three-week outage at payment and a month of iOS checkout bug."""
    path = tmp_path_factory.mktemp("small") / "small.duckdb"
    generate(load_scenario(BENCHMARKS / "scenarios" / "eval_small.yaml"), path)
    return lambda: Warehouse(path)


def test_the_small_product_shows_both_incidents_with_their_dates(small) -> None:
    wh = small()
    try:
        by_step = {f.step: f for f in found(wh)}
    finally:
        wh.close()
    outage, bug = by_step["Order Completed"], by_step["Checkout Started"]
    assert outage.segment == {} and bug.segment == {"platform": "ios"}
    for f, (start, end) in ((outage, ("2026-08-10", "2026-08-31")), (bug, ("2026-09-28", "2026-10-26"))):
        inc = f.detail["incident"]
        assert abs((date.fromisoformat(inc["start"]) - date.fromisoformat(start)).days) <= 3, f.title
        assert abs((date.fromisoformat(inc["end"]) - date.fromisoformat(end)).days) <= 6, f.title


def test_a_question_about_a_month_gets_the_incidents_overlapping_it_with_their_own_dates(small) -> None:
    # "Did anything break in late August?": the outage began on 2026-08-10, before the asked days, and
    # recovered on 2026-08-31, after them; it is dated against all the data, not clipped to the question.
    tool = TOOLS["incidents"]
    wh = small()
    try:
        late = tool.run(wh, tool.params.model_validate({"period": "2026-08-21..2026-09-01"}))
        november = tool.run(wh, tool.params.model_validate({"period": "2026-11-01..2026-11-15"}))
    finally:
        wh.close()
    (outage,) = [f for f in late.findings if f.step == "Order Completed"]
    assert outage.detail["incident"]["start"] < "2026-08-14" and outage.detail["incident"]["end"] > "2026-08-28"
    assert "recovered on" in late.summary and "(Aug 21-31)" in late.summary
    assert november.findings == [] and november.summary.startswith("No incident")


def test_the_digest_tells_new_ongoing_and_recovered_incidents(small, tmp_path: Path) -> None:
    # The outage runs 2026-08-10 (Monday of W33) to 2026-08-30 and recovers on 2026-08-31 (Monday of W36):
    # weekly digests call it new in W33 (last week's digest did not list it), ongoing until W35, recovered
    # in W36, and leave it out from W37.
    wh = small()
    try:
        seen = {}
        for week in ("2026-W32", "2026-W33", "2026-W34", "2026-W35", "2026-W36", "2026-W37"):
            digest = run_digest(wh, tmp_path, week)
            seen[week] = [i for i in digest.incidents if "Order Completed" in i.title and "everyone" in i.title]
    finally:
        wh.close()
    assert {w: [i.status for i in found] for w, found in seen.items()} == {
        "2026-W32": [], "2026-W33": ["new"], "2026-W34": ["ongoing"], "2026-W35": ["ongoing"],
        "2026-W36": ["recovered"], "2026-W37": []}
    (recovered,) = seen["2026-W36"]
    assert abs((date.fromisoformat(recovered.end) - date(2026, 8, 31)).days) <= 3
    saved = (tmp_path / "digests" / "2026-W36.md").read_text()
    assert f"**Recovered** on {recovered.end}: {recovered.title}" in saved
    assert "chart-2" in (tmp_path / "digests" / "2026-W36.html").read_text()  # the incident timeline


def test_a_first_digest_calls_an_incident_that_started_before_its_week_ongoing(small) -> None:
    wh = small()
    try:
        listed, chart = week_incidents(wh, "2026-W34")
    finally:
        wh.close()
    assert [i.status for i in listed if "Order Completed" in i.title] == ["ongoing"] and chart is not None


# ------------------------------------------------------------------------------ questions and periods

VOCAB = Vocabulary(dimensions={"platform": ["web", "ios", "android"], "app_version": ["7.3.0", "7.4.0"]},
                   data_end="2024-06-30", concepts={"platform": "platform", "version": "app_version"})


@pytest.mark.parametrize(("text", "period"), [
    ("What broke?", "all"),
    ("Did anything break in May?", "2024-05-01..2024-06-01"),
    ("When did checkout start dropping?", "all"),
    ("Is it fixed?", "all"),
    ("has it recovered since the 7.4 release", "after_release:7.4"),
    ("any incidents in late May", "2024-05-21..2024-06-01"),
    ("outages between April 9 and May 9", "2024-04-09..2024-05-10"),
    ("what went wrong in 2024-W21", "2024-W21"),
])
def test_incident_questions_ask_for_incidents_over_their_period(text: str, period: str) -> None:
    q = parse(text, VOCAB)
    assert (q.intent, q.period) == ("incidents", period)


def test_why_did_conversion_drop_in_late_may_compares_late_may() -> None:
    q = parse("Why did conversion drop in late May?", VOCAB)
    assert (q.intent, q.period) == ("why_change", "2024-05-21..2024-06-01")


def test_a_release_period_splits_the_data_on_the_day_the_release_appeared(make_wh) -> None:
    events = [E("u1", DAY0 + timedelta(days=d), PV, f"s{d}", platform="ios", app_version=v)
              for d, v in ((0, "7.3.0"), (3, "7.3.1"), (10, "7.4.0"), (12, "7.4.2"))]
    wh = make_wh(events)
    assert resolve_period(wh, "after_release:7.4") == Period("after_release:7.4", DAY0 + timedelta(days=10), None)
    assert resolve_period(wh, "before_release:7.4").end == DAY0 + timedelta(days=10)


def test_eval_scores_dates_within_three_days() -> None:
    from benchmarks.detection import dates_match
    from tools.result import Friction

    truth = {"period": ["2026-01-01", "2026-07-01"]}
    planted = {"period": ["2026-03-01", "2026-03-22"]}

    def incident(start: str, end: str | None, last: str) -> Friction:
        return Friction(kind="funnel_dropoff", title="t", metric="m", step=PA, period="p", baseline=0.8, observed=0.3,
                        affected_users=1, est_lost_conversions=1.0, evidence_sql="SELECT 1",
                        detail={"incident": {"start": start, "end": end, "last_day": last}})

    assert dates_match(planted, incident("2026-03-03", "2026-03-20", "2026-03-19"), truth)
    assert not dates_match(planted, incident("2026-03-05", "2026-03-22", "2026-03-21"), truth)
    assert not dates_match(planted, incident("2026-03-01", None, "2026-06-30"), truth)  # not ongoing
    ongoing = {"period": ["2026-06-10", "2026-07-01"]}
    assert dates_match(ongoing, incident("2026-06-11", None, "2026-06-30"), truth)
