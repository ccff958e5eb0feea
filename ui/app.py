"""The Gradio app: chat with streamed tool steps, beside it the chart, ranked suggestions and SQL;
tabs for the friction scan, the weekly digest and the data. Only InsightAgent is called here.

Run `insight ui --db PATH` (binds to 127.0.0.1; INSIGHT_UI_USER / INSIGHT_UI_PASSWORD enable login).
"""

from __future__ import annotations

import hmac
import os
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import gradio as gr
import pandas as pd
import sqlglot
from starlette.middleware import Middleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from agent.api import Answer, InsightAgent, Progress, Step, report_chart, suggestions_table

EXAMPLES = [
    "What should we fix first?",
    "Show the purchase funnel by platform for the last month",
    "Which segments drop off at payment?",
    "Which search queries fail?",
    "How did the experiments do?",
    "Why did conversion drop last week?",
]
# One backslash before: every backslash, bracket, dollar and @ (no link, image, reference, LaTeX or e-mail
# autolink can form, nested or not), the ':' of '://' and the '.' of 'www.' (no bare-URL autolink), and every
# backtick of a run of three or more (no fenced block, so no mermaid diagram). Code spans show the backslashes.
ESCAPE = re.compile(r"[\\\[\]$@]|:(?=//)|(?<=www)\.|`(?=``)|(?<=`)`(?=`)|(?<=``)`", re.IGNORECASE)
HTML = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;"})  # no tag, no <autolink>, no entity of the text's own
# Page script (inline: the CSP allows no eval, so no `js=` events): the conversation's link in the address bar
# (?c=<thread id>) so a reload or a shared link reopens it; the conversation scrolled to its end while an answer
# runs (Stop shown) and to the start of the last answer once it has landed.
HEAD = """<script>
(() => {
  let seen = "", phone = window.innerWidth < 768;
  const scrollBox = () => [...document.querySelectorAll("#chat *")].find(el =>
    /auto|scroll/.test(getComputedStyle(el).overflowY) && el.scrollHeight > el.clientHeight);
  setInterval(() => {
    const sidebar = document.querySelector("#sidebar.open");
    if (phone && sidebar) { sidebar.firstElementChild.click(); phone = false; }  // a phone starts on the chat
    const link = document.querySelector("#thread-link textarea, #thread-link input");
    const url = new URL(window.location.href);
    if (link && link.value && url.searchParams.get("c") !== link.value) {
      url.searchParams.set("c", link.value);
      window.history.replaceState(null, "", url);
    }
    const box = scrollBox(), bots = document.querySelectorAll("#chat [data-testid='bot']");
    const busy = !!document.querySelector("#stop") && document.querySelector("#stop").offsetParent !== null;
    const last = bots[bots.length - 1], state = `${busy}|${bots.length}|${last ? last.textContent.length : 0}`;
    if (!box || state === seen) return;
    seen = state;
    box.scrollTop = busy || !last ? box.scrollHeight
      : box.scrollTop + last.getBoundingClientRect().top - box.getBoundingClientRect().top - 40;
  }, 250);
})();
</script>"""
BREAKDOWN = re.compile(r"\b(by|per|across|each)\b", re.IGNORECASE)
CSS = """
#chart .modebar-container { display: none !important; }
#examples { flex-wrap: wrap; gap: 6px; }
#examples .chip { flex: 0 1 auto !important; min-width: 0 !important; width: auto; }
"""
CSP = ("default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
       "img-src 'self' data: blob:; media-src 'self' data: blob:; font-src 'self' data:; worker-src 'self' blob:; "
       "object-src 'none'; base-uri 'self'; form-action 'self'")


def safe_markdown(text: str) -> str:
    """Markdown showing `text` as the text it is: no link, image, HTML, entity, LaTeX or diagram can form in it."""
    return ESCAPE.sub(r"\\\g<0>", text).translate(HTML)


