"""The respond node: the final answer with its notes; nothing else changes."""

from __future__ import annotations

from agent.state import State


def respond(state: State) -> dict:
    """Pass the answer, mode and notes to the output."""
    return {"mode": state.get("mode", ""), "notes": state.get("notes", [])}
