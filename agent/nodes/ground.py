"""The ground node: numbers in the answer must come from this question's tool results."""

from __future__ import annotations

from langchain_core.messages import HumanMessage, ToolMessage
from langgraph.runtime import Runtime

from agent.context import Context
from agent.grounding import ungrounded
from agent.offline import GROUNDING
from agent.state import State
from prompts import load_prompt


def turn_sources(state: State) -> list[str]:
    """The question and this question's tool results (content and SQL): what numbers may come from."""
    sources: list[str] = []
    for m in reversed(state["messages"]):
        if isinstance(m, ToolMessage):
            sources.append(str(m.content))
            if isinstance(m.artifact, dict):
                sources.extend(m.artifact.get("sql", []))
        elif isinstance(m, HumanMessage) and m.name != GROUNDING:
            sources.append(str(m.content))
            break
    return sources


def ground(state: State, runtime: Runtime[Context]) -> dict:
    """Send an ungrounded answer back once for correction; then let it through with a visible warning."""
    answer = str(state["messages"][-1].content)
    bad = ungrounded(answer, turn_sources(state))
    if not bad:
        return {}
    shown = ", ".join(dict.fromkeys(bad))
    if state.get("grounding_attempts", 0) == 0:
        return {"grounding_attempts": 1,
                "messages": [HumanMessage(load_prompt("grounding_retry", numbers=shown), name=GROUNDING)]}
    return {"notes": [*state.get("notes", []),
                      f"Warning: these numbers could not be traced to a tool result: {shown}. Treat them with care."]}
