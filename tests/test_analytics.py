"""Every definition of docs/ANALYTICS.md on a small hand-built table.

Each test builds a real DuckDB file in tmp_path (create_tables + a handful of INSERTed rows),
runs the tool, and compares with an answer worked out by hand in the test (the arithmetic is
in the comments; no expected value is computed with the code under test).

Time in the tables: `T0` = Monday 2026-01-05 00:00 UTC (ISO week 2026-W02); an event's time is
given as seconds after T0 (the constants S, M, H, D help: 90 * M, 7 * D + 1 * S, ...).
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from typing import Any

import pandas as pd
import pytest

from prompts import load_yaml
from tools.cart import cart_abandonment
from tools.distinct_users import distinct_users
from tools.dropoffs import dropoffs
from tools.errors_speed import errors_and_speed
from tools.experiments import analyze, experiments
from tools.funnel import FunnelSpec, funnel, levels_sql
from tools.period import Period, PeriodError, resolve_period
from tools.prioritize import confidence, impact_tier, merge, prioritize, tweak_for
from tools.result import Friction
from tools.retention import retention, week_n_sql
from tools.search import NORMALIZED, edit_distance, likely_cause, search, searches_sql
from tools.segments import SegmentRules, compare, segment_key, select
from tools.semantic.eventmap import shipped_map
from tools.sessions import Facts
from tools.stats import bh, relative_lift, robust_z, srm_p, two_proportion_p
from tools.trends import decompose, trends
from tools.warehouse import Warehouse

T0 = datetime(2026, 1, 5)  # Monday, ISO week 2026-W02
S, M, H, D = 1, 60, 3600, 86400
ALL = Period("all", None, None)
DEMO_MAP = shipped_map("demo")

PV, PA, CS, PIE, OC = ("Product Viewed", "Product Added", "Checkout Started", "Payment Info Entered",
                       "Order Completed")
SEARCHED, CLICKED, ERROR, PAGE = "Products Searched", "Search Result Clicked", "Error Shown", "Page Viewed"


# ------------------------------------------------------------------------------ building tables


def E(user: str, t: float | datetime, event: str, session: str | None = None, **cols: Any) -> dict[str, Any]:
    """One event row: `t` seconds after T0 (or an absolute datetime); other columns by name."""
    ts = t if isinstance(t, datetime) else T0 + timedelta(seconds=t)
    return {"user_id": user, "ts": ts, "event": event, "session_id": session, **cols}


def U(user: str, signed_up_at: datetime | None = None, **cols: Any) -> dict[str, Any]:
    """One users row."""
    return {"user_id": user, "signed_up_at": signed_up_at, **cols}


def reach(wh: Warehouse, spec: FunnelSpec) -> list[int]:
    """Entities reaching each step of the funnel report."""
    return [int(n) for n in funnel(wh, spec).table["entities"]]


def user_levels(wh: Warehouse, spec: FunnelSpec) -> dict[str, int]:
    df = wh.query(levels_sql(spec, wh.event_map)).df
    return {str(r.entity): int(r.level) for r in df.itertuples()}


# ------------------------------------------------------------------------------ funnel

THREE = (PV, PA, OC)


def test_funnel_allows_other_events_between_steps(make_wh) -> None:
    # u1: PV, then unrelated events, PA, more unrelated events, OC -> reaches all 3 steps.
    wh = make_wh([E("u1", 0, PV), E("u1", 10, PAGE), E("u1", 20, "Cart Viewed"), E("u1", 30, PA),
                  E("u1", 40, PAGE), E("u1", 50, SEARCHED), E("u1", 100, OC)])
    assert reach(wh, FunnelSpec(THREE)) == [1, 1, 1]


def test_funnel_step_exactly_at_window_edge_counts_one_second_later_does_not(make_wh) -> None:
    # window 1 day. u1: PA at t1 + 86400 s (= window) counts; u2: PA at t1 + 86401 s does not.
    wh = make_wh([E("u1", 0, PV), E("u1", 1 * D, PA),
                  E("u2", 0, PV), E("u2", 1 * D + 1, PA)])
    assert user_levels(wh, FunnelSpec((PV, PA), window_days=1)) == {"u1": 2, "u2": 1}
    assert reach(wh, FunnelSpec((PV, PA), window_days=1)) == [2, 1]


def test_funnel_window_is_measured_from_step_one_not_from_previous_step(make_wh) -> None:
    # window 1 day. PA 12 h after PV; OC 1 day + 1 s after PV (only 12 h + 1 s after PA).
    # Measured from step 1, OC is outside the window: level 2, not 3.
    wh = make_wh([E("u1", 0, PV), E("u1", 12 * H, PA), E("u1", 1 * D + 1, OC)])
    assert user_levels(wh, FunnelSpec(THREE, window_days=1)) == {"u1": 2}


def test_funnel_late_attempt_that_completes_beats_early_one(make_wh) -> None:
    # 7-day window. Attempt from PV@d0: PA@d1, but the first OC after it is @d9+2h > d0+7d -> level 2.
    # Attempt from PV@d9: PA@d9+1h, OC@d9+2h -> level 3. The user's level is the best: 3.
    wh = make_wh([E("u1", 0, PV), E("u1", 1 * D, PA), E("u1", 9 * D, PV), E("u1", 9 * D + 1 * H, PA),
                  E("u1", 9 * D + 2 * H, OC)])
    assert user_levels(wh, FunnelSpec(THREE)) == {"u1": 3}


def test_funnel_attempt_from_later_step_one_when_early_one_has_no_step_two(make_wh) -> None:
    # PV@d0 has no PA within 7 days (first PA @d10+1h); PV@d10 -> PA@d10+1h -> OC@d10+2h: level 3.
    wh = make_wh([E("u1", 0, PV), E("u1", 10 * D, PV), E("u1", 10 * D + 1 * H, PA),
                  E("u1", 10 * D + 2 * H, OC)])
    assert user_levels(wh, FunnelSpec(THREE)) == {"u1": 3}
    # Times come from the completing attempt: PV -> PA took 3600 s (not 10 days + 1 h).
    table = funnel(wh, FunnelSpec(THREE)).table
    assert table["median_seconds_from_previous"].tolist()[1:] == [3600.0, 3600.0]


def test_funnel_best_path_is_latest_start_even_microseconds_apart(make_wh) -> None:
    # Two attempts reach step 2: PV@0 -> PA@0 (same instant), and PV@1 us -> PA@10 us. The best path is
    # the later start: PV -> PA took 9 us (not 0), though the starts are only 1 us apart.
    us = 1e-6
    wh = make_wh([E("u1", 0, PV), E("u1", 0, PA), E("u1", us, PV), E("u1", 10 * us, PA)])
    table = funnel(wh, FunnelSpec((PV, PA))).table
    assert table["median_seconds_from_previous"].tolist()[1] == pytest.approx(9 * us, abs=1e-9)


def test_funnel_attempts_sharing_steps_and_repeated_steps(make_wh) -> None:
    # 1-day window, PV -> PA -> CS -> OC. u1's attempts:
    #   PV@0h and PV@1h share PA@2h and CS@5h (the PA@3h repeat is no attempt's first PA);
    #   the first OC is @40h: over 24 h from either start -> both stop at level 3.
    #   PV@20h -> PA@21h -> CS@30h -> OC@40h, all within 24 h of 20h -> level 4, the best path.
    # u2: two PV at the same instant, then PA: level 2.
    wh = make_wh([E("u1", 0, PV), E("u1", 1 * H, PV), E("u1", 2 * H, PA), E("u1", 3 * H, PA),
                  E("u1", 5 * H, CS), E("u1", 20 * H, PV), E("u1", 21 * H, PA), E("u1", 30 * H, CS),
                  E("u1", 40 * H, OC),
                  E("u2", 0, PV), E("u2", 0, PV), E("u2", 1 * H, PA)])
    spec = FunnelSpec((PV, PA, CS, OC), window_days=1)
    assert user_levels(wh, spec) == {"u1": 4, "u2": 2}
    # u1's times come from the 20h attempt: 1 h, 9 h, 10 h (u2 adds a 1 h PV -> PA)
    table = funnel(wh, spec).table
    assert table["median_seconds_from_previous"].tolist()[1:] == [1 * H, 9 * H, 10 * H]
    # without OC all three attempts reach level 3: the latest start (PV@20h) is still the best path
    three = funnel(wh, FunnelSpec((PV, PA, CS), window_days=1)).table
    assert three["median_seconds_from_previous"].tolist()[1:] == [1 * H, 9 * H]


def test_funnel_tie_on_timestamp_orders_by_step_index(make_wh) -> None:
    # PV and PA at the very same instant (PA inserted first): step 2 at the step-1 time counts.
    wh = make_wh([E("u1", 5, PA), E("u1", 5, PV)])
    assert user_levels(wh, FunnelSpec((PV, PA))) == {"u1": 2}


def test_funnel_step_two_before_step_one_does_not_count(make_wh) -> None:
    # PA one hour BEFORE PV, nothing after: level 1.
    wh = make_wh([E("u1", 0, PA), E("u1", 1 * H, PV)])
    assert user_levels(wh, FunnelSpec((PV, PA))) == {"u1": 1}
    assert reach(wh, FunnelSpec((PV, PA))) == [1, 0]


def test_funnel_per_step_report(make_wh) -> None:
    # 4 users enter. PV->PA gaps: u1 60 s, u2 120 s, u3 600 s; u4 stops at PV. PA->OC: u1 30 s only.
    wh = make_wh([E("u1", 0, PV), E("u1", 60, PA), E("u1", 90, OC),
                  E("u2", 0, PV), E("u2", 120, PA),
                  E("u3", 0, PV), E("u3", 600, PA),
                  E("u4", 0, PV)])
    t = funnel(wh, FunnelSpec(THREE)).table
    assert t["step"].tolist() == [PV, PA, OC]
    assert t["entities"].tolist() == [4, 3, 1]
    # overall = n_k / n_1: 4/4, 3/4, 1/4; step = n_k / n_{k-1}: 4/4, 3/4, 1/3; drop-off: 0, 4-3, 3-1
    assert t["overall_conversion"].tolist() == pytest.approx([1.0, 0.75, 0.25])
    assert t["step_conversion"].tolist() == pytest.approx([1.0, 0.75, 1 / 3])
    assert t["dropoff"].tolist() == [0, 1, 2]
    # medians: median(60, 120, 600) = 120; median(30) = 30; none for step 1
    med = t["median_seconds_from_previous"].tolist()
    assert med[0] is None or pd.isna(med[0])
    assert med[1:] == [120.0, 30.0]


def test_funnel_breakdown_uses_first_touch_segment(make_wh) -> None:
    # u1: first PV in FR; converts on a later attempt started in DE -> counted under FR (first touch).
    # u2: PV in DE -> PA.  u3: PV in DE only.
    wh = make_wh([E("u1", 0, PV, country="FR"), E("u1", 10 * D, PV, country="DE"),
                  E("u1", 10 * D + 60, PA, country="DE"),
                  E("u2", 0, PV, country="DE"), E("u2", 60, PA, country="DE"),
                  E("u3", 0, PV, country="DE")])
    by = funnel(wh, FunnelSpec((PV, PA)), breakdown="country").data["breakdown"].set_index("country")
    # FR: entered 1, converted 1 (1.0); DE: entered 2 (u2, u3), converted 1 (0.5)
    assert by.loc["FR", ["entered", "converted"]].tolist() == [1, 1]
    assert by.loc["DE", ["entered", "converted"]].tolist() == [2, 1]
    assert by.loc["DE", "conversion"] == pytest.approx(0.5)


def test_funnel_exclusion_removes_user_from_whole_funnel(make_wh) -> None:
    # u1: PV, Error Shown, PA, OC -> the exclusion event lies inside the path: u1 leaves every step.
    # u2: PV, PA, OC -> kept.  u3: Error Shown BEFORE its PV, then PV only -> outside the path: kept.
    wh = make_wh([E("u1", 0, PV), E("u1", 10, ERROR), E("u1", 20, PA), E("u1", 30, OC),
                  E("u2", 0, PV), E("u2", 20, PA), E("u2", 30, OC),
                  E("u3", 0, ERROR), E("u3", 10, PV)])
    # without exclusion: [3, 2, 2]; with: u1 removed -> [2, 1, 1]
    assert reach(wh, FunnelSpec(THREE)) == [3, 2, 2]
    assert reach(wh, FunnelSpec(THREE, exclusions=(ERROR,))) == [2, 1, 1]


def test_funnel_sessions_and_users_count_differently(make_wh) -> None:
    # u1 views in session s1 and adds in session s2; u2 views and adds in s3.
    # users: u1 (PV->PA across sessions) and u2 both reach PA -> [2, 2].
    # sessions: s1 enters (PV) but never adds; s2 has no PV so does not enter; s3 converts -> [2, 1].
    wh = make_wh([E("u1", 0, PV, "s1"), E("u1", 1 * H, PA, "s2"),
                  E("u2", 0, PV, "s3"), E("u2", 60, PA, "s3")])
    assert reach(wh, FunnelSpec((PV, PA), entity="users")) == [2, 2]
    assert reach(wh, FunnelSpec((PV, PA), entity="sessions")) == [2, 1]


# ------------------------------------------------------------------------------ session facts


def facts(wh: Warehouse) -> pd.DataFrame:
    return wh.query(Facts(ALL, wh.event_map).select_sql()).df.set_index("session_id")


def test_session_level_and_cart_level(make_wh) -> None:
    # Default funnel PV, PA, CS, PIE, OC. s1: PV, PA, CS, OC (no PIE) -> level 3; cart (PA -> OC) 2.
    # s2: PV, PA -> level 2, cart 1.  s3: PA only (no PV) -> level 0, cart 1.  s4: OC then PA -> cart 1.
    wh = make_wh([E("u1", 0, PV, "s1"), E("u1", 10, PA, "s1"), E("u1", 20, CS, "s1"), E("u1", 30, OC, "s1"),
                  E("u2", 0, PV, "s2"), E("u2", 10, PA, "s2"),
                  E("u3", 0, PA, "s3"),
                  E("u4", 0, OC, "s4"), E("u4", 10, PA, "s4")])
    f = facts(wh)
    assert f["level"].to_dict() == {"s1": 3, "s2": 2, "s3": 0, "s4": 0}
    assert f["cart_level"].to_dict() == {"s1": 2, "s2": 1, "s3": 1, "s4": 1}


def test_session_error_belongs_to_latest_step_at_or_before_it(make_wh) -> None:
    # s1: PV@0, error@5 (latest step PV -> error_1), PA@10.
    # s2: PV@0, PA@10, error@20 (latest step PA -> error_2 only, not error_1).
    wh = make_wh([E("u1", 0, PV, "s1"), E("u1", 5, ERROR, "s1"), E("u1", 10, PA, "s1"),
                  E("u2", 0, PV, "s2"), E("u2", 10, PA, "s2"), E("u2", 20, ERROR, "s2")])
    f = facts(wh)
    assert f.loc["s1", ["error_1", "error_2", "error_3"]].tolist() == [True, False, False]
    assert f.loc["s2", ["error_1", "error_2", "error_3"]].tolist() == [False, True, False]


def test_session_error_at_same_time_as_step_belongs_to_that_step(make_wh) -> None:
    # PV@0, error@10 and PA@10 (error inserted first): the step event is "at or before" the error -> PA.
    wh = make_wh([E("u1", 0, PV, "s1"), E("u1", 10, ERROR, "s1"), E("u1", 10, PA, "s1")])
    f = facts(wh)
    assert f.loc["s1", ["error_1", "error_2"]].tolist() == [False, True]


def test_session_error_before_any_step_belongs_to_none(make_wh) -> None:
    # error@0, then PV@10, PA@20: no step event at or before the error.
    wh = make_wh([E("u1", 0, ERROR, "s1"), E("u1", 10, PV, "s1"), E("u1", 20, PA, "s1")])
    f = facts(wh)
    assert f.loc["s1", [f"error_{j}" for j in range(1, 6)]].tolist() == [False] * 5
    assert f.loc["s1", "level"] == 2


def test_session_load_is_first_load_of_the_step(make_wh) -> None:
    # Two PV events with loads 800 ms (first) then 1200 ms; PA with 500 ms -> load_1 = 800, load_2 = 500.
    wh = make_wh([E("u1", 30, PV, "s1", load_time_ms=1200), E("u1", 0, PV, "s1", load_time_ms=800),
                  E("u1", 60, PA, "s1", load_time_ms=500)])
    f = facts(wh)
    assert f.loc["s1", "load_1"] == 800
    assert f.loc["s1", "load_2"] == 500
    assert pd.isna(f.loc["s1", "load_3"])


def test_session_segment_values_all_come_from_its_first_event(make_wh) -> None:
    # s1: first event PV@0 on ios 5.1 from DE; a later PA@10 on android 5.2 from FR, inserted first.
    wh = make_wh([E("u1", 10, PA, "s1", platform="android", app_version="5.2", country="FR"),
                  E("u1", 0, PV, "s1", platform="ios", app_version="5.1", country="DE")])
    f = facts(wh)
    assert f.loc["s1", ["platform", "app_version", "country"]].tolist() == ["ios", "5.1", "DE"]
    # many sessions whose first two events tie on time, each with its own values: every session's
    # values are one event's (never ios with the other event's version or country)
    tied = [E(f"u{i}", 0, ev, f"t{i}", platform=p, app_version=v, country=c)
            for i in range(200) for ev, p, v, c in ((PV, "ios", "5.1", "DE"), (PA, "android", "5.2", "FR"))]
    rows = facts(make_wh(tied))[["platform", "app_version", "country"]].itertuples(index=False, name=None)
    assert set(rows) <= {("ios", "5.1", "DE"), ("android", "5.2", "FR")}


def test_session_user_is_the_user_of_its_first_event(make_wh) -> None:
    # Bad data: session s1 holds events of two users. u2's PA@10 is inserted first; u1's PV@0 is the
    # first in time -> the session is u1's, with u1's plan, in the facts and in a session funnel.
    wh = make_wh([E("u2", 10, PA, "s1"), E("u1", 0, PV, "s1"), E("u2", 20, PV, "s1")],
                 users=[U("u1", plan="pro"), U("u2", plan="free")])
    assert facts(wh).loc["s1", ["user_id", "plan"]].tolist() == ["u1", "pro"]
    levels = wh.query(levels_sql(FunnelSpec((PV, PA), entity="sessions"), wh.event_map)).df
    assert levels[["entity", "user_id", "level"]].values.tolist() == [["s1", "u1", 2]]


def test_distinct_users_per_condition(make_wh) -> None:
    # u1 has two sessions on ios (counted once), u2 one on ios reaching PA, u3 one on web.
    # ios: u1, u2 -> 2; ios and level >= 2: u2 -> 1; android: nobody -> 0; web: u3 -> 1.
    wh = make_wh([E("u1", 0, PV, "s1", platform="ios"), E("u1", 100, PV, "s2", platform="ios"),
                  E("u2", 0, PV, "s3", platform="ios"), E("u2", 10, PA, "s3", platform="ios"),
                  E("u3", 0, PV, "s4", platform="web")])
    conditions = ["platform = 'ios'", "platform = 'ios' AND level >= 2", "platform = 'android'", "platform = 'web'"]
    assert distinct_users(wh, Facts(ALL, wh.event_map).cte(), "facts", conditions) == [2, 1, 0, 1]
    # `where` narrows every condition: only sessions reaching step 2 are left
    assert distinct_users(wh, Facts(ALL, wh.event_map).cte(), "facts", conditions, where="level >= 2") == [1, 1, 0, 0]
    assert distinct_users(wh, Facts(ALL, wh.event_map).cte(), "facts", []) == []


# ------------------------------------------------------------------------------ segment tests


def test_two_proportion_p_value_by_hand() -> None:
    # 30/200 = 0.15 vs 60/200 = 0.30; pooled p = 90/400 = 0.225
    # se = sqrt(0.225 * 0.775 * (1/200 + 1/200)) = sqrt(0.00174375) = 0.0417582
    # z = (0.15 - 0.30) / 0.0417582 = -3.59211; two-sided p = 2 * (1 - Phi(3.59211)) = 0.00032802
    assert float(two_proportion_p(30, 200, 60, 200)) == pytest.approx(0.00032802, rel=1e-4)


def test_compare_users_lost_is_n_times_gap() -> None:
    # segment 40/200 = 0.2, rest 300/500 = 0.6: gap 0.4, relative gap 0.4/0.6, lost = 200 * 0.4 = 80
    out = compare(pd.DataFrame([{"n": 200, "x": 40, "n_rest": 500, "x_rest": 300}]), worse="lower").iloc[0]
    assert out["rate"] == pytest.approx(0.2)
    assert out["rate_rest"] == pytest.approx(0.6)
    assert out["lost"] == pytest.approx(80.0)
    assert out["relative_gap"] == pytest.approx(2 / 3)


def test_benjamini_hochberg_by_hand() -> None:
    # m = 5; sorted p: 0.005 (1), 0.011 (2), 0.03 (3), 0.04 (4), 0.5 (5)
    # p * m / rank: 0.025, 0.0275, 0.05, 0.05, 0.5; running min from the largest rank down:
    # 0.5, 0.05, 0.05, 0.0275, 0.025 -> back in input order:
    assert bh([0.005, 0.04, 0.011, 0.03, 0.5]).tolist() == pytest.approx([0.025, 0.05, 0.0275, 0.05, 0.5])


def test_benjamini_hochberg_step_up_takes_the_minimum_of_later_ranks() -> None:
    # p = 0.01, 0.012, 0.04, 0.041 (m = 4): p*m/rank = 0.04, 0.024, 0.05333, 0.041
    # step-up: q4 = 0.041, q3 = min(0.05333, 0.041) = 0.041, q2 = 0.024, q1 = min(0.04, 0.024) = 0.024
    assert bh([0.01, 0.012, 0.04, 0.041]).tolist() == pytest.approx([0.024, 0.024, 0.041, 0.041])


STEP = "Checkout Started"


def segment_rows(rows: list[tuple[dict, int, int, int, int]]) -> pd.DataFrame:
    """(segment, n, x, n_rest, x_rest) per row, compared with the rest (lower is worse)."""
    df = pd.DataFrame([{"step": STEP, "segment": seg, "depth": len(seg), "seg_key": segment_key(seg, ("country", "os")),
                        "n": n, "x": x, "n_rest": nr, "x_rest": xr} for seg, n, x, nr, xr in rows])
    return compare(df, worse="lower")


def test_segment_support_follows_the_expected_counts() -> None:
    # Cochran's rule: every expected count of the 2x2 table under the pooled rate must be >= 5.
    # FR: 8 users, 1 converted vs rest 500/1000: pooled 501/1008 = 0.497 -> 8 * 0.497 = 3.98 < 5: not tested.
    # DE: 30 users, 3 converted: pooled 503/1030 = 0.488 -> 30 * 0.488 = 14.7, 30 * 0.512 = 15.3: tested;
    #     z = (0.1 - 0.5) / sqrt(0.488 * 0.512 * (1/30 + 1/1000)) = -4.3, lost = 30 * 0.4 = 12 -> reported.
    # UK: 100 users at a step the rest converts 97% (970/1000), 90 converted: pooled 1060/1100 = 0.964,
    #     expected failures 100 * 0.036 = 3.6 < 5: 100 users are too few at so high a rate.
    df = segment_rows([({"country": "FR"}, 8, 1, 1000, 500), ({"country": "DE"}, 30, 3, 1000, 500),
                       ({"country": "UK"}, 100, 90, 1000, 970)])
    hits = select(df, SegmentRules(), key="step")
    assert hits["segment"].tolist() == [{"country": "DE"}]


def test_segment_with_relative_gap_below_ten_percent_is_not_reported() -> None:
    # FR: 2300/5000 = 0.46 vs rest 2500/5000 = 0.50: gap 0.04, relative 8% (< 10%) although
    #     z = -0.04 / sqrt(0.48 * 0.52 * 2/5000) = -4.00, p = 6.2e-5 (significant).
    # DE: 2225/5000 = 0.445 vs 0.50: relative gap 0.055/0.5 = 11% -> reported.
    df = segment_rows([({"country": "FR"}, 5000, 2300, 5000, 2500), ({"country": "DE"}, 5000, 2225, 5000, 2500)])
    assert float(df.loc[0, "p_value"]) == pytest.approx(6.249e-5, rel=1e-3)
    hits = select(df, SegmentRules(), key="step")
    assert hits["segment"].tolist() == [{"country": "DE"}]


def test_segment_significant_only_before_bh_is_not_reported() -> None:
    # Four segments, each with support and relative gap >= 10% (A: 15%, B-D: 10%).
    # A: 170/400 = 0.425 vs 200/400 = 0.5: pooled 0.4625, se = sqrt(0.4625*0.5375*2/400) = 0.035257,
    #    z = -0.075/0.035257 = -2.1273 -> p = 0.03339 (< 0.05 before correction)
    # B, C, D: 180/400 = 0.45 vs 0.5: pooled 0.475, se = sqrt(0.475*0.525*2/400) = 0.035311,
    #    z = -1.4160 -> p = 0.15678
    # BH (m = 4): q_A = min(0.03339*4/1, 0.15678*4/4) = min(0.13358, 0.15678) = 0.13358 >= 0.05
    # -> nothing is reported.
    df = segment_rows([({"country": "A"}, 400, 170, 400, 200), ({"country": "B"}, 400, 180, 400, 200),
                       ({"country": "C"}, 400, 180, 400, 200), ({"country": "D"}, 400, 180, 400, 200)])
    assert df["p_value"].tolist() == pytest.approx([0.03339, 0.15678, 0.15678, 0.15678], rel=1e-3)
    assert select(df, SegmentRules(), key="step").empty


def test_child_pair_accounting_for_most_of_parent_loss_replaces_parent() -> None:
    # 4000 users entered; 7.4 on android converts 40/400 = 0.1, every other cell 0.6.
    # android (2000, 1000 = 0.5) vs rest (2000, 1200 = 0.6): lost 2000 * 0.1 = 200
    # 7.4 (1400, 640) vs rest (2600, 1560 = 0.6): lost 1400 * (0.6 - 0.457) = 200
    # android & 7.4 (400, 40) vs rest (3600, 2160 = 0.6): lost 400 * 0.5 = 200 >= 0.8 * 200
    # -> the pair explains both parents; only the pair is reported.
    pair = {"os": "android", "app_version": "7.4"}
    df = segment_rows([
        ({"os": "android"}, 2000, 1000, 2000, 1200), ({"os": "ios"}, 2000, 1200, 2000, 1000),
        ({"app_version": "7.4"}, 1400, 640, 2600, 1560), ({"app_version": "7.3"}, 2600, 1560, 1400, 640),
        (pair, 400, 40, 3600, 2160),
        ({"os": "android", "app_version": "7.3"}, 1600, 960, 2400, 1240),
        ({"os": "ios", "app_version": "7.4"}, 1000, 600, 3000, 1600),
        ({"os": "ios", "app_version": "7.3"}, 1000, 600, 3000, 1600),
    ])
    hits = select(df, SegmentRules(), key="step")
    assert hits["segment"].tolist() == [pair]
    assert hits["lost"].tolist() == pytest.approx([200.0])


def test_child_pair_with_small_share_of_parent_loss_keeps_parent() -> None:
    # android & 7.4 (200, 20 = 0.1); android & 7.3 (1800, 900 = 0.5); ios cells 0.6 (1000 each).
    # android (2000, 920 = 0.46) vs rest (2000, 1200 = 0.6): lost 2000 * 0.14 = 280
    # pair (200, 20) vs rest (3800, 2100 = 0.55263): lost 200 * 0.45263 = 90.5 < 0.8 * 280 = 224
    # -> both are reported, ranked by users lost: android (280), then the pair (90.5).
    pair = {"os": "android", "app_version": "7.4"}
    df = segment_rows([
        ({"os": "android"}, 2000, 920, 2000, 1200), ({"os": "ios"}, 2000, 1200, 2000, 920),
        ({"app_version": "7.4"}, 1200, 620, 2800, 1500), ({"app_version": "7.3"}, 2800, 1500, 1200, 620),
        (pair, 200, 20, 3800, 2100),
        ({"os": "android", "app_version": "7.3"}, 1800, 900, 2200, 1220),
        ({"os": "ios", "app_version": "7.4"}, 1000, 600, 3000, 1520),
        ({"os": "ios", "app_version": "7.3"}, 1000, 600, 3000, 1520),
    ])
    hits = select(df, SegmentRules(), key="step")
    assert hits["segment"].tolist() == [{"os": "android"}, pair]
    assert hits["lost"].tolist() == pytest.approx([280.0, 200 * (1 - 0.1 - 1700 / 3800)])


def test_dropoffs_finds_the_segment_converting_worse(make_wh) -> None:
    # PV -> PA by country: DE 18/20 = 0.9, FR 4/20 = 0.2 (expected counts 20 * 0.55 and 20 * 0.45 >= 5).
    # FR vs rest (= DE): pooled 22/40 = 0.55, se = sqrt(0.55*0.45*(1/20+1/20)) = 0.157321,
    # z = -0.7/0.157321 = -4.4495, p = 8.61e-6; lost = 20 * (0.9 - 0.2) = 14 users.
    events = []
    for i in range(20):
        events += [E(f"de{i}", i * M, PV, country="DE"), E(f"fr{i}", i * M, PV, country="FR")]
        if i < 18:
            events.append(E(f"de{i}", i * M + 30, PA, country="DE"))
        if i < 4:
            events.append(E(f"fr{i}", i * M + 30, PA, country="FR"))
    wh = make_wh(events)
    res = dropoffs(wh, FunnelSpec((PV, PA)), dims=("country",), pairs=False)
    assert [(f.step, f.segment) for f in res.findings] == [(PA, {"country": "FR"})]
    f = res.findings[0]
    assert (f.observed, f.baseline) == pytest.approx((0.2, 0.9))
    assert f.detail["lost"] == pytest.approx(14.0)
    assert f.p_value == pytest.approx(8.61e-6, rel=1e-2)


# ------------------------------------------------------------------------------ cart abandonment


def sessioned(events: list[dict]) -> list[dict]:
    """Give each event a session: one per user and day (the drill-down runs on sessions)."""
    return [{**e, "session_id": f"{e['user_id']}-{e['ts']:%Y%m%d}"} for e in events]


def test_cart_abandonment_counts_orders_within_the_window(make_wh) -> None:
    # u1: PA d0, CS, OC d3 (within 7 days)       -> ordered
    # u2: PA d0, CS, OC d8 (8 days after the add) -> not within the window
    # u3: PA d0 only                              -> abandoned
    # u4: PA, CS, OC the same day                 -> ordered
    # u5: CS only (no add)                        -> not in the cart base
    # cart abandonment = (4 added - 2 ordered in window) / 4 = 0.5
    # checkout abandonment = 1 - 3 ordering users (u1, u2, u4) / 4 starting checkout (u1, u2, u4, u5) = 0.25
    wh = make_wh(sessioned([E("u1", 0, PA), E("u1", 3 * D - 60, CS), E("u1", 3 * D, OC),
                            E("u2", 0, PA), E("u2", 8 * D - 60, CS), E("u2", 8 * D, OC),
                            E("u3", 0, PA),
                            E("u4", 0, PA), E("u4", 1 * H, CS), E("u4", 2 * H, OC),
                            E("u5", 0, CS)]))
    data = cart_abandonment(wh, ALL).data
    assert (data["added"], data["ordered"]) == (4, 2)
    assert data["cart_abandonment"] == pytest.approx(0.5)
    assert (data["checkout_started"], data["orders"]) == (4, 3)
    assert data["checkout_abandonment"] == pytest.approx(0.25)


def test_cart_order_eight_days_after_add_is_abandoned_with_seven_day_window(make_wh) -> None:
    # Single user: PA d0, OC d8 -> 7-day window: abandoned (1.0); 10-day window: ordered (0.0).
    wh = make_wh(sessioned([E("u1", 0, PA), E("u1", 8 * D, OC)]))
    assert cart_abandonment(wh, ALL, window_days=7).data["cart_abandonment"] == pytest.approx(1.0)
    assert cart_abandonment(wh, ALL, window_days=10).data["cart_abandonment"] == pytest.approx(0.0)


def test_cart_abandonment_is_per_user_and_needs_no_sessions(make_wh) -> None:
    # The definition is per user: u1 PA d0 -> OC d1 (ordered), u2 PA only -> 1 - 1/2 = 0.5.
    # session_id is optional in the data model (data/schema.py REQUIRED_COLUMNS).
    wh = make_wh([E("u1", 0, PA), E("u1", 1 * D, OC), E("u2", 0, PA)])
    assert cart_abandonment(wh, ALL).data["cart_abandonment"] == pytest.approx(0.5)


def test_dropoffs_on_a_period_without_entrants_finds_nothing(make_wh) -> None:
    # data in January 2026, period in 2030: nobody enters, so there is no segment to report.
    wh = make_wh([E("u1", 0, PV, "s1"), E("u1", 60, PA, "s1")])
    spec = FunnelSpec((PV, PA), period=Period.parse("2030-01-01..2030-01-08", None))
    assert dropoffs(wh, spec).findings == []


# ------------------------------------------------------------------------------ search


def test_search_normalization_merges_variants(make_wh) -> None:
    # case, surrounding and inner white space, accents and a simple plural all map to "running shoe".
    variants = ["Running Shoes", "  running   shoe ", "RÚNNING SHOES", "running\tshoes", "rünning shoe"]
    wh = make_wh([E("u1", i * H, SEARCHED, f"s{i}", search_query=q, results_count=5)
                  for i, q in enumerate(variants)])
    got = wh.query(f"WITH s AS ({searches_sql(ALL, wh.event_map)}) SELECT DISTINCT q FROM s").df["q"].tolist()
    assert got == ["running shoe"]
    lit_sql = f"SELECT {NORMALIZED} AS q FROM (VALUES ('Vegan  BOOTS')) t(search_query)"
    assert wh.query(lit_sql).df["q"].tolist() == ["vegan boot"]


SEARCH_EVENTS = [
    # search 1 (s1): results, click 4 min later -> clicked; not the last event; no other search
    E("a", 0, SEARCHED, "s1", search_query="shoe", results_count=5), E("a", 4 * M, CLICKED, "s1"),
    E("a", 5 * M, PAGE, "s1"),
    # search 2 (s2): results, the click comes 6 min later -> not clicked; not the last event
    E("b", 0, SEARCHED, "s2", search_query="shoe", results_count=5), E("b", 6 * M, CLICKED, "s2"),
    # search 3 (s3): results, no click in s3 (the user clicks 1 min later in s4) -> not clicked; exit
    E("c", 0, SEARCHED, "s3", search_query="shoe", results_count=5), E("c", 1 * M, CLICKED, "s4"),
    # searches 4-6 (s5): 4 zero results, followed by 5 after 30 s -> reformulated;
    #   5 followed by 6 after 70 s -> not reformulated; 6 is the last event -> exit
    E("d", 0, SEARCHED, "s5", search_query="boot", results_count=0),
    E("d", 30, SEARCHED, "s5", search_query="boots", results_count=3),
    E("d", 100, SEARCHED, "s5", search_query="boots leather", results_count=3),
]


@pytest.fixture
def search_wh(make_wh) -> Warehouse:
    return make_wh(SEARCH_EVENTS)


def search_flags(wh: Warehouse) -> pd.DataFrame:
    return wh.query(f"WITH s AS ({searches_sql(ALL, wh.event_map)}) SELECT * FROM s ORDER BY session_id, ts").df


def test_search_zero_result_rate(search_wh) -> None:
    # 1 of 6 searches has results_count = 0 -> 1/6
    assert search(search_wh, ALL).data["zero_result_rate"] == pytest.approx(1 / 6)


def test_search_click_within_five_minutes_same_session(search_wh) -> None:
    # per search (s1, s2, s3, s5 x3): clicked after 4 min yes; after 6 min no; other session no; s5 none
    assert search_flags(search_wh)["clicked"].tolist() == [True, False, False, False, False, False]


def test_search_no_click_rate(search_wh) -> None:
    # 5 searches with results (1, 2, 3, 5, 6); without a click within 5 min: 2, 3, 5, 6 -> 4/5
    assert search(search_wh, ALL).data["no_click_rate"] == pytest.approx(0.8)


def test_search_exit_rate(search_wh) -> None:
    # searches that are the last event of their session: 3 (s3) and 6 (s5) -> 2/6
    assert search_flags(search_wh)["exited"].tolist() == [False, False, True, False, False, True]
    assert search(search_wh, ALL).data["exit_rate"] == pytest.approx(1 / 3)


def test_search_reformulation_rate(search_wh) -> None:
    # only search 4 has another search in its session within 60 s (30 s); 5 -> 6 is 70 s -> 1/6
    assert search_flags(search_wh)["reformulated"].tolist() == [False, False, False, True, False, False]
    assert search(search_wh, ALL).data["reformulation_rate"] == pytest.approx(1 / 6)


def test_search_zero_result_rate_counts_searches_without_session(make_wh) -> None:
    # 3 searches, one with 0 results; two have no session_id (optional in the data model) -> 1/3
    wh = make_wh([E("a", 0, SEARCHED, None, search_query="shoe", results_count=0),
                  E("b", 10 * M, SEARCHED, None, search_query="boot", results_count=4),
                  E("c", 20 * M, SEARCHED, "s3", search_query="boot", results_count=4)])
    data = search(wh, ALL).data
    assert data["searches"] == 3
    assert data["zero_result_rate"] == pytest.approx(1 / 3)


def test_edit_distance_by_hand() -> None:
    # headphnes -> headphones: insert "o" (1); kitten -> sitting: k->s, e->i, +g (3)
    assert edit_distance("headphnes", "headphones") == 1
    assert edit_distance("kitten", "sitting") == 3
    assert edit_distance("", "abc") == 3


def test_likely_cause_typo_vs_catalog_gap() -> None:
    good = {"headphone", "leather", "boot"}
    # "headphne" is 1 edit from "headphone"; "lether" 1 from "leather" -> typo
    assert likely_cause("headphne", good) == "typo"
    assert likely_cause("lether", good) == "typo"
    # "vegan": at least 4 edits from every good token -> synonym / catalog gap
    assert likely_cause("vegan", good) == "synonym / catalog gap"
    # "sneakers" vs "leather": 4 edits -> not a typo
    assert likely_cause("sneakers", good) == "synonym / catalog gap"


def test_search_failing_tokens_with_their_cause(make_wh) -> None:
    # 100 "headphones" searches with results and a click (succeed); 40 "headphnes" and
    # 20 "vegan shoes" + 20 "vegan boots" with zero results (each search alone in its session -> exit).
    # Normalized tokens: headphone (0/100 zero), headphne (40/40), vegan (40/40), shoe, boot (20 each,
    # below the 30-search minimum). Overall zero rate 80/180 = 0.444; headphne and vegan are far above
    # (p << 0.001): "headphne" is 1 edit from the succeeding "headphone" -> typo; "vegan" -> catalog gap.
    events = []
    for i in range(100):
        events += [E(f"h{i}", i * M, SEARCHED, f"h{i}", search_query="headphones", results_count=12),
                   E(f"h{i}", i * M + 20, CLICKED, f"h{i}")]
    for i in range(40):
        events.append(E(f"t{i}", i * M, SEARCHED, f"t{i}", search_query="headphnes", results_count=0))
        events.append(E(f"v{i}", i * M, SEARCHED, f"v{i}", search_query="vegan " + ("shoes" if i % 2 else "boots"),
                        results_count=0))
    res = search(make_wh(events), ALL)
    causes = {f.segment.get("search_token") or f.segment.get("search_query"): f.detail["cause"]
              for f in res.findings}
    assert causes == {"headphne": "typo", "vegan": "synonym / catalog gap"}
    assert {f.kind for f in res.findings} == {"failed_search"}
    assert res.data["zero_result_rate"] == pytest.approx(80 / 180)


# ------------------------------------------------------------------------------ retention


def test_retention_week_one_bounds(make_wh) -> None:
    # Four users sign up Monday T0 (cohort 2026-W02); one event each at day 6.9, 7.0, 13.9, 14.0.
    # Week 1 = days [7, 14): 7.0 and 13.9 count, 6.9 and 14.0 do not -> 2/4 = 0.5.
    # A last event on day 30 makes the cohort complete (T0 + 21 days <= end of data).
    offsets = {"r1": 6.9, "r2": 7.0, "r3": 13.9, "r4": 14.0}
    users = [U(u, T0) for u in offsets]
    events = [E(u, d * D, PAGE) for u, d in offsets.items()] + [E("r1", 30 * D, PAGE)]
    res = retention(make_wh(events, users), ALL, week_n=1)
    assert res.data["average"] == pytest.approx(0.5)


@pytest.mark.parametrize(("day", "retained"), [(6.9, 0), (7.0, 1), (13.9, 1), (14.0, 0)])
def test_retention_week_one_each_boundary(make_wh, day: float, retained: int) -> None:
    # one user, signup at T0, one event on `day` (plus day 30 to close the cohort)
    wh = make_wh([E("r", day * D, PAGE), E("r", 30 * D, PAGE)], [U("r", T0)])
    assert retention(wh, ALL, week_n=1).data["average"] == pytest.approx(retained)


def test_retention_cohort_is_iso_week_of_signup(make_wh) -> None:
    # a: signs up Sunday 2026-01-11 23:00 -> ISO week 2026-W02 (Monday 2026-01-05); event 8 days later.
    # b: signs up Monday 2026-01-12 00:00 -> 2026-W03; no event in week 1.
    a_signup, b_signup = datetime(2026, 1, 11, 23), datetime(2026, 1, 12)
    wh = make_wh([E("a", a_signup + timedelta(days=8), PAGE), E("b", b_signup, PAGE),
                  E("b", b_signup + timedelta(days=40), PAGE)],
                 [U("a", a_signup, plan="free"), U("b", b_signup, plan="free")])
    df = wh.query(week_n_sql(ALL, wh.event_map, ("plan",), 1)).df
    everyone = df[~df["g_plan"]].sort_values("cohort")
    assert [f"{c:%G-W%V}" for c in everyone["cohort"]] == ["2026-W02", "2026-W03"]
    assert everyone[["n", "x"]].values.tolist() == [[1, 1], [1, 0]]


def test_retention_excludes_cohorts_too_young_for_week_n(make_wh) -> None:
    # W02 (Monday 2026-01-05): r1 retained (day 8), r2 not (day 2).
    # y (cohort W04, Monday 2026-01-19) signs up 01-19, event 01-27 (day 8, would be retained).
    # End of data = midnight after 01-27 = 01-28. W02 complete: 01-05 + 21 d = 01-26 <= 01-28.
    # W04 incomplete: 01-19 + 21 d = 02-09 > 01-28 -> excluded. Week-1 retention = 1/2 (with W04: 2/3).
    wh = make_wh([E("r1", 8 * D, PAGE), E("r2", 2 * D, PAGE), E("y", datetime(2026, 1, 27), PAGE)],
                 [U("r1", T0), U("r2", T0), U("y", datetime(2026, 1, 19))])
    res = retention(wh, ALL, week_n=1)
    assert res.data["average"] == pytest.approx(0.5)
    assert res.table["cohort"].tolist() == ["2026-W02"]


def test_retention_cohort_includes_signed_up_users_without_events(make_wh) -> None:
    # Cohort 2026-W02 = every user whose signed_up_at falls in that ISO week: r1, r2, r3.
    # r1 active on day 8 (retained); r2 active on day 2 only; r3 signed up but has no event at all.
    # Week-1 retention = 1/3 (the tool says 1/2: r3 is not counted in the cohort).
    wh = make_wh([E("r1", 8 * D, PAGE), E("r1", 30 * D, PAGE), E("r2", 2 * D, PAGE)],
                 [U("r1", T0), U("r2", T0), U("r3", T0)])
    assert retention(wh, ALL, week_n=1).data["average"] == pytest.approx(1 / 3)


# ------------------------------------------------------------------------------ experiments


def experiment(eid: str, start: datetime, end: datetime | None, metric: str = OC) -> dict:
    return {"experiment_id": eid, "name": eid, "started_at": start, "ended_at": end, "primary_metric": metric}


def assign(eid: str, user: str, variant: str, at: datetime) -> dict:
    return {"experiment_id": eid, "user_id": user, "variant": variant, "assigned_at": at}


def test_experiment_conversion_counts_primary_metric_after_assignment_within_experiment(make_wh) -> None:
    # Experiment runs T0 .. T0+7d, primary metric Order Completed, everyone assigned at T0+1d.
    # control: c1 orders at d2 (counts); c2 ordered at d0.5 only (before assignment: no).
    # treatment: t1 orders at d8 (after the end: no); t2 only adds to cart (not the metric: no);
    #            t3 orders at d3 (counts).
    # -> control 1/2, treatment 1/3.
    at = T0 + timedelta(days=1)
    wh = make_wh([E("c1", 2 * D, OC), E("c2", D / 2, OC), E("t1", 8 * D, OC), E("t2", 2 * D, PA), E("t3", 3 * D, OC)],
                 experiments=[experiment("x1", T0, T0 + timedelta(days=7))],
                 assignments=[assign("x1", u, v, at) for u, v in
                              [("c1", "control"), ("c2", "control"), ("t1", "treatment"), ("t2", "treatment"),
                               ("t3", "treatment")]])
    t = experiments(wh, ALL).table.set_index("variant")
    assert t.loc["control", ["users", "converted"]].tolist() == [2, 1]
    assert t.loc["treatment", ["users", "converted"]].tolist() == [3, 1]
    assert t.loc["treatment", "rate"] == pytest.approx(1 / 3)


def test_relative_lift_delta_method_by_hand() -> None:
    # A: 100/1000 = 0.10, B: 80/1000 = 0.08. lift = (0.08 - 0.10)/0.10 = -0.2
    # var = 0.08*0.92/(0.10^2 * 1000) + 0.10*0.90*0.08^2/(0.10^4 * 1000) = 0.00736 + 0.00576 = 0.01312
    # se = sqrt(0.01312) = 0.1145426; z = -0.2/0.1145426 = -1.746076; p = 2*(1 - Phi(1.746076)) = 0.080798
    # 95% CI = -0.2 -/+ 1.959964 * 0.1145426 = (-0.424499, 0.024499)
    lift, p, (lo, hi) = relative_lift(100, 1000, 80, 1000)
    assert lift == pytest.approx(-0.2)
    assert p == pytest.approx(0.080798, rel=1e-4)
    assert (lo, hi) == pytest.approx((-0.424499, 0.024499), abs=1e-5)


def test_analyze_reports_lift_ci_and_p_against_control() -> None:
    # same numbers as above, through analyze(): control row lift 0; treatment -0.2, CI, p as by hand
    df = pd.DataFrame([{"experiment_id": "x", "name": "x", "primary_metric": OC, "variant": v, "users": 1000,
                        "converted": c} for v, c in (("control", 100), ("treatment", 80))])
    t = analyze(df).set_index("variant")
    assert t.loc["control", "lift"] == 0.0
    assert t.loc["treatment", ["lift", "ci_low", "ci_high", "p_value"]].tolist() == pytest.approx(
        [-0.2, -0.424499, 0.024499, 0.080798], rel=1e-4)
    # SRM: equal counts -> chi-square 0 -> p = 1
    assert t.loc["control", "srm_p"] == pytest.approx(1.0)


def test_srm_p_by_hand() -> None:
    # counts 100 and 160, equal split expected 130 each: chi2 = 2 * 30^2 / 130 = 13.84615
    # df = 1: p = erfc(sqrt(13.84615 / 2)) = 0.00019840
    assert srm_p([100, 160]) == pytest.approx(0.00019840, rel=1e-4)
    # intended 1:2 split of 300 -> expected 100 and 200 -> chi2 = 0 -> p = 1
    assert srm_p([100, 200], [1, 2]) == pytest.approx(1.0)


def test_experiment_with_srm_is_flagged_and_its_lift_not_interpreted(make_wh) -> None:
    # x_srm: control 100 users (50 convert), treatment 160 users (16 convert): SRM p = 0.000198 < 0.001
    #        -> one experiment_srm finding, no loser although treatment is far worse (0.1 vs 0.5).
    # x_ok:  control 100 (50 convert), treatment 100 (20 convert): no SRM (p = 1);
    #        lift -0.6, se = sqrt(0.2*0.8/(0.25*100) + 0.25*0.04/(0.0625*100)) = sqrt(0.008) = 0.0894
    #        -> z = -6.7, p << 0.05 -> experiment_loser for x_ok's treatment.
    at = T0 + timedelta(hours=1)
    assignments, events = [], []
    for eid, arms in (("x_srm", (("control", 100, 50), ("treatment", 160, 16))),
                      ("x_ok", (("control", 100, 50), ("treatment", 100, 20)))):
        for variant, n, conv in arms:
            for i in range(n):
                user = f"{eid}-{variant}-{i}"
                assignments.append(assign(eid, user, variant, at))
                events.append(E(user, 2 * H, OC if i < conv else PAGE))
    wh = make_wh(events, experiments=[experiment("x_srm", T0, None), experiment("x_ok", T0, None)],
                 assignments=assignments)
    res = experiments(wh, ALL)
    kinds = sorted((f.kind, f.segment["experiment_id"]) for f in res.findings)
    assert kinds == [("experiment_loser", "x_ok"), ("experiment_srm", "x_srm")]
    srm = next(f for f in res.findings if f.kind == "experiment_srm")
    assert srm.p_value == pytest.approx(0.00019840, rel=1e-4)


# ------------------------------------------------------------------------------ trends


def test_robust_z_by_hand() -> None:
    # trailing 5 values 10, 12, 11, 13, 9: median 11; |dev| = 1, 1, 0, 2, 2 -> MAD = 1
    # scale = 1.4826 * 1; x = 16 -> z = 5 / 1.4826 = 3.37245 (the first 5 points have no window: NaN)
    z = robust_z([10, 12, 11, 13, 9, 16], window=5)
    assert all(math.isnan(v) for v in z[:5])
    assert z[5] == pytest.approx(3.372454, rel=1e-6)
    # window 12, 11, 13, 9, 16: median 12, |dev| = 0, 1, 1, 3, 4 -> MAD 1; x = 18 -> 6 / 1.4826 = 4.04694
    assert robust_z([10, 12, 11, 13, 9, 16, 18], window=5)[6] == pytest.approx(4.046945, rel=1e-6)


@pytest.mark.parametrize(("last", "z", "anomaly"), [(16, 5 / 1.4826, False), (17, 6 / 1.4826, True)])
def test_trends_flags_anomaly_at_robust_z_3_5(make_wh, last: int, z: float, anomaly: bool) -> None:
    # orders per day: 28 days alternating 10, 12 (median 11, every |dev| = 1 -> MAD 1), then `last`.
    # 16 -> z = 5/1.4826 = 3.372 (< 3.5, normal); 17 -> z = 6/1.4826 = 4.047 (>= 3.5, anomaly)
    counts = [10 if d % 2 == 0 else 12 for d in range(28)] + [last]
    events = [E("u", d * D + i * M, OC) for d, n in enumerate(counts) for i in range(n)]
    daily = trends(make_wh(events), "orders").table
    assert len(daily) == 29
    assert not daily["anomaly"].iloc[:28].any()
    assert daily["robust_z"].iloc[-1] == pytest.approx(z)
    assert bool(daily["anomaly"].iloc[-1]) is anomaly


def test_rate_mix_decomposition_by_hand() -> None:
    # before: A 10/100 = 0.10, B 40/100 = 0.40 -> Y0 = 50/200 = 0.25, P0 = 0.5, 0.5
    # after:  A 45/300 = 0.15, B 40/100 = 0.40 -> Y1 = 85/400 = 0.2125, P1 = 0.75, 0.25; change -0.0375
    # rate_A = (0.15 - 0.10) * 0.5 = 0.025          rate_B = (0.40 - 0.40) * 0.5 = 0
    # mix_A = (0.75 - 0.5) * (0.15 - 0.25) = -0.025  mix_B = (0.25 - 0.5) * (0.40 - 0.25) = -0.0375
    # sum: 0.025 + 0 - 0.025 - 0.0375 = -0.0375 = Y1 - Y0
    before = pd.DataFrame({"country": ["A", "B"], "num": [10, 40], "den": [100, 100]})
    after = pd.DataFrame({"country": ["A", "B"], "num": [45, 40], "den": [300, 100]})
    out = decompose(before, after, "country").set_index("country")
    assert out.loc["A", ["rate_effect", "mix_effect"]].tolist() == pytest.approx([0.025, -0.025])
    assert out.loc["B", ["rate_effect", "mix_effect"]].tolist() == pytest.approx([0.0, -0.0375])
    assert out["total"].sum() == pytest.approx(-0.0375)


# ------------------------------------------------------------------------------ errors and speed


def test_error_rate_per_step_is_per_session(make_wh) -> None:
    # s1 (u1): PV, PA, error after PA      -> reaches PV and PA; error at PA
    # s2 (u1): PV, error after PV          -> reaches PV; error at PV
    # s3 (u2): PV                          -> reaches PV
    # s4 (u3): PV, PA                      -> reaches PV and PA
    # PV: 1 erroring session / 4 sessions = 0.25; PA: 1 / 2 = 0.5
    # (per user it would be PV 1/3: the definition follows the docstring - sessions)
    wh = make_wh([E("u1", 0, PV, "s1", load_time_ms=1000), E("u1", 10, PA, "s1", load_time_ms=2000),
                  E("u1", 20, ERROR, "s1", error_code="CARD"),
                  E("u1", 1 * H, PV, "s2", load_time_ms=2000), E("u1", 1 * H + 5, ERROR, "s2", error_code="500"),
                  E("u2", 0, PV, "s3", load_time_ms=3000),
                  E("u3", 0, PV, "s4", load_time_ms=4000), E("u3", 10, PA, "s4", load_time_ms=1000)])
    t = errors_and_speed(wh, ALL).table.set_index("step")
    assert t.loc[PV, ["sessions", "errors"]].tolist() == [4, 1]
    assert t.loc[PA, ["sessions", "errors"]].tolist() == [2, 1]
    assert t.loc[PV, "error_rate"] == pytest.approx(0.25)
    assert t.loc[PA, "error_rate"] == pytest.approx(0.5)


def test_p75_load_per_step(make_wh) -> None:
    # PV loads 1000, 2000, 3000, 4000: p75 (linear) at position 0.75 * 3 = 2.25 -> 3000 + 0.25 * 1000 = 3250
    # PA loads 2000, 1000: position 0.75 * 1 -> 1000 + 0.75 * 1000 = 1750
    wh = make_wh([E("u1", 0, PV, "s1", load_time_ms=1000), E("u1", 10, PA, "s1", load_time_ms=2000),
                  E("u2", 0, PV, "s2", load_time_ms=2000),
                  E("u3", 0, PV, "s3", load_time_ms=3000),
                  E("u4", 0, PV, "s4", load_time_ms=4000), E("u4", 10, PA, "s4", load_time_ms=1000)])
    t = errors_and_speed(wh, ALL).table.set_index("step")
    assert t.loc[PV, "p75_ms"] == pytest.approx(3250.0)
    assert t.loc[PA, "p75_ms"] == pytest.approx(1750.0)


# ------------------------------------------------------------------------------ prioritization


@pytest.mark.parametrize(("share", "tier"), [
    (0.10, 3.0), (0.0999, 2.0), (0.05, 2.0), (0.0499, 1.0), (0.02, 1.0), (0.0199, 0.5),
    (0.005, 0.5), (0.0049, 0.25), (0.0, 0.25)])
def test_impact_tier_thresholds(share: float, tier: float) -> None:
    assert impact_tier(share) == tier


def friction(**over: Any) -> Friction:
    base = dict(kind="funnel_dropoff", title="Payment step is hard for android", metric="step_conversion",
                step=PIE, segment={"os": "android"}, period="p", baseline=0.6, observed=0.4, affected_users=400,
                est_lost_conversions=0.6, p_value=0.01, evidence_sql="SELECT 1", weekly_exposed=100.0, gap=0.2,
                downstream_rate=0.5, detail={"previous_step": CS})
    return Friction(**{**base, **over})


@pytest.mark.parametrize(("p", "users", "conf"), [
    (0.0009, 1000, 1.0),   # p < 0.001 and >= 1,000 users affected
    (0.0009, 999, 0.8),    # too few users for 100% -> p < 0.05
    (0.001, 5000, 0.8),    # p not < 0.001 -> 80%
    (0.0499, 10, 0.8),
    (0.05, 5000, 0.5),     # p not < 0.05 -> 50%
    (None, 5000, 0.5),
])
def test_confidence_rules(p: float | None, users: int, conf: float) -> None:
    assert confidence(friction(p_value=p, affected_users=users)) == conf


def test_rice_score_and_opportunity_range(make_wh) -> None:
    # Data 2026-01-01 .. 2026-01-24 (end of data 01-25); period 01-05..01-19 = 2 weeks inside it.
    # 10 orders of 50 in the period -> 5 conversions / week, average order value 50.
    # Friction: 400 users affected -> reach 400 / 2 = 200 / week; 0.6 lost conversions -> 0.3 / week
    #   -> share 0.3 / 5 = 6% -> impact 2; p = 0.01 -> confidence 0.8;
    #   playbook: funnel_dropoff at Payment Info Entered without a country -> effort 1.5.
    # RICE = 200 * 2 * 0.8 / 1.5 = 213.33 -> 213.3
    # Opportunity high = N_{k-1} (100/week) * gap 0.2 * downstream 0.5 = 10 conversions, low = 5;
    # revenue 10 * 50 = 500 and 250.
    events = [E("x", datetime(2026, 1, 1), PAGE), E("x", datetime(2026, 1, 24), PAGE)]
    events += [E(f"o{i}", 1 * D + i * D, OC, revenue=50.0) for i in range(10)]  # 01-06 .. 01-15
    wh = make_wh(events)
    [s] = prioritize(wh, [friction()], Period.parse("2026-01-05..2026-01-19", None))
    assert (s.reach, s.impact, s.confidence, s.effort) == (200.0, 2.0, 0.8, 1.5)
    assert s.rice_score == pytest.approx(213.3)
    u = s.est_weekly_uplift
    assert (u.conversions_low, u.conversions_high) == (5.0, 10.0)
    assert (u.revenue_low, u.revenue_high) == (250.0, 500.0)
    assert u.conversions_low == u.conversions_high / 2


def test_effort_is_at_least_half_a_week() -> None:
    playbook = {"funnel_dropoff": [{"when": {}, "tweak": "Fix {step} for {segment}", "effort": 0.1}]}
    tweak, effort, _ = tweak_for(friction(), playbook, DEMO_MAP)
    assert effort == 0.5
    assert tweak == f"Fix {PIE} for os=android"


def test_shipped_playbook_efforts_are_at_least_half_a_week() -> None:
    for kind, rules in load_yaml("playbook").items():
        for rule in rules or []:
            assert float(rule["effort"]) >= 0.5, kind


def test_merge_release_regression_leads_the_dropoff_it_explains() -> None:
    # A release regression at PIE for android 7.4 explains the PIE drop-off for android (nested segment).
    drop = friction(segment={"os": "android"})
    rel = friction(kind="release_regression", segment={"os": "android", "app_version": "7.4"})
    other = friction(step=PA, segment={"country": "FR"})
    groups = merge([drop, rel, other], (PV, PA, CS, PIE, OC))
    assert [(lead.id, [m.id for m in members]) for lead, members in groups] == [
        (rel.id, [drop.id]), (other.id, [])]


# ------------------------------------------------------------------------------ periods


def test_period_all_is_unbounded() -> None:
    p = Period.parse("all", None)
    assert (p.start, p.end, p.where()) == (None, None, "TRUE")


def test_period_last_n_days_ends_the_day_after_the_last_event(make_wh) -> None:
    # last event 2026-01-10 15:00 -> end of data 2026-01-11 00:00; last_7_days = [01-04, 01-11)
    wh = make_wh([E("u", datetime(2026, 1, 2, 9), PAGE), E("u", datetime(2026, 1, 10, 15), PAGE)])
    p = resolve_period(wh, "last_7_days")
    assert (p.start, p.end, p.days) == (datetime(2026, 1, 4), datetime(2026, 1, 11), 7)


def test_period_date_range_is_half_open() -> None:
    p = Period.parse("2026-11-01..2026-11-08", None)
    assert (p.start, p.end, p.days) == (datetime(2026, 11, 1), datetime(2026, 11, 8), 7)
    assert p.where() == "ts >= TIMESTAMP '2026-11-01 00:00:00' AND ts < TIMESTAMP '2026-11-08 00:00:00'"


def test_period_iso_week_starts_monday() -> None:
    # 2026-W01: the week holding Thursday 2026-01-01 -> Monday 2025-12-29 .. Monday 2026-01-05
    p = Period.parse("2026-W01", None)
    assert (p.start, p.end) == (datetime(2025, 12, 29), datetime(2026, 1, 5))
    assert p.iso_week() == "2026-W01"


@pytest.mark.parametrize("text", ["yesterday", "last_0_days", "last_x_days", "2025-W53", "2026-W00",
                                  "2026-02-30..2026-03-01", "2026-03-01..2026-02-01", "2026-03-01..2026-03-01",
                                  "2026-1-01..2026-02-01"])
def test_bad_period_raises_naming_the_input(text: str) -> None:
    with pytest.raises(PeriodError, match=repr(text).replace(".", r"\.")):
        Period.parse(text, datetime(2026, 1, 1))


def test_relative_period_without_data_raises() -> None:
    with pytest.raises(PeriodError, match="last_7_days"):
        Period.parse("last_7_days", None)
