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

import gradio as gr
import pandas as pd
from starlette.middleware import Middleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from agent.api import Answer, InsightAgent, Step, report_chart, suggestions_table

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


def _step_message(step: Step) -> dict:
    done = step.ms is not None
    status = f"{step.ms:.0f} ms" if done else "running"
    return {"role": "assistant", "content": safe_markdown(f"`{step.tool}` {step.args}" + ("" if step.ok else
                                                                                          " (failed)")),
            "metadata": {"title": f"Tool {step.tool} ({status})", "status": "done" if done else "pending",
                         **({"duration": step.ms / 1000} if done else {})}}


def chat_handler(holder: AgentHolder) -> Callable:
    def respond(question: str, history: list, thread_id: str, request: gr.Request) -> Iterator[tuple]:
        # API clients (gradio_client) never run demo.load: fall back to their own session, never a shared ""
        thread_id = thread_id or f"session-{request.session_hash}"
        history = list(history or []) + [{"role": "user", "content": safe_markdown(question or "")}]
        yield history, None, pd.DataFrame(), "", ""
        steps: dict[str, int] = {}
        for event in holder.get().stream(question or "", thread_id=thread_id):
            if isinstance(event, Step):
                key = f"{event.tool}:{event.args}"
                if key in steps:
                    history[steps[key]] = _step_message(event)
                else:
                    steps[key] = len(history)
                    history.append(_step_message(event))
                yield history, None, pd.DataFrame(), "", ""
            elif isinstance(event, Answer):
                text = event.text + "".join(f"\n\n> ⚠️ {w}" for w in event.warnings)
                history.append({"role": "assistant", "content": safe_markdown(text)})
                chart = event.charts[0] if event.charts else None
                sql = "\n\n".join(f"-- query {i}\n{q.strip()}" for i, q in enumerate(event.sql, 1))
                yield history, chart, suggestions_table(event.suggestions), sql, ""
    return respond


def build_app(factory: Callable[[], InsightAgent] = InsightAgent.from_env) -> gr.Blocks:
    """The app; the agent is created on the first request."""
    holder = AgentHolder(factory)
    with gr.Blocks(title="Product Insight Agent") as demo:
        thread = gr.State("")
        demo.load(lambda: uuid.uuid4().hex, None, thread)
        gr.Markdown("## Product Insight Agent\nAsk about your product's event data. Every number is computed by SQL.")
        with gr.Tab("Chat"):
            with gr.Row():
                with gr.Column(scale=3):
                    chatbot = gr.Chatbot(label="Conversation", height=520, elem_id="chat")
                    question = gr.Textbox(placeholder="e.g. What should we fix first?", label="Question",
                                          elem_id="question")
                    gr.Examples(EXAMPLES, inputs=question)
                with gr.Column(scale=2):
                    chart = gr.Plot(label="Chart", elem_id="chart")
                    table = gr.Dataframe(label="Ranked suggestions", elem_id="suggestions", wrap=True)
                    sql = gr.Code(label="SQL evidence", language="sql", elem_id="sql")
            question.submit(chat_handler(holder), [question, chatbot, thread], [chatbot, chart, table, sql, question])
        with gr.Tab("Friction scan"):
            period = gr.Textbox("all", label="Period (all, last_N_days, YYYY-MM-DD..YYYY-MM-DD, YYYY-Www)")
            run = gr.Button("Run scan", elem_id="run-scan")
            scan_status = gr.Markdown()
            scan_table = gr.Dataframe(label="Suggestions", elem_id="scan-table", wrap=True)
            scan_chart = gr.Plot(label="Opportunity")

            def run_scan(p: str) -> tuple:
                try:
                    report = holder.get().scan(p or "all")
                except ValueError as exc:
                    return f"**Error:** {safe_markdown(str(exc))}", pd.DataFrame(), None
                note = (f"{len(report.findings)} findings, {len(report.suggestions)} suggestions"
                        f" (period {report.period}).")
                return note, suggestions_table(report.suggestions), report_chart(report)
            run.click(run_scan, period, [scan_status, scan_table, scan_chart])
        with gr.Tab("Weekly digest"):
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
        with gr.Tab("Data"):
            refresh = gr.Button("Describe the data", elem_id="describe")
            data_md = gr.Markdown()
            data_table = gr.Dataframe(label="Tables", wrap=True)

            def describe() -> tuple:
                result = holder.get().describe()
                return safe_markdown(result.summary), result.table
            refresh.click(describe, None, [data_md, data_table])
        demo.load(lambda: gr.Dropdown(choices=holder.get().weeks()), None, week)
    return demo


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
                       app_kwargs={"middleware": [Middleware(ContentSecurityPolicy)]},
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
