"""The `schema` tool: tables, columns, row counts, the data's time span, the event map and segment values."""

from __future__ import annotations

import pandas as pd

from tools.period import data_bounds
from tools.result import ToolResult
from tools.warehouse import Warehouse

MAX_VALUES = 12


def dimension_values(wh: Warehouse) -> dict[str, list[str]]:
    """The most frequent values of every segment dimension of the event map."""
    emap = wh.event_map
    out = {}
    for d in emap.dims:
        table = "events" if d in emap.event_dims else "users"
        expr = emap.dim_sql(d)
        df = wh.query(f"SELECT CAST({expr} AS VARCHAR) AS v, count(*) AS n FROM {table} WHERE {expr} IS NOT NULL "
                      f"GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT {MAX_VALUES}").df
        out[d] = [str(v) for v in df["v"]]
    return out


def schema(wh: Warehouse) -> ToolResult:
    """Describe every table (columns, types, rows), the event names and the period covered."""
    rows = []
    for table, columns in sorted(wh.tables.items()):
        n = int(wh.scalar(f'SELECT count(*) FROM "{table}"'))
        rows.append({"table": table, "rows": n, "columns": ", ".join(f"{c} {t}" for c, t in columns.items())})
    events = wh.query("SELECT event, count(*) AS n FROM events GROUP BY 1 ORDER BY 2 DESC").df
    lo, hi = data_bounds(wh)
    dims = dimension_values(wh)
    words = wh.event_map.in_words()
    summary = ("Tables: " + "; ".join(f"{r['table']} ({r['rows']} rows: {r['columns']})" for r in rows)
               + ". Events: " + ", ".join(f"{e} ({n})" for e, n in events.itertuples(index=False))
               + (f". Data from {lo:%Y-%m-%d} to {hi:%Y-%m-%d} (exclusive)." if lo else ". No events.")
               + f" Event map: funnel {words['funnel']}; roles: {words['roles']}."
               + "".join(f" Not available: {a} (no {need})." for a, need in wh.event_map.unavailable().items())
               + " Segment dimensions: " + "; ".join(f"{d}: {', '.join(v)}" for d, v in dims.items())
               + "".join(f" {line}" for line in wh.ignored_notes()))
    return ToolResult("Schema", summary, pd.DataFrame(rows),
                      data={"events": dict(zip(events["event"], events["n"].astype(int))), "dimensions": dims,
                            "first_event": str(lo) if lo else None, "data_end": str(hi) if hi else None})
