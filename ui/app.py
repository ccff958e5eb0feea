"""The Gradio app: chat with streamed tool steps, beside it the chart, ranked suggestions and SQL;
tabs for the friction scan, the weekly digest and the data. Only InsightAgent is called here.

Run `insight ui --db PATH` (binds to 127.0.0.1; INSIGHT_UI_USER / INSIGHT_UI_PASSWORD enable login).

Conversations: each has its link (?c=<thread id>). With login on, a conversation belongs to the signed-in user:
only they list it, open it or go on with it. Without login, each browser gets an anonymous id (a random,
HttpOnly cookie) and lists only the conversations it started; a conversation's link opens it for anyone who has
it (sharing is the point of a link, and without login there is no account to check), and they may go on with it,
though it stays in its starter's list only. The anonymous id is for tidiness, not access control: turn login on
for that. Conversations from before the ids (owned by "") are in no browser's list; their links still open them.
"""

from __future__ import annotations

import hmac
import os
import queue
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
# Narrow (a phone, or a window too narrow for the chart beside the chat): one column in reading order, the answer,
# its chart, table and SQL, then the question box and the examples (the chat column and its row are unwrapped).
# In the page's head: Gradio's `css=` drops @container rules.
NARROW = """<style>
#chat-page { container: chat-page / inline-size; }
@container chat-page (max-width: 720px) {
  #answer-row, #chat-col { display: contents !important; }
  #chat { order: 1; } #chart-box { order: 2; } #table-box { order: 3; } #sql-box { order: 4; }
  #ask { order: 5; } #examples { order: 6; }
}
</style>"""
BROWSER_COOKIE = "insight_browser"  # without login: the browser's anonymous id, whose conversations it lists
BROWSER_ID = re.compile(r"[0-9a-f]{32}")
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


class BrowserId:
    """ASGI middleware: a page response sets an anonymous id for the browser (a random cookie, HttpOnly, 400
    days) unless it has one, so without login each browser lists only the conversations it started."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or _has_browser_id(scope):
            await self.app(scope, receive, send)
            return

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start" and any(
                    k.lower() == b"content-type" and v.startswith(b"text/html") for k, v in message.get("headers", [])):
                cookie = (f"{BROWSER_COOKIE}={uuid.uuid4().hex}; Path=/; Max-Age={400 * 86400}; HttpOnly; "
                          "SameSite=Lax")
                message["headers"] = [*message.get("headers", []), (b"set-cookie", cookie.encode())]
            await send(message)
        await self.app(scope, receive, send_with_id)


def _has_browser_id(scope: Scope) -> bool:
    cookies = b"; ".join(v for k, v in scope.get("headers", []) if k.lower() == b"cookie").decode("latin-1")
    return any(BROWSER_ID.fullmatch(part.strip().removeprefix(f"{BROWSER_COOKIE}="))
               for part in cookies.split(";") if part.strip().startswith(f"{BROWSER_COOKIE}="))


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


def _user(request: gr.Request) -> str:
    """The signed-in user; '' without login."""
    return getattr(request, "username", None) or ""


def _owner(request: gr.Request) -> str:
    """Whose conversations these are: the signed-in user with login on; without login, this browser's
    anonymous id ("browser:<id>", from its BROWSER_COOKIE); "" for a client without one (an API client)."""
    if user := _user(request):
        return user
    try:
        browser = (getattr(request, "cookies", None) or {}).get(BROWSER_COOKIE, "")
    except Exception:  # noqa: BLE001 - a request object without cookies
        browser = ""
    return f"browser:{browser}" if BROWSER_ID.fullmatch(browser) else ""


def _may_ask(agent: InsightAgent, thread_id: str, question: str, request: gr.Request) -> bool:
    """Record the thread as the asker's when it is new; whether the asker may go on with it: its owner, or
    anyone holding its link when login is off (a shared link is the point of sharing, not access control)."""
    return agent.remember(thread_id, question, _owner(request)) or not _user(request)


def _step_message(step: Step, doing: str = "", restored: bool = False) -> dict:
    """A tool step as a collapsible message: running (with what it is doing, e.g. the scan's detector), done (with
    its timing) or, `restored` from the conversation's record, done (no timing kept)."""
    done = step.ms is not None or restored
    status = (f"{step.ms:.0f} ms" if step.ms is not None else "done") if done else \
        f"running: {doing}" if doing else "running"
    return {"role": "assistant", "content": safe_markdown(f"`{step.tool}` {step.args}" + ("" if step.ok else
                                                                                          " (failed)")),
            "metadata": {"title": f"Tool {step.tool} ({status})", "status": "done" if done else "pending",
                         **({"duration": step.ms / 1000} if step.ms is not None else {})}}


