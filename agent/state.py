"""Graph state: a narrow input, the internal state, and the output. Only messages and short
strings: DataFrames and figures stay in the ResultStore."""

from __future__ import annotations

from typing import Annotated, TypedDict

from langchain_core.messages import AnyMessage
from langgraph.graph.message import add_messages


class InputState(TypedDict):
    """A new question: one human message."""

    messages: Annotated[list[AnyMessage], add_messages]


class State(InputState, total=False):
    """Internal state of one question (counters reset when a new question starts)."""

    tool_calls: int
    grounding_attempts: int
    scope_attempts: int  # times a reply that dropped an asked slot was sent back
    mode: str            # "llm", "offline" or "fallback"
    notes: list[str]     # visible notes and warnings for this answer


class OutputState(TypedDict, total=False):
    messages: list[AnyMessage]
    mode: str
    notes: list[str]
