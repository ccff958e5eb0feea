"""InsightAgent: the one front door for the UI, the CLI, the scheduler and notebooks."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
import unicodedata
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any

import pandas as pd
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph.config import get_stream_writer
from pydantic import BaseModel, ConfigDict, Field

from agent.config import Settings
from agent.context import Context
from agent.graph import RECURSION_LIMIT, build_graph
from agent.intents import Vocabulary, parse
from agent.model import make_llm
from agent.offline import OfflineAnalyst, turns
from tools.charts import bar_chart
from tools.facts_store import bind
from tools.format import count
from tools.period import PeriodError, data_bounds, resolve_period
from tools.result import Suggestion, ToolResult
from tools.scan import ScanReport
from tools.scan_cache import cached_scan
from tools.schema import dimension_values, schema
from tools.semantic.eventmap import EventMap, load_map
from tools.semantic.metrics import catalog

MAX_QUESTION = 4000


class Step(BaseModel):
    """One tool call of an answer."""

    tool: str
    args: dict = Field(default_factory=dict)
    ok: bool = True
    ms: float | None = None
    title: str = ""


class Progress(BaseModel):
    """What a running tool is doing: the scan names each detector as it starts (a cached scan says nothing)."""

    tool: str
    text: str


class Answer(BaseModel):
    """A typed answer: text, the ranked suggestions, Plotly charts, the SQL behind it, warnings."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    text: str
    suggestions: list[Suggestion] = Field(default_factory=list)
    charts: list[Any] = Field(default_factory=list)
    tables: list[Any] = Field(default_factory=list)
    sql: list[str] = Field(default_factory=list)
    warnings: list[str] = Field(default_factory=list)
    steps: list[Step] = Field(default_factory=list)
    mode: str = "offline"
    thread_id: str = "default"


class Conversation(BaseModel):
    """A conversation thread: its id, its first question and when it started (epoch seconds)."""

    thread_id: str
    title: str
    started: float


