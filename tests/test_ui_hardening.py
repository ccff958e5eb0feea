"""Security hardening of the UI, in a real browser and over HTTP: text planted in the data is shown as text (never
a link, an image, HTML, LaTeX or a diagram, never a remote load); the login refuses everyone after repeated failures.

The browser fixtures are tests.test_ui's; its `app` here serves this module's `dataset`, whose data carry payloads.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import httpx
import pytest

from data.generate import generate
from data.scenario import load_scenario
from tests.test_ui import ANSWER_TIMEOUT_MS, app, ask, browser, free_port, page  # noqa: F401 - fixtures
from ui.app import LoginGuard, build_app, launch

INLINE = ["![a[b]c](//evil.example/p.png)", "[click](https://evil.example/login)", "<img src=//evil.example/i.png>",
          "<https://evil.example>", "https://evil.example/x", "www.evil.example", "a@evil.example",
          "`see https://evil.example/c`", "&lt;img src=x&gt;", "$$\\includegraphics{https://evil.example/k.png}$$"]
REFERENCE = "[r\\]f]: //evil.example/p.png\n\n![x][r\\]f] [y][r\\]f]"
MERMAID = "```mermaid\ngraph TD\nA[\"<img src='https://evil.example/m.png'>\"]\n```"
PLANTED = "\n".join(INLINE) + "\n\n" + REFERENCE + "\n\n" + MERMAID  # answers quote a value up to its blank line
MARKUP = """() => [...document.querySelectorAll(`#chat a, #chat img, #digest a, #digest img, .mermaid, .katex,
                                                [href*="evil"], [src*="evil"]`)].map(e => e.outerHTML)"""


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo data with the platform value 'android' replaced by the payloads: a slow page there, and a funnel."""
    path = tmp_path_factory.mktemp("planted") / "demo.duckdb"
    generate(load_scenario("demo").model_copy(update={"users": 5000}), path)
    with duckdb.connect(str(path)) as con:
        con.execute("UPDATE events SET platform = ? WHERE platform = 'android'", [PLANTED])
    return path


def test_planted_payloads_render_as_text_in_chat_and_digest(page) -> None:  # noqa: F811 - the fixture
    ask(page, "Show the purchase funnel by platform\n\n" + REFERENCE)
    answer = page.locator("#chat [data-testid='bot']", has_text="Conversion by platform")
    answer.wait_for(timeout=ANSWER_TIMEOUT_MS)
    page.get_by_role("tab", name="Weekly digest").click()
    page.locator("#build-digest").click()
    digest = page.locator("#digest", has_text="Weekly product digest")
    digest.wait_for(timeout=ANSWER_TIMEOUT_MS)
    assert page.evaluate(MARKUP) == []
    assert not page.external and not page.errors, (page.external, page.errors)
    assert "img-src 'self' data: blob:" in page.request.get(page.url).headers["content-security-policy"]
    shown = answer.inner_text() + page.locator("#chat [data-testid='user']").inner_text() + digest.inner_text()
    for text in [*INLINE[:7], "&lt;img src=x&gt;", "[r\\]f]: //evil.example/p.png", "```mermaid"]:
        assert text in shown, text  # the payloads arrived, as the text they are


class Clock:
    """A clock the test moves."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_login_guard_locks_out_doubling_and_resets() -> None:
    clock = Clock()
    guard = LoginGuard("ana", "right", free=2, first=1.0, cap=3.0, clock=clock)
    assert [guard("ana", "wrong"), guard("ana", "wrong"), guard("ana", "right")] == [False, False, False]
    for locked_until in (1.0, 3.0, 6.0):  # locked 1 s, then 2 s, then the cap of 3 s
        clock.now = locked_until - 0.01
        assert not guard("ana", "right")
        clock.now = locked_until
        assert not guard("ana", "wrong")
    clock.now = 9.0
    assert not guard("bob", "right") and not guard("ana", "right")  # the lockout after the wrong user
    clock.now = 12.0
    assert guard("ana", "right")
    assert not guard("ana", "wrong") and guard("ana", "right")  # the success reset the count


def test_login_throttled_over_http(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """100 wrong passwords through Gradio's /login, then the right one is refused until the lockout ends."""
    monkeypatch.setenv("INSIGHT_UI_USER", "ana")
    monkeypatch.setenv("INSIGHT_UI_PASSWORD", "right")
    clock, port = Clock(), free_port()
    demo = build_app(lambda: pytest.fail("the login needs no agent"))
    launch(demo, tmp_path / "demo.duckdb", tmp_path, "127.0.0.1", port, prevent_thread_lock=True, clock=clock)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            def login(password: str) -> bool:
                return client.post("/login", data={"username": "ana", "password": password}).status_code == 200

            assert not any(login(f"guess{i}") for i in range(100))
            assert not login("right")
            clock.now = 300.0
            assert login("right")
    finally:
        demo.close()
