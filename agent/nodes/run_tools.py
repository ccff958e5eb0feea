"""The tools node: executes the model's tool calls (capped), streaming start and finish with timing."""

from __future__ import annotations

import uuid

from langchain_core.messages import AIMessage, ToolMessage
from langgraph.config import get_stream_writer
from langgraph.runtime import Runtime

from agent.context import Context
from agent.state import State
from agent.toolbox import execute


def run_tools(state: State, runtime: Runtime[Context]) -> dict:
    """Run every tool call of the last model message; past the cap, calls are refused as observations."""
    ctx = runtime.context
    call_msg: AIMessage = state["messages"][-1]
    writer = get_stream_writer()
    used = state.get("tool_calls", 0)
    out = []
    for call in call_msg.tool_calls:
        if used >= ctx.max_tool_calls:
            out.append(ToolMessage(
                f"Tool call limit ({ctx.max_tool_calls} per question) reached: answer with the results you have.",
                tool_call_id=call["id"], name=call["name"], status="error"))
            continue
        used += 1
        key = uuid.uuid4().hex  # models may reuse call ids across replies; steps need their own
        writer({"type": "tool_started", "tool": call["name"], "args": call["args"], "id": key})
        outcome = execute(ctx.warehouse, ctx.store, call["name"], call["args"])
        writer({"type": "tool_finished", "tool": call["name"], "id": key, "ok": outcome.ok,
                "ms": round(outcome.ms, 1), "title": outcome.artifact.get("title", call["name"])})
        out.append(ToolMessage(outcome.content, tool_call_id=call["id"], name=call["name"], artifact=outcome.artifact,
                               status="success" if outcome.ok else "error"))
    return {"messages": out, "tool_calls": used}
