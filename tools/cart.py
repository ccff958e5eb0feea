"""Cart and checkout abandonment (ANALYTICS.md, Cart abandonment).

The headline rates are per user, as defined. The segment drill-down runs per session:
context dimensions such as app_version change during a user's life, so a user's
first-touch value would confound them with tenure.
"""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd

from tools.dropoffs import Levels, drill_dims, drill_down, tests_details
from tools.format import count, pct
from tools.funnel import FunnelSpec, breakdown_table, check_scope, step_counts_sql
from tools.funnel_engine import step_counts
from tools.period import Period
from tools.result import Friction, ToolResult, applied, scope_words, segment_text
from tools.result import facts as facts_of
from tools.segments import SegmentRules
from tools.semantic.eventmap import EventMap, SegmentValue
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


def abandonment_sql(period: Period, emap: EventMap, window_days: float,
                    segment: Mapping[str, SegmentValue] | None = None) -> str:
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
                        rules: SegmentRules = SegmentRules(), facts: Facts | None = None,
                        segment: Mapping[str, SegmentValue] | None = None) -> tuple[list[Friction], str]:
    """Segments whose sessions add to cart but order significantly less often (cart_abandonment findings),
    within `segment` (the rest is the rest of the segment)."""
    emap = wh.event_map
    segment = segment or {}
    dims = drill_dims(emap, dims, segment)
    spec = FunnelSpec(cart_steps(emap), 7.0, "sessions", period, where=segment)
    facts = facts or Facts(period, emap).materialize(wh)  # every dimension: shared with scans and questions
    findings, sql = drill_down(wh, Levels.of(spec, emap, dims, facts, "cart_level"), spec, dims, True, rules)
    return [_as_cart(f) for f in findings], sql


def abandonment_by(wh: Warehouse, period: Period, window_days: float, segment: Mapping[str, SegmentValue],
                   breakdown: str) -> tuple[pd.DataFrame, str]:
    """Per value of `breakdown` (the user's value on its first cart add): users adding, ordering within the
    window, and cart abandonment."""
    emap = wh.event_map
    spec = FunnelSpec(cart_steps(emap), window_days, "users", period, where=segment)
    sql = step_counts_sql(spec, emap, (breakdown,))
    by = breakdown_table(step_counts(wh, spec, (breakdown,)), breakdown, 2)
    by = by.rename(columns={"entered": "added", "converted": "ordered"})
    return by.assign(abandonment=1 - by.pop("conversion")), sql


def cart_abandonment(wh: Warehouse, period: Period, window_days: float = 7.0,
                     dims: tuple[str, ...] | None = None, rules: SegmentRules = SegmentRules(),
                     segment: Mapping[str, SegmentValue] | None = None, breakdown: str | None = None) -> ToolResult:
    """Cart and checkout abandonment per user (of everyone or one segment, by a breakdown if asked), and the
    segments whose sessions abandon more."""
    emap = wh.event_map
    segment = segment or {}
    check_scope(emap, segment, breakdown)
    sql = abandonment_sql(period, emap, window_days, segment)
    row = wh.query(sql).df.iloc[0]
    added, ordered = int(row["added"]), int(row["ordered_within_window"])
    cart_rate = 1 - ordered / added if added else 0.0
    has_checkout = not pd.isna(row["checkout_started"])
    started, orders = (int(row["checkout_started"]), int(row["orders"])) if has_checkout else (0, 0)
    checkout_rate = 1 - orders / started if started else 0.0
    findings, drill_sql = abandoning_segments(wh, period, dims, rules, segment=segment)
    scope = applied(period, segment, breakdown, window_days=window_days)
    data = {"cart_abandonment": cart_rate, "checkout_abandonment": checkout_rate if has_checkout else None,
            "added": added, "ordered": ordered, "checkout_started": started, "orders": orders, "applied": scope,
            "facts": facts_of(cart_abandonment=(cart_rate if added else None, "rate"),
                              checkout_abandonment=(checkout_rate if started else None, "rate"),
                              added=(added, "count"))}
    summary = (f"Cart abandonment is {pct(cart_rate)} per user ({scope_words(scope)}): of {count(added)} users who "
               f"added to cart, {count(ordered)} ordered within {window_days:g} days. " + (
                   f"Checkout abandonment: {pct(checkout_rate)} of the {count(started)} users who started checkout did "
                   f"not order ({count(orders)} did)." if has_checkout
                   else "Checkout abandonment not computed (no checkout role in the event map)."))
    sqls = [sql, drill_sql]
    if breakdown:
        data["breakdown"], by_sql = abandonment_by(wh, period, window_days, segment, breakdown)
        sqls.insert(1, by_sql)
        summary += f" By {breakdown}: " + "; ".join(
            f"{v} {pct(r)} of {count(n)}" for v, n, r in data["breakdown"][[breakdown, "added", "abandonment"]]
            .itertuples(index=False)) + "."
    summary += segments_words(findings, rules)
    table = [{"segment": segment_text(f.segment), "abandonment": f.observed, "rest": f.baseline,
              "sessions": f.detail["entered"], "p_value": f.p_value} for f in findings]
    return ToolResult("Cart abandonment", summary, pd.DataFrame(table), None, sqls, findings, data)


def segments_words(findings: list[Friction], rules: SegmentRules) -> str:
    """The segments abandoning more, per session, with their tests in a details paragraph."""
    if not findings:
        return " No segment's sessions abandon their cart significantly more than the rest."
    shown = findings[:5]
    return (" Segments abandoning more, per session (of sessions adding to cart): " + "; ".join(
        f"{segment_text(f.segment)} {pct(f.observed)} vs {pct(f.baseline)} for the rest" for f in shown) + "."
        + tests_details(rules, [(segment_text(f.segment), f.p_value) for f in shown]))


def _as_cart(f: Friction) -> Friction:
    """A session drop-off between add and order, restated as abandonment."""
    return Friction(**{
        **f.model_dump(exclude={"id"}), "kind": "cart_abandonment", "metric": "cart_abandonment",
        "title": f"Cart abandonment is high for {segment_text(f.segment)}",
        "baseline": 1 - f.baseline, "observed": 1 - f.observed, "step": f.detail["previous_step"],
    })
