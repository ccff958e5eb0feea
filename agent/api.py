"""InsightAgent: the one front door for the UI, the CLI, the scheduler and notebooks."""

from __future__ import annotations

import sqlite3
import threading
import unicodedata
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langgraph.checkpoint.sqlite import SqliteSaver
from pydantic import BaseModel, ConfigDict, Field

from agent.config import Settings
from agent.context import Context
from agent.graph import RECURSION_LIMIT, build_graph
from agent.intents import Vocabulary
from agent.model import make_llm
from agent.offline import OfflineAnalyst
from tools.charts import bar_chart
from tools.period import data_bounds
from tools.result import Suggestion, ToolResult
from tools.scan import ScanReport, scan
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

    def ask(self, question: str, thread_id: str = "default") -> Answer:
        """Answer one question in a conversation thread (follow-ups use the thread's history)."""
        answer = None
        for event in self.stream(question, thread_id):
            if isinstance(event, Answer):
                answer = event
        assert answer is not None
        return answer

    def stream(self, question: str, thread_id: str = "default") -> Iterator[Step | Answer]:
        """Steps as they happen (tool started / finished with timing), then the Answer."""
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

    def scan(self, period: str = "all") -> ScanReport:
        """Every detector over `period`, with ranked suggestions."""
        return scan(self.warehouse, period)

    def describe(self) -> ToolResult:
        """Tables, columns, row counts, events, period and segment values."""
        return schema(self.warehouse)

    def weeks(self) -> list[str]:
        """ISO weeks with events, newest first (for picking a digest)."""
        df = self.warehouse.query("SELECT DISTINCT strftime(ts, '%G-W%V') AS w FROM events ORDER BY w DESC").df
        return list(df["w"])

    def digest(self, week: str | None = None, out_dir: str | Path | None = None, webhook: str | None = None):
        """The weekly digest (default: the last full week), saved with history in the state directory."""
        from agent.digest import run_digest

        return run_digest(self.warehouse, self.state_dir, week, out_dir, webhook)

    def close(self) -> None:
        self.warehouse.close()
        self._sqlite.close()

    def __enter__(self) -> InsightAgent:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def suggestions_table(suggestions: list[Suggestion]) -> pd.DataFrame:
    """Ranked suggestions as a table for people."""
    columns = ["#", "RICE", "tweak", "evidence", "weekly orders"]
    return pd.DataFrame(columns=columns) if not suggestions else pd.DataFrame([{
        "#": i, "RICE": s.rice_score, "tweak": s.tweak, "evidence": s.rationale,
        "weekly orders": f"{s.est_weekly_uplift.conversions_low:g}-{s.est_weekly_uplift.conversions_high:g}",
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
