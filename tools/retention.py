"""Cohort retention (ANALYTICS.md, Retention): week-N retention and dips versus other cohorts.

A user's event dimensions are those of their first event (first touch), the same for the segment filter, the
breakdown and the dips; user dimensions come from the users table.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import pandas as pd

from tools.charts import bar_chart, heatmap
from tools.format import count, pct
from tools.funnel import check_scope
from tools.period import Period, data_bounds, period_weeks
from tools.result import Friction, ToolResult, applied, facts, scope_words, segment_text
from tools.segments import SegmentRules, attach_segments, compare, grouping_flags, grouping_sets, select
from tools.semantic.eventmap import EventMap, SegmentValue, segment_values
from tools.sessions import segment_condition
from tools.sqltext import first_of, lit, unpack_first
from tools.warehouse import Warehouse

MAX_WEEKS = 8
AGES = (4, 13)          # weeks since signup of the users whose activity shows calendar effects (past early decay)
MIN_ESTABLISHED = 100   # cohorts smaller than this do not measure a week's calendar effect


@dataclass(frozen=True)
class Cohorts:
    """Whose cohorts count: users who signed up in `period` (and in `signups`, when given) and are in `segment`."""

    period: Period
    signups: Period | None = None
    segment: Mapping[str, SegmentValue] = field(default_factory=dict)

    def where(self, column: str) -> str:
        """SQL over cohort users: signup (`column`) in both periods, and the segment's values."""
        return " AND ".join([self.period.where(column), *([self.signups.where(column)] if self.signups else []),
                             segment_condition(self.segment)])


def firsts_sql(emap: EventMap, dims: tuple[str, ...] | None = None) -> str:
    """Per user: the first event's time (first_ts) and the first-touch values of the event dimensions `dims`
    (default: all of them)."""
    ev_dims = {d: emap.dim_sql(d) for d in (emap.event_dims if dims is None else dims) if d in emap.event_dims}
    return (f"SELECT user_id, first_ts{unpack_first(ev_dims)} FROM (SELECT user_id, min(ts) AS first_ts"
            f"{first_of(ev_dims)} FROM events GROUP BY user_id) g")


def user_firsts(wh: Warehouse) -> str:
    """The name of the per-user firsts of every event dimension (firsts_sql), materialized once per data version
    and event map (a stored fact) for the analyses to share."""
    return wh.materialize("user_firsts", firsts_sql(wh.event_map))


def _users_cte(cohorts: Cohorts | Period, emap: EventMap, dims: tuple[str, ...], firsts: str | None = None) -> str:
    """cohort_users: user, signup (signed_up_at or first event), ISO-week cohort and dims, of the cohorts' users;
    `firsts` names a materialized user_firsts relation to read instead of computing them."""
    cohorts = cohorts if isinstance(cohorts, Cohorts) else Cohorts(cohorts)
    dims = tuple(dict.fromkeys((*dims, *cohorts.segment)))
    ev_cols = "".join(f", f.{d}" for d in dims if d in emap.event_dims)
    user_dims = "".join(f", {emap.dim_sql(d, 'u')} AS {d}" for d in dims if d in emap.user_dims)
    return f"""firsts AS ({f'SELECT * FROM {firsts}' if firsts else firsts_sql(emap, dims)}),
signups AS (SELECT u.user_id, coalesce(u.signed_up_at, f.first_ts) AS signup{user_dims}{ev_cols}
    FROM users u LEFT JOIN firsts f USING (user_id)),
cohort_users AS (SELECT *, date_trunc('week', signup) AS cohort FROM signups
    WHERE signup IS NOT NULL AND {cohorts.where('signup')})"""


def _active_cte(week_n: int | None, emap: EventMap) -> str:
    """active: users x week N after signup with any event (one week, or weeks 0..MAX_WEEKS), and whether
    they ordered (FALSE without an order role)."""
    lo, hi = (0, MAX_WEEKS + 1) if week_n is None else (week_n, week_n + 1)
    order = emap.event_of("order")
    return f"""active AS (
    SELECT e.user_id, floor((epoch_us(e.ts) - epoch_us(c.signup)) / 604800000000)::INT AS week_n,
           bool_or({f"e.event = {lit(order)}" if order else "FALSE"}) AS converted
    FROM events e JOIN cohort_users c USING (user_id)
    WHERE e.ts >= c.signup + INTERVAL {7 * lo} DAY AND e.ts < c.signup + INTERVAL {7 * hi} DAY GROUP BY ALL)"""


