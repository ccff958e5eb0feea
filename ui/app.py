"""The Gradio app: chat with streamed tool steps, beside it the chart, ranked suggestions and SQL;
tabs for the friction scan, the weekly digest and the data. Only InsightAgent is called here.

Run `insight ui --db PATH` (binds to 127.0.0.1; INSIGHT_UI_USER / INSIGHT_UI_PASSWORD enable login).
"""

from __future__ import annotations

import os
import re
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import gradio as gr
import pandas as pd

from agent.api import Answer, InsightAgent, Step, report_chart, suggestions_table

EXAMPLES = [
    "What should we fix first?",
    "Show the purchase funnel by platform for the last month",
    "Which segments drop off at payment?",
    "Which search queries fail?",
    "How did the experiments do?",
    "Why did conversion drop last week?",
]
IMAGE = re.compile(r"!\[([^\]]*)\]\([^)]*\)")
LINK = re.compile(r"\[([^\]]*)\]\([^)]*\)")  # any target: javascript:, data:, relative, " http://..."
REFDEF = re.compile(r"^( {0,3})\[([^\]]*)\]:", re.MULTILINE)  # "[1]: url" would make "[x][1]" a link
URL = re.compile(r"\b(?:(?:https?|ftp)://|www\.)[^\s)>\]]+|[\w.+-]+@[\w-]+(?:\.[\w-]+)+", re.IGNORECASE)


def safe_markdown(text: str) -> str:
    """Markdown with no images, no links and no raw HTML: data may carry them, the UI never renders them."""
    text = IMAGE.sub(lambda m: f"[image: {m.group(1)}]", text)
    text = LINK.sub(lambda m: m.group(1), text)
    text = REFDEF.sub(lambda m: f"{m.group(1)}\\[{m.group(2)}]:", text)
    text = URL.sub(lambda m: "`" + m.group(0).replace("`", "") + "`", text)
    return text.replace("<", "&lt;").replace(">", "&gt;")


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
                note = f"{len(report.findings)} findings, {len(report.suggestions)} suggestions (period {report.period})."
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
           prevent_thread_lock: bool = False) -> tuple:
    """Serve the app: never shared, the database and conversations out of the served paths, queue limits set."""
    user, password = os.environ.get("INSIGHT_UI_USER"), os.environ.get("INSIGHT_UI_PASSWORD")
    demo.queue(default_concurrency_limit=4, max_size=64)
    return demo.launch(server_name=host, server_port=port, share=False, auth=(user, password) if user and password
                       else None, blocked_paths=[str(db.resolve()), str((state_dir / "checkpoints.sqlite").resolve())],
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
