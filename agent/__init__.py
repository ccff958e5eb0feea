"""The agent: LangGraph graph, model factory, offline analyst, and the Python API.

`from agent import InsightAgent` loads agent.api (LangGraph, every analysis) on first use only, so the
command line starts without it.
"""

from __future__ import annotations

from typing import Any

__all__ = ["Answer", "InsightAgent", "Progress", "Step"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from agent import api

        return getattr(api, name)
    raise AttributeError(f"module 'agent' has no attribute {name!r}")
