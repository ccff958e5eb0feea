"""The Gradio app end to end: a real browser (Debian Chromium via Playwright), the file route, 20 API sessions.

The app is launched in-process on 127.0.0.1 over a small generated demo dataset, once for the module.
The browser tests need /usr/bin/chromium (`apt-get install chromium`); they are skipped without it.
"""

from __future__ import annotations

import os
import re
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import httpx  # noqa: E402
import pytest  # noqa: E402

from agent.api import InsightAgent  # noqa: E402
from data.generate import generate  # noqa: E402
from data.scenario import load_scenario  # noqa: E402
from ui.app import build_app, launch, safe_markdown  # noqa: E402

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
ANSWER_TIMEOUT_MS = 120_000
SCREENSHOT = Path(__file__).resolve().parent.parent / "docs" / "screenshot.png"


class RecordingAgent(InsightAgent):
    """InsightAgent that records which thread each question ran in, how many streams overlapped (in all and in one
    thread), and whose events wait while `gate` is closed (an answer stuck in a step, to stop)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.calls: list[tuple[str, str]] = []
        self.gate = threading.Event()
        self.gate.set()
        self.active = 0
        self.max_active = 0
        self.threads: dict[str, int] = {}  # thread id: streams running in it
        self.same_thread = 0  # streams started while another ran in their thread
        self._count = threading.Lock()

    def stream(self, question: str, thread_id: str = "default") -> Iterator:
        with self._count:
            self.calls.append((question, thread_id))
            self.active += 1
            self.max_active = max(self.max_active, self.active)
            self.same_thread += bool(self.threads.get(thread_id))
            self.threads[thread_id] = self.threads.get(thread_id, 0) + 1
        try:
            for event in super().stream(question, thread_id):
                self.gate.wait(timeout=120)
                yield event
        finally:
            with self._count:
                self.active -= 1
                self.threads[thread_id] -= 1


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("ui_data") / "demo.duckdb"
    generate(load_scenario("demo").model_copy(update={"users": 5000}), path)
    return path


@pytest.fixture(scope="module")
def app(dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    with served(dataset, tmp_path_factory.mktemp("ui_state")) as running:
        yield running


@contextmanager
def served(dataset: Path, state: Path) -> Iterator[dict]:
    """The app launched on a free port over `dataset` (login when INSIGHT_UI_USER / _PASSWORD are set)."""
    agents: list[RecordingAgent] = []

    def factory() -> RecordingAgent:
        agents.append(RecordingAgent(db=dataset, llm=None, state_dir=state))
        return agents[-1]

    demo = build_app(factory)
    port = free_port()
    launch(demo, dataset, state, "127.0.0.1", port, prevent_thread_lock=True)
    try:
        yield {"url": f"http://127.0.0.1:{port}/", "base": f"http://127.0.0.1:{port}", "db": dataset,
               "state": state, "demo": demo, "agents": agents}
    finally:
        demo.close()
        for agent in agents:
            agent.close()


def the_agent(app: dict) -> RecordingAgent:
    assert len(app["agents"]) == 1, "the app must create exactly one agent, on first use"
    return app["agents"][0]


# --- browser ---------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def browser() -> Iterator:
    if not CHROMIUM.exists():
        pytest.skip("/usr/bin/chromium is missing (apt-get install chromium); browser tests need Debian's Chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def page(browser, app: dict) -> Iterator:
    """A fresh browser session on the app; requests leaving 127.0.0.1 are refused and recorded."""
    context = browser.new_context(viewport={"width": 1440, "height": 1000})
    pg = context.new_page()
    pg.external = []
    pg.errors = []

    def local_only(route) -> None:
        if route.request.url.startswith(app["base"]):
            route.continue_()
        else:
            pg.external.append(route.request.url)
            route.abort()

    pg.route("**/*", local_only)
    pg.on("pageerror", lambda exc: pg.errors.append(str(exc)))
    pg.on("dialog", lambda d: (pg.errors.append(f"dialog: {d.message}"), d.dismiss()))
    pg.set_default_timeout(30_000)
    pg.goto(app["url"])
    pg.locator("#question textarea").wait_for()
    yield pg
    context.close()


def ask(pg, question: str) -> None:
    box = pg.locator("#question textarea")
    box.fill(question)
    box.press("Enter")


def test_browser_chat_answer_chart_table_and_tool_step(page, app: dict) -> None:
    ask(page, "What should we fix first?")
    answer = page.locator("#chat [data-testid='bot']", has_text="RICE")
    answer.first.wait_for(timeout=ANSWER_TIMEOUT_MS)
    assert "ranked by RICE" in answer.first.inner_text()
    assert page.locator("#chat [data-testid='user']", has_text="What should we fix first?").count() == 1

    # the tool step: a collapsible "thought" titled with the tool, finished (with its timing), expandable
    step = page.locator("#chat [role='button']", has_text="scan_frictions")
    step.first.wait_for()
    assert "ms)" in step.first.inner_text(), step.first.inner_text()
    step.first.click()
    page.locator("#chat", has_text="{'period': 'all'}").wait_for()

    # beside it: the Plotly chart and the ranked suggestions
    plot = page.locator("#chart .js-plotly-plot")
    plot.wait_for(state="visible")
    assert "Suggestions by RICE score" in plot.inner_text()
    agent = the_agent(app)
    top = agent.scan("all").suggestions[0].tweak
    header = page.locator("#suggestions [role='columnheader']").all_inner_texts()
    assert any("tweak" in h for h in header) and any("RICE" in h for h in header), header
    cell = page.locator("#suggestions [role='gridcell']", has_text=top[:40])
    cell.first.wait_for(state="visible")
    assert page.locator("#suggestions [role='row']").count() >= 3
    # the SQL behind it: collapsed, then pretty-printed one clause a line
    assert not page.locator("#sql").is_visible()
    page.locator("#sql-box").get_by_text("SQL evidence (5 queries)").click()
    page.locator("#sql", has_text="query 1").wait_for()
    assert re.search(r"\bSELECT\n\s+\S", page.locator("#sql").inner_text()), page.locator("#sql").inner_text()[:300]

    # the browser session got its own conversation thread from demo.load (a uuid), not the shared default
    threads = [t for q, t in agent.calls if q == "What should we fix first?"]
    assert len(threads) == 1 and len(threads[0]) == 32 and not threads[0].startswith("session-"), threads

    # screenshot: the conversation from its start (question, tool step, answer), the chart and the table
    page.evaluate("""() => { for (const el of document.querySelectorAll('#chat *')) {
        const y = getComputedStyle(el).overflowY;
        if ((y === 'auto' || y === 'scroll') && el.scrollHeight > el.clientHeight) el.scrollTop = 0; } }""")
    page.wait_for_timeout(500)
    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOT), full_page=True)
    assert SCREENSHOT.stat().st_size > 20_000
    assert not page.errors, page.errors


def test_browser_scan_digest_and_data_tabs(page, app: dict) -> None:
    # friction scan
    page.get_by_role("tab", name="Friction scan").click()
    page.locator("#run-scan").click()
    page.locator("#scan-table [role='gridcell']").first.wait_for(timeout=ANSWER_TIMEOUT_MS)
    assert page.locator("#scan-table [role='row']").count() >= 3
    page.get_by_text("findings,").first.wait_for()

    # weekly digest: pick the newest week offered (the dropdown is filled by demo.load), build, render, download
    page.get_by_role("tab", name="Weekly digest").click()
    weeks = the_agent(app).weeks()
    page.locator("#week input").click()
    options = page.locator("[role='option']")
    options.first.wait_for()
    assert [o.strip() for o in options.all_inner_texts()[:3]] == weeks[:3]
    options.first.click()
    assert page.locator("#week input").input_value() == weeks[0]
    page.locator("#build-digest").click()
    digest = page.locator("#digest", has_text="Weekly product digest")
    digest.wait_for(timeout=ANSWER_TIMEOUT_MS)
    assert weeks[0] in digest.inner_text()
    link = page.locator(f"a[href*='/gradio_api/file='][href$='/{weeks[0]}.html']")
    link.first.wait_for()
    download = page.request.get(link.first.get_attribute("href"))
    assert download.status == 200 and b"Weekly product digest" in download.body()
    # the same route refuses the database (positive control above shows the route itself works)
    refused = page.request.get(f"{app['base']}/gradio_api/file={app['db'].resolve()}")
    assert refused.status in (403, 404) and b"DUCK" not in refused.body()

    # data
    page.get_by_role("tab", name="Data").click()
    page.locator("#describe").click()
    page.get_by_text("Tables: ").first.wait_for(timeout=ANSWER_TIMEOUT_MS)
    page.locator("[role='gridcell']", has_text="events").first.wait_for()
    assert "events (" in page.get_by_text("Tables: ").first.inner_text()
    assert not page.errors, page.errors


CANARIES = {
    "image": "![x](http://evil.example/a.png)",
    "link": "[click](https://evil.example)",
    "html": "<img src=x onerror=alert(1)>",
    "bare": "see http://evil.example now",
    "www": "www.evil.example",
    "javascript": "[js](javascript:alert(1))",
    "relative": "[rel](evil.example/a)",
    "spaced": "[sp]( http://evil.example)",
    "email": "mail a@evil.example",
}


def test_browser_renders_no_link_image_or_html_from_text(page, app: dict) -> None:
    """The question is echoed through safe_markdown: what the browser builds from it has no <a>, <img>, script."""
    ask(page, "\n\n".join(CANARIES.values()) + "\n\n[ref][1]\n\n[1]: //evil.example")
    page.locator("#chat [data-testid='bot']").last.wait_for(timeout=ANSWER_TIMEOUT_MS)
    page.wait_for_timeout(500)
    found = page.evaluate("""() => ({
        links: [...document.querySelectorAll('#chat a')].map(a => a.outerHTML),
        images: [...document.querySelectorAll('#chat img')].map(i => i.outerHTML)})""")
    assert found == {"links": [], "images": []}
    user = page.locator("#chat [data-testid='user']").last.inner_text()
    assert "<img src=x onerror=alert(1)>" in user  # shown as text
    assert "http://evil.example" in user and "www.evil.example" in user
    assert not page.errors and not page.external, (page.errors, page.external)


# --- safety without a browser ------------------------------------------------------------------------------------

@pytest.mark.parametrize("text", [*CANARIES.values(), "[ref][1]\n\n[1]: http://evil.example",
                                  "![alt](//evil.example/a.png)"])
def test_safe_markdown_canaries(text: str) -> None:
    out = safe_markdown(text)
    assert not re.search(r"(?<!\\)[\[\]]", out.replace("\\\\", "")), out  # every bracket escaped
    assert "<" not in out and ">" not in out
    for url in ("http://evil.example", "https://evil.example", "www.evil.example", "a@evil.example"):
        assert url not in out, out  # escaped (http\://, www\., a\@): never an autolink


def test_safe_markdown_exact() -> None:
    assert safe_markdown("![x](http://evil.example/a.png)") == "!\\[x\\](http\\://evil.example/a.png)"
    assert safe_markdown("[click](https://evil.example)") == "\\[click\\](https\\://evil.example)"
    assert safe_markdown("<img src=x onerror=alert(1)>") == "&lt;img src=x onerror=alert(1)&gt;"
    assert safe_markdown("http://evil.example") == "http\\://evil.example"
    assert safe_markdown("**DE**: 85.7% vs 76.2% | `code` _x_") == "**DE**: 85.7% vs 76.2% | `code` _x_"


def test_database_and_checkpoints_not_served(app: dict) -> None:
    from gradio_client import Client

    db, state, base = app["db"].resolve(), app["state"].resolve(), app["base"]
    # make sure the agent (and its checkpoints.sqlite) exists, and get a file the app does serve
    client = Client(app["url"], verbose=False, download_files=False)
    _, served = client.predict(None, api_name="/open_digest")
    assert (state / "checkpoints.sqlite").exists()
    ok = httpx.get(served["url"], timeout=60)
    assert ok.status_code == 200 and ok.content.startswith(b"<!DOCTYPE html>")  # the route is the right one

    secret = db.read_bytes()[:4096]
    candidates = [f"/gradio_api/file={db}", f"/file={db}", f"/gradio_api/file/{db}", f"/file/{db}",
                  f"/gradio_api/file={db.parent}/./{db.name}", f"/gradio_api/file={db.parent}//{db.name}",
                  f"/gradio_api/file={str(db).upper()}", f"/gradio_api/file={state / 'checkpoints.sqlite'}",
                  "/gradio_api/file=" + str(db).replace("/", "%2F")]
    for path in candidates:
        resp = httpx.get(base + path, timeout=30)
        assert resp.status_code in (403, 404), (path, resp.status_code)
        assert secret[:64] not in resp.content and b"SQLite format" not in resp.content, path
    blocked = {str(Path(p)) for p in app["demo"].blocked_paths}
    assert str(db) in blocked and str(state / "checkpoints.sqlite") in blocked
    assert app["demo"].server_name == "127.0.0.1" and not app["demo"].share


# --- concurrency through the API ---------------------------------------------------------------------------------

SESSIONS = {f"What is the cart abandonment rate in {name}?": f"Cart abandonment for country={code}."
            for name, code in [("Germany", "DE"), ("Brazil", "BR"), ("the US", "US"), ("Japan", "JP"),
                               ("India", "IN"), ("France", "FR"), ("Canada", "CA"), ("GB", "GB")]}
SESSIONS |= {f"Show the purchase funnel on {p}": f"purchase funnel for platform={p}." for p in ("ios", "android")}
SESSIONS |= {f"Show the purchase funnel in {name}": f"purchase funnel for country={code}."
             for name, code in [("Germany", "DE"), ("Brazil", "BR"), ("the US", "US"), ("Japan", "JP"),
                                ("India", "IN"), ("France", "FR"), ("Canada", "CA"), ("GB", "GB")]}
SESSIONS |= {f"What is the cart abandonment rate on {p}?": f"Cart abandonment for platform={p}."
             for p in ("ios", "web")}


def answer_text(history: list) -> str:
    """The last message's text, "key = value" written "key=value" (as the markers are)."""
    content = history[-1]["content"]
    text = content if isinstance(content, str) else " ".join(part.get("text", "") for part in content)
    return re.sub(r"(?<=\w) = (?=\w)", "=", text)


