"""Cart and checkout abandonment (ANALYTICS.md, Cart abandonment).

The headline rates are per user, as defined. The segment drill-down runs per session:
context dimensions such as app_version change during a user's life, so a user's
first-touch value would confound them with tenure.
"""

from __future__ import annotations

from data.schema import DIMENSIONS
from tools.dropoffs import dropoffs
from tools.funnel import FunnelSpec, step_counts_sql
from tools.period import Period
from tools.result import Friction, ToolResult, segment_text
from tools.segments import SegmentRules
from tools.warehouse import Warehouse

CART_STEPS = ("Product Added", "Order Completed")


def abandonment_sql(period: Period, window_days: float) -> str:
    """Users adding to cart, of them ordering within the window; users starting checkout and ordering."""
    cart = step_counts_sql(FunnelSpec(CART_STEPS, window_days, "users", period))
    return (f"WITH cart AS ({cart}),\n"
            f"co AS (SELECT count(DISTINCT user_id) FILTER (WHERE event = 'Checkout Started') AS started,"
            f" count(DISTINCT user_id) FILTER (WHERE event = 'Order Completed') AS ordered"
            f" FROM events WHERE {period.where()})\n"
            "SELECT cart.n1 AS added, cart.n2 AS ordered_within_window, co.started AS checkout_started,"
            " co.ordered AS orders FROM cart, co")


def cart_abandonment(wh: Warehouse, period: Period, window_days: float = 7.0,
                     dims: tuple[str, ...] = DIMENSIONS, rules: SegmentRules = SegmentRules()) -> ToolResult:
    """Cart and checkout abandonment, and the segments that abandon significantly more."""
    sql = abandonment_sql(period, window_days)
    row = wh.query(sql).df.iloc[0]
    added, ordered = int(row["added"]), int(row["ordered_within_window"])
    cart_rate = 1 - ordered / added if added else 0.0
    checkout_rate = 1 - int(row["orders"]) / int(row["checkout_started"]) if row["checkout_started"] else 0.0
    spec = FunnelSpec(CART_STEPS, window_days, "sessions", period)
    drill = dropoffs(wh, spec, dims, rules=rules)
    findings = [_as_cart(f) for f in drill.findings]
    summary = (f"Cart abandonment (period {period.label}): {cart_rate:.1%} of {added} users who added to cart "
               f"did not order within {window_days:g} days; checkout abandonment {checkout_rate:.1%} "
               f"({int(row['orders'])} ordering of {int(row['checkout_started'])} starting checkout). ")
    summary += ("Segments abandoning more (per session): " + "; ".join(
        f"{segment_text(f.segment)}: {f.observed:.1%} vs {f.baseline:.1%}" for f in findings[:5])
        if findings else "No segment abandons significantly more.")
    data = {"cart_abandonment": cart_rate, "checkout_abandonment": checkout_rate, "added": added,
            "ordered": ordered}
    return ToolResult("Cart abandonment", summary, drill.table, drill.chart, [sql, *drill.sql], findings, data)


def _as_cart(f: Friction) -> Friction:
    """A session drop-off between add and order, restated as abandonment."""
    return Friction(**{
        **f.model_dump(exclude={"id"}), "kind": "cart_abandonment", "metric": "cart_abandonment",
        "title": f"Cart abandonment is high for {segment_text(f.segment)}",
        "baseline": 1 - f.baseline, "observed": 1 - f.observed, "step": "Product Added",
    })
