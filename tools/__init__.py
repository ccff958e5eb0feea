"""The analyses over the event data (one module each) and their registry, `TOOLS` (tools/registry.py).

Importing a module of this package (the warehouse, the SQL guard, the event map) loads only that
module: the registry, and with it every analysis, loads on first use of `TOOLS` or `Tool`.
"""

from __future__ import annotations

from typing import Any

__all__ = ["TOOLS", "Tool"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from tools import registry

        return getattr(registry, name)
    raise AttributeError(f"module 'tools' has no attribute {name!r}")
