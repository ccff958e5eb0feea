"""The offline analyst: a deterministic chat model that plans tool calls and writes answers from templates.

It reads the conversation like any chat model: on a new question it emits tool calls; once
their results are back it writes the answer from `prompts/answers.yaml`, quoting the tools'
own summaries, so every number it writes comes from a tool.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from pydantic import Field

from agent.intents import Question, Vocabulary, parse
from prompts import load_prompt, load_yaml

GROUNDING = "grounding"
SEGMENT_TOOLS = {"funnel", "cart_abandonment", "trends", "metric"}
DATA_BLOCK = re.compile(r'<data tool="([^"]+)"[^>]*>\n?(.*?)\n?</data>', re.S)


def plan(q: Question, v: Vocabulary) -> list[tuple[str, dict]]:
    """The tool calls that answer a parsed question (`v`: what the data holds)."""
    p, seg = q.period, q.segment
    if q.intent == "funnel":
        return [("funnel", {"period": p, "segment": seg, "breakdown": q.breakdown, "entity": q.entity})]
    if q.intent == "dropoffs":
        calls = [("dropoffs", {"period": p})]
        return calls + ([("funnel", {"period": p, "segment": seg})] if seg else [])
    if q.intent == "why_change":  # the period asked about against the one before it (all: the last week)
        return [("trends", {"metric": q.metric, "period": p, "dimension": q.breakdown or v.dimension("platform"),
                            "segment": seg}),
                ("dropoffs", {"period": p if p != "all" else "last_7_days"})]
    simple = {
        "cart": ("cart_abandonment", {"period": p, "segment": seg}),
        "search": ("search_quality", {"period": p}),
        "retention": ("retention", {"period": p, "week_n": q.week_n}),
        "experiments": ("experiments", {"period": p, "experiment_id": q.experiment_id}),
        "release": ("release_regressions", {"period": p}),
        "incidents": ("incidents", {"period": p}),
        "errors": ("errors_and_speed", {"period": p}),
        "trends": ("trends", {"metric": q.metric, "period": p, "dimension": q.breakdown, "segment": seg}),
        "scan": ("scan_frictions", {"period": p}),
        "schema": ("schema", {}),
        "run_sql": ("run_sql", {"query": q.sql or ""}),
        "metric": ("metric", {"metric": q.metric_name, "period": p, "segment": seg}),
        "metric_definition": ("metric_definition", {"metric": q.metric_name}),
        "tracking": ("check_tracking", {"period": p}),
    }
    return [simple[q.intent]] if q.intent in simple else []


def turns(messages: list[BaseMessage]) -> list[tuple[HumanMessage, list[BaseMessage]]]:
    """(question, messages after it) per turn; grounding requests belong to their turn."""
    turns: list[tuple[HumanMessage, list[BaseMessage]]] = []
    for m in messages:
        if isinstance(m, HumanMessage) and m.name != GROUNDING:
            turns.append((m, []))
        elif turns:
            turns[-1][1].append(m)
    return turns


def _scope(q: Question) -> str:
    parts = []
    if q.segment:
        parts.append("for " + ", ".join(f"{k}={v}" for k, v in q.segment.items()))
    if q.period != "all":
        parts.append(f"in period {q.period}")
    return (" " + " ".join(parts)) if parts else ""


class OfflineAnalyst(BaseChatModel):
    """Understands product questions (intent, metric, step, segment, period) without a language model."""

    vocabulary: Vocabulary = Field(default_factory=Vocabulary)

    @property
    def _llm_type(self) -> str:
        return "offline-analyst"

    def bind_tools(self, tools: Any, **kwargs: Any) -> OfflineAnalyst:
        """The offline analyst always knows the registry's tools."""
        return self

    def _generate(self, messages: list[BaseMessage], stop: list[str] | None = None, run_manager: Any = None,
                  **kwargs: Any) -> ChatResult:
        return ChatResult(generations=[ChatGeneration(message=self.respond(messages))])

    def question(self, messages: list[BaseMessage]) -> Question | None:
        """The current question, parsed with the earlier ones as context for follow-ups.

        "Show me the SQL" and "help" do not change the subject: a follow-up after them ("and on iOS?")
        refers to the question before them.
        """
        current = context = None
        for human, _ in turns(messages):
            current = parse(str(human.content), self.vocabulary, context)
            if current.intent not in {"show_sql", "help"}:
                context = current
        return current

    def respond(self, messages: list[BaseMessage]) -> AIMessage:
        by_turn = turns(messages)
        q = self.question(messages)
        if q is None:
            return AIMessage(content=load_prompt("help"))
        results = [m for m in by_turn[-1][1] if isinstance(m, ToolMessage)]
        if results:
            return AIMessage(content=self.compose(q, results))
        if q.intent == "show_sql":
            return AIMessage(content=self.previous_sql(by_turn))
        if q.intent == "help":
            return AIMessage(content=load_prompt("help"))
        calls = plan(q, self.vocabulary)
        if not calls:
            reason = ("forecasts and questions outside the event data are not something I compute."
                      if q.intent == "unsupported" else "I did not recognize what to compute.")
            return AIMessage(content=load_prompt("decline", reason=reason, help=load_prompt("help")))
        return AIMessage(content="", tool_calls=[
            {"name": name, "args": {k: v for k, v in args.items() if v not in (None, {})},
             "id": f"call_{uuid.uuid4().hex[:12]}", "type": "tool_call"} for name, args in calls])

    def compose(self, q: Question, results: list[ToolMessage]) -> str:
        """Headline from the template, then each tool's own summary, then what to ask next."""
        templates = load_yaml("answers")
        headline = templates.get(q.intent, templates["other"])
        parts = [f"**{headline.format(scope=_scope(q), funnel=self.vocabulary.funnel_name)}**"]
        for msg in results:
            for _tool, body in DATA_BLOCK.findall(str(msg.content)):
                parts.append(body.split("\n\n")[0].strip())
        if q.segment and not any(getattr(r, "name", None) in SEGMENT_TOOLS for r in results):
            parts.append(templates["segment_note"])
        if q.intent in templates["next"]:
            parts.append(f"_{templates['next'][q.intent]}_")
        return "\n\n".join(parts)

    @staticmethod
    def previous_sql(turns: list[tuple[HumanMessage, list[BaseMessage]]]) -> str:
        """The SQL behind the previous answer, from its tool results' artifacts."""
        for _, msgs in reversed(turns[:-1]):
            sql = [s for m in msgs if isinstance(m, ToolMessage) and isinstance(m.artifact, dict)
                   for s in m.artifact.get("sql", [])]
            if sql:
                blocks = "\n\n".join(f"```sql\n{s.strip()}\n```" for s in sql)
                return f"**The SQL behind the previous answer:**\n\n{blocks}"
        return "There is no earlier answer with SQL in this conversation yet. Ask a question first."
