"""Conversations, the busy state, the evidence panels and the phone layout, in a real browser (tests.test_ui's
fixtures: the app on a generated demo dataset, every request leaving 127.0.0.1 refused).
"""

from __future__ import annotations

import re
from contextlib import closing
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest
from playwright.sync_api import expect

from tests.test_ui import ANSWER_TIMEOUT_MS, app, ask, browser, dataset, page, served, the_agent  # noqa: F401 - fixtures
from ui.app import Conversations, chat_handler, pick_chart, pretty_sql

DOCS = Path(__file__).resolve().parent.parent / "docs"


def thread_of(pg) -> str:
    pg.wait_for_url(re.compile(r"[?&]c=[0-9a-f]{32}"))  # the page script puts it there within 250 ms of loading
    return re.search(r"[?&]c=([0-9a-f]{32})", pg.url).group(1)


def answered(pg, text: str):
    """The answer with `text`, once it has landed and the question box is enabled again."""
    expect(pg.locator("#chat [data-testid='bot']").last).to_contain_text(text, timeout=ANSWER_TIMEOUT_MS)
    answer = pg.locator("#chat [data-testid='bot']", has_text=text)
    expect(pg.locator("#stop")).to_be_hidden()
    expect(pg.locator("#question textarea")).to_be_enabled()
    return answer.first


def local(pg, running: dict):
    """`pg` with every request leaving the app refused."""
    pg.route("**/*", lambda r: r.continue_() if r.request.url.startswith(running["base"]) else r.abort())
    return pg


def test_reload_new_tab_and_shared_link_reopen_the_conversation(page, browser, app: dict) -> None:  # noqa: F811
    ask(page, "What is the cart abandonment rate in Germany?")
    answered(page, "country=DE")
    thread = thread_of(page)
    page.reload()
    answered(page, "country=DE")  # restored from the checkpointer, under the same link
    assert thread_of(page) == thread
    assert page.locator("#chat [data-testid='user']", has_text="cart abandonment rate in Germany").count() == 1
    # ... with the answer's tool step and its SQL (kept with the conversation; this answer has no chart)
    expect(page.locator("#chat [role='button']", has_text="cart_abandonment").first).to_contain_text("(done)")
    page.locator("#sql-box").get_by_text(re.compile(r"SQL evidence \(\d+ quer")).click()
    expect(page.locator("#sql")).to_contain_text("-- query 1")
    ask(page, "and on iOS?")  # the restored conversation is the agent's context too
    answered(page, "all time, platform=ios")

    tab = local(page.context.new_page(), app)  # a new tab of the same browser: a new conversation, and the list
    tab.goto(app["url"])
    tab.locator("#question textarea:enabled").wait_for()
    assert thread_of(tab) != thread and tab.locator("#chat [data-testid='bot']").count() == 0
    tab.locator("#conversations label", has_text="cart abandonment rate in Germany").click()
    answered(tab, "all time, platform=ios")
    tab.wait_for_url(re.compile(f"c={thread}"))
    assert tab.locator("#logout").is_hidden()  # no login: nobody to sign out

    with closing(browser.new_context(viewport={"width": 1440, "height": 1000})) as other:
        elsewhere = local(other.new_page(), app)  # another browser: its own list, without this conversation ...
        elsewhere.goto(app["url"])
        elsewhere.locator("#question textarea:enabled").wait_for()
        assert elsewhere.locator("#conversations label", has_text="cart abandonment").count() == 0
        elsewhere.goto(f"{app['url']}?c={thread}")  # ... but a shared link opens it (no login: anyone with it)
        answered(elsewhere, "all time, platform=ios")
        ask(elsewhere, "and on web?")
        answered(elsewhere, "all time, platform=web")
        assert elsewhere.locator("#conversations label", has_text="cart abandonment").count() == 0  # still not theirs
        assert thread_of(elsewhere) == thread
    assert the_agent(app).owner(thread).startswith("browser:")  # the browser that started it, by its cookie
    assert not page.errors and not page.external, (page.errors, page.external)