class InsightAgent:
    """Ask questions about event data; scans and digests use the same tools.

    `db` is a DuckDB file or a Parquet lake directory; `engine="spark"` runs the same SQL on
    Spark (a lake; `spark_remote="sc://host:15002"` for Spark Connect). `map` is an event map (or
    its YAML file) to read the data with instead of the one stored with it.

    >>> agent = InsightAgent(db="data.duckdb")                    # doctest: +SKIP
    >>> agent.ask("What should we fix first?").suggestions[0].tweak  # doctest: +SKIP
    """

    def __init__(self, db: str | Path | None = None, llm: Any = "auto", state_dir: str | Path | None = None,
                 settings: Settings | None = None, max_tool_calls: int = 8, engine: str | None = None,
                 spark_remote: str | None = None, map: EventMap | str | Path | None = None) -> None:
        self.settings = settings or Settings()
        overrides = {k: v for k, v in {"engine": engine, "spark_remote": spark_remote}.items() if v is not None}
        if overrides:
            self.settings = self.settings.model_copy(update=overrides)
        self.db = Path(db or self.settings.db)
        self.state_dir = Path(state_dir or self.settings.state_dir)
        self.warehouse = self.settings.open_warehouse(
            self.db, map if isinstance(map, EventMap) or map is None else load_map(map))
        bind(self.warehouse, self.state_dir, stream_progress)
        emap = self.warehouse.event_map
        start, end = data_bounds(self.warehouse)
        experiments = self.warehouse.query("SELECT experiment_id, name FROM experiments").df
        vocabulary = Vocabulary(dimensions=dimension_values(self.warehouse),
                                experiments=dict(zip(experiments["experiment_id"], experiments["name"].fillna(""))),
                                data_end=str(end) if end else None,
                                metrics={k: d.name for k, d in catalog(emap).items()}, steps=list(emap.steps),
                                funnel_name=emap.default_funnel or "main", concepts=emap.concepts())
        chat = make_llm(self.settings, emap) if llm == "auto" else llm
        self.context = Context(warehouse=self.warehouse, offline=OfflineAnalyst(vocabulary=vocabulary), llm=chat,
                               max_tool_calls=max_tool_calls, data_start=f"{start:%Y-%m-%d}" if start else "",
                               data_end=f"{end:%Y-%m-%d}" if end else "", data_map=emap.in_words())
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self._sqlite = sqlite3.connect(self.state_dir / "checkpoints.sqlite", check_same_thread=False)
        self.checkpointer = SqliteSaver(self._sqlite)
        self.graph = build_graph().compile(checkpointer=self.checkpointer)
        self._lock = threading.Lock()

    @classmethod
    def from_env(cls) -> InsightAgent:
        """Configured from INSIGHT_* / OPENAI_* variables (and insight.toml)."""
        return cls()

    @property
    def mode(self) -> str:
        return "llm" if self.context.llm is not None else "offline"

    def ask(self, question: str, thread_id: str = "default", progress: Callable[[str], None] | None = None
            ) -> Answer:
        """Answer one question in a conversation thread (follow-ups use the thread's history); `progress` hears
        each tool as it starts and each detector of a scan that runs."""
        answer = None
        for event in self.stream(question, thread_id):
            if isinstance(event, Answer):
                answer = event
            elif progress is not None and isinstance(event, Progress):
                progress(f"{event.tool}: {event.text}")
            elif progress is not None and event.ms is None:
                progress(event.tool)
        assert answer is not None
        return answer

    def stream(self, question: str, thread_id: str = "default") -> Iterator[Step | Progress | Answer]:
        """Steps as they happen (tool started / finished with timing), a running tool's Progress, then the Answer."""
        text, problem = clean_question(question)
        if problem:
            yield Answer(text=problem, warnings=[problem], mode=self.mode, thread_id=thread_id)
            return
        config = {"configurable": {"thread_id": thread_id}, "recursion_limit": RECURSION_LIMIT}
        steps: dict[str, Step] = {}
        final: dict = {}
        for mode, chunk in self.graph.stream({"messages": [HumanMessage(text)]}, config, context=self.context,
                                             stream_mode=["custom", "values"]):
            if mode == "custom" and chunk.get("type") == "tool_started":
                steps[chunk["id"]] = Step(tool=chunk["tool"], args=chunk["args"], ms=None)
                yield steps[chunk["id"]]
            elif mode == "custom" and chunk.get("type") == "tool_finished":
                step = steps[chunk["id"]].model_copy(update={"ok": chunk["ok"], "ms": chunk["ms"],
                                                             "title": chunk["title"]})
                steps[chunk["id"]] = step
                yield step
            elif mode == "custom" and chunk.get("type") == "tool_progress":
                running = [s for s in steps.values() if s.ms is None]
                yield Progress(tool=running[-1].tool if running else "", text=chunk["text"])
            elif mode == "values":
                final = chunk
        yield self._answer(final, list(steps.values()), thread_id)

    def _answer(self, state: dict, steps: list[Step], thread_id: str) -> Answer:
        messages = state.get("messages", [])
        turn: list = []
        for m in reversed(messages):
            if isinstance(m, HumanMessage) and m.name is None:
                break
            turn.append(m)
        final = next((m for m in turn if isinstance(m, AIMessage) and not m.tool_calls), None)
        results = [self.context.store.get(m.artifact["key"]) for m in reversed(turn)
                   if isinstance(m, ToolMessage) and isinstance(m.artifact, dict) and "key" in m.artifact]
        results = [r for r in results if r is not None]
        suggestions = [s for r in results if "report" in r.data for s in r.data["report"].suggestions]
        charts = [r.chart if r.chart is not None or "report" not in r.data else report_chart(r.data["report"])
                  for r in results]  # the scan's ToolResult has no chart: show its suggestions by RICE
        return Answer(
            text=str(final.content) if final else "No answer.", suggestions=suggestions,
            charts=[c for c in charts if c is not None],
            tables=[r.table for r in results if not r.table.empty],
            sql=[q for r in results for q in r.sql], warnings=list(state.get("notes", [])), steps=steps,
            mode=state.get("mode", self.mode), thread_id=thread_id,
        )

    def scan(self, period: str = "all", progress: Callable[[str], None] | None = None) -> ScanReport:
        """Every detector over `period`, with ranked suggestions; computed once per data version, event map and
        period (tools/scan_cache.py). `progress` hears each detector of a scan that runs."""
        return cached_scan(self.warehouse, period, progress)

    def describe(self) -> ToolResult:
        """Tables, columns, row counts, events, period and segment values."""
        return schema(self.warehouse)

    def weeks(self) -> list[str]:
        """ISO weeks with events, newest first (for picking a digest)."""
        df = self.warehouse.query("SELECT DISTINCT strftime(ts, '%G-W%V') AS w FROM events ORDER BY w DESC").df
        return list(df["w"])

    def digest(self, week: str | None = None, out_dir: str | Path | None = None, webhook: str | None = None):
        """The weekly digest (default: the last full week), saved with history in the state directory; a webhook
        message links to its HTML under the `digest_base_url` setting."""
        from agent.digest import run_digest

        return run_digest(self.warehouse, self.state_dir, week, out_dir, webhook, self.settings.digest_base_url)

    def period(self, text: str) -> str:
        """The period `text` names as a period string: one already (all, last_30_days, 2026-W20, A..B) or words
        as a question says them ('last week', 'in May', 'last 30 days'); PeriodError when it names none."""
        try:
            return resolve_period(self.warehouse, text).label
        except PeriodError:
            words = parse(text, self.context.offline.vocabulary).period
            if words == "all":
                raise
            return words

    def history(self, thread_id: str) -> list[tuple[str, Answer]]:
        """(question, Answer) of each turn of a conversation thread, read from the checkpointer: the answer's
        text, its tool steps (finished; their timing is not kept), its SQL and the charts kept with its results
        (those small enough, see agent.toolbox.CHART_BYTES). Suggestions and tables are not kept."""
        messages = self.graph.get_state({"configurable": {"thread_id": thread_id}}).values.get("messages", [])
        return [(str(human.content), _restored(after, thread_id, self.mode)) for human, after in turns(messages)]

    def remember(self, thread_id: str, question: str, owner: str = "") -> bool:
        """Record a conversation thread as `owner`'s ('' without login), titled by its first question, unless it
        is recorded already; whether it is `owner`'s."""
        with self._conversation_index() as con:
            con.execute("INSERT OR IGNORE INTO conversations VALUES (?, ?, ?, ?)",
                        (thread_id, owner, " ".join(question.split())[:200], time.time()))
        return self.owner(thread_id) == owner

    def owner(self, thread_id: str) -> str | None:
        """Who a recorded conversation thread belongs to; None when it is not recorded."""
        with self._conversation_index() as con:
            row = con.execute("SELECT owner FROM conversations WHERE thread_id = ?", (thread_id,)).fetchone()
        return row[0] if row else None

    def conversations(self, owner: str = "", limit: int = 50) -> list[Conversation]:
        """`owner`'s conversation threads, newest first."""
        with self._conversation_index() as con:
            rows = con.execute("SELECT thread_id, title, started FROM conversations WHERE owner = ? "
                               "ORDER BY started DESC LIMIT ?", (owner, limit)).fetchall()
        return [Conversation(thread_id=t, title=title, started=started) for t, title, started in rows]

    @contextmanager
    def _conversation_index(self) -> Iterator[sqlite3.Connection]:
        """The conversation index, a table beside the checkpoints, in one transaction."""
        with closing(sqlite3.connect(self.state_dir / "checkpoints.sqlite", timeout=30)) as con, con:
            con.execute("CREATE TABLE IF NOT EXISTS conversations (thread_id TEXT PRIMARY KEY, owner TEXT NOT NULL,"
                        " title TEXT NOT NULL, started REAL NOT NULL)")
            yield con

    def close(self) -> None:
        self.warehouse.close()
        self._sqlite.close()

    def __enter__(self) -> InsightAgent:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _restored(after: list, thread_id: str, mode: str) -> Answer:
    """The Answer of a recorded turn (the messages after its question): text, steps, SQL and kept charts."""
    final = next((m for m in reversed(after) if isinstance(m, AIMessage) and not m.tool_calls), None)
    args = {c["id"]: c["args"] for m in after if isinstance(m, AIMessage) for c in m.tool_calls}
    results = [(m, m.artifact if isinstance(m.artifact, dict) else {}) for m in after if isinstance(m, ToolMessage)]
    charts = [_chart(a["chart"]) for _, a in results if isinstance(a.get("chart"), str)]
    return Answer(text=str(final.content) if final else "No answer.",
                  steps=[Step(tool=m.name or a.get("tool", ""), args=args.get(m.tool_call_id, {}),
                              ok=m.status != "error", title=a.get("title", "")) for m, a in results],
                  charts=[c for c in charts if c is not None], sql=[q for _, a in results for q in a.get("sql", [])],
                  mode=mode, thread_id=thread_id)


