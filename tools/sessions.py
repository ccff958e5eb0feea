"""Session facts: one row per session with its segment values, funnel levels, errors and loads.

The scan's detectors share this table instead of each re-reading the events. Within a
session, steps are matched greedily in time order (ties by step index) from the first
step-1 event: sessions are far shorter than any conversion window, so this is the
furthest level of any attempt (ANALYTICS.md, Funnel). An error belongs to the funnel step
of the latest step event at or before it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from tools.period import Period
from tools.semantic.eventmap import EventMap, SegmentValue, value_match
from tools.sqltext import FIRST, first_of, lit, unpack_first
from tools.warehouse import Warehouse

ERROR_CODE = 31  # sorts after every step code at the same timestamp


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
        first = first_of({"user_id": "user_id", **self.event_dims()})
        loads = "".join(f", arg_min({self.load_sql()}, ts) FILTER (WHERE ord = {i}) AS load_{i + 1}"
                        for i in range(len(self.steps)))
        return self.columns_sql(f"""(SELECT session_id, min(ts) AS start_ts{first}{loads},
             array_to_string(list_transform(list_sort(list(epoch_us(ts) * 32 + ord)),
                 lambda x: CASE WHEN x % 32 = {ERROR_CODE} THEN '0' ELSE chr(97 + (x % 32)::INT) END), '') AS s
      FROM ({self.events_sql()})
      GROUP BY session_id)""")

    def events_sql(self) -> str:
        """The period's step and error events with a session, with `ord`: the step index, or ERROR_CODE."""
        if len(self.steps) > 26:
            raise ValueError("at most 26 funnel steps")
        order = " ".join(f"WHEN {lit(s)} THEN {i}" for i, s in enumerate(self.steps))
        error = self.emap.event_of("error")
        names = ", ".join(lit(s) for s in (*self.steps, *([error] if error and error not in self.steps else [])))
        return (f"SELECT *, CASE event {order} ELSE {ERROR_CODE} END AS ord FROM events"
                f" WHERE session_id IS NOT NULL AND event IN ({names}) AND {self.period.where()}")

    def event_dims(self) -> dict[str, str]:
        """The event dimensions kept, with the SQL of each."""
        return {d: self.emap.dim_sql(d) for d in self.dims if d in self.emap.event_dims}

    def load_sql(self) -> str:
        """An event's page-load duration as DOUBLE (NULL when the map has none)."""
        duration = self.emap.field("page_load", "duration")
        return duration.sql(cast="DOUBLE") if duration else "NULL::DOUBLE"

    def columns_sql(self, sessions: str, *, walked: bool = False) -> str:
        """The facts' columns from `sessions`: one row per session with session_id, start_ts, load_1..K and either
        the first-touch struct and the step string `s` (the SQL's), or user_id, the event dimensions, level,
        cart_level and error_1..K already computed (`walked`: tools/session_engine.py); user dimensions joined."""
        k, emap = len(self.steps), self.emap
        ev_dims = self.event_dims()
        cart_steps = emap.cart_steps
        has_cart = bool(cart_steps) and set(cart_steps) <= set(self.steps)
        if walked:
            kept = ", p.user_id, p.start_ts" + "".join(f", p.{d}" for d in ev_dims)
            level, cart, user = "p.level::INTEGER", "p.cart_level::INTEGER" if has_cart else "NULL::INT", "p.user_id"
            errors = "".join(f", p.error_{i + 1}" for i in range(k))
        else:
            # user_id rides in the first-touch struct: one aggregate state fewer than any_value (about 5%)
            kept = unpack_first(["user_id"], "p") + ", p.start_ts" + unpack_first(ev_dims, "p")
            level, user = level_sql(self.steps, self.steps), f"p.{FIRST}.user_id"
            cart = level_sql(self.steps, cart_steps) if has_cart else "NULL::INT"
            errors = "".join(f", s LIKE '%{_letter(i)}0%' AS error_{i + 1}" for i in range(k))
        kept += "".join(f", p.load_{i + 1}" for i in range(k))
        kept += "".join(f", {emap.dim_sql(d, 'u')} AS {d}" for d in self.dims if d in emap.user_dims)
        return f"""SELECT p.session_id{kept}, {level} AS level,
       {cart} AS cart_level{errors}
FROM {sessions} p
LEFT JOIN users u ON u.user_id = {user}"""

    def cte(self) -> str:
        """`facts AS (...)`: the materialized table when there is one, else the full query."""
        return f"facts AS (SELECT * FROM {self.table})" if self.table else f"facts AS ({self.select_sql()})"

    def evidence_cte(self) -> str:
        """The self-contained CTE, for evidence SQL a person can rerun."""
        return f"facts AS ({self.select_sql()})"

    def materialize(self, wh: Warehouse) -> Facts:
        """Build the facts once as a temp table of this thread's cursor (on DuckDB by the compiled session walk,
        tools/session_engine.py); returns the handle to use."""
        from tools.session_engine import facts_table

        compute = (lambda: facts_table(wh, self)) if wh.dialect == "duckdb" else None
        name = wh.materialize("session_facts", self.select_sql(), compute)
        return Facts(self.period, self.emap, self.steps, self.dims, name)


def segment_condition(segment: Mapping[str, SegmentValue]) -> str:
    """SQL condition selecting a segment's rows of a relation that carries the dimensions as columns
    (session facts, funnel levels); a list of values is any of them. Raw events are filtered with
    `EventMap.segment_where`.

    >>> segment_condition({"os": ["ios", "android"], "plan": "pro"}), segment_condition({})
    ("os IN ('ios', 'android') AND plan = 'pro'", 'TRUE')
    """
    return " AND ".join(value_match(d, v, d) for d, v in segment.items()) or "TRUE"
