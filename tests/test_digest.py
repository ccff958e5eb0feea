"""The weekly digest: numbers from SQL, history across weeks, self-contained HTML, delivery, atomic saves.
Missing and partial weeks, the summary and Block Kit: tests/test_digest_monday.py."""

from __future__ import annotations

import hashlib
import json
import re
import threading
from html.parser import HTMLParser
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import duckdb
import pytest

from agent.digest import History, build, kpis, measurable, previous_week, run_digest
from data.generate import generate
from data.scenario import Scenario, load_scenario
from tools.period import PeriodError
from tools.warehouse import Warehouse

SPIKE = {"kind": "error_spike", "step": "Checkout Started", "segment": {"platform": "web"},
         "start": "2026-11-02", "end": "2026-11-16", "error_code": "SPIKE_CODE", "effect": 0.4}


@pytest.fixture(scope="module")
def db(tmp_path_factory):
    """A friction that starts on Monday of 2026-W45 and stops on Monday of 2026-W47."""
    base = load_scenario("null").model_dump()
    sc = Scenario.model_validate({**base, "name": "spike", "users": 20000, "seed": 31, "frictions": [SPIKE]})
    path = tmp_path_factory.mktemp("digest") / "spike.duckdb"
    generate(sc, path)
    return path


def _spike(items):
    return [t for t in items if "SPIKE_CODE" in t.title or ("Errors" in t.title and "platform=web" in t.title)]


def test_history_new_ongoing_resolved(db, tmp_path):
    with Warehouse(db) as wh:
        digests = {w: run_digest(wh, tmp_path, w) for w in ("2026-W44", "2026-W45", "2026-W46", "2026-W47")}
    assert not _spike(digests["2026-W44"].new + digests["2026-W44"].ongoing)
    assert _spike(digests["2026-W45"].new)
    ongoing = _spike(digests["2026-W46"].ongoing)
    assert ongoing and ongoing[0].weeks == 2
    # the last three days are still arriving, but Monday to Thursday hold over half of W46's web events: resolved
    assert digests["2026-W47"].partial == "data up to 2026-11-19" and _spike(digests["2026-W47"].resolved)
    assert not _spike(digests["2026-W47"].new + digests["2026-W47"].ongoing)
    assert "for 2 weeks" in digests["2026-W46"].markdown


def test_kpis_match_sql(db):
    """The headline metrics, from the metrics layer, against SQL written here."""
    con = duckdb.connect(str(db), read_only=True)
    week = "ts >= '2026-11-09' AND ts < '2026-11-16'"
    users, orders, revenue = con.execute(f"""SELECT count(DISTINCT user_id),
        count(*) FILTER (WHERE event = 'Order Completed'), sum(revenue) FILTER (WHERE event = 'Order Completed')
        FROM events WHERE {week}""").fetchone()
    converting, sessions = con.execute(f"""SELECT count(DISTINCT session_id) FILTER (WHERE event = 'Order Completed'),
        count(DISTINCT session_id) FROM events WHERE {week}""").fetchone()
    before = con.execute("SELECT count(*) FROM events WHERE event = 'Order Completed' "
                         "AND ts >= '2026-11-02' AND ts < '2026-11-09'").fetchone()[0]
    con.close()
    with Warehouse(db) as wh:
        k = {x.name: x for x in kpis(wh, "2026-W46")}
    assert (k["wau"].value, k["orders"].value) == (users, orders)
    assert k["revenue"].value == pytest.approx(revenue, abs=1e-6)
    assert k["aov"].value == pytest.approx(revenue / orders, abs=1e-6)
    assert k["conversion_rate"].value == pytest.approx(converting / sessions, abs=1e-6)  # the one definition
    assert k["orders"].previous == before
    assert k["orders"].change == pytest.approx((orders - before) / before, abs=1e-6)