def matrix_sql(cohorts: Cohorts | Period, emap: EventMap, firsts: str | None = None) -> str:
    """Cohort x week-N: cohort size and users active in days [7N, 7N+7) after signup."""
    return f"""WITH {_users_cte(cohorts, emap, (), firsts)}, {_active_cte(None, emap)}
SELECT c.cohort, a.week_n, count(DISTINCT c.user_id) AS active,
       (SELECT count(*) FROM cohort_users c2 WHERE c2.cohort = c.cohort) AS size
FROM cohort_users c JOIN active a USING (user_id) WHERE a.week_n <= {MAX_WEEKS}
GROUP BY ALL ORDER BY ALL"""


def week_n_sql(cohorts: Cohorts | Period, emap: EventMap, dims: tuple[str, ...], week_n: int = 1,
               firsts: str | None = None) -> str:
    """Per cohort and segment: cohort size and users retained in week N."""
    return f"""WITH {_users_cte(cohorts, emap, dims, firsts)}, {_active_cte(week_n, emap)},
flag AS (SELECT c.*, a.user_id IS NOT NULL AS kept, coalesce(a.converted, FALSE) AS converted
         FROM cohort_users c LEFT JOIN active a ON a.user_id = c.user_id AND a.week_n = {week_n})
SELECT {', '.join(['cohort', *dims, *([grouping_flags(dims)] if dims else [])])}, count(*) AS n,
       count(*) FILTER (WHERE kept) AS x,
       count(*) FILTER (WHERE converted) AS converted
FROM flag GROUP BY {grouping_sets(dims, False, ('cohort',))}"""


def complete_cohorts(cohorts: pd.Series, data_end, week_n: int) -> pd.Series:
    """Cohorts whose last member's days [7N, 7N+7) after signup all lie before the end of the data."""
    return (pd.to_datetime(cohorts) + timedelta(days=7 + 7 * week_n + 7)) <= pd.Timestamp(data_end)


def cohort_matrix(wh: Warehouse, cohorts: Cohorts | Period) -> tuple[pd.DataFrame, str]:
    """Complete cohort x week-N retention grid (rows: ISO weeks of signup)."""
    _, data_end = data_bounds(wh)
    sql = matrix_sql(cohorts, wh.event_map)
    mat = wh.query(matrix_sql(cohorts, wh.event_map, user_firsts(wh))).df
    if mat.empty or data_end is None:
        return pd.DataFrame(), sql
    mat["retention"] = mat["active"] / mat["size"]
    mat = mat[pd.to_datetime(mat["cohort"]) + pd.to_timedelta(14 + 7 * mat["week_n"], unit="D")
              <= pd.Timestamp(data_end)]
    grid = mat.pivot(index="cohort", columns="week_n", values="retention").sort_index()
    grid.index = [f"{c:%G-W%V}" for c in grid.index]
    return grid, sql


def retention(wh: Warehouse, period: Period, week_n: int = 1, dims: tuple[str, ...] | None = None,
              rules: SegmentRules = SegmentRules(), matrix: bool = True,
              segment: Mapping[str, SegmentValue] | None = None, breakdown: str | None = None,
              signups: Period | None = None) -> ToolResult:
    """Week-N retention of the weekly cohorts who signed up in `period` (and `signups`), of `segment`, optionally
    per value of `breakdown`; and cohorts (or cohort x segment) that dip below the other cohorts."""
    _, data_end = data_bounds(wh)
    emap, segment = wh.event_map, segment or {}
    check_scope(emap, segment, breakdown)
    cohorts = Cohorts(period, signups, segment)
    fixed = {d for d, v in segment.items() if len(segment_values(v)) == 1}
    dims = tuple(d for d in dict.fromkeys((*(emap.dims if dims is None else dims), *filter(None, [breakdown])))
                 if d not in fixed)
    scope = applied(period, segment, breakdown, week_n=week_n, signup_period=signups.words() if signups else None)
    w_sql = week_n_sql(cohorts, emap, dims, week_n)
    grid, m_sql = cohort_matrix(wh, cohorts) if matrix else (pd.DataFrame(), "")
    run = week_n_sql(cohorts, emap, dims, week_n, user_firsts(wh))  # w_sql on the shared firsts: the same rows
    rows = attach_segments(wh.query(run).df, dims) if data_end is not None else pd.DataFrame()
    data = {"week_n": week_n, "applied": scope, "facts": facts(cohorts=(0, "count"))}
    if rows.empty:
        return ToolResult("Retention", f"No users signed up ({_cohort_words(scope)}).", sql=[w_sql], data=data)
    rows = rows[complete_cohorts(rows["cohort"], data_end, week_n)]
    if rows.empty:
        return ToolResult("Retention", f"No weekly cohort ({_cohort_words(scope)}) is old enough for week-{week_n} "
                          "retention yet: its members need 7N+7 days of data after signup.", sql=[w_sql], data=data)
    findings = _dips(wh, rows, rules, week_n, period, w_sql) if rows["cohort"].nunique() > 2 else []
    overall = rows[rows["depth"] == 0].sort_values("cohort")
    rate = overall["x"].sum() / overall["n"].sum() if overall["n"].sum() else 0.0
    data |= {"average": rate, "facts": facts(retention=(rate, "rate"), cohorts=(len(overall), "count"))}
    table, chart = grid.reset_index(names="cohort"), heatmap(grid, "Retention by cohort") if not grid.empty else None
    if breakdown:
        table = data["breakdown"] = by_value(rows, breakdown)
        chart = bar_chart(table[breakdown], table["retention"], f"Week-{week_n} retention by {breakdown}",
                          "retention")
    summary = _words(overall, rate, scope, table if breakdown else None, findings)
    return ToolResult("Retention", summary, table, chart, [q for q in (m_sql, w_sql) if q], findings, data)