def _chart(spec: str) -> Any:
    """A Plotly figure from the JSON kept with a tool result (agent.toolbox.chart_field), None if unreadable."""
    import plotly.graph_objects as go

    try:
        return go.Figure(json.loads(spec))
    except (ValueError, TypeError):
        return None


def stream_progress(text: str) -> None:
    """Pass a running scan's progress to the graph's stream, as a Progress of its tool; nothing outside a run."""
    try:
        writer = get_stream_writer()
    except RuntimeError:  # not inside a graph run (a direct InsightAgent.scan)
        return
    writer({"type": "tool_progress", "text": text})


def suggestions_table(suggestions: list[Suggestion]) -> pd.DataFrame:
    """Ranked suggestions as a table for people."""
    columns = ["#", "RICE", "tweak", "evidence", "weekly orders"]
    return pd.DataFrame(columns=columns) if not suggestions else pd.DataFrame([{
        "#": i, "RICE": count(round(s.rice_score)), "tweak": s.tweak, "evidence": s.rationale,
        "weekly orders": f"{count(round(s.est_weekly_uplift.conversions_low, 1))} to "
                         f"{count(round(s.est_weekly_uplift.conversions_high, 1))}",
    } for i, s in enumerate(suggestions, 1)])


def report_chart(report: ScanReport):
    """RICE score of each suggestion of a scan."""
    if not report.suggestions:
        return None
    return bar_chart([f"#{i} {s.kind}" for i, s in enumerate(report.suggestions, 1)],
                     [s.rice_score for s in report.suggestions], "Suggestions by RICE score", "RICE")


def clean_question(question: object) -> tuple[str, str | None]:
    """The question without control characters, or a message saying why it cannot be asked."""
    if not isinstance(question, str):
        return "", "Ask a question as text."
    text = "".join(ch for ch in question if ch in "\n\t" or unicodedata.category(ch)[0] != "C").strip()
    if not text:
        return "", "Ask a question, e.g. \"What should we fix first?\""
    if len(text) > MAX_QUESTION:
        return "", f"That question is {len(text)} characters long; please keep it under {MAX_QUESTION}."
    return text, None
