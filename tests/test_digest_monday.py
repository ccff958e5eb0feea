"""What a Monday digest sends when last week's data is missing, partial or ends an experiment; the summary at
the top, KPI arrows and sparklines, a small HTML for phones, and the Slack message in Block Kit."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from datetime import date
from pathlib import Path

import duckdb
import pytest

from agent.config import Settings
from agent.digest import (
    Digest,
    NoDataError,
    WebhookError,
    deliver,
    last_calendar_week,
    measurable,
    run_digest,
    slack_message,
    sparkline,
)
from data.generate import generate
from data.scenario import load_scenario
from tests import test_hostile_data
from tools.scan import scan
from tools.warehouse import Warehouse

ROOT = Path(__file__).resolve().parent.parent
SLOW_ANDROID = "Product Viewed page is slow for platform=android"
SRM = "Sample ratio mismatch in exp_onboarding"
_Hook, hook = test_hostile_data._Hook, test_hostile_data.hook  # a webhook server on 127.0.0.1 and its fixture


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Path:
    """The demo store (data 2026-08-31 to 2026-11-22) at 3000 users: in 2026-W46 and W47 its android product
    page is slow and exp_onboarding (ending 2026-11-23) has a sample ratio mismatch."""
    path = tmp_path_factory.mktemp("monday") / "demo.duckdb"
    generate(load_scenario("demo").model_copy(update={"users": 3000}), path)
    return path


@pytest.fixture(scope="module")
def w47(demo, tmp_path_factory) -> Digest:
    """The digest of 2026-W47, the demo's last full week, without history."""
    with Warehouse(demo) as wh:
        return run_digest(wh, tmp_path_factory.mktemp("w47"), "2026-W47")


@pytest.fixture
def edited(demo, tmp_path) -> Callable[[str], Path]:
    """A copy of the demo with `sql` applied."""
    def make(sql: str) -> Path:
        path = tmp_path / "edited.duckdb"
        shutil.copy(demo, path)
        with duckdb.connect(str(path)) as con:
            con.execute(sql)
        return path
    return make


def _two_weeks(db: Path, state: Path):
    """The digests of 2026-W46 (full) and then 2026-W47, which compares with it."""
    with Warehouse(db) as wh:
        return run_digest(wh, state, "2026-W46"), run_digest(wh, state, "2026-W47")


def _titles(items) -> list[str]:
    return [t.title for t in items]


def test_a_week_without_events_is_refused_in_one_line(demo, tmp_path):
    with Warehouse(demo) as wh, pytest.raises(NoDataError, match=r"no events in week 2026-W48 .*to 2026-11-22"):
        run_digest(wh, tmp_path, "2026-W48")
    env = {**os.environ, "INSIGHT_STATE_DIR": str(tmp_path / "state")}
    run = subprocess.run([sys.executable, "-c", "from agent.cli import app; app(prog_name='insight')", "digest",
                          "--db", str(demo), "--week", "2026-W48"], cwd=ROOT, env=env, capture_output=True,
                         text=True, timeout=300)
    assert run.returncode == 2 and "Traceback" not in run.stderr
    assert run.stderr.count("\n") == 1 and run.stderr.startswith("error: no events in week 2026-W48")
    assert not (tmp_path / "state" / "digests").exists()


@pytest.mark.parametrize("sql, until", [
    ("DELETE FROM events WHERE ts >= '2026-11-19'", "2026-11-18"),  # the export stops on Wednesday
    ("DELETE FROM events WHERE ts >= '2026-11-21' AND hash(event_id) % 5 <> 0", "2026-11-20"),  # still arriving
])
def test_a_partial_week_is_marked_and_compares_the_same_days(edited, tmp_path, sql, until):
    db = edited(sql)
    _, d = _two_weeks(db, tmp_path)
    assert d.partial == f"data up to {until}" and f"Partial week: data up to {until}." in d.markdown
    assert "nan" not in d.markdown and "-100" not in d.markdown and not d.resolved
    with duckdb.connect(str(db), read_only=True) as con:
        orders = [con.execute("SELECT count(*) FROM events WHERE event = 'Order Completed' AND ts >= ? AND ts < "
                              "?::DATE + 1", [start, end]).fetchone()[0]
                  for start, end in ((("2026-11-16", until)), ("2026-11-09", f"2026-11-{int(until[-2:]) - 7}"))]
    kpi = next(k for k in d.kpis if k.name == "orders")
    assert (kpi.value, kpi.previous) == tuple(orders)  # Monday to the last complete day, both weeks


def test_a_finding_whose_data_is_missing_is_unconfirmed_not_resolved(edited, tmp_path):
    """Only Monday of the week arrived; then a full week in which android stopped sending events."""
    first, monday = _two_weeks(edited("DELETE FROM events WHERE ts >= '2026-11-17'"), tmp_path / "monday")
    assert SLOW_ANDROID in _titles(first.new)
    assert _titles(monday.unconfirmed) == [SLOW_ANDROID] and not monday.resolved
    assert "**Not found, unconfirmed (their data is missing this week) (1)**" in monday.markdown
    _, silent = _two_weeks(edited("DELETE FROM events WHERE ts >= '2026-11-16' AND platform = 'android'"),
                           tmp_path / "android")
    assert silent.partial is None and _titles(silent.unconfirmed) == [SLOW_ANDROID] and not silent.resolved