class ContentSecurityPolicy:
    """ASGI middleware: every HTTP response carries CSP, so the page loads and connects to nothing elsewhere."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def send_with_csp(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), (b"content-security-policy", CSP.encode())]
            await send(message)
        await self.app(scope, receive, send_with_csp if scope["type"] == "http" else send)


class LoginGuard:
    """Gradio's `auth` callable for one account, compared in constant time. After `free` consecutive failures
    every attempt is refused unchecked (the right password too) for `first` s, doubled by each further failure
    up to `cap` s; a success resets it."""

    def __init__(self, user: str, password: str, free: int = 5, first: float = 1.0, cap: float = 300.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._account = (user.encode(), password.encode())
        self.free, self.first, self.cap, self.clock = free, first, cap, clock
        self._failures, self._lockout, self._until = 0, 0.0, 0.0
        self._lock = threading.Lock()

    def __call__(self, username: str, password: str) -> bool:
        with self._lock:
            now = self.clock()
            if now < self._until:
                return False
            ok = (hmac.compare_digest(username.encode(), self._account[0])
                  & hmac.compare_digest(password.encode(), self._account[1]))
            if ok:
                self._failures, self._lockout = 0, 0.0
            else:
                self._fail(now)
            return ok

    def _fail(self, now: float) -> None:
        self._failures += 1
        if self._failures >= self.free:
            self._lockout = min(self.cap, 2 * self._lockout) if self._lockout else self.first
            self._until = now + self._lockout


class AgentHolder:
    """One InsightAgent for the app, created on first use (thread-safe)."""

    def __init__(self, factory: Callable[[], InsightAgent]) -> None:
        self.factory = factory
        self._agent: InsightAgent | None = None
        self._lock = threading.Lock()

    def get(self) -> InsightAgent:
        with self._lock:
            if self._agent is None:
                self._agent = self.factory()
            return self._agent


def _owner(request: gr.Request) -> str:
    """The signed-in user ('' without login): the owner of the conversations started in this session."""
    return getattr(request, "username", None) or ""


def _step_message(step: Step, doing: str = "") -> dict:
    """A tool step as a collapsible message: running (with what it is doing, e.g. the scan's detector) or done."""
    done = step.ms is not None
    status = f"{step.ms:.0f} ms" if done else f"running: {doing}" if doing else "running"
    return {"role": "assistant", "content": safe_markdown(f"`{step.tool}` {step.args}" + ("" if step.ok else
                                                                                          " (failed)")),
            "metadata": {"title": f"Tool {step.tool} ({status})", "status": "done" if done else "pending",
                         **({"duration": step.ms / 1000} if done else {})}}


def _turn_messages(question: str, answer: str) -> list[dict]:
    return [{"role": "user", "content": safe_markdown(question)},
            {"role": "assistant", "content": safe_markdown(answer)}]


def pretty_sql(statements: list[str]) -> str:
    """The statements numbered and laid out one clause a line (as written when sqlglot cannot parse one)."""
    return "\n\n".join(f"-- query {i}\n{_pretty(q)}" for i, q in enumerate(statements, 1))


def _pretty(statement: str) -> str:
    try:
        return ";\n".join(sqlglot.transpile(statement, read="duckdb", write="duckdb", pretty=True))
    except sqlglot.errors.SqlglotError:
        return statement.strip()


def _words(text: str) -> set[str]:
    return {w for w in re.findall(r"[a-z]+", text.lower()) if len(w) > 3}


def pick_chart(question: str, charts: list) -> Any:
    """The chart whose title shares the most words with the question, a breakdown ("by platform") counting once
    more when both have one; the first on a tie, None without charts."""
    def score(chart: Any) -> int:
        title = str(chart.layout.title.text or "")
        return len(_words(question) & _words(title)) + bool(BREAKDOWN.search(question) and BREAKDOWN.search(title))
    return max(charts, key=score, default=None)


def evidence(question: str = "", answer: Answer | None = None) -> tuple:
    """The chart, the suggestions table and the SQL, then their boxes, each shown only when the answer has it."""
    chart = pick_chart(question, answer.charts) if answer else None
    suggestions = answer.suggestions if answer else []
    sql = pretty_sql(answer.sql) if answer else ""
    label = f"SQL evidence ({len(answer.sql)} {'query' if len(answer.sql) == 1 else 'queries'})" if sql else ""
    return (chart, suggestions_table(suggestions), sql, gr.Column(visible=chart is not None),
            gr.Column(visible=bool(suggestions)), gr.Accordion(label or "SQL evidence", visible=bool(sql), open=False))


def chat_handler(holder: AgentHolder) -> Callable:
    def respond(question: str, history: list, thread_id: str, request: gr.Request) -> Iterator[tuple]:
        # API clients (gradio_client) never run demo.load: fall back to their own session, never a shared ""
        question, thread_id, agent = question or "", thread_id or f"session-{request.session_hash}", holder.get()
        if question.strip() and not agent.remember(thread_id, question, _owner(request)):
            raise gr.Error("This conversation belongs to another account.")
        history = [*(history or []), {"role": "user", "content": safe_markdown(question)}]
        yield history, "", *evidence()
        steps: dict[str, int] = {}
        running: dict[str, Step] = {}
        for event in agent.stream(question, thread_id=thread_id):
            if isinstance(event, Step):
                key = f"{event.tool}:{event.args}"
                steps.setdefault(key, len(history))
                running[event.tool] = event
                history[steps[key]:steps[key] + 1] = [_step_message(event)]
                yield history, "", *evidence()
            elif isinstance(event, Progress) and event.tool in running:
                step = running[event.tool]
                history[steps[f"{step.tool}:{step.args}"]] = _step_message(step, safe_markdown(event.text))
                yield history, "", *evidence()
            elif isinstance(event, Answer):
                text = event.text + "".join(f"\n\n> ⚠️ {w}" for w in event.warnings)
                history.append({"role": "assistant", "content": safe_markdown(text)})
                yield history, "", *evidence(question, event)
    return respond


class Conversations:
    """Opening, starting and listing the signed-in user's conversation threads."""

    def __init__(self, holder: AgentHolder) -> None:
        self.holder = holder

    def listing(self, thread_id: str, request: gr.Request) -> gr.Radio:
        """The user's conversations, newest first, `thread_id` selected."""
        listed = [(f"{time.strftime('%d %b %H:%M', time.localtime(c.started))} · {c.title[:60]}", c.thread_id)
                  for c in self.holder.get().conversations(_owner(request))]
        return gr.Radio(listed, value=thread_id)

    def show(self, thread_id: str, request: gr.Request) -> tuple:
        """Thread id (state and link), its messages, the conversation list and empty evidence panels."""
        messages = [m for q, a in self.holder.get().history(thread_id) for m in _turn_messages(q, a)]
        return thread_id, thread_id, messages, self.listing(thread_id, request), *evidence()

    def open(self, thread_id: str | None, request: gr.Request) -> tuple:
        """`thread_id` when it is the user's, else a new conversation (saying so)."""
        if thread_id and self.holder.get().owner(thread_id) == _owner(request):
            return self.show(thread_id, request)
        if thread_id:
            gr.Warning("That conversation is not one of yours (or no longer exists); here is a new one.")
        return self.new(request)

    def from_link(self, request: gr.Request) -> tuple:
        """The conversation of the page's link (?c=<id>), or a new one."""
        return self.open(request.query_params.get("c"), request)

    def new(self, request: gr.Request) -> tuple:
        """A new conversation: a fresh thread id, so no earlier context reaches the next question."""
        return self.show(uuid.uuid4().hex, request)


def _controls(busy: bool) -> tuple:
    """The question box, Send and Stop while an answer runs (busy) or not."""
    return gr.Textbox(interactive=not busy), gr.Button(visible=not busy, interactive=not busy), gr.Button(visible=busy)


def idle() -> tuple:
    """The question box and Send enabled, Stop hidden: no answer runs."""
    return _controls(False)


def build_app(factory: Callable[[], InsightAgent] = InsightAgent.from_env) -> gr.Blocks:
    """The app; the agent is created on the first request."""
    holder = AgentHolder(factory)
    talks = Conversations(holder)
    with gr.Blocks(title="Product Insight Agent") as demo:
        thread = gr.State("")
        link = gr.Textbox(visible="hidden", elem_id="thread-link")  # put in the page's address (?c=), never read
        with gr.Sidebar(label="Conversations", elem_id="sidebar"):
            new_chat = gr.Button("New chat", elem_id="new-chat", variant="primary", size="sm")
            listing = gr.Radio([], label="Conversations", elem_id="conversations")
            logout = gr.Button("Log out", link="/logout", visible=False, size="sm", elem_id="logout")
        gr.Markdown("## Product Insight Agent\nAsk about your product's event data. Every number is computed by SQL.")
        with gr.Tab("Chat"):
            with gr.Row(equal_height=False):
                with gr.Column(scale=3, min_width=340):
                    chatbot = gr.Chatbot(label="Conversation", height=520, elem_id="chat", autoscroll=False)
                    with gr.Row(equal_height=True):
                        question = gr.Textbox(placeholder="e.g. What should we fix first?", label="Question",
                                              elem_id="question", scale=5, lines=1, max_lines=6, interactive=False)
                        send = gr.Button("Send", variant="primary", elem_id="send", scale=1, min_width=80,
                                         interactive=False)  # both enabled once the conversation is loaded
                        stop = gr.Button("Stop", variant="stop", elem_id="stop", scale=1, min_width=80,
                                         visible=False)
                with gr.Column(scale=2, min_width=340, visible=False) as chart_box:
                    chart = gr.Plot(label="Chart", elem_id="chart")
            with gr.Column(visible=False) as table_box:
                table = gr.Dataframe(label="Ranked suggestions", elem_id="suggestions", wrap=True,
                                     column_widths=["40px", "64px", "40%", "38%", "96px"], max_height=640)
            with gr.Accordion("SQL evidence", open=False, visible=False, elem_id="sql-box") as sql_box:
                sql = gr.Code(language="sql", elem_id="sql", max_lines=40, show_label=False)
            with gr.Row(elem_id="examples"):
                chips = [gr.Button(text, size="sm", elem_classes="chip") for text in EXAMPLES]
        with gr.Tab("Friction scan"):
            _scan_tab(holder)
        with gr.Tab("Weekly digest"):
            week = _digest_tab(holder)
        with gr.Tab("Data"):
            _data_tab(holder)

        panels = [chart, table, sql, chart_box, table_box, sql_box]
        shown = [thread, link, chatbot, listing, *panels]
        controls = [question, send, stop]
        asking = gr.on([question.submit, send.click, *(c.click for c in chips)], _take(chips), question, controls,
                       queue=False, api_visibility="private")
        answering = asking.then(chat_handler(holder), [question, chatbot, thread],
                                [chatbot, question, *panels], api_name="respond")
        answering.then(idle, None, controls, api_visibility="private").then(
            talks.listing, thread, listing, api_visibility="private")
        stop.click(idle, None, controls, cancels=[answering], api_visibility="private").then(
            talks.listing, thread, listing, api_visibility="private")
        demo.load(talks.from_link, None, shown, api_visibility="private").then(
            idle, None, controls, api_visibility="private")
        gr.on([new_chat.click, chatbot.clear], talks.new, None, shown, api_visibility="private")
        listing.input(talks.open, listing, shown, api_visibility="private")
        demo.load(_signed_in, None, logout, api_visibility="private")
        demo.load(lambda: gr.Dropdown(choices=holder.get().weeks()), None, week, api_visibility="private")
    return demo


def _take(chips: list[gr.Button]) -> Callable:
    """The first step of asking: the question (an example chip's text when one was clicked) into the box, locked."""
    def take(text: str, evt: gr.EventData) -> tuple:
        _, send, stop = _controls(True)
        chip = next((c for c in chips if c is evt.target), None)
        return gr.Textbox(chip.value if chip else text, interactive=False), send, stop
    return take


def _signed_in(request: gr.Request) -> gr.Button:
    """The logout link, shown when login is on."""
    return gr.Button(visible=bool(_owner(request)))


def _scan_tab(holder: AgentHolder) -> None:
    period = gr.Textbox("all", label="Period (all, last week, in May, last 30 days, 2026-W20, 2026-05-01..2026-05-15)",
                        elem_id="scan-period")
    run = gr.Button("Run scan", elem_id="run-scan")
    scan_status = gr.Markdown()
    scan_table = gr.Dataframe(label="Suggestions", elem_id="scan-table", wrap=True)
    scan_chart = gr.Plot(label="Opportunity")

    def run_scan(text: str) -> tuple:
        agent = holder.get()
        try:
            report = agent.scan(agent.period(text or "all"))
        except ValueError as exc:
            return f"**Error:** {safe_markdown(str(exc))}", pd.DataFrame(), None
        note = f"{len(report.findings)} findings, {len(report.suggestions)} suggestions (period {report.period})."
        return safe_markdown(note), suggestions_table(report.suggestions), report_chart(report)
    gr.on([run.click, period.submit], run_scan, period, [scan_status, scan_table, scan_chart])


def _digest_tab(holder: AgentHolder) -> gr.Dropdown:
    week = gr.Dropdown(label="ISO week", choices=[], allow_custom_value=True, elem_id="week")
    build = gr.Button("Build / open digest", elem_id="build-digest")
    digest_md = gr.Markdown(elem_id="digest")
    download = gr.File(label="Download (self-contained HTML)")

    def open_digest(w: str) -> tuple:
        try:
            d = holder.get().digest(w or None)
        except ValueError as exc:
            return f"**Error:** {safe_markdown(str(exc))}", None
        return safe_markdown(d.markdown), d.files["html"]
    build.click(open_digest, week, [digest_md, download])
    return week


def _data_tab(holder: AgentHolder) -> None:
    refresh = gr.Button("Describe the data", elem_id="describe")
    data_md = gr.Markdown()
    data_table = gr.Dataframe(label="Tables", wrap=True)

    def describe() -> tuple:
        result = holder.get().describe()
        return safe_markdown(result.summary), result.table
    refresh.click(describe, None, [data_md, data_table])


def launch(demo: gr.Blocks, db: Path, state_dir: Path, host: str = "127.0.0.1", port: int | None = None,
           prevent_thread_lock: bool = False, clock: Callable[[], float] = time.monotonic) -> tuple:
    """Serve the app: never shared, the database and conversations out of the served paths, queue limits set,
    a throttled login when INSIGHT_UI_USER and INSIGHT_UI_PASSWORD are set, CSP on every response."""
    user, password = os.environ.get("INSIGHT_UI_USER"), os.environ.get("INSIGHT_UI_PASSWORD")
    demo.queue(default_concurrency_limit=4, max_size=64)
    return demo.launch(server_name=host, server_port=port, share=False,
                       auth=LoginGuard(user, password, clock=clock) if user and password else None,
                       auth_message="Product Insight Agent - sign in",
                       blocked_paths=[str(db.resolve()), str((state_dir / "checkpoints.sqlite").resolve())],
                       app_kwargs={"middleware": [Middleware(ContentSecurityPolicy)]}, css=CSS, head=HEAD,
                       prevent_thread_lock=prevent_thread_lock, quiet=True)


demo = build_app()

if __name__ == "__main__":
    import argparse

    from agent.config import Settings

    parser = argparse.ArgumentParser(description="Product Insight Agent UI")
    parser.add_argument("--db", type=Path, default=None)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=None)
    parser.add_argument("--map", type=Path, default=None)
    ns = parser.parse_args()
    settings = Settings(**{k: v for k, v in {"db": ns.db, "map": ns.map}.items() if v})
    launch(build_app(lambda: InsightAgent(db=settings.db, settings=settings)), settings.db, settings.state_dir,
           ns.host, ns.port)
