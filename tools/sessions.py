"""Session facts: one row per session with its segment values, funnel levels, errors and loads.

The scan's detectors share this table instead of each re-reading the events. Within a
session, steps are matched greedily in time order (ties by step index) from the first
step-1 event: sessions are far shorter than any conversion window, so this is the
furthest level of any attempt (ANALYTICS.md, Funnel). An error belongs to the funnel step
of the latest step event at or before it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field

from tools.period import Period
from tools.semantic.eventmap import EventMap, SegmentValue, value_match
from tools.sqltext import FIRST, first_of, lit, unpack_first
from tools.warehouse import Warehouse

_ERROR_ORD = 31  # sorts after every step code at the same timestamp


def _letter(i: int) -> str:
    """The code of step i (0-based) in a session's step string: a, b, c, ..."""
    return chr(ord("a") + i)


def level_sql(steps: tuple[str, ...], funnel: tuple[str, ...]) -> str:
    """The level reached in `funnel` by a session's step string `s` (ordered step codes).

    `s LIKE '%a%b%'` holds exactly when an `a` is followed, later, by a `b`: the greedy match.
    """
    codes = [_letter(steps.index(step)) for step in funnel]
    return " + ".join(f"(s LIKE '%{'%'.join(codes[:j])}%')::INT" for j in range(1, len(codes) + 1))


@dataclass(frozen=True)
class Facts:
    """The session-facts relation for one period and event map; `table` names its materialized copy, if any.

    Steps default to the map's funnel and dims to all of its dimensions; errors are its error
    role's events and loads its page_load role's duration field (NULL when unmapped).

    Each session's step events become a string of step codes (a, b, ...) in time order (ties
    by step index, errors `0` after steps; sorted as one integer key epoch_us * 32 + index), so levels and
    error steps are LIKE patterns: an error belongs to step j when `0` directly follows j's code (`%c0%`).
    """

    period: Period
    emap: EventMap = field(compare=False)
    steps: tuple[str, ...] = ()
    dims: tuple[str, ...] | None = None
    table: str | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "steps", self.steps or self.emap.steps)
        object.__setattr__(self, "dims", self.emap.dims if self.dims is None else tuple(self.dims))

    def select_sql(self) -> str:
        """session_id, user_id, start_ts, dims, load_1..K, level, cart_level, error_1..K.

        user_id and the event dimensions are those of the session's first event (of the steps and errors).
        """
        k = len(self.steps)
        if k > 26:
            raise ValueError("at most 26 funnel steps")
        emap = self.emap
        order = " ".join(f"WHEN {lit(s)} THEN {i}" for i, s in enumerate(self.steps))
        error = emap.event_of("error")
        names = ", ".join(lit(s) for s in (*self.steps, *([error] if error and error not in self.steps else [])))
        ev_dims = {d: emap.dim_sql(d) for d in self.dims if d in emap.event_dims}
        duration = emap.field("page_load", "duration")
        load = duration.sql(cast="DOUBLE") if duration else "NULL::DOUBLE"
        loads = "".join(f", arg_min({load}, ts) FILTER (WHERE ord = {i}) AS load_{i + 1}" for i in range(k))
        users = "".join(f", {emap.dim_sql(d, 'u')} AS {d}" for d in self.dims if d in emap.user_dims)
        cart_steps = emap.cart_steps
        cart = level_sql(self.steps, cart_steps) if cart_steps and set(cart_steps) <= set(self.steps) else "NULL::INT"
        errors = "".join(f", s LIKE '%{_letter(i)}0%' AS error_{i + 1}" for i in range(k))
        # user_id rides in the first-touch struct: one aggregate state fewer than any_value (about 5%)
        kept = unpack_first(["user_id"], "p") + ", p.start_ts" + unpack_first(ev_dims, "p")
        kept += "".join(f", p.load_{i + 1}" for i in range(k)) + users
        return f"""SELECT p.session_id{kept}, {level_sql(self.steps, self.steps)} AS level,
       {cart} AS cart_level{errors}
FROM (SELECT session_id, min(ts) AS start_ts{first_of({"user_id": "user_id", **ev_dims})}{loads},
             array_to_string(list_transform(list_sort(list(epoch_us(ts) * 32 + ord)),
                 lambda x: CASE WHEN x % 32 = {_ERROR_ORD} THEN '0' ELSE chr(97 + (x % 32)::INT) END), '') AS s
      FROM (SELECT *, CASE event {order} ELSE {_ERROR_ORD} END AS ord
            FROM events WHERE session_id IS NOT NULL AND event IN ({names}) AND {self.period.where()})
      GROUP BY session_id) p
LEFT JOIN users u ON u.user_id = p.{FIRST}.user_id"""

    def cte(self) -> str:
        """`facts AS (...)`: the materialized table when there is one, else the full query."""
        return f"facts AS (SELECT * FROM {self.table})" if self.table else f"facts AS ({self.select_sql()})"

    def evidence_cte(self) -> str:
        """The self-contained CTE, for evidence SQL a person can rerun."""
        return f"facts AS ({self.select_sql()})"

    def materialize(self, wh: Warehouse) -> Facts:
        """Build the facts once as a temp table of this thread's cursor; returns the handle to use."""
        name = "session_facts_" + hashlib.sha1(self.select_sql().encode()).hexdigest()[:12]
        wh.materialize(name, self.select_sql())
        return Facts(self.period, self.emap, self.steps, self.dims, name)


def segment_condition(segment: Mapping[str, SegmentValue]) -> str:
    """SQL condition selecting a segment's rows of a relation that carries the dimensions as columns
    (session facts, funnel levels); a list of values is any of them. Raw events are filtered with
    `EventMap.segment_where`.

    >>> segment_condition({"os": ["ios", "android"], "plan": "pro"}), segment_condition({})
    ("os IN ('ios', 'android') AND plan = 'pro'", 'TRUE')
    """
    return " AND ".join(value_match(d, v, d) for d, v in segment.items()) or "TRUE"
