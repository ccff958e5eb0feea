"""Run-time context of the graph: the warehouse, the models and the limits (not checkpointed)."""

from __future__ import annotations

from dataclasses import dataclass, field

from langchain_core.language_models import BaseChatModel

from agent.offline import OfflineAnalyst
from agent.toolbox import ResultStore
from tools.warehouse import Warehouse


@dataclass
class Context:
    """What the nodes need besides the state."""

    warehouse: Warehouse
    offline: OfflineAnalyst
    llm: BaseChatModel | None = None          # a chat model with the tools bound, or None (offline)
    store: ResultStore = field(default_factory=ResultStore)
    max_tool_calls: int = 8
    data_start: str = ""
    data_end: str = ""
    data_map: dict[str, str] = field(default_factory=dict)  # the event map in words, for the system prompt
