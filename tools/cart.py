"""Cart and checkout abandonment (ANALYTICS.md, Cart abandonment).

The headline rates are per user, as defined. The segment drill-down runs per session:
context dimensions such as app_version change during a user's life, so a user's
first-touch value would confound them with tenure.
"""

from __future__ import annotations

import pandas as pd

from tools.dropoffs import Levels, drill_down
from tools.funnel import FunnelSpec, check_dimensions, step_counts_sql
from tools.period import Period
from tools.result import Friction, ToolResult, segment_text
from tools.segments import SegmentRules
from tools.semantic.eventmap import EventMap
from tools.sessions import Facts
from tools.sqltext import lit
from tools.warehouse import Warehouse


class CartError(ValueError):
    """The event map has no cart to analyse (its cart_add and order roles are not funnel steps)."""


def cart_steps(emap: EventMap) -> tuple[str, str]:
    """The map's (cart add, order) steps, or CartError saying what is missing."""
    if emap.cart_steps is None:
        raise CartError("cart abandonment needs the event map's cart_add and order roles, as steps of the default "
                        "funnel (`insight map` shows the map)")
    return emap.cart_steps


def abandonment_sql(period: Period, emap: EventMap, window_days: float, segment: dict[str, str] | None = None) -> str:
    """Users adding to cart, of them ordering within the window; users starting checkout, of them ordering.

    Without a checkout role, checkout counts are NULL."""
    add, order = cart_steps(emap)
    cart = step_counts_sql(FunnelSpec((add, order), window_days, "users", period, where=segment or {}), emap)
    checkout = emap.event_of("checkout")
    if checkout is None:
        return (f"WITH cart AS ({cart})\nSELECT cart.n1 AS added, cart.n2 AS ordered_within_window,"
                " NULL::BIGINT AS checkout_started, NULL::BIGINT AS orders FROM cart")
    return (f"WITH cart AS ({cart}),\n"
            f"per_user AS (SELECT user_id, bool_or(event = {lit(checkout)}) AS started,"
            f" bool_or(event = {lit(order)}) AS ordered FROM events"
            f" WHERE event IN ({lit(checkout)}, {lit(order)}) AND {period.where()}"
            f" AND {emap.segment_where(segment or {})} GROUP BY user_id),\n"
            "co AS (SELECT count(*) FILTER (WHERE started) AS started, count(*) FILTER (WHERE started AND ordered)"
            " AS ordered FROM per_user)\n"
            "SELECT cart.n1 AS added, cart.n2 AS ordered_within_window, co.started AS checkout_started,"
            " co.ordered AS orders FROM cart, co")


def abandoning_segments(wh: Warehouse, period: Period, dims: tuple[str, ...] | None = None,
                        rules: SegmentRules = SegmentRules(), facts: Facts | None = None) -> tuple[list[Friction], str]:
    """Segments whose sessions add to cart but order significantly less often (cart_abandonment findings)."""
    emap = wh.event_map
    dims = emap.dims if dims is None else dims
    spec = FunnelSpec(cart_steps(emap), 7.0, "sessions", period)
    facts = facts or Facts(period, emap, dims=dims)
    findings, sql = drill_down(wh, Levels.of(spec, emap, dims, facts, "cart_level"), spec, dims, True, rules)
    return [_as_cart(f) for f in findings], sql


def cart_abandonment(wh: Warehouse, period: Period, window_days: float = 7.0,
                     dims: tuple[str, ...] | None = None, rules: SegmentRules = SegmentRules(),
                     segment: dict[str, str] | None = None) -> ToolResult:
    """Cart and checkout abandonment (of everyone or one segment), and the segments abandoning more."""
    emap = wh.event_map
    check_dimensions(emap, segment or {})
    sql = abandonment_sql(period, emap, window_days, segment)
    row = wh.query(sql).df.iloc[0]
    added, ordered = int(row["added"]), int(row["ordered_within_window"])
    cart_rate = 1 - ordered / added if added else 0.0
    has_checkout = not pd.isna(row["checkout_started"])
    started, orders = (int(row["checkout_started"]), int(row["orders"])) if has_checkout else (0, 0)
    checkout_rate = 1 - orders / started if started else 0.0
    findings, drill_sql = abandoning_segments(wh, period, dims, rules)
    who = f", {segment_text(segment)}" if segment else ""
    summary = (f"Cart abandonment (period {period.label}{who}): {cart_rate:.1%} of {added} users who added to cart "
               f"did not order within {window_days:g} days; " + (
                   f"checkout abandonment {checkout_rate:.1%} ({orders} ordering of {started} starting checkout). "
                   if has_checkout else "checkout abandonment not computed (no checkout role in the event map). "))
    summary += ("Across everyone, segments abandoning more (per session): " + "; ".join(
        f"{segment_text(f.segment)}: {f.observed:.1%} vs {f.baseline:.1%}" for f in findings[:5])
        if findings else "No segment abandons significantly more.")
    data = {"cart_abandonment": cart_rate, "checkout_abandonment": checkout_rate if has_checkout else None,
            "added": added,
            "ordered": ordered, "checkout_started": started, "orders": orders}
    table = [{"segment": segment_text(f.segment), "abandonment": f.observed, "rest": f.baseline,
              "sessions": f.detail["entered"], "p_value": f.p_value} for f in findings]
    return ToolResult("Cart abandonment", summary, pd.DataFrame(table), None, [sql, drill_sql], findings, data)


def _as_cart(f: Friction) -> Friction:
    """A session drop-off between add and order, restated as abandonment."""
    return Friction(**{
        **f.model_dump(exclude={"id"}), "kind": "cart_abandonment", "metric": "cart_abandonment",
        "title": f"Cart abandonment is high for {segment_text(f.segment)}",
        "baseline": 1 - f.baseline, "observed": 1 - f.observed, "step": f.detail["previous_step"],
    })
