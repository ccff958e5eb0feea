"""The graph: analyst <-> run_tools -> ground -> scope_check -> respond. Only wiring lives here."""

from __future__ import annotations

from typing import Literal

from langchain_core.messages import AIMessage, HumanMessage
from langgraph.graph import END, START, StateGraph
from langgraph.types import RetryPolicy

from agent.context import Context
from agent.nodes.analyst import analyst
from agent.nodes.ground import ground
from agent.nodes.respond import respond
from agent.nodes.run_tools import run_tools
from agent.nodes.scope_check import scope_check
from agent.offline import GROUNDING
from agent.state import InputState, OutputState, State

RECURSION_LIMIT = 40  # explicit: langgraph's default is over 10,000


def after_analyst(state: State) -> Literal["run_tools", "ground"]:
    last = state["messages"][-1]
    return "run_tools" if isinstance(last, AIMessage) and last.tool_calls else "ground"


def _sent_back(state: State) -> bool:
    last = state["messages"][-1]
    return isinstance(last, HumanMessage) and last.name == GROUNDING


def after_ground(state: State) -> Literal["analyst", "scope_check"]:
    return "analyst" if _sent_back(state) else "scope_check"


def after_scope(state: State) -> Literal["analyst", "respond"]:
    return "analyst" if _sent_back(state) else "respond"


def build_graph() -> StateGraph:
    """The uncompiled graph; compile it with a checkpointer of your choice."""
    builder = StateGraph(State, context_schema=Context, input_schema=InputState, output_schema=OutputState)
    builder.add_node("analyst", analyst, retry_policy=RetryPolicy(max_attempts=2))
    builder.add_node("run_tools", run_tools, retry_policy=RetryPolicy(max_attempts=2))
    builder.add_node("ground", ground)
    builder.add_node("scope_check", scope_check)
    builder.add_node("respond", respond)
    builder.add_edge(START, "analyst")
    builder.add_conditional_edges("analyst", after_analyst)
    builder.add_edge("run_tools", "analyst")
    builder.add_conditional_edges("ground", after_ground)
    builder.add_conditional_edges("scope_check", after_scope)
    builder.add_edge("respond", END)
    return builder