def by_value(rows: pd.DataFrame, breakdown: str) -> pd.DataFrame:
    """Users, retained users and week-N retention per value of `breakdown` (users without one are left out),
    over the complete cohorts."""
    one = rows[(rows["depth"] == 1) & rows["segment"].map(lambda s: breakdown in s)]
    out = one.assign(value=one["segment"].map(lambda s: s[breakdown])).groupby("value", as_index=False)[
        ["n", "x"]].sum()
    out = out.rename(columns={"value": breakdown, "n": "users", "x": "retained"})
    out["retention"] = out["retained"] / out["users"]
    return out.sort_values(["users", breakdown], ascending=[False, True], kind="stable").reset_index(drop=True)


def _week(cohort: datetime | str) -> str:
    """A weekly cohort (its Monday, or its ISO week `2026-W36`) as a PM says it: `Aug 31 - Sep 6`."""
    return Period.parse(cohort if isinstance(cohort, str) else f"{cohort:%G-W%V}", None).words()


def _cohort_words(scope: dict) -> str:
    return scope_words(scope) + (f", signed up {scope['signup_period']}" if scope["signup_period"] else "")


def _words(overall: pd.DataFrame, rate: float, scope: dict, by: pd.DataFrame | None, findings: list[Friction]) -> str:
    """Verdict (week-N retention of the users of the complete cohorts), per cohort, per breakdown value, dips;
    then the details: how a dip is found."""
    week, users = scope["week_n"], int(overall["n"].sum())
    text = (f"Week-{week} retention ({_cohort_words(scope)}): {pct(rate)} of {count(users)} users came back "
            f"{7 * week} to {7 * week + 6} days after signing up ({len(overall)} complete weekly cohorts). By cohort: "
            + "; ".join(f"{_week(c)}: {pct(x / n)}" for c, n, x in overall[["cohort", "n", "x"]]
                        .itertuples(index=False) if n) + ". ")
    if by is not None:
        dim = scope["breakdown"]
        text += f"By {dim}: " + "; ".join(f"{r[dim]} {pct(r['retention'])} of {count(r['users'])}"
                                          for _, r in by.head(10).iterrows())
        text += (f"; {len(by) - 10} more" if len(by) > 10 else "") + ". "
    text += ("Dips: " + "; ".join(
        f"{_week(f.segment['cohort'])}"
        + (f" ({segment_text(_dims(f.segment))})" if _dims(f.segment) else "")
        + f": {pct(f.observed)} vs {pct(f.baseline)} for the other cohorts" for f in findings[:5]) + "."
        if findings else "No cohort dips significantly below the others.")
    return text + ("\n\nDetails: a dip is a cohort (or cohort x segment) whose week-N retention, adjusted for calendar "
                   "effects, is significantly below the other cohorts' (two-proportion z-test, Benjamini-Hochberg "
                   "q<0.05, relative gap at least 10%).")


def _dims(segment: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in segment.items() if k != "cohort"}


