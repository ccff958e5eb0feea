"""The analyst node: the chat model chooses tools or answers; an LLM failure falls back to the offline analyst."""

from __future__ import annotations

from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage
from langgraph.runtime import Runtime

from agent.context import Context
from agent.offline import GROUNDING
from agent.state import State
from prompts import load_prompt
from tools import TOOLS


class LLMProblem(RuntimeError):
    """The model's reply cannot be used (malformed or unknown tool call, empty answer)."""


def check_reply(reply: AIMessage) -> None:
    """Refuse malformed tool calls, unknown tools and empty answers."""
    if reply.invalid_tool_calls:
        raise LLMProblem(f"malformed tool call: {reply.invalid_tool_calls[0].get('error') or 'bad arguments'}")
    if any(not c.get("id") for c in reply.tool_calls):
        raise LLMProblem("tool call without an id")
    unknown = [c["name"] for c in reply.tool_calls if c["name"] not in TOOLS]
    if unknown:
        raise LLMProblem(f"unknown tool {unknown[0]!r}")
    if not reply.tool_calls and not str(reply.content).strip():
        raise LLMProblem("empty answer")


def answered(messages: list) -> list:
    """The conversation without tool calls left unanswered (a question stopped mid-answer): an OpenAI-compatible
    server refuses a history whose tool calls have no results, so such a call and its partial results go."""
    results = {m.tool_call_id for m in messages if isinstance(m, ToolMessage)}
    dangling = {c["id"] for m in messages if isinstance(m, AIMessage) for c in m.tool_calls
                if any(d["id"] not in results for d in m.tool_calls)}
    return [m for m in messages if not (isinstance(m, AIMessage) and {c["id"] for c in m.tool_calls} & dangling)
            and not (isinstance(m, ToolMessage) and m.tool_call_id in dangling)]


def analyst(state: State, runtime: Runtime[Context]) -> dict:
    """Ask the model for the next step of this question."""
    ctx = runtime.context
    last = state["messages"][-1]
    new_question = isinstance(last, HumanMessage) and last.name != GROUNDING
    update: dict = {"tool_calls": 0, "grounding_attempts": 0, "scope_attempts": 0, "notes": [],
                          "mode": ""} if new_question else {}
    mode = update.get("mode", state.get("mode", ""))
    notes = list(update.get("notes", state.get("notes", [])))
    system = SystemMessage(load_prompt("system", data_start=ctx.data_start, data_end=ctx.data_end, **ctx.data_map))
    if ctx.llm is not None and mode != "fallback":
        try:
            reply = ctx.llm.invoke([system, *answered(state["messages"])])
            check_reply(reply)
            if reply.tool_calls and update.get("tool_calls", state.get("tool_calls", 0)) >= ctx.max_tool_calls:
                raise LLMProblem(f"still calling tools after the limit of {ctx.max_tool_calls} per question")
            return {**update, "messages": [reply], "mode": "llm"}
        except Exception as exc:  # timeouts, 5xx, connection errors, malformed replies: answer offline
            reason = " ".join(f"{type(exc).__name__}: {exc}".split())[:200]
            notes.append(f"The language model could not answer ({reason}); the offline analyst answered instead.")
            mode = "fallback"
    reply = ctx.offline.invoke([system, *state["messages"]])
    return {**update, "messages": [reply], "mode": mode or "offline", "notes": notes}