def test_twenty_simultaneous_api_sessions(app: dict) -> None:
    """20 gradio_client sessions at once on /respond: each gets its own answer and its own conversation thread."""
    from gradio_client import Client

    info = Client(app["url"], verbose=False).view_api(return_format="dict", print_info=False)
    respond = info["named_endpoints"]["/respond"]
    assert [p["parameter_name"] for p in respond["parameters"]] == ["question", "history"]  # the State is hidden
    assert [r["component"] for r in respond["returns"]][:5] == ["Chatbot", "Textbox", "Plot", "Dataframe", "Code"]

    start = threading.Barrier(len(SESSIONS))
    results: dict[str, dict] = {}
    errors: list[BaseException] = []

    def session(question: str) -> None:
        try:
            client = Client(app["url"], verbose=False)
            start.wait(timeout=60)
            job = client.submit(question, [], api_name="/respond")
            final = job.result(timeout=180)
            results[question] = {"final": final, "updates": len(job.outputs()), "session": client.session_hash}
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=session, args=(q,)) for q in SESSIONS]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not errors, errors
    assert sorted(results) == sorted(SESSIONS), f"only {len(results)} of {len(SESSIONS)} sessions completed"

    agent = the_agent(app)
    calls = {q: t for q, t in agent.calls if q in SESSIONS}
    for question, marker in SESSIONS.items():
        history, box, chart, table, sql, *_ = results[question]["final"]
        assert [m["role"] for m in history][0] == "user" and sum(m["role"] == "user" for m in history) == 1
        assert question in answer_text(history[:1])
        text = answer_text(history)
        assert marker in text, (question, text[:200])
        assert not [m for m in SESSIONS.values() if m != marker and m in text], (question, text[:200])
        assert sql.startswith("-- query 1") and box == ""
        assert results[question]["updates"] >= 2  # streamed: the question first, then steps, then the answer
        # gradio_client never runs demo.load, so the handler falls back to the client's own session
        assert calls[question] == f"session-{results[question]['session']}"
    assert len(set(calls.values())) == len(SESSIONS)
    assert agent.max_active >= 2, "the sessions were served one at a time"
    assert time.monotonic() - t0 < 240


def test_api_sessions_do_not_share_a_conversation(app: dict) -> None:
    """A follow-up in one API session must not resolve against another session's question."""
    from gradio_client import Client

    first, other = Client(app["url"], verbose=False), Client(app["url"], verbose=False)
    history, *_ = first.predict("What is the cart abandonment rate in Germany?", [], api_name="/respond")
    assert "country=DE" in answer_text(history)
    followup, *_ = other.predict("and on iOS?", [], api_name="/respond")
    assert "Cart abandonment" not in answer_text(followup), answer_text(followup)[:200]
    same, *_ = first.predict("and on iOS?", history, api_name="/respond")
    assert "Cart abandonment for platform=ios" in answer_text(same)