def calendar_sql(firsts: str | None = None) -> str:
    """Per ISO week and signup cohort of users aged AGES weeks then: cohort size and users active that week;
    `firsts` names a materialized user_firsts relation."""
    lo, hi = AGES
    first = firsts or "(SELECT user_id, min(ts) AS first_ts FROM events GROUP BY 1)"
    return f"""WITH cohorts AS (
    SELECT u.user_id, date_trunc('week', coalesce(u.signed_up_at, f.first_ts)) AS c
    FROM users u LEFT JOIN {first} f USING (user_id)),
sizes AS (SELECT c, count(*) AS population FROM cohorts GROUP BY 1),
active AS (SELECT DISTINCT date_trunc('week', ts) AS w, user_id FROM events)
SELECT a.w, k.c, count(*) AS active, any_value(s.population) AS population
FROM active a JOIN cohorts k USING (user_id) JOIN sizes s USING (c)
WHERE a.w >= k.c + INTERVAL {7 * lo} DAY AND a.w < k.c + INTERVAL {7 * hi} DAY GROUP BY 1, 2"""


def calendar_factors(wh: Warehouse, cohorts: pd.Series, week_n: int) -> pd.Series:
    """Per cohort: how active everyone was, relative to normal, in the weeks its members' week-N windows cover.

    An age-period model of established users (aged AGES weeks): the share of a cohort active in a week, over
    the median share of cohorts of the same age in all weeks, is that week's calendar effect seen by that
    cohort; a week's factor is the median of those over its cohorts (1 where none has MIN_ESTABLISHED users).
    Ageing cancels (each age against its own median), and so does one cohort's quality (a median over
    cohorts). A cohort's members signed up over 7 days, so their windows cover 13 days: 28/49 of them in
    week c+N, 21/49 in week c+N+1. A traffic dip or data still arriving lowers the retention of every cohort
    whose windows it touches, and this factor with it.
    """
    cells = wh.query(calendar_sql(user_firsts(wh))).df
    cells = cells[cells["population"] >= MIN_ESTABLISHED]
    if cells.empty:
        return pd.Series(1.0, index=cohorts.index)
    cells = cells.assign(age=(pd.to_datetime(cells["w"]) - pd.to_datetime(cells["c"])).dt.days // 7,
                         rate=cells["active"] / cells["population"])
    usual = cells.groupby("age")["rate"].transform("median")
    factor = (cells["rate"] / usual).groupby(pd.to_datetime(cells["w"])).median().clip(0.25, 2.0)
    week = pd.Timedelta(days=7)
    out = [(28 * factor.get(c + week_n * week, 1.0) + 21 * factor.get(c + (week_n + 1) * week, 1.0)) / 49
           for c in pd.to_datetime(cohorts)]
    return pd.Series(out, index=cohorts.index)


def _dips(wh: Warehouse, rows: pd.DataFrame, rules: SegmentRules, week_n: int, period: Period,
          sql: str) -> list[Friction]:
    """Each cohort x segment against the other complete cohorts of the same segment, retained counts adjusted
    for calendar effects (see calendar_factors), so a traffic dip is not a dip of the cohorts it touches."""
    factors = calendar_factors(wh, rows["cohort"], week_n)
    rows = rows.assign(x=(rows["x"] / factors).clip(upper=rows["n"]), calendar_factor=factors)
    totals = rows.groupby("seg_key")[["n", "x"]].transform("sum")
    rows = rows.assign(n_rest=totals["n"] - rows["n"], x_rest=totals["x"] - rows["x"],
                       cohort_label=rows["cohort"].map(lambda c: f"{c:%G-W%V}"))
    hits = select(compare(rows, worse="lower"), rules, key="cohort_label", include_total=True)
    weeks = period_weeks(wh, period)
    everyone = rows[rows["depth"] == 0]
    order_rate = float(everyone["converted"].sum() / everyone["x"].sum()) if everyone["x"].sum() else 0.0
    out = []
    for r in hits.itertuples():
        segment = {"cohort": r.cohort_label, **r.segment}
        out.append(Friction(
            kind="retention_dip", title=f"Week-{week_n} retention dipped for the {r.cohort_label} cohort"
            + (f" ({segment_text(r.segment)})" if r.segment else ""),
            metric=f"week_{week_n}_retention", step=None, segment=segment, period=period.label,
            baseline=float(r.rate_rest), observed=float(r.rate), affected_users=int(r.n),
            est_lost_conversions=float(r.lost) * order_rate, p_value=float(r.p_value), evidence_sql=sql,
            weekly_exposed=float(r.n) / weeks, gap=float(r.gap), downstream_rate=order_rate,
            detail={"cohort_size": int(r.n), "retained": round(float(r.x)), "lost_users": float(r.lost),
                    "calendar_factor": round(float(r.calendar_factor), 3)},
        ))
    return out
