"""The offline analyst: a deterministic chat model that plans tool calls and writes answers from templates.

It reads the conversation like any chat model: on a new question it emits tool calls; once
their results are back it writes the answer from `prompts/answers.yaml`, quoting the tools'
own summaries, so every number it writes comes from a tool.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import replace
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from pydantic import Field

from agent import scope
from agent.intents import Question, Vocabulary, parse
from prompts import load_prompt, load_yaml

GROUNDING = "grounding"
DATA_BLOCK = re.compile(r'<data tool="([^"]+)"[^>]*>\n?(.*?)\n?</data>', re.S)


# intent -> the analyses that answer it; each gets every slot of the question its parameters carry
PLANS: dict[str, tuple[str, ...]] = {
    "funnel": ("funnel",), "dropoffs": ("dropoffs",), "why_change": ("trends", "dropoffs"),
    "cart": ("cart_abandonment",), "search": ("search_quality",), "retention": ("retention",),
    "experiments": ("experiments",), "release": ("release_regressions",), "incidents": ("incidents",),
    "errors": ("errors_and_speed",), "trends": ("trends",), "scan": ("scan_frictions",), "schema": ("schema",),
    "run_sql": ("run_sql",), "metric": ("metric",), "metric_definition": ("metric_definition",),
    "tracking": ("check_tracking",), "explain_item": ("scan_frictions",),
}


def plan(q: Question, v: Vocabulary) -> list[tuple[str, dict]]:
    """The tool calls that answer a parsed question (`v`: what the data holds)."""
    tools = PLANS.get(q.intent, ())
    if q.intent == "incidents" and q.premise == "break" and q.segment:
        tools = ("funnel", "incidents")  # "is checkout broken on Safari?": its funnel, and what broke for it
    if q.intent == "why_change" and q.period == "all":  # the last week against the one before it
        q = replace(q, period="last_7_days")
    if q.intent == "why_change" and not q.breakdown and v.dimension("platform") not in q.segment:
        q = replace(q, breakdown=v.dimension("platform"))
    return [(name, _args(name, q)) for name in tools]


def _args(tool: str, q: Question) -> dict:
    """Every slot of the question the tool's parameters carry, plus the tool's own arguments."""
    own = {"trends": {"metric": q.metric}, "retention": {"week_n": q.week_n},
           "experiments": {"experiment_id": q.experiment_id}, "run_sql": {"query": q.sql or ""},
           "metric": {"metric": q.metric_name or q.metric}, "metric_definition": {"metric": q.metric_name},
           "funnel": {"entity": q.entity or "users"}, "dropoffs": {"entity": q.entity}}.get(tool, {})
    slots = {"period": q.period, **scope.asked(q), "step": q.step if q.intent in scope.STEP_INTENTS else None}
    if tool in {"schema", "run_sql", "metric_definition"}:
        slots = {}
    args = {scope.arg_name(tool, k): val for k, val in slots.items() if val and scope.accepts(tool, k)}
    return {**own, **args}


def turns(messages: list[BaseMessage]) -> list[tuple[HumanMessage, list[BaseMessage]]]:
    """(question, messages after it) per turn; grounding requests belong to their turn."""
    turns: list[tuple[HumanMessage, list[BaseMessage]]] = []
    for m in messages:
        if isinstance(m, HumanMessage) and m.name != GROUNDING:
            turns.append((m, []))
        elif turns:
            turns[-1][1].append(m)
    return turns


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
        turn = by_turn[-1][1]
        if q.intent == "explain_item" and (drill := drill_down(q, turn)):
            return _calls([drill])  # the analysis behind the item, once the ranked list is back
        if any(isinstance(m, ToolMessage) for m in turn):
            return AIMessage(content=self.compose(q, turn))
        if q.intent == "show_sql":
            return AIMessage(content=self.previous_sql(by_turn))
        if q.intent == "help":
            return AIMessage(content=load_prompt("help"))
        calls = plan(q, self.vocabulary)
        if not calls:
            reason = ("forecasts and questions outside the event data are not something I compute."
                      if q.intent == "unsupported" else "I did not recognize what to compute.")
            return AIMessage(content=load_prompt("decline", reason=reason, help=load_prompt("help")))
        return _calls(calls)

    def compose(self, q: Question, turn: list[BaseMessage]) -> str:
        """Heading (what was computed), the measured direction when the question presumed one, what was not
        applied, each tool's verdict, their details, then what to ask next."""
        templates = load_yaml("answers")
        calls = [(c["name"], c["args"]) for m in turn if isinstance(m, AIMessage) for c in m.tool_calls]
        results = [m for m in turn if isinstance(m, ToolMessage)]
        artifacts = [m.artifact for m in results if isinstance(m.artifact, dict)]
        applied = [a.get("applied") or args for a, (_, args) in zip(artifacts, calls)]
        headline = templates.get(q.intent, templates["other"])
        parts = [f"**{headline.format(scope=scope.heading(applied), funnel=self.vocabulary.funnel_name)}**"]
        facts = scope.change_facts(artifacts)
        if facts and (line := scope.premise_line(q, q.metric, *facts)):
            parts.append(line)
        if missing := scope.not_applied(q, calls):
            parts.append(templates["not_applied"].format(what="; ".join(missing)))
        details = []
        blocks = [(tool, body) for msg in results for tool, body in DATA_BLOCK.findall(str(msg.content))]
        bodies = [body for _, body in blocks]
        if q.intent == "explain_item":  # the item, then the analysis behind it
            bodies = [explain_item(q.item or 1, artifacts, templates)] + [
                body for tool, body in blocks if tool != "scan_frictions"]
        for body in bodies:
            paragraphs = [p.strip() for p in body.split("\n\n") if p.strip()]
            parts.append(paragraphs[0])
            details += [p.removeprefix("Details:").strip() for p in paragraphs[1:] if p.startswith("Details:")]
        if details:
            parts.append("_Details: " + " ".join(details) + "_")
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