def _turn_messages(question: str, answer: Answer) -> list[dict]:
    """A restored turn: the question, the answer's tool steps and its text."""
    return [{"role": "user", "content": safe_markdown(question)},
            *(_step_message(step, restored=True) for step in answer.steps),
            {"role": "assistant", "content": safe_markdown(answer.text)}]


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


END = object()  # a run's last item: its stream has ended
POLL = 0.1  # s between looks at Stop while a run's next event is awaited
RELEASE = 2.0  # s a new answer waits for a stopped one of its page to show nothing more
WIND_DOWN = 120.0  # s a thread's next answer waits for its stopped one to end (the agent stops at its next event)


class Run:
    """One answer being computed. The agent's events are pumped from a thread of its own, so Stop ends the
    handler at once (the page shows nothing more of it) while the agent's stream is closed at its next event;
    and the run starts only after the thread's previous run has ended, so two runs never write one
    conversation's checkpoints at once (a stopped run's late write would otherwise bury the next answer)."""

    def __init__(self, events: Callable[[], Iterator], after: Run | None = None) -> None:
        self.stopped = threading.Event()  # Stop pressed, another conversation opened, or the handler closed
        self.done = threading.Event()  # the agent's stream has ended: the thread's next run may start
        self.released = threading.Event()  # the handler has shown its last update
        self._items: queue.SimpleQueue = queue.SimpleQueue()
        threading.Thread(target=self._pump, args=(events, after), daemon=True, name="insight-run").start()

    def _pump(self, events: Callable[[], Iterator], after: Run | None) -> None:
        try:
            if after is not None:
                after.done.wait(WIND_DOWN)
            if self.stopped.is_set():
                return
            stream = events()
            try:
                for event in stream:
                    self._items.put(event)
                    if self.stopped.is_set():
                        break
            finally:
                stream.close()
        except Exception as exc:  # shown by the handler
            self._items.put(exc)
        finally:
            self.done.set()
            self._items.put(END)

    def __iter__(self) -> Iterator:
        """The events until the stream ends or the run is stopped; the stream's exception, raised."""
        while not self.stopped.is_set():
            try:
                item = self._items.get(timeout=POLL)
            except queue.Empty:
                continue
            if item is END or self.stopped.is_set():
                return
            if isinstance(item, Exception):
                raise item
            yield item


