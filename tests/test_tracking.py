"""Data-quality and tracking-plan checks (tools/tracking.py): clean data passes, also with the noise of
real data (a traffic dip, an incomplete last week, anonymous events before signup), and planted
tracking faults are reported.

A generic *tracking fault injector* copies a generated database, opens the copy read-write with
duckdb and plants faults whose place (event, property, dimension, share, count) comes from
parameters. Every fault touches its own rows (a row touched by one fault is never picked by
another), so each expected finding, with its row count, is known exactly from what the test
changed. Two parameter sets put the same kinds of faults on different events, properties and
dimensions, to show the checks are not tied to the demo data.

Populations are small (6,000 users): the whole file runs in well under a minute.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pytest
import yaml

from data.generate import generate
from data.scenario import load_scenario
from data.schema import TABLES
from prompts import load_yaml
from tools.period import Period
from tools.prioritize import merge, prioritize
from tools.scan import scan
from tools.tracking import MAX_NULL_SHARE, PlanError, check_tracking, load_plan
from tools.warehouse import Warehouse

USERS = 6_000
ALL = Period("all", None, None)
ROOT = Path(__file__).resolve().parents[1]


def lit(value: object) -> str:
    return "'" + str(value).replace("'", "''") + "'"


# ------------------------------------------------------------------------------ the fault injector


@dataclass(frozen=True)
class Expected:
    """One finding a planted fault must produce: where (step, segment) and how many rows."""

    step: str | None
    segment: dict[str, str]
    rows: int
    users: int | None = None  # distinct users of the changed rows, when the check reports them
    observed: float | None = None
    baseline: float | None = None

    @property
    def key(self) -> tuple:
        return self.step, tuple(sorted(self.segment.items()))


class Injector:
    """Plants faults in a read-write copy; remembers touched event_ids so faults never share rows."""

    def __init__(self, con: duckdb.DuckDBPyConnection, seed: int = 1) -> None:
        self.con, self.seed = con, seed
        con.execute("CREATE TEMP TABLE touched (event_id VARCHAR)")

    def scalar(self, sql: str):
        return self.con.execute(sql).fetchone()[0]

    def pick(self, where: str, *, share: float | None = None, n: int | None = None) -> int:
        """Put `n` (or `share` of the matching) untouched event rows into TEMP table `pick`; return how many."""
        free = f"({where}) AND event_id NOT IN (SELECT event_id FROM touched)"
        total = self.scalar(f"SELECT count(*) FROM events WHERE {free}")
        k = n if n is not None else round(share * total)
        assert 0 < k <= total, f"cannot pick {k} of {total} rows where {where}"
        self.seed += 1
        self.con.execute(f"CREATE OR REPLACE TEMP TABLE pick AS SELECT event_id, user_id FROM events WHERE {free} "
                         f"ORDER BY hash(event_id || '-{self.seed}') LIMIT {k}")
        self.con.execute("INSERT INTO touched SELECT event_id FROM pick")
        assert self.scalar("SELECT count(*) FROM pick") == k
        return k

    def picked_users(self) -> int:
        return self.scalar("SELECT count(DISTINCT user_id) FROM pick")

    def update(self, assignments: str) -> int:
        """UPDATE the picked rows; returns the number of rows changed."""
        return self.con.execute(f"UPDATE events SET {assignments} WHERE event_id IN (SELECT event_id FROM pick)"
                                ).fetchone()[0]


class Fault:
    def plant(self, inj: Injector) -> list[Expected]:
        raise NotImplementedError


@dataclass(frozen=True)
class NearDuplicate(Fault):
    """A share of one event is sent under another spelling ('product_viewed' for 'Product Viewed')."""

    event: str
    spelling: str
    share: float

    def plant(self, inj: Injector) -> list[Expected]:
        inj.pick(f"event = {lit(self.event)}", share=self.share)
        n = inj.update(f"event = {lit(self.spelling)}")
        return [Expected(self.spelling, {"near_duplicate_of": self.event}, n, inj.picked_users())]


@dataclass(frozen=True)
class Unplanned(Fault):
    """New rows of an event the plan does not know (copies of another event's rows, new ids)."""

    name: str
    like: str
    n: int

    def plant(self, inj: Injector) -> list[Expected]:
        inj.pick(f"event = {lit(self.like)}", n=self.n)
        inj.con.execute("CREATE OR REPLACE TEMP TABLE new_rows AS SELECT * FROM events "
                        "WHERE event_id IN (SELECT event_id FROM pick)")
        inj.con.execute(f"UPDATE new_rows SET event_id = 'unplanned-' || event_id, event = {lit(self.name)}")
        inj.con.execute("INSERT INTO touched SELECT event_id FROM new_rows")
        n = inj.con.execute("INSERT INTO events SELECT * FROM new_rows").fetchone()[0]
        return [Expected(self.name, {"unplanned": self.name}, n, inj.picked_users())]


@dataclass(frozen=True)
class NullProperty(Fault):
    """A required property (a column or a key of `properties`) is missing on a share of one event."""

    event: str
    prop: str
    where: str
    share: float

    def plant(self, inj: Injector) -> list[Expected]:
        inj.pick(f"event = {lit(self.event)} AND {self.where}", share=self.share)
        if self.prop in TABLES["events"]:
            n = inj.update(f"{self.prop} = NULL")
        else:
            n = inj.update(f"properties = json_remove(properties, {lit('$.' + self.prop)})")
        total = inj.scalar(f"SELECT count(*) FROM events WHERE event = {lit(self.event)}")
        assert n / total > MAX_NULL_SHARE, "the fault must exceed the tolerated share of missing values"
        return [Expected(self.event, {"property": self.prop, "check": "missing"}, n, inj.picked_users())]


@dataclass(frozen=True)
class TypeDrift(Fault):
    """A JSON property sent with the wrong type (a number where the plan says VARCHAR) on some rows."""

    event: str
    prop: str
    json_value: str  # a JSON literal, e.g. '840'
    n: int

    def plant(self, inj: Injector) -> list[Expected]:
        inj.pick(f"event = {lit(self.event)}", n=self.n)
        n = inj.update(f"properties = json_merge_patch(coalesce(properties, '{{}}'), "
                       f"json_object({lit(self.prop)}, {lit(self.json_value)}::JSON))")
        return [Expected(self.event, {"property": self.prop, "check": "type"}, n, inj.picked_users())]


@dataclass(frozen=True)
class BadEventValue(Fault):
    """An event dimension with a value outside its allowed set ('Chrome ', 'opera') on some rows."""

    dim: str
    value: str
    where: str
    n: int

    def plant(self, inj: Injector) -> list[Expected]:
        inj.pick(self.where, n=self.n)
        n = inj.update(f"{self.dim} = {lit(self.value)}")
        return [Expected(None, {"dimension": self.dim, "check": "allowed"}, n, inj.picked_users())]


@dataclass(frozen=True)
class BadUserValue(Fault):
    """A user dimension with a value outside its allowed set (plan 'enterprise') on some users."""

    dim: str
    value: str
    n: int

    def plant(self, inj: Injector) -> list[Expected]:
        n = inj.con.execute(f"UPDATE users SET {self.dim} = {lit(self.value)} WHERE user_id IN (SELECT user_id "
                            f"FROM users ORDER BY hash(user_id || '{self.dim}') LIMIT {self.n})").fetchone()[0]
        return [Expected(None, {"dimension": self.dim, "check": "allowed"}, n, n)]


@dataclass(frozen=True)
class MissingDimension(Fault):
    """A required dimension is NULL on a share of the events of `where`."""

    dim: str
    where: str
    share: float
    scope: str = "TRUE"  # the rows the plan requires the dimension on

    def plant(self, inj: Injector) -> list[Expected]:
        inj.pick(f"{self.where} AND {self.scope}", share=self.share)
        n = inj.update(f"{self.dim} = NULL")
        total = inj.scalar(f"SELECT count(*) FROM events WHERE {self.scope}")
        assert n / total > MAX_NULL_SHARE, "the fault must exceed the tolerated share of missing values"
        return [Expected(None, {"dimension": self.dim, "check": "missing"}, n, inj.picked_users())]


@dataclass(frozen=True)
class DuplicateIds(Fault):
    """Exact copies of existing rows (the same event_id twice)."""

    event: str
    n: int

    def plant(self, inj: Injector) -> list[Expected]:
        inj.pick(f"event = {lit(self.event)}", n=self.n)
        n = inj.con.execute("INSERT INTO events SELECT * FROM events WHERE event_id IN (SELECT event_id FROM pick)"
                            ).fetchone()[0]
        return [Expected(None, {"check": "event_id"}, n)]


@dataclass(frozen=True)
class FutureTimestamps(Fault):
    """Rows dated `days` after the real clock (a device with a wrong clock)."""

    event: str
    n: int
    days: int = 30

    def plant(self, inj: Injector) -> list[Expected]:
        inj.pick(f"event = {lit(self.event)}", n=self.n)
        when = datetime.now(UTC).replace(tzinfo=None) + timedelta(days=self.days)
        n = inj.update(f"ts = TIMESTAMP '{when:%Y-%m-%d %H:%M:%S}'")
        return [Expected(None, {"check": "future_ts"}, n, inj.picked_users())]


@dataclass(frozen=True)
class VolumeDrop(Fault):
    """`share` of one event's rows deleted over the last 7 days of data (tracking broken by a release).

    The check compares the event's share of all events in the 7 full days before the last day of data
    with its share in the 28 days before those; the finding's rows are the events missing against that
    usual share, its observed and baseline values the two shares, all counted here on the modified copy.
    """

    event: str
    share: float

    def plant(self, inj: Injector) -> list[Expected]:
        d = inj.scalar("SELECT date_trunc('day', max(ts)) FROM events")
        e = lit(self.event)
        window = f"ts >= TIMESTAMP '{d}' - INTERVAL 7 DAY"  # the last 7 days of data (and the last, partial day)
        k = inj.pick(f"event = {e} AND {window}", share=self.share)
        deleted = inj.con.execute("DELETE FROM events WHERE event_id IN (SELECT event_id FROM pick)").fetchone()[0]
        assert deleted == k
        recent = f"ts >= TIMESTAMP '{d}' - INTERVAL 7 DAY AND ts < TIMESTAMP '{d}'"
        usual = f"ts >= TIMESTAMP '{d}' - INTERVAL 35 DAY AND ts < TIMESTAMP '{d}' - INTERVAL 7 DAY"
        now, total_now, before, total_before = inj.con.execute(
            f"SELECT count(*) FILTER (WHERE event = {e} AND {recent}), count(*) FILTER (WHERE {recent}), "
            f"count(*) FILTER (WHERE event = {e} AND {usual}), count(*) FILTER (WHERE {usual}) FROM events").fetchone()
        share_now, share_before = now / total_now, before / total_before
        assert share_now < 0.5 * share_before, (share_now, share_before)
        return [Expected(self.event, {"check": "volume"}, round(share_before * total_now - now),
                         observed=share_now, baseline=share_before)]


@dataclass(frozen=True)
class FieldDropout(Fault):
    """A field stops being sent: cleared on every event of `where` over the last 7 days (a release that
    dropped it). The dropout finding counts the recent rows that lost it against the field's usual fill
    rate, so its row count is near, not exactly, the number cleared. The demo's plan requires every
    dimension, so the plan's missing-dimension check reports the cleared rows exactly too."""

    dim: str
    where: str
    over_plan_tolerance: bool = True  # the cleared rows are more than 1% of the rows the plan requires it on

    def plant(self, inj: Injector) -> list[Expected]:
        # the last day of data, as the check finds it: timestamps in the future (another fault) do not count
        d = inj.scalar("SELECT date_trunc('day', max(ts) FILTER (WHERE ts <= now()::TIMESTAMP + INTERVAL 1 DAY)) "
                       "FROM events")
        k = inj.pick(f"{self.where} AND {self.dim} IS NOT NULL AND ts >= TIMESTAMP '{d}' - INTERVAL 7 DAY "
                     f"AND ts < TIMESTAMP '{d}'", share=1.0)
        inj.update(f"{self.dim} = NULL")
        plan = [Expected(None, {"dimension": self.dim, "check": "missing"}, k, inj.picked_users())]
        return [Expected(None, {"field": self.dim, "check": "dropout"}, k), *(plan if self.over_plan_tolerance else [])]


def inject(clean: Path, target: Path, faults: list[Fault]) -> list[Expected]:
    """Copy `clean` to `target` and plant `faults` in order; the findings they must produce."""
    shutil.copyfile(clean, target)
    con = duckdb.connect(str(target))
    try:
        inj = Injector(con)
        expected = [e for f in faults for e in f.plant(inj)]
        con.execute("CHECKPOINT")
    finally:
        con.close()
    return expected


# Two parameter sets: the same kinds of faults on different events, properties and dimensions.
# VolumeDrop comes first: its window is anchored on the last day of the clean data.
SET_A: list[Fault] = [
    VolumeDrop("Cart Viewed", 0.8),
    NearDuplicate("Product Viewed", "product_viewed", 0.3),
    Unplanned("Wishlist Added", like="Product Viewed", n=60),
    NullProperty("Product Added", "product_id", "platform = 'ios'", 0.2),
    TypeDrift("Order Completed", "currency", "840", 30),
    BadEventValue("browser", "Chrome ", "platform = 'web'", 50),
    BadUserValue("plan", "enterprise", 40),
    MissingDimension("country", "platform = 'android'", 0.1),
    DuplicateIds("Page Viewed", 25),
    FutureTimestamps("Application Opened", 15),
    FieldDropout("app_version", "platform = 'android'"),
]
SET_B: list[Fault] = [
    VolumeDrop("Search Result Clicked", 0.85),
    NearDuplicate("Checkout Started", "Checkout started", 0.25),
    Unplanned("Coupon Applied", like="Checkout Started", n=40),
    NullProperty("Products Searched", "search_query", "platform = 'web'", 0.3),
    NullProperty("Products Searched", "results_count", "platform = 'android'", 0.5),
    TypeDrift("Products Searched", "source", "7", 35),
    BadEventValue("browser", "opera", "platform = 'web'", 45),
    BadEventValue("os", "win11", "platform = 'web'", 33),
    BadUserValue("acquisition_channel", "tiktok", 55),
    MissingDimension("browser", "event = 'Page Viewed'", 0.2, scope="platform = 'web'"),
    DuplicateIds("Product Viewed", 30),
    FutureTimestamps("Page Viewed", 12),
    FieldDropout("os", "platform = 'web' AND browser = 'firefox'", over_plan_tolerance=False),
]
SETS = {"A": SET_A, "B": SET_B}
SINGLE = [pytest.param(name, i, id=f"{name}-{type(f).__name__}-{i}") for name, faults in SETS.items()
          for i, f in enumerate(faults)]


# ------------------------------------------------------------------------------ fixtures and helpers


@pytest.fixture(scope="module")
def clean(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Generated databases of the demo and null scenarios (small populations)."""
    out = {}
    for name in ("demo", "null"):
        path = tmp_path_factory.mktemp(name) / f"{name}.duckdb"
        generate(load_scenario(name).model_copy(update={"users": USERS}), path)
        out[name] = path
    return out


@pytest.fixture(scope="module")
def planted(clean: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, list]]:
    """For each parameter set, a copy of demo with every fault of the set planted at once."""
    out = {}
    for name, faults in SETS.items():
        target = tmp_path_factory.mktemp(f"set{name}") / "faulty.duckdb"
        out[name] = target, inject(clean["demo"], target, faults)
    return out


def by_key(findings) -> dict[tuple, object]:
    keyed = {(f.step, tuple(sorted(f.segment.items()))): f for f in findings}
    assert len(keyed) == len(findings), f"two findings share a place: {[f.title for f in findings]}"
    return keyed


def rows_match(rows: int, e: Expected) -> bool:
    """The planted row count; volume drops and field dropouts are judged against usual rates, so their
    counts are near it (see VolumeDrop and FieldDropout)."""
    return rows == pytest.approx(e.rows, rel=0.1) if e.segment.get("check") in {"dropout", "volume"} else rows == e.rows


def assert_reported(findings, expected: list[Expected]) -> None:
    """Exactly the expected findings, each a tracking_issue with the planted row count."""
    assert all(f.kind == "tracking_issue" for f in findings)
    got = by_key(findings)
    want = {e.key: e for e in expected}
    assert set(got) == set(want), (f"missing: {sorted(map(str, set(want) - set(got)))}; "
                                   f"unexpected: {[got[k].title for k in set(got) - set(want)]}")
    for key, e in want.items():
        f = got[key]
        assert rows_match(f.detail["rows"], e), (f.title, e)
        assert f.detail["problem"] == f.title
        if e.users is not None:
            assert f.affected_users == e.users, (f.title, e)
        if e.observed is not None:  # shares of all events: faults planted after this one move the total a little
            assert (f.observed, f.baseline) == pytest.approx((e.observed, e.baseline), rel=0.01), (f.title, e)
        assert f.evidence_sql


# ------------------------------------------------------------------------------ clean data


@pytest.mark.parametrize("scenario", ["demo", "null"])
@pytest.mark.parametrize("period", [ALL, Period.parse("2026-11-01..2026-11-23", None)], ids=["all", "november"])
def test_clean_data_keeps_the_plan(clean: dict[str, Path], scenario: str, period: Period) -> None:
    with Warehouse(clean[scenario]) as wh:
        result = check_tracking(wh, period=period)
    assert result.findings == [], [f.title for f in result.findings]
    assert "no problem found" in result.summary


# The noise of real data, none of it a tracking problem (the SQL runs on a read-write copy of clean demo data).
NOISE = {
    # 40% fewer events of every kind over the last 10 days (a holiday, an outage upstream of tracking)
    "traffic dip": "DELETE FROM events WHERE ts >= (SELECT max(ts) FROM events) - INTERVAL 10 DAY "
                   "AND hash(event_id) % 10 < 4",
    # the export stops mid-week: the last 3 days hold a tenth of their events
    "incomplete last week": "DELETE FROM events WHERE ts >= (SELECT max(ts) FROM events) - INTERVAL 3 DAY "
                            "AND hash(event_id) % 10 > 0",
    # web events carry no app version (it only exists in the apps)
    "web without app versions": "UPDATE events SET app_version = NULL WHERE platform = 'web'",
    # a fifth of users browse anonymously for two days before they sign up
    "anonymous before signup": "UPDATE users SET signed_up_at = signed_up_at + INTERVAL 2 DAY "
                               "WHERE hash(user_id) % 5 = 0",
}


@pytest.mark.parametrize("with_plan", [True, False], ids=["demo plan", "no plan"])
def test_noise_of_real_data_is_not_a_tracking_problem(clean: dict[str, Path], tmp_path: Path, with_plan: bool
                                                      ) -> None:
    path = tmp_path / "noisy.duckdb"
    shutil.copyfile(clean["null"], path)
    con = duckdb.connect(str(path))
    for sql in NOISE.values():
        assert con.execute(sql).fetchone()[0] > 0, sql
    con.close()
    with Warehouse(path) as wh:
        emap = wh.event_map if with_plan else wh.event_map.model_copy(update={"tracking_plan": None})
    with Warehouse(path, event_map=emap) as wh:
        result = check_tracking(wh, period=ALL)
        assert result.findings == [], [f.title for f in result.findings]
        assert ("plan checks" in result.summary) != with_plan


# ------------------------------------------------------------------------------ planted faults


@pytest.mark.parametrize(("name", "index"), SINGLE)
def test_each_fault_alone_is_fully_reported(clean: dict[str, Path], tmp_path: Path, name: str, index: int) -> None:
    expected = inject(clean["demo"], tmp_path / "one.duckdb", [SETS[name][index]])
    with Warehouse(tmp_path / "one.duckdb") as wh:
        result = check_tracking(wh, period=ALL)
    assert_reported(result.findings, expected)
    assert len(result.table) == len(expected)


@pytest.mark.parametrize("name", SETS)
def test_all_faults_together_are_fully_reported(planted: dict, name: str) -> None:
    path, expected = planted[name]
    with Warehouse(path) as wh:
        result = check_tracking(wh, period=ALL)
    assert_reported(result.findings, expected)


def test_titles_name_the_place_and_the_count(planted: dict) -> None:
    path, expected = planted["A"]
    with Warehouse(path) as wh:
        got = by_key(check_tracking(wh, period=ALL).findings)
    for e in expected:
        title = got[e.key].title
        for word in [e.step or "", *e.segment.values()]:
            if word not in {"missing", "allowed", "type", "volume", "event_id", "future_ts", "dropout"}:
                assert word in title, (word, title)
    assert "'Chrome '" in got[(None, (("check", "allowed"), ("dimension", "browser")))].title
    assert "'enterprise'" in got[(None, (("check", "allowed"), ("dimension", "plan")))].title


def test_json_numbers_keep_numeric_types(clean: dict[str, Path], tmp_path: Path) -> None:
    """A JSON property planned INTEGER or DOUBLE accepts whole numbers (JSON has one number type)."""
    plan_file = tmp_path / "plan.yaml"
    raw = yaml.safe_load((ROOT / "data" / "maps" / "demo.yaml").read_text())["tracking_plan"]
    raw["events"]["Order Completed"]["optional"].update({"quantity": "INTEGER", "discount": "DOUBLE"})
    plan_file.write_text(yaml.safe_dump(raw))
    path = tmp_path / "numbers.duckdb"
    shutil.copyfile(clean["demo"], path)
    con = duckdb.connect(str(path))
    con.execute("UPDATE events SET properties = json_merge_patch(properties, CASE WHEN hash(event_id) % 2 = 0 "
                "THEN '{\"quantity\": 2, \"discount\": 5}' ELSE '{\"quantity\": 1, \"discount\": 2.5}' END) "
                "WHERE event = 'Order Completed'")
    assert sorted(con.execute("SELECT list(DISTINCT json_type(properties, '$.discount')) FROM events "
                              "WHERE event = 'Order Completed'").fetchone()[0]) == ["DOUBLE", "UBIGINT"]
    con.close()
    with Warehouse(path) as wh:
        assert check_tracking(wh, load_plan(plan_file), ALL).findings == []
    # and a string where a number is planned is still drift
    con = duckdb.connect(str(path))
    n = con.execute("UPDATE events SET properties = json_merge_patch(properties, json_object('quantity', 'two')) "
                    "WHERE event_id IN (SELECT event_id FROM events WHERE event = 'Order Completed' LIMIT 9)"
                    ).fetchone()[0]
    con.close()
    with Warehouse(path) as wh:
        findings = check_tracking(wh, load_plan(plan_file), ALL).findings
    assert [(f.step, f.segment, f.detail["rows"]) for f in findings] == [
        ("Order Completed", {"property": "quantity", "check": "type"}, n)]


def playbook_tweak(f) -> str:
    """The tracking_issue tweak of prompts/playbook.yaml, filled in by hand."""
    rule = next(rule for rule in load_yaml("playbook")["tracking_issue"] if not rule.get("when"))
    return rule["tweak"].format(step=f.step or "", detail=f.detail["problem"])


@pytest.mark.parametrize("name", SETS)
def test_scan_reports_and_suggests_every_fault(planted: dict, name: str) -> None:
    path, expected = planted[name]
    with Warehouse(path) as wh:
        report = scan(wh, "all")
    assert not report.warnings
    tracking = by_key([f for f in report.findings if f.kind == "tracking_issue"])
    assert set(tracking) == {e.key for e in expected}
    for e in expected:
        assert rows_match(tracking[e.key].detail["rows"], e), (tracking[e.key].title, e)
    leads = {s.friction_id: s for s in report.suggestions}
    for f in tracking.values():
        if f.id in leads:  # its own suggestion, with the playbook's tweak
            s = leads[f.id]
            assert s.kind == "tracking_issue"
            assert s.tweak == playbook_tweak(f)
            assert s.rationale.startswith(f.title)
        else:  # merged into another tracking suggestion (see test_unrelated_tracking_problems_are_not_merged)
            assert [s.kind for s in report.suggestions if f.id in s.related] == ["tracking_issue"], f.title


# Known weaknesses of the suggestions built from tracking findings (tools/prioritize.py, prompts/playbook.yaml).


def test_unrelated_tracking_problems_are_not_merged(planted: dict) -> None:
    path, _ = planted["A"]
    with Warehouse(path) as wh:
        findings = check_tracking(wh, period=ALL).findings
    groups = merge(findings, wh.event_map.steps)
    merged = [(lead.title, [m.title for m in members]) for lead, members in groups if members]
    assert merged == []


def test_tracking_suggestions_read_well(planted: dict) -> None:
    path, _ = planted["A"]
    with Warehouse(path) as wh:
        suggestions = prioritize(wh, check_tracking(wh, period=ALL).findings, ALL)
    bad = [s.tweak for s in suggestions if "of :" in s.tweak]
    bad += [s.rationale for s in suggestions if re.search(r"\d{3,}\.\d%", s.rationale)]
    assert bad == []


# ------------------------------------------------------------------------------ the plan file


def test_bad_plan_files_name_the_file_and_field(tmp_path: Path) -> None:
    with pytest.raises(PlanError, match="tracking plan not found: .*nope.yaml"):
        load_plan(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: 1\ndimensions: {}\nevents:\n  Product Added: {owner: x, required: {x: NUMBER}}\n")
    with pytest.raises(PlanError, match=r"bad\.yaml: events\.Product Added\.required\.x: "):
        load_plan(bad)
    bad.write_text("dimensions: {}\nevents: {A: {owner: x, requird: {}}}\n")
    with pytest.raises(PlanError, match=r"events\.A\.requird"):
        load_plan(bad)
    bad.write_text("events: [\n")
    with pytest.raises(PlanError, match="not valid YAML"):
        load_plan(bad)


# ------------------------------------------------------------------------------ the CLI


@pytest.fixture(scope="module")
def cli_runs(clean: dict[str, Path], planted: dict, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """`insight check-tracking` on a faulty database, with a missing plan and with a bad plan, run at once
    (each start of the CLI takes seconds)."""
    folder = tmp_path_factory.mktemp("cli")
    raw = yaml.safe_load((ROOT / "data" / "maps" / "demo.yaml").read_text())["tracking_plan"]
    raw["events"]["Product Added"]["required"] = {"x": "NUMBER"}
    (folder / "bad_plan.yaml").write_text(yaml.safe_dump(raw))
    runs = {
        "json": ["--db", str(planted["A"][0]), "--json"],
        "missing_plan": ["--db", str(clean["null"]), "--plan", str(folder / "missing.yaml")],
        "bad_plan": ["--db", str(clean["null"]), "--plan", str(folder / "bad_plan.yaml"), "--json"],
    }
    procs = {name: subprocess.Popen([sys.executable, "-m", "agent.cli", "check-tracking", *args], cwd=ROOT,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for name, args in runs.items()}
    out = {}
    for name, proc in procs.items():
        stdout, stderr = proc.communicate(timeout=120)
        out[name] = subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)
    return out


def test_cli_check_tracking_json(cli_runs: dict, planted: dict) -> None:
    done = cli_runs["json"]
    assert done.returncode == 0, done.stderr
    findings = json.loads(done.stdout)
    expected = planted["A"][1]
    assert {(f["step"], tuple(sorted(f["segment"].items()))) for f in findings} == {e.key for e in expected}
    rows = {(f["step"], tuple(sorted(f["segment"].items()))): f["detail"]["rows"] for f in findings}
    assert all(rows_match(rows[e.key], e) for e in expected), rows
    assert all(f["kind"] == "tracking_issue" and f["title"] == f["detail"]["problem"] for f in findings)


def test_cli_check_tracking_missing_plan(cli_runs: dict) -> None:
    done = cli_runs["missing_plan"]
    assert done.returncode == 2, done.stdout + done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "missing.yaml" in lines[0] and "not found" in lines[0], done.stderr
    assert done.stdout == ""


def test_cli_check_tracking_bad_plan_field(cli_runs: dict) -> None:
    done = cli_runs["bad_plan"]
    assert done.returncode == 2, done.stdout + done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "bad_plan.yaml" in lines[0] and "events.Product Added.required.x" in lines[0], done.stderr
    assert done.stdout == ""


@pytest.mark.parametrize("name", ["A", "B"])
def test_the_compiled_duplicate_check_agrees_with_sql(planted, clean, monkeypatch, name: str) -> None:
    """Large data checks event ids with a compiled hash set, small data in SQL: both find the planted copies and
    nothing in clean data."""
    import tools.tracking as tracking
    from tools.warehouse import Warehouse

    assert any(isinstance(f, DuplicateIds) for f in SETS[name])
    everything = Period("all", None, None)
    for path, duplicated in ((planted[name][0], True), (clean["demo"], False)):
        with Warehouse(path) as wh:
            rows = int(wh.scalar("SELECT count(*) FROM events"))
            assert tracking._repeated_hashes(wh, everything, rows) is duplicated  # SQL: small data
            monkeypatch.setattr(tracking, "COMPILED_FROM", 0)
            assert tracking._repeated_hashes(wh, everything, rows) is duplicated  # compiled
            monkeypatch.undo()
