"""The compiled graph for LangGraph Studio (`langgraph dev`); Studio supplies its own checkpointer.

Studio runs must pass a Context; `studio_context()` builds one from the environment.
"""

from __future__ import annotations

from agent.config import Settings
from agent.context import Context
from agent.graph import build_graph
from agent.intents import Vocabulary
from agent.model import make_llm
from agent.offline import OfflineAnalyst
from tools.schema import dimension_values
from tools.warehouse import Warehouse

graph = build_graph().compile()


def studio_context(settings: Settings | None = None) -> Context:
    """A Context for the configured database and model."""
    settings = settings or Settings()
    wh = Warehouse(settings.db)
    return Context(warehouse=wh, offline=OfflineAnalyst(vocabulary=Vocabulary(dimensions=dimension_values(wh))),
                   llm=make_llm(settings))