def test_markdown_shows_the_numbers(db, tmp_path):
    with Warehouse(db) as wh:
        d = build(wh, "2026-W46", History(tmp_path))
    orders = next(k for k in d.kpis if k.name == "orders")
    assert f"| Orders | {orders.value:,.0f} | {orders.previous:,.0f} |" in d.markdown
    assert len(d.suggestions) <= 5
    for s in d.suggestions:
        high = s.est_weekly_uplift.conversions_high
        opportunity = f"{high:g} more orders" if measurable(s) else "no measurable uplift"
        assert s.tweak in d.markdown and opportunity in d.markdown


class _Resources(HTMLParser):
    """Every URL the page would load or link: src/href attributes and CSS url()."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []
        self.tags: set[str] = set()
        self._in_style = False

    def handle_starttag(self, tag, attrs) -> None:
        self.tags.add(tag)
        self._in_style = tag == "style"
        self.urls += [v for k, v in attrs if k in {"src", "href", "action", "poster", "data"} and v]

    def handle_data(self, data) -> None:
        if self._in_style:
            self.urls += re.findall(r"url\(([^)]*)\)", data)


def test_html_is_self_contained(db, tmp_path):
    with Warehouse(db) as wh:
        d = run_digest(wh, tmp_path, "2026-W46")
    parser = _Resources()
    parser.feed(d.html)
    assert d.html.count("<svg") >= 2 and "<script" not in d.html and len(d.html.encode()) < 1_000_000
    assert parser.urls == [], parser.urls
    assert not parser.tags & {"img", "a", "iframe", "link", "object", "embed"}


def test_rerun_is_idempotent_and_atomic(db, tmp_path):
    with Warehouse(db) as wh:
        first = run_digest(wh, tmp_path, "2026-W46")
        digest_dir = tmp_path / "digests"
        hashes = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in digest_dir.iterdir()}
        (digest_dir / ".2026-W46.md.999.tmp").write_text("half a file from a killed run")
        run_digest(wh, tmp_path, "2026-W46")
    again = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in digest_dir.iterdir()
             if not p.name.startswith(".")}
    assert again == {k: v for k, v in hashes.items() if not k.startswith(".")}
    assert set(first.files) == {"md", "html", "json"}
    assert json.loads((digest_dir / "2026-W46.json").read_text())["week"] == "2026-W46"


def test_unwritable_state_dir_is_a_clear_error(db, tmp_path):
    blocker = tmp_path / "state"
    blocker.write_text("a file where the state directory should be")
    with Warehouse(db) as wh, pytest.raises(OSError):
        run_digest(wh, blocker, "2026-W46")


@pytest.mark.parametrize("week", ["2026-W99", "last week", "2026-11-01"])
def test_bad_week(db, tmp_path, week):
    with Warehouse(db) as wh, pytest.raises(PeriodError, match=re.escape(week.split()[0])):
        run_digest(wh, tmp_path, week)


class _Hook(BaseHTTPRequestHandler):
    fail_first = 0
    bodies: list[bytes] = []

    def do_POST(self) -> None:  # noqa: N802 - http.server API
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).bodies.append(body)
        status = 500 if len(type(self).bodies) <= type(self).fail_first else 200
        self.send_response(status)
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


@pytest.mark.parametrize("fail_first, delivered", [(0, True), (2, True), (5, False)])
def test_webhook_delivery_retries_and_reports(db, tmp_path, fail_first, delivered):
    _Hook.fail_first, _Hook.bodies = fail_first, []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with Warehouse(db) as wh:
            d = run_digest(wh, tmp_path, "2026-W46", webhook=f"http://127.0.0.1:{server.server_port}/hook")
    finally:
        server.shutdown()
    assert d.delivery.startswith("delivered") is delivered
    assert (tmp_path / "digests" / "2026-W46.md").exists()
    payload = json.loads(_Hook.bodies[0])
    assert "2026-W46" in payload["text"] and payload["blocks"][0]["type"] == "header"
    assert len(_Hook.bodies) == min(fail_first + 1, 3)


def test_previous_week_crosses_years():
    assert previous_week("2026-W01") == "2025-W52"