class Runs:
    """The runs of every page (Gradio session): Stop and opening a conversation stop the page's runs; a run waits
    for its thread's previous run to end, and for its page's stopped run to show nothing more."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pages: dict[str, list[Run]] = {}
        self._threads: dict[str, Run] = {}

    def start(self, page: str, thread_id: str, events: Callable[[], Iterator]) -> Run:
        with self._lock:
            self._threads = {t: r for t, r in self._threads.items() if not r.done.is_set()}
            earlier = [r for r in self._pages.get(page, []) if not r.released.is_set()]
            run = Run(events, after=self._threads.get(thread_id))
            self._threads[thread_id] = run
            self._pages[page] = [*earlier, run]
        for r in earlier:
            if r.stopped.is_set():
                r.released.wait(RELEASE)
        return run

    def stop(self, page: str | None) -> None:
        if not page:
            return
        with self._lock:
            for run in self._pages.get(page, []):
                run.stopped.set()

    def finish(self, page: str, run: Run) -> None:
        run.stopped.set()  # the handler is done (or closed): the agent's stream need not go on
        run.released.set()
        with self._lock:
            left = [r for r in self._pages.get(page, []) if r is not run]
            if left:
                self._pages[page] = left
            else:
                self._pages.pop(page, None)


def chat_handler(holder: AgentHolder, runs: Runs | None = None) -> Callable:
    """The answering handler: the conversation, the question box, the evidence panels, whether it still runs
    (False once the answer has landed; a stopped run shows nothing more) and the answers by message index."""
    runs = runs or Runs()

    def respond(question: str, history: list, thread_id: str, answers: dict | None, request: gr.Request
                ) -> Iterator[tuple]:
        # API clients (gradio_client) never run demo.load: fall back to their own session, never a shared ""
        question, thread_id, agent = question or "", thread_id or f"session-{request.session_hash}", holder.get()
        history = [*(history or [])]
        if question.strip() and not _may_ask(agent, thread_id, question, request):
            gr.Warning("This conversation belongs to another account.")
            yield history, question, *(gr.skip(),) * 6, True, gr.skip()  # the question kept, the controls
            yield history, question, *(gr.skip(),) * 6, False, gr.skip()  # released (`running` turned False)
            return
        page = request.session_hash or thread_id
        run = runs.start(page, thread_id, lambda: agent.stream(question, thread_id=thread_id))
        try:
            history.append({"role": "user", "content": safe_markdown(question)})
            shown, answers = evidence(), {**(answers or {})}
            yield history, "", *shown, True, gr.skip()
            steps: dict[str, int] = {}
            running: dict[str, Step] = {}
            try:
                for event in run:
                    if isinstance(event, Step):
                        key = f"{event.tool}:{event.args}"
                        steps.setdefault(key, len(history))
                        running[event.tool] = event
                        history[steps[key]:steps[key] + 1] = [_step_message(event)]
                    elif isinstance(event, Progress) and event.tool in running:
                        step = running[event.tool]
                        history[steps[f"{step.tool}:{step.args}"]] = _step_message(step, safe_markdown(event.text))
                    elif isinstance(event, Answer):
                        text = event.text + "".join(f"\n\n> ⚠️ {w}" for w in event.warnings)
                        history.append({"role": "assistant", "content": safe_markdown(text)})
                        shown, answers[len(history) - 1] = evidence(question, event), (question, event)
                        continue  # the last event: shown below, with the controls released
                    else:
                        continue
                    yield history, "", *shown, True, gr.skip()
            except Exception as exc:  # noqa: BLE001 - the page says it, and takes questions again
                history.append({"role": "assistant", "content": safe_markdown(
                    f"The answer failed ({type(exc).__name__}: {exc}). Please ask again.")})
            if run.stopped.is_set():  # a stopped run changes nothing more (a later answer or conversation may be
                yield (gr.skip(),) * 10  # shown); Gradio re-sends a handler's last update when it ends: make it this
            else:
                yield history, "", *shown, False, answers
        finally:
            runs.finish(page, run)
    return respond


class Conversations:
    """Opening, starting and listing the conversation threads of the signed-in user (without login: of this
    browser); opening one stops what the page was answering."""

    def __init__(self, holder: AgentHolder, runs: Runs | None = None) -> None:
        self.holder = holder
        self.runs = runs or Runs()

    def listing(self, thread_id: str, request: gr.Request) -> gr.Radio:
        """The user's conversations, newest first, `thread_id` selected."""
        listed = [(f"{time.strftime('%d %b %H:%M', time.localtime(c.started))} · {c.title[:60]}", c.thread_id)
                  for c in self.holder.get().conversations(_owner(request))]
        return gr.Radio(listed, value=thread_id)

    def show(self, thread_id: str, request: gr.Request) -> tuple:
        """Thread id (state and link), its messages (each answer with its tool steps), the conversation list, the
        evidence of its last answer (chart and SQL; the suggestions are not kept), the controls, ready, and the
        answers by message index (a click on one shows its evidence)."""
        self.runs.stop(getattr(request, "session_hash", None))
        turns = self.holder.get().history(thread_id)
        messages: list[dict] = []
        answers: dict[int, tuple[str, Answer]] = {}
        for q, a in turns:
            messages += _turn_messages(q, a)
            answers[len(messages) - 1] = (q, a)
        return (thread_id, thread_id, messages, self.listing(thread_id, request),
                *(evidence(*turns[-1]) if turns else evidence()), *idle(), answers)

    def open(self, thread_id: str | None, request: gr.Request) -> tuple:
        """`thread_id` when it may be opened, else a new conversation (saying so): with login, only its owner's;
        without, anyone's who has its link."""
        owner = self.holder.get().owner(thread_id) if thread_id else None
        if owner is not None and (owner == _owner(request) or not _user(request)):
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
    """The question box, Send, Stop and the example chips while an answer runs (busy) or not."""
    return (gr.Textbox(interactive=not busy), gr.Button(visible=not busy, interactive=not busy),
            gr.Button(visible=busy), *(gr.Button(interactive=not busy) for _ in EXAMPLES))