def explain_item(n: int, artifacts: list[dict], templates: dict) -> str:
    """Item `n` of the ranked list a scan returned: the tweak, its evidence and its RICE parts."""
    items = next((a["items"] for a in artifacts if a.get("items")), [])
    if not 1 <= n <= len(items):
        return templates["no_item"].format(n=n, count=len(items))
    return templates["item"].format(n=n, **items[n - 1])


def _calls(calls: list[tuple[str, dict]]) -> AIMessage:
    return AIMessage(content="", tool_calls=[
        {"name": name, "args": {k: v for k, v in args.items() if v not in (None, {})},
         "id": f"call_{uuid.uuid4().hex[:12]}", "type": "tool_call"} for name, args in calls])


# friction kind -> the analysis that shows it in full, and which of the item's fields it takes
DRILL = {"funnel_dropoff": ("funnel", ("segment",)), "failed_search": ("search_quality", ("segment",)),
         "error_spike": ("errors_and_speed", ("segment", "step")),
         "slow_page": ("errors_and_speed", ("segment", "step")),
         "release_regression": ("release_regressions", ("segment",)),
         "experiment_loser": ("experiments", ("experiment_id",)), "experiment_srm": ("experiments", ("experiment_id",)),
         "retention_dip": ("retention", ("segment",)), "cart_abandonment": ("cart_abandonment", ("segment",)),
         "tracking_issue": ("check_tracking", ())}


def drill_down(q: Question, turn: list[BaseMessage]) -> tuple[str, dict] | None:
    """For "tell me more about #N": the call showing item N's analysis, when only the ranked list is back."""
    results = [m for m in turn if isinstance(m, ToolMessage)]
    if len(results) != 1 or not isinstance(results[0].artifact, dict):
        return None
    items = results[0].artifact.get("items") or []
    if not 1 <= (q.item or 1) <= len(items):
        return None
    item = items[(q.item or 1) - 1]
    tool, fields = DRILL.get(item.get("kind", ""), (None, ()))
    if tool is None:
        return None
    args = {"period": q.period, **{f: item[f] for f in fields if item.get(f)}}
    return tool, {k: v for k, v in args.items() if scope.accepts(tool, k)}
