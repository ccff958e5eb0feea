"""The analyses as the model sees them: tool schemas, execution, and results as delimited data.

A tool returns text for the model (a compact, capped data block) and a payload for people
(the typed ToolResult, kept in a ResultStore; only its key travels in the graph state).
"""

from __future__ import annotations

import json
import re
import threading
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass

from langchain_core.tools import StructuredTool
from pydantic import ValidationError

from tools import TOOLS, Tool
from tools.result import ToolResult
from tools.semantic.eventmap import EventMap
from tools.semantic.metrics import catalog
from tools.warehouse import Warehouse

MAX_ROWS = 15
MAX_CHARS = 6000
MAX_ERROR = 500
DELIMITER = re.compile(r"<(?=\s*/?\s*data\b)", re.IGNORECASE)  # "</DATA >", "< data tool=... trust=...>"
CHART_BYTES = 32_000  # a chart kept with its tool result in the conversation's checkpoints, at most (JSON)
CHART_TEMPLATE = "plotly_white"  # the template every tools.charts figure is drawn with


class ResultStore:
    """ToolResults by key, oldest out first, bounded in count and in bytes (the newest is always kept)."""

    def __init__(self, capacity: int = 500, max_bytes: int = 256 * 2**20) -> None:
        self._items: OrderedDict[str, tuple[ToolResult, int]] = OrderedDict()
        self._lock = threading.Lock()
        self.capacity = capacity
        self.max_bytes = max_bytes
        self.bytes = 0

    def put(self, result: ToolResult) -> str:
        key = uuid.uuid4().hex
        size = result_bytes(result)
        with self._lock:
            self._items[key] = (result, size)
            self.bytes += size
            while len(self._items) > 1 and (len(self._items) > self.capacity or self.bytes > self.max_bytes):
                self.bytes -= self._items.popitem(last=False)[1][1]
        return key

    def get(self, key: str) -> ToolResult | None:
        with self._lock:
            item = self._items.get(key)
            return item[0] if item else None


def result_bytes(result: ToolResult) -> int:
    """What a result holds in memory: its table (deep) and its texts."""
    return int(result.table.memory_usage(deep=True).sum()) + len(result.summary) + sum(map(len, result.sql))


# What a result reports about itself, kept with the conversation: the scope it computed, its key numbers and,
# for a scan, its ranked items (JSON scalars only, small).
ARTIFACT_DATA = ("applied", "facts", "items")

# Arguments that name funnel steps, dimensions or metrics: a tool taking one has its description say what this
# data has.
MAP_ARGS = {"segment", "breakdown", "dimension", "step", "steps", "funnel"}


def describe(tool: Tool, emap: EventMap | None) -> str:
    """The tool's description, naming this data's funnel, dimensions and metrics where its arguments take them."""
    fields = set(tool.params.model_fields)
    if emap is None or not fields & (MAP_ARGS | {"metric"}):
        return tool.description
    words = emap.in_words()
    extra = f" This data: funnel {words['funnel']}; dimensions {words['dimensions']}." if fields & MAP_ARGS else ""
    if "metric" in fields:
        extra += f" Metrics: {', '.join(catalog(emap))}."
    return tool.description + extra


def schemas(emap: EventMap | None = None) -> list[StructuredTool]:
    """LangChain tools (name, description, typed arguments) for `bind_tools`; never executed by LangChain.

    With an event map, descriptions name its funnel, dimensions and metrics where the tool takes them."""
    def unused(**_kwargs: object) -> str:
        raise RuntimeError("tools are executed by the graph's tools node")

    return [StructuredTool.from_function(unused, name=t.name, args_schema=t.params, description=describe(t, emap))
            for t in TOOLS.values()]


def data_block(tool: Tool, result: ToolResult) -> str:
    """The text the model reads: summary and a capped table inside a delimited data block, marked untrusted when
    the tool quotes values from the data."""
    body = result.summary
    if not result.table.empty:
        shown = result.table.head(MAX_ROWS).to_string(index=False, max_colwidth=80)
        more = len(result.table) - MAX_ROWS
        body += f"\n\n{shown}" + (f"\n(truncated: {more} more rows)" if more > 0 else "")
    if len(body) > MAX_CHARS:
        body = body[:MAX_CHARS] + "\n(truncated)"
    return _block(tool.name, body, untrusted=tool.quotes_data)


def _block(name: str, body: str, *, untrusted: bool) -> str:
    """`body` between data delimiters; any delimiter inside it, in any case or spacing, is neutralised."""
    body = DELIMITER.sub("&lt;", body)
    return f'<data tool="{name}" trust="{"untrusted" if untrusted else "computed"}">\n{body}\n</data>'


@dataclass
class Outcome:
    """One executed tool call."""

    content: str
    artifact: dict
    ok: bool
    ms: float


def execute(wh: Warehouse, store: ResultStore, name: str, args: dict) -> Outcome:
    """Run a tool call; errors become short observations the model can act on."""
    started = time.perf_counter()
    tool = TOOLS.get(name)
    try:
        if tool is None:
            raise LookupError(f"unknown tool {name!r}; tools: {', '.join(TOOLS)}")
        result = tool.run(wh, tool.params.model_validate(args or {}))
    except ValidationError as exc:
        first = exc.errors()[0]
        message = f"bad arguments for {name}: {'.'.join(map(str, first['loc']))}: {first['msg']}"
        return _failure(name, message, started)
    except Exception as exc:  # every tool failure goes back to the model as an observation
        return _failure(name, f"{type(exc).__name__}: {exc}", started)
    key = store.put(result)
    artifact = {"key": key, "tool": name, "title": result.title, "sql": result.sql[:6],
                **{k: result.data[k] for k in ARTIFACT_DATA if k in result.data}, **chart_field(result)}
    return Outcome(data_block(tool, result), artifact, True, (time.perf_counter() - started) * 1000)


def chart_field(result: ToolResult) -> dict[str, str]:
    """{"chart": the result's Plotly figure as JSON} when it is at most CHART_BYTES, so a reopened conversation
    shows it (the ResultStore does not outlive the process); the template is kept by name, not by value."""
    if result.chart is None:
        return {}
    try:
        spec = json.loads(result.chart.to_json())
    except (ValueError, TypeError):
        return {}
    spec.setdefault("layout", {})["template"] = CHART_TEMPLATE
    text = json.dumps(spec, separators=(",", ":"))
    return {"chart": text} if len(text.encode()) <= CHART_BYTES else {}


def _failure(name: str, message: str, started: float) -> Outcome:
    text = " ".join(message.split())[:MAX_ERROR]
    return Outcome(_block(name, f"Error: {text}", untrusted=True), {"tool": name, "error": text}, False,
                   (time.perf_counter() - started) * 1000)