@pytest.mark.parametrize("how", ["#new-chat", "#chat button[aria-label='Clear']"])
def test_new_chat_and_trash_leave_no_context(page, app: dict, how: str) -> None:  # noqa: F811
    ask(page, "What is the cart abandonment rate in Germany?")
    answered(page, "country=DE")
    first = thread_of(page)
    page.locator(how).first.click()
    page.wait_for_function(f"() => !location.search.includes('{first}')")
    assert page.locator("#chat [data-testid='bot']").count() == 0
    ask(page, "and on iOS?")
    page.locator("#chat [data-testid='bot']").last.wait_for(timeout=ANSWER_TIMEOUT_MS)
    page.locator("#question textarea:enabled").wait_for()
    assert "Cart abandonment" not in page.locator("#chat").inner_text()  # the old context is gone
    threads = [t for q, t in the_agent(app).calls if q == "and on iOS?"]
    assert threads[-1] == thread_of(page) != first


def test_busy_state_stop_send_and_example_chips(page, app: dict) -> None:  # noqa: F811
    page.locator("#examples button", has_text="Which search queries fail?").click()  # a chip sends its question
    page.locator("#chat [data-testid='user']", has_text="Which search queries fail?").wait_for()
    answered(page, "Search health")
    agent = the_agent(app)
    chips = page.locator("#examples button")
    agent.gate.clear()  # the next answer is stuck in its first step, as a long scan would be
    try:
        page.locator("#question textarea").fill("How did the experiments do?")
        page.locator("#send").click()
        expect(page.locator("#stop")).to_be_visible()
        expect(page.locator("#question textarea")).to_be_disabled()
        expect(page.locator("#send")).to_be_hidden()
        expect(chips.first).to_be_disabled()  # nothing can ask (and be lost) while an answer runs
        for _ in range(200):  # the stream has started, and waits inside it
            if agent.active:
                break
            page.wait_for_timeout(50)
        page.locator("#stop").click()
        expect(page.locator("#send")).to_be_visible()
        expect(page.locator("#question textarea")).to_be_enabled()
        expect(page.locator("#stop")).to_be_hidden()
        expect(chips.first).to_be_enabled()
        # asked again at once, while the stopped answer is still inside its step: shown, and answered below
        assert agent.active == 1
        page.locator("#question textarea").fill("Show the purchase funnel by platform")
        page.locator("#send").click()
        expect(page.locator("#chat [data-testid='user']").last).to_contain_text("Show the purchase funnel by platform")
        expect(page.locator("#stop")).to_be_visible()
        expect(page.locator("#question textarea")).to_be_disabled()
    finally:
        agent.gate.set()
    answered(page, "Here is the purchase funnel")
    assert "Experiment results" not in page.locator("#chat").inner_text()  # the stopped answer shows nothing more
    assert agent.same_thread == 0  # the new answer ran once the stopped one had ended: one writer per thread
    page.wait_for_timeout(1000)
    assert page.locator("#stop").is_hidden() and page.locator("#question textarea").is_enabled()  # and stays so
    page.reload()  # the conversation's record has the new answer last (not buried under the stopped run's)
    answered(page, "Here is the purchase funnel")
    assert not page.errors, page.errors


def test_new_chat_while_answering_stops_the_answer(page, app: dict) -> None:  # noqa: F811
    agent = the_agent(app)
    agent.gate.clear()
    try:
        ask(page, "How did the experiments do?")
        expect(page.locator("#stop")).to_be_visible()
        page.locator("#new-chat").click()
        expect(page.locator("#chat [data-testid='user']")).to_have_count(0)
        expect(page.locator("#question textarea")).to_be_enabled()
    finally:
        agent.gate.set()
    page.wait_for_timeout(1500)  # the stopped answer winds down: nothing of it reaches the new conversation
    assert page.locator("#chat [data-testid='user'], #chat [data-testid='bot']").count() == 0
    assert page.locator("#stop").is_hidden() and page.locator("#question textarea").is_enabled()