def test_an_ended_experiment_is_ended_not_resolved(edited, tmp_path):
    first, d = _two_weeks(edited("UPDATE experiments SET ended_at = '2026-11-16' WHERE experiment_id = "
                                 "'exp_onboarding'"), tmp_path)
    assert any(t.startswith(SRM) for t in _titles(first.new))
    assert [t[:len(SRM)] for t in _titles(d.ended)] == [SRM] and not d.resolved
    assert "**Experiments ended (not resolved: they stopped running) (1)**" in d.markdown


def test_a_suggestion_without_uplift_is_never_first(demo, w47):
    with Warehouse(demo) as wh:
        report = scan(wh, "2026-W47")
    d = w47
    assert not measurable(report.suggestions[0])  # by RICE alone, the SRM fix (no uplift) would come first
    assert measurable(d.suggestions[0]) and not measurable(d.suggestions[-1])
    assert "0 to 0 more orders" not in d.markdown and "($0 to $0)" not in d.markdown
    assert "Opportunity: no measurable uplift" in d.markdown
    assert f"1. **{d.suggestions[0].tweak}**" in d.markdown


def test_summary_arrows_sparklines_and_a_small_page_for_phones(w47):
    d = w47
    top = d.markdown.split("## Headline numbers")[0]
    lines = re.findall(r"^- \*\*(What changed|What is new|Do first):\*\* (.+)$", top, re.MULTILINE)
    assert [label for label, _ in lines] == ["What changed", "What is new", "Do first"]
    assert "Orders 74 (▲ +23%)" in lines[0][1] and d.suggestions[0].tweak in lines[2][1]
    orders = next(k for k in d.kpis if k.name == "orders")
    assert len(orders.trend) == 8 and orders.trend[-2:] == [orders.previous, orders.value]
    assert f"| ▲ +23% | {sparkline(orders.trend)} |" in d.markdown and "▼ -31%" in d.markdown
    page = Path(d.files["html"]).read_bytes()
    assert len(page) < 1_000_000 and b"<meta name='viewport' content='width=device-width" in page
    assert page.count(b"<svg") == 2 and b"<script" not in page and "▲ +23%".encode() in page


def test_sparkline_scales_and_marks_weeks_without_data():
    assert sparkline([None, 1, 2, 3, 4, 5, 6, 8]) == "·▁▂▃▄▅▆█"
    assert sparkline([2.0] * 3) == "▄▄▄"


def _texts(message: dict) -> list[str]:
    """Every mrkdwn or plain text of a Block Kit message, fields included."""
    return [t["text"] for b in message["blocks"] for t in [b.get("text", {}), *b.get("fields", [])] if t]


def test_slack_gets_kpis_incidents_top_tweaks_and_a_link(demo, tmp_path, hook):
    with Warehouse(demo) as wh:
        d = run_digest(wh, tmp_path, "2026-W47", webhook=hook + "/hook", base_url="https://intranet.example/digests/")
    assert d.delivery == "delivered to webhook (attempt 1)"
    sent = _Hook.bodies[0]
    texts = _texts(sent)
    assert sent["blocks"][0]["text"] == {"type": "plain_text", "text": "Weekly product digest 2026-W47"}
    assert "*Orders*\n74 ▲ +23%" in texts and "*Incidents:* 0 new, 0 ongoing, 0 recovered" in texts
    assert any(t.startswith(f"1. {d.suggestions[0].tweak} (") for t in texts)
    assert texts[-1] == "<https://intranet.example/digests/2026-W47.html|Open the full digest>"
    assert "2026-W47" in sent["text"] and "Full digest: https://intranet.example/digests/2026-W47.html" in sent["text"]
    with Warehouse(demo) as wh:
        run_digest(wh, tmp_path, "2026-W47", webhook=hook + "/hook")
    assert "Open the full digest" not in json.dumps(_Hook.bodies[1]) and "Full digest" not in _Hook.bodies[1]["text"]
    with Warehouse(demo) as wh, pytest.raises(WebhookError, match="digest base URL"):
        run_digest(wh, tmp_path / "refused", "2026-W47", webhook=hook + "/hook", base_url="file:///srv/digests")
    assert not (tmp_path / "refused").exists()


def test_slack_blocks_carry_data_as_text(w47, hook):
    payload = "<!channel> <https://evil.example/x|click> & *bold*"
    d = w47.model_copy(deep=True)
    d.new[0].title = d.suggestions[0].tweak = d.kpis[0].label = d.partial = payload
    assert deliver(d, hook + "/hook", "https://intranet.example/d?a=1&b=<2>|x") == "delivered to webhook (attempt 1)"
    sent = json.dumps(_Hook.bodies[0], ensure_ascii=False)
    assert "&lt;!channel&gt; &lt;https://evil.example/x|click&gt; &amp;" in sent and "<!" not in sent
    assert sent.count("<http") == 1 and "<https://intranet.example/d?a=1&amp;b=%3C2%3E%7Cx|Open the full" in sent
    assert slack_message(d)["text"].count("&lt;!channel&gt;") >= 3  # the fallback text is escaped too


def test_the_base_url_setting_and_the_monday_schedule(monkeypatch):
    monkeypatch.setenv("INSIGHT_DIGEST_BASE_URL", "https://intranet.example/digests")
    assert Settings().digest_base_url == "https://intranet.example/digests"
    # A Monday run digests the calendar week just ended, whatever the data holds (a stalled pipeline is an error)
    assert last_calendar_week(date(2026, 11, 23)) == "2026-W47" == last_calendar_week(date(2026, 11, 29))
    assert last_calendar_week(date(2027, 1, 4)) == "2026-W53"
