"""The scope node (model path): what the question asked is applied by its tool calls, or the answer says so;
a question presuming a drop or a rise gets the measured direction first."""

from __future__ import annotations

import re

from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langgraph.runtime import Runtime

from agent import scope
from agent.context import Context
from agent.offline import GROUNDING, turns
from agent.state import State
from prompts import load_prompt

DIRECTION = {"rose": r"\b(rose|up|increased|grew|higher|rise)\b",
             "fell": r"\b(fell|down|dropped|decreased|lower|drop)\b"}


def latest_calls(turn: list) -> list[tuple[str, dict]]:
    """This question's tool calls, the latest per tool (a corrected call supersedes the one before it)."""
    calls = {c["name"]: c["args"] for m in turn if isinstance(m, AIMessage) for c in m.tool_calls}
    return list(calls.items())


def scope_check(state: State, runtime: Runtime[Context]) -> dict:
    """Send a reply that dropped a slot back once; then state what was not applied, and the measured direction
    when the question presumed one, in the answer's first lines."""
    if state.get("mode") != "llm":
        return {}  # the offline analyst states both itself
    messages = state["messages"]
    q = runtime.context.offline.question(messages)
    if q is None:
        return {}
    turn = turns(messages)[-1][1]
    missing = scope.not_applied(q, latest_calls(turn))
    if missing and state.get("scope_attempts", 0) == 0:
        return {"scope_attempts": 1,
                "messages": [HumanMessage(load_prompt("scope_retry", what="; ".join(missing)), name=GROUNDING)]}
    answer = messages[-1]
    text, lines = str(answer.content), []
    artifacts = [m.artifact for m in turn if isinstance(m, ToolMessage) and isinstance(m.artifact, dict)]
    facts = scope.change_facts(artifacts)
    if facts and (line := scope.premise_line(q, q.metric, *facts)):
        moved = "rose" if float(facts[0]["change"]["value"]) > 0 else "fell"
        if not re.search(DIRECTION[moved], text[:300], re.I):
            lines.append(line)
    if missing and "not applied" not in text.lower():
        lines.append(f"Not applied: {'; '.join(missing)}.")
    if not lines:
        return {}
    return {"messages": [AIMessage(content="\n\n".join([*lines, text]), id=answer.id)]}