def test_evidence_shows_only_what_the_answer_has(page) -> None:  # noqa: F811
    ask(page, "Which search queries fail?")
    answered(page, "Search health")
    page.locator("#chart .js-plotly-plot").wait_for()
    assert not page.locator("#suggestions").is_visible()  # no suggestions: no empty table
    assert not page.locator("#chart .modebar-container").is_visible()  # no toolbar over the chart's label
    assert not page.locator("#sql").is_visible()
    page.locator("#sql-box").get_by_text("SQL evidence (1 query)").click()
    assert re.search(r"\bSELECT\n", page.locator("#sql").inner_text())
    page.reload()  # reopened: the step, the chart and the SQL come back from the conversation's record
    answered(page, "Search health")
    expect(page.locator("#chat [role='button']", has_text="search_quality").first).to_contain_text("(done)")
    expect(page.locator("#chart .js-plotly-plot")).to_contain_text("Zero-result rate")
    page.locator("#sql-box").get_by_text("SQL evidence (1 query)").click()
    assert re.search(r"\bSELECT\n", page.locator("#sql").inner_text())
    ask(page, "Show the purchase funnel by platform")
    answered(page, "Here is the purchase funnel")
    expect(page.locator("#sql-box")).to_contain_text("SQL evidence (2 queries)")
    page.locator("#chat [data-testid='bot']", has_text="Search health").click()  # an earlier answer: its evidence
    expect(page.locator("#chart .js-plotly-plot")).to_contain_text("Zero-result rate")
    expect(page.locator("#sql-box")).to_contain_text("SQL evidence (1 query)")
    ask(page, "What should we fix first?")
    answered(page, "RICE")
    page.locator("#suggestions [role='gridcell']").first.wait_for()
    assert not page.locator("#sql").is_visible()  # collapsed again for the new answer
    assert not page.errors, page.errors


def test_answer_start_in_view_desktop_screenshot(page) -> None:  # noqa: F811
    ask(page, "What should we fix first?")
    answer = answered(page, "RICE")
    page.wait_for_timeout(800)
    box, shown = page.locator("#chat").bounding_box(), answer.bounding_box()
    assert box["y"] <= shown["y"] <= box["y"] + 120, (box, shown)  # the answer's start, not its end
    page.screenshot(path=str(DOCS / "ui-desktop.png"), full_page=True)


def test_phone_layout(browser, app: dict) -> None:  # noqa: F811
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    pg = context.new_page()
    pg.route("**/*", lambda r: r.continue_() if r.request.url.startswith(app["base"]) else r.abort())
    pg.goto(app["url"])
    ask(pg, "What should we fix first?")
    answered(pg, "RICE")
    pg.locator("#suggestions [role='gridcell']").first.wait_for()
    pg.wait_for_timeout(800)
    # the answer, its chart, table and SQL, then the question box (with Send) and the examples
    order = [pg.locator(s).bounding_box() for s in ("#chat", "#chart", "#suggestions", "#sql-box", "#ask",
                                                    "#examples")]
    for above, below in zip(order, order[1:]):
        assert above["y"] + above["height"] <= below["y"] + 1, (above, below)  # in order, none overlapping
    assert all(b["x"] >= 0 and b["x"] + b["width"] <= 391 for b in order), order
    assert not pg.locator("#sidebar.open").count()  # the conversation list does not cover the chat
    pg.screenshot(path=str(DOCS / "ui-phone.png"), full_page=True)
    context.close()


def test_scan_period_words(page) -> None:  # noqa: F811
    page.get_by_role("tab", name="Friction scan").click()
    page.locator("#scan-period textarea").fill("last week")
    page.locator("#run-scan").click()
    page.get_by_text("(period last_7_days)").wait_for(timeout=ANSWER_TIMEOUT_MS)
    page.locator("#scan-period textarea").fill("sometime soonish")
    page.locator("#run-scan").click()
    page.get_by_text("not understood").wait_for(timeout=ANSWER_TIMEOUT_MS)


def test_conversations_belong_to_their_user(app: dict) -> None:  # noqa: F811
    agent = the_agent(app)
    assert agent.remember("t-ana", "Which search queries fail?", "ana")
    assert not agent.remember("t-ana", "mine now", "bob") and agent.owner("t-ana") == "ana"
    talks = Conversations(SimpleNamespace(get=lambda: agent))

    def visitor(name: str) -> SimpleNamespace:
        return SimpleNamespace(username=name, query_params={"c": "t-ana"}, session_hash="x")
    assert talks.from_link(visitor("ana"))[0] == "t-ana"
    opened = talks.from_link(visitor("bob"))
    assert opened[0] != "t-ana" and opened[2] == []  # bob gets a new, empty conversation
    assert [c.title for c in agent.conversations("ana")] == ["Which search queries fail?"]
    assert "t-ana" not in [c.thread_id for c in agent.conversations("bob")]
    calls = len(agent.calls)
    *_, last = chat_handler(SimpleNamespace(get=lambda: agent))("mine now?", [], "t-ana", {}, visitor("bob"))
    assert last[:2] == ([], "mine now?") and last[8] is False  # refused: the question kept, the controls released
    assert len(agent.calls) == calls