def idle() -> tuple:
    """The question box, Send and the chips enabled, Stop hidden: no answer runs."""
    return _controls(False)


def settled(running: bool) -> tuple:
    """The controls once the answer has landed (`running` turned False); nothing while it runs."""
    return tuple(gr.skip() for _ in _controls(True)) if running else idle()


def shown_answer(answers: dict, evt: gr.SelectData) -> tuple:
    """The evidence of the answer clicked in the conversation (nothing for another message)."""
    index = evt.index[0] if isinstance(evt.index, (list, tuple)) and evt.index else evt.index
    return evidence(*answers[index]) if isinstance(index, int) and index in (answers or {}) else \
        tuple(gr.skip() for _ in range(6))


def build_app(factory: Callable[[], InsightAgent] = InsightAgent.from_env) -> gr.Blocks:
    """The app; the agent is created on the first request."""
    holder = AgentHolder(factory)
    runs = Runs()
    talks = Conversations(holder, runs)
    with gr.Blocks(title="Product Insight Agent") as demo:
        thread = gr.State("")
        running = gr.State(False)  # the page's answer runs: set by the answering handler, False once landed
        answers = gr.State({})  # the conversation's answers by message index: (question, Answer)
        link = gr.Textbox(visible="hidden", elem_id="thread-link")  # put in the page's address (?c=), never read
        with gr.Sidebar(label="Conversations", elem_id="sidebar"):
            new_chat = gr.Button("New chat", elem_id="new-chat", variant="primary", size="sm")
            listing = gr.Radio([], label="Conversations", elem_id="conversations")
            logout = gr.Button("Log out", link="/logout", visible=False, size="sm", elem_id="logout")
        gr.Markdown("## Product Insight Agent\nAsk about your product's event data. Every number is computed by SQL.")
        with gr.Tab("Chat"), gr.Column(elem_id="chat-page"):
            with gr.Row(equal_height=False, elem_id="answer-row"):
                with gr.Column(scale=3, min_width=340, elem_id="chat-col"):
                    chatbot = gr.Chatbot(label="Conversation", height=520, elem_id="chat", autoscroll=False)
                    with gr.Row(equal_height=True, elem_id="ask"):
                        question = gr.Textbox(placeholder="e.g. What should we fix first?", label="Question",
                                              elem_id="question", scale=5, lines=1, max_lines=6, interactive=False)
                        send = gr.Button("Send", variant="primary", elem_id="send", scale=1, min_width=80,
                                         interactive=False)  # both enabled once the conversation is loaded
                        stop = gr.Button("Stop", variant="stop", elem_id="stop", scale=1, min_width=80,
                                         visible=False)
                with gr.Column(scale=2, min_width=340, visible=False, elem_id="chart-box") as chart_box:
                    chart = gr.Plot(label="Chart", elem_id="chart")
            with gr.Column(visible=False, elem_id="table-box") as table_box:
                table = gr.Dataframe(label="Ranked suggestions", elem_id="suggestions", wrap=True,
                                     column_widths=["40px", "64px", "40%", "38%", "96px"], max_height=640)
            with gr.Accordion("SQL evidence", open=False, visible=False, elem_id="sql-box") as sql_box:
                sql = gr.Code(language="sql", elem_id="sql", max_lines=40, show_label=False)
            with gr.Row(elem_id="examples"):
                chips = [gr.Button(text, size="sm", elem_classes="chip", elem_id=f"chip-{i}", interactive=False)
                         for i, text in enumerate(EXAMPLES)]
        with gr.Tab("Friction scan"):
            _scan_tab(holder)
        with gr.Tab("Weekly digest"):
            week = _digest_tab(holder)
        with gr.Tab("Data"):
            _data_tab(holder)

        panels = [chart, table, sql, chart_box, table_box, sql_box]
        controls = [question, send, stop, *chips]
        shown = [thread, link, chatbot, listing, *panels, *controls, answers]
        # Busy state without `cancels`: Gradio's cancel keeps the stopped run pending in the page until its worker
        # thread returns, and a question asked meanwhile was dropped (trigger "once") and its controls reset by the
        # stopped run's late `.then`. Here Stop ends the run on the server at once (Runs), the answer may start
        # while the stopped one winds down ("multiple"; the controls are locked meanwhile, so nothing else can
        # ask), and only a run that lands releases the controls (`running` turning False).
        asking = gr.on([question.submit, send.click, *(c.click for c in chips)], _take(chips), question, controls,
                       queue=False, api_visibility="private")
        answering = asking.then(chat_handler(holder, runs), [question, chatbot, thread, answers],
                                [chatbot, question, *panels, running, answers], api_name="respond",
                                trigger_mode="multiple")
        answering.then(talks.listing, thread, listing, api_visibility="private")
        running.change(settled, running, controls, queue=False, api_visibility="private")
        chatbot.select(shown_answer, answers, panels, queue=False, api_visibility="private")
        stop.click(_stop(runs), None, controls, queue=False, api_visibility="private").then(
            talks.listing, thread, listing, api_visibility="private")
        demo.load(talks.from_link, None, shown, api_visibility="private")
        gr.on([new_chat.click, chatbot.clear], talks.new, None, shown, api_visibility="private")
        listing.input(talks.open, listing, shown, api_visibility="private")
        demo.load(_signed_in, None, logout, api_visibility="private")
        demo.load(lambda: gr.Dropdown(choices=holder.get().weeks()), None, week, api_visibility="private")
    return demo


def _take(chips: list[gr.Button]) -> Callable:
    """The first step of asking: the question (an example chip's text when one was clicked) into the box, locked."""
    def take(text: str, evt: gr.EventData) -> tuple:
        _, send, stop, *locked = _controls(True)
        # by elem_id: the page's copy of a chip (rebuilt when its interactivity is updated) is not the chip built here
        chip = next((c for c in chips if c.elem_id == getattr(evt.target, "elem_id", None)), None)
        return gr.Textbox(chip.value if chip else text, interactive=False), send, stop, *locked
    return take


def _stop(runs: Runs) -> Callable:
    def stop(request: gr.Request) -> tuple:
        """Stop: the page's run shows nothing more (its agent stream ends at its next event); the controls ready."""
        runs.stop(request.session_hash)
        return idle()
    return stop


def _signed_in(request: gr.Request) -> gr.Button:
    """The logout link, shown when login is on."""
    return gr.Button(visible=bool(_user(request)))


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
                       app_kwargs={"middleware": [Middleware(ContentSecurityPolicy), Middleware(BrowserId)]},
                       css=CSS, head=HEAD + NARROW, prevent_thread_lock=prevent_thread_lock, quiet=True)


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
