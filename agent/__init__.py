"""The agent: LangGraph graph, model factory, offline analyst, and the Python API."""

from agent.api import Answer, InsightAgent, Step

__all__ = ["Answer", "InsightAgent", "Step"]