def test_browsers_own_their_conversations_without_login(app: dict) -> None:  # noqa: F811
    agent = the_agent(app)
    mine, theirs = "1" * 32, "2" * 32
    talks = Conversations(SimpleNamespace(get=lambda: agent))

    def browser_visit(cookie: str, link: str = "") -> SimpleNamespace:
        return SimpleNamespace(username=None, cookies={"insight_browser": cookie}, query_params={"c": link},
                               session_hash=cookie[:8])
    assert agent.remember("t-mine", "Which search queries fail?", "browser:" + mine)
    listed = talks.from_link(browser_visit(mine))[3].constructor_args["choices"]
    assert [t for _, t in listed] == ["t-mine"]
    assert talks.from_link(browser_visit(theirs))[3].constructor_args["choices"] == []  # not in their list
    assert talks.from_link(browser_visit(theirs, "t-mine"))[0] == "t-mine"  # but their shared link opens
    assert talks.from_link(browser_visit("not-an-id"))[3].constructor_args["choices"] == [  # a forged id: ""
        (label, t) for label, t in talks.from_link(SimpleNamespace(username=None, query_params={},
                                                                   session_hash="y"))[3].constructor_args["choices"]]
    first = httpx.get(app["url"], timeout=30)
    cookie = first.headers["set-cookie"]
    assert re.match(r"insight_browser=[0-9a-f]{32}; Path=/; Max-Age=\d+; HttpOnly; SameSite=Lax$", cookie), cookie
    again = httpx.get(app["url"], cookies={"insight_browser": cookie.split(";")[0].split("=")[1]}, timeout=30)
    assert "set-cookie" not in again.headers  # kept, not renewed


def test_login_shows_logout(browser, dataset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    monkeypatch.setenv("INSIGHT_UI_USER", "ana")
    monkeypatch.setenv("INSIGHT_UI_PASSWORD", "right")
    with served(dataset, tmp_path) as running, closing(browser.new_context()) as context:
        pg = context.new_page()
        pg.goto(running["url"])
        pg.get_by_label("username").fill("ana")
        pg.get_by_label("password").fill("right")
        pg.keyboard.press("Enter")
        pg.locator("#question textarea:enabled").wait_for()
        ask(pg, "Which search queries fail?")
        answered(pg, "Search health")
        assert [c.title for c in running["agents"][0].conversations("ana")] == ["Which search queries fail?"]
        pg.locator("#logout").click()
        pg.get_by_label("password").wait_for()  # signed out: the login form again


def test_pretty_sql_and_chart_pick() -> None:
    assert pretty_sql(["select a, count(*) from t where b = 1 group by a"]) == (
        "-- query 1\nSELECT\n  a,\n  COUNT(*)\nFROM t\nWHERE\n  b = 1\nGROUP BY\n  a")
    assert pretty_sql(["not sql at all ((("]) == "-- query 1\nnot sql at all ((("
    charts = [SimpleNamespace(layout=SimpleNamespace(title=SimpleNamespace(text=t)))
              for t in ("Funnel", "Conversion by platform")]
    assert pick_chart("Show the purchase funnel by platform", charts) is charts[1]
    assert pick_chart("How are we doing?", charts) is charts[0] and pick_chart("x", []) is None


def test_a_running_scan_names_its_detector(dataset: Path, tmp_path: Path) -> None:  # noqa: F811
    """The chat handler shows what the first, uncached scan is doing; the second question reuses the scan."""
    from agent.api import InsightAgent
    from ui.app import AgentHolder, chat_handler

    copy = tmp_path / "copy.duckdb"  # a file of its own: no scan of it is cached yet
    copy.write_bytes(dataset.read_bytes())
    with InsightAgent(db=copy, llm=None, state_dir=tmp_path) as agent:
        respond = chat_handler(AgentHolder(lambda: agent))
        request = SimpleNamespace(username=None, session_hash="s")

        def titles(question: str) -> list[str]:
            return [m.get("metadata", {}).get("title", "")
                    for history, *_ in respond(question, [], "t-scan", {}, request) for m in history]
        first = titles("What should we fix first?")
        assert any(t.startswith("Tool scan_frictions (running: ") for t in first)
        assert not any("running: " in t for t in titles("What should we fix first?"))
