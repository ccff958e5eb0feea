"""Search quality (ANALYTICS.md, Search): rates, failing queries and tokens, likely causes."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from tools.charts import bar_chart
from tools.distinct_users import distinct_users
from tools.format import count, pct
from tools.funnel import NOT_SET, check_scope
from tools.period import Period, period_weeks
from tools.result import Friction, ToolResult, applied, facts, scope_words
from tools.semantic.eventmap import EventMap, SegmentValue
from tools.semantic.fields import parse_field
from tools.sqltext import lit
from tools.stats import bh, testable, two_proportion_p
from tools.warehouse import Warehouse

if TYPE_CHECKING:
    import pyarrow as pa

MIN_RATIO = 2.0
CLICK_S = 300       # a click within 5 minutes of a search is its click
REFORMULATE_S = 60  # another search within 60 s reformulates it
NORMALIZED = ("regexp_replace(lower(trim(regexp_replace(strip_accents(search_query), '\\s+', ' ', 'g'))),"
              " '(\\w{3,})s\\b', '\\1', 'g')")


class SearchError(ValueError):
    """The event map has no search role with a query field."""


def breakdown_value(emap: EventMap, breakdown: str | None) -> tuple[str, str]:
    """(SQL of a breakdown dimension's value on an events row, the join it needs): an event dimension is read
    on the row, a user dimension through a join on user_id; an unset value is `(not set)`, and every value
    NULL without a breakdown."""
    if breakdown is None:
        return "NULL::VARCHAR", ""
    if breakdown in emap.user_dims:
        return f"coalesce(bu.by_value, {lit(NOT_SET)})", (f" LEFT JOIN (SELECT user_id, {emap.dim_sql(breakdown)}"
                                                           "::VARCHAR AS by_value FROM users) bu USING (user_id)")
    return f"coalesce({emap.dim_sql(breakdown)}::VARCHAR, {lit(NOT_SET)})", ""


def searches_cte(period: Period, emap: EventMap, segment: dict[str, SegmentValue] | None = None,
                 breakdown: str | None = None) -> str:
    """`s`: the segment's searches in the period (ts, event_id, user_id, session_id, results_count, normalized query
    q, by_value), after the CTEs that read them (no leading WITH)."""
    search = emap.roles.search
    if search is None or not search.query:
        raise SearchError("search analysis needs the event map's search role with its query field "
                          "(`insight map` shows the map)")
    query = parse_field(search.query).sql()
    results = parse_field(search.results).sql(cast="BIGINT") if search.results else "NULL::BIGINT"
    by_value, join = breakdown_value(emap, breakdown)
    return f"""raw AS MATERIALIZED (
    SELECT ts, event_id, user_id, session_id, {results} AS results_count, {query} AS search_query,
           {by_value} AS by_value
    FROM events{join} WHERE event = {lit(search.event)} AND {query} IS NOT NULL AND {period.where()}
      AND {emap.segment_where(segment or {})}),
norm AS MATERIALIZED (SELECT search_query, {NORMALIZED} AS q FROM (SELECT DISTINCT search_query FROM raw) d),
s AS MATERIALIZED (SELECT raw.ts, raw.event_id, raw.user_id, raw.session_id, raw.results_count, norm.q, raw.by_value
                   FROM raw JOIN norm ON norm.search_query = raw.search_query)"""


def searches_sql(period: Period, emap: EventMap, segment: dict[str, SegmentValue] | None = None,
                 breakdown: str | None = None) -> str:
    """One row per search of the segment: normalized query, zero result, click within 5 min, exit, reformulation,
    order, and the breakdown dimension's value on the search (`by_value`).

    Click, exit, reformulation and order need a session; a search without one counts as none of them.
    Without a results-count field no search counts as zero-result; without a click or order role, none
    as clicked or ordered (the tool then reports those rates as not measured). The DuckDB path computes the
    same rows without the window (tools/search_engine.py).
    """
    click, ordered = emap.event_of("search_click"), emap.event_of("order")
    order = "PARTITION BY session_id ORDER BY ts, is_click, event_id"
    return f"""WITH {searches_cte(period, emap, segment, breakdown)},
clicks AS (SELECT session_id, ts FROM events WHERE event = {lit(click) if click else 'NULL'}
           AND session_id IN (SELECT session_id FROM s)),
-- searches and clicks of a session in time order (a click at a search's time after it): the next click and
-- the next search after each search
marked AS (SELECT * FROM (
    SELECT *, lead(click_ts IGNORE NULLS) OVER ({order}) AS next_click_ts,
              lead(search_ts IGNORE NULLS) OVER ({order}) AS next_search_ts
    FROM (SELECT s.*, 0 AS is_click, NULL AS click_ts, ts AS search_ts FROM s
          UNION ALL SELECT ts, NULL, NULL, session_id, NULL, NULL, NULL, 1, ts, NULL FROM clicks) u) w
    WHERE is_click = 0),
sess AS (SELECT session_id, max(ts) AS last_ts,
                max(CASE WHEN event = {lit(ordered) if ordered else 'NULL'} THEN ts END) AS order_ts
         FROM events WHERE session_id IN (SELECT session_id FROM s) GROUP BY session_id)
SELECT w.ts, w.user_id, w.session_id, w.q, w.by_value,
       coalesce(w.results_count = 0, FALSE) AS zero,
       w.results_count > 0 AND w.session_id IS NOT NULL AND w.next_click_ts IS NOT NULL
           AND w.next_click_ts <= w.ts + INTERVAL {CLICK_S} SECOND AS clicked,
       coalesce(w.ts >= m.last_ts, FALSE) AS exited,
       w.session_id IS NOT NULL AND w.next_search_ts IS NOT NULL
           AND w.next_search_ts <= w.ts + INTERVAL {REFORMULATE_S} SECOND AS reformulated,
       coalesce(m.order_ts >= w.ts, FALSE) AS ordered
FROM marked w LEFT JOIN sess m ON m.session_id = w.session_id"""


STATS = """count(*) AS n, sum(zero::INT) AS zero, sum(exited::INT) AS exits, count(DISTINCT user_id) AS users,
       count(*) FILTER (WHERE NOT zero) AS with_results, count(*) FILTER (WHERE NOT zero AND NOT clicked) AS no_click,
       sum(reformulated::INT) AS reformulated,
       sum(ordered::INT) FILTER (WHERE NOT zero) AS ordered_after_results,
       sum(ordered::INT) FILTER (WHERE zero) AS ordered_after_zero"""


def stats_sql(source: str) -> str:
    """Overall (q NULL, everyone = TRUE) and per normalized query: counts behind every search rate."""
    return f"SELECT q, GROUPING(q) = 1 AS everyone, {STATS} FROM {source} GROUP BY GROUPING SETS ((), (q))"


def token_sql(searches: str, token: str) -> str:
    """Evidence for one token over `searches` (searches_sql): searches containing it, zero-result ones, exits,
    users."""
    return f"""WITH searches AS ({searches})
SELECT count(*) AS searches, sum(zero::INT) AS zero_results, sum(exited::INT) AS exits,
       count(DISTINCT user_id) AS users, count(DISTINCT user_id) FILTER (WHERE zero) AS users_failed
FROM searches WHERE {_has_token(token)}"""


def _has_token(token: str) -> str:
    return f"list_contains(string_split(q, ' '), {lit(token)})"


def edit_distance(a: str, b: str) -> int:
    """Levenshtein distance.

    >>> edit_distance("headphnes", "headphones")
    1
    """
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


def _tokens(queries: pd.DataFrame) -> pd.DataFrame:
    """Per token: searches, zero results and exits summed over the queries containing it."""
    rows = queries.assign(token=queries["q"].str.split(" ")).explode("token")
    rows = rows[rows["token"].str.len() > 0].drop_duplicates(["q", "token"])
    return rows.groupby("token", as_index=False)[["n", "zero", "exits"]].sum()


def _test(frame: pd.DataFrame, total_n: float, total: dict[str, float]) -> pd.DataFrame:
    """p-values of zero-result and exit rates against the rest, per row; 1 where a row has too few searches
    for the test (`tools.stats.testable`), and `supported` where either rate can be tested."""
    out = frame.copy()
    out["supported"] = False
    for metric in ("zero", "exits"):
        rest_n, rest_x = total_n - out["n"], total[metric] - out[metric]
        ok = testable(out[metric], out["n"], rest_x, rest_n)
        out["supported"] |= ok
        out[f"p_{metric}"] = np.where(ok, two_proportion_p(out[metric], out["n"], rest_x, rest_n), 1.0)
        with np.errstate(divide="ignore", invalid="ignore"):
            out[f"ratio_{metric}"] = (out[metric] / out["n"]) / (rest_x / rest_n)
    return out


def failing(queries: pd.DataFrame, q: float = 0.05) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Failing tokens (greedy, each explaining away its queries) and remaining failing queries."""
    total_n = float(queries["n"].sum())
    total = {m: float(queries[m].sum()) for m in ("zero", "exits")}
    tokens = _test(_tokens(queries), total_n, total).assign(level="token", key=lambda d: d["token"])
    single = _test(queries, total_n, total).assign(level="query", key=lambda d: d["q"])
    family = pd.concat([tokens, single], ignore_index=True)
    family = family[family["supported"]]
    qv = bh(np.concatenate([family["p_zero"], family["p_exits"]]))
    family["q_zero"], family["q_exits"] = qv[: len(family)], qv[len(family):]
    family["fails"] = ((family["q_zero"] < q) & (family["ratio_zero"] >= MIN_RATIO)) | (
        (family["q_exits"] < q) & (family["ratio_exits"] >= MIN_RATIO))
    candidates = set(family.loc[family["fails"] & (family["level"] == "token"), "key"])
    remaining, picked = queries, []
    while candidates:
        stats = _test(_tokens(remaining), total_n, total)
        stats = stats[stats["token"].isin(candidates) & stats["supported"]]
        stats = stats[((stats["p_zero"] < q) & (stats["ratio_zero"] >= MIN_RATIO))
                      | ((stats["p_exits"] < q) & (stats["ratio_exits"] >= MIN_RATIO))]
        if stats.empty:
            break
        best = stats.assign(excess=stats["zero"] + stats["exits"]).sort_values("excess").iloc[-1]
        picked.append(best)
        candidates.discard(best["token"])
        token = best["token"]
        remaining = remaining[~remaining["q"].str.split(" ").map(lambda ts, t=token: t in ts)]
    failing_queries = family[family["fails"] & (family["level"] == "query") & family["key"].isin(remaining["q"])]
    return pd.DataFrame(picked), failing_queries.sort_values("zero", ascending=False)


def likely_cause(token: str, good_tokens: set[str]) -> str:
    """`typo` when within edit distance 2 of a token of succeeding queries, else `synonym / catalog gap`."""
    if len(token) >= 4 and any(abs(len(token) - len(g)) <= 2 and edit_distance(token, g) <= 2
                               for g in good_tokens if g != token):
        return "typo"
    return "synonym / catalog gap"


def _engine(wh: Warehouse, period: Period, emap: EventMap, segment: dict[str, SegmentValue] | None,
            breakdown: str | None) -> Callable[[], pa.Table] | None:
    """How DuckDB computes the search rows (tools/search_engine.py); other engines run the SQL."""
    if wh.dialect != "duckdb":
        return None
    from tools.search_engine import search_rows

    return lambda: search_rows(wh, period, emap, segment, breakdown)


def search(wh: Warehouse, period: Period, segment: dict[str, SegmentValue] | None = None,
           breakdown: str | None = None) -> ToolResult:
    """Search health of a segment's searches (optionally per value of a dimension), and the queries and tokens
    that fail, with their likely cause."""
    emap, segment = wh.event_map, segment or {}
    check_scope(emap, segment, breakdown)
    sql = searches_sql(period, emap, segment, breakdown)
    rows = wh.materialize("search_rows", sql, _engine(wh, period, emap, segment, breakdown))
    stats = wh.query(stats_sql(rows)).df
    everyone = stats[stats["everyone"]]
    evidence = f"WITH searches AS ({sql})\n{stats_sql('searches')}"
    scope = applied(period, segment, breakdown)
    if everyone.empty or not everyone["n"].iloc[0]:
        return ToolResult("Search", f"No searches ({scope_words(scope)}).", sql=[evidence],
                          data={"applied": scope, "facts": facts(searches=(0, "count"))})
    m = everyone.iloc[0]
    queries = stats[~stats["everyone"]].reset_index(drop=True)
    measured = _measured(emap)
    rates = _rates(m, measured)
    findings = _failing_findings(wh, rows, queries, m, period, sql, evidence)
    table = pd.DataFrame([{"failing": f.segment.get("search_token") or f.segment.get("search_query"),
                           "level": next(iter(f.segment)), "searches": f.detail["searches"],
                           "zero_result_rate": f.observed, "cause": f.detail["cause"],
                           "examples": ", ".join(f.detail["examples"])} for f in findings])
    chart = bar_chart(table["failing"], table["zero_result_rate"], "Zero-result rate of failing searches",
                      "zero-result rate", baseline=float(m["zero"] / m["n"])) if findings else None
    by = _by_value(wh, rows, breakdown, measured) if breakdown else pd.DataFrame()
    data = {**rates, "applied": scope, "facts": facts(zero_result_rate=(rates["zero_result_rate"], "rate"),
                                                      no_click_rate=(rates["no_click_rate"], "rate"),
                                                      searches=(rates["searches"], "count"))}
    if breakdown:
        data["breakdown"] = by
        table = by
        chart = bar_chart(by[breakdown], by["zero_result_rate" if measured["zero"] else "exit_rate"],
                          f"Search by {breakdown}", "zero-result rate" if measured["zero"] else "exit rate")
    summary = _words(rates, measured, scope, by, findings)
    return ToolResult("Search", summary, table, chart, [evidence], findings, data)


def _measured(emap: EventMap) -> dict[str, bool]:
    """Which rates the event map lets this analysis measure: zero results (a results-count field), clicks."""
    return {"zero": emap.roles.search.results is not None, "clicks": emap.event_of("search_click") is not None}


def _rates(m: pd.Series, measured: dict[str, bool]) -> dict[str, float | int | None]:
    """Every search rate of one stats row (everyone, or one breakdown value); None where not measured."""
    n, with_results, zero = float(m["n"]), float(m["with_results"]), float(m["zero"])
    return {"searches": int(n), "users": int(m["users"]),
            "zero_result_rate": zero / n if measured["zero"] else None,
            "no_click_rate": (float(m["no_click"]) / with_results if with_results else 0.0)
            if measured["clicks"] else None,
            "exit_rate": float(m["exits"]) / n, "reformulation_rate": float(m["reformulated"]) / n,
            "order_rate_after_results": float(m["ordered_after_results"] or 0) / with_results if with_results else 0.0,
            "order_rate_after_zero": float(m["ordered_after_zero"] or 0) / zero if zero else 0.0}


def _by_value(wh: Warehouse, rows: str, breakdown: str, measured: dict[str, bool]) -> pd.DataFrame:
    """Searches, users and rates per value of the breakdown, most searches first."""
    df = wh.query(f"SELECT by_value, {STATS} FROM {rows} GROUP BY by_value").df
    out = pd.DataFrame([{breakdown: r["by_value"],
                         **{k: v for k, v in _rates(r, measured).items() if not k.startswith("order_")}}
                        for _, r in df.iterrows()])
    return out.sort_values(["searches", breakdown], ascending=[False, True], kind="stable").reset_index(drop=True)


def _failing_findings(wh: Warehouse, rows: str, queries: pd.DataFrame, m: pd.Series, period: Period, sql: str,
                      evidence: str) -> list[Friction]:
    """Failing tokens, then failing queries (at most 10), each with its likely cause and evidence."""
    emap = wh.event_map
    tokens, bad_queries = failing(queries)
    overall_zero = float(m["zero"] / m["n"])
    token_stats = _test(_tokens(queries), float(queries["n"].sum()),
                        {x: float(queries[x].sum()) for x in ("zero", "exits")})
    good = set(token_stats.loc[token_stats["supported"]
                               & (token_stats["zero"] / token_stats["n"] < MIN_RATIO * overall_zero), "token"])
    weeks = period_weeks(wh, period)
    after = float(m["ordered_after_results"] or 0) / float(m["with_results"]) if m["with_results"] else 0.0
    token_users = _token_users(wh, rows, list(tokens["token"]) if not tokens.empty else [])
    findings = []
    for t, users in zip(tokens.itertuples(), token_users):
        examples = queries[queries["q"].str.split(" ").map(lambda ts, tok=t.token: tok in ts)]
        examples = examples.sort_values(["zero", "q"], ascending=[False, True])["q"].head(5).tolist()
        counts = {"searches": int(t.n), "zero_results": int(t.zero), "exits": int(t.exits), "users_failed": users}
        findings.append(_finding(t.token, "search_token", counts, overall_zero, after, weeks, period, emap,
                                 likely_cause(t.token, good), examples, token_sql(sql, t.token),
                                 float(min(t.p_zero, t.p_exits))))
    for row in bad_queries.head(10).itertuples():
        counts = {"searches": int(row.n), "zero_results": int(row.zero), "exits": int(row.exits),
                  "users_failed": int(row.users)}
        cause = "typo" if any(likely_cause(tok, good) == "typo" for tok in row.q.split(" ") if tok not in good) \
            else "synonym / catalog gap"
        findings.append(_finding(row.q, "search_query", counts, overall_zero, after, weeks, period, emap, cause,
                                 [row.q],
                                 evidence + f"\n-- row: q = {lit(row.q)}", float(min(row.p_zero, row.p_exits))))
    return findings


def _words(rates: dict, measured: dict[str, bool], scope: dict, by: pd.DataFrame, findings: list[Friction]) -> str:
    """Verdict (the zero-result rate of the searches in scope), the other rates, the breakdown, the failing
    searches; then the details: how a failing search is found."""
    n = count(rates["searches"])
    head = (f"{pct(rates['zero_result_rate'])} of {n} searches returned no results" if measured["zero"]
            else f"{n} searches; zero-result rate not measured")
    clicks = (f"{pct(rates['no_click_rate'])} of those with results got no click" if measured["clicks"]
              else "no-click rate not measured")
    text = (f"Search ({scope_words(scope)}): {head}; {clicks}; {pct(rates['exit_rate'])} ended the session and "
            f"{pct(rates['reformulation_rate'])} were followed by another search within a minute "
            f"({count(rates['users'])} users searched). ")
    text += "".join(f"{what} not measured: the event map has no {need}. " for what, need, ok in (
        ("Zero results", "results-count field on the search role", measured["zero"]),
        ("Clicks", "search_click role", measured["clicks"])) if not ok)
    if not by.empty:
        dim = scope["breakdown"]
        rate, what = ("zero_result_rate", "with no results") if measured["zero"] else (
            "exit_rate", "ending the session")
        text += f"By {dim} (share of its searches {what}): " + "; ".join(
            f"{r[dim]} {pct(r[rate])} of {count(r['searches'])}" for _, r in by.head(8).iterrows())
        text += (f"; {len(by) - 8} more" if len(by) > 8 else "") + ". "
    text += ("Failing: " + "; ".join(
        f"'{f.segment.get('search_token') or f.segment.get('search_query')}' ({f.detail['cause']}, "
        f"{pct(f.observed)} zero results over {count(f.detail['searches'])} searches)" for f in findings[:5]) + "."
        if findings else "No query or token fails significantly more than the rest.")
    return text + (f"\n\nDetails: a query or token fails when its zero-result or exit rate is at least "
                   f"{MIN_RATIO:g}x the rest's and significantly above it (two-proportion z-test, "
                   "Benjamini-Hochberg q<0.05).")


def _token_users(wh: Warehouse, rows: str, tokens: list[str]) -> list[int]:
    """Distinct users with a zero-result search containing each token, in one query."""
    return distinct_users(wh, "", rows, [_has_token(t) for t in tokens], where="zero")


def _finding(what: str, level: str, ev: dict, overall_zero: float, order_after: float, weeks: float,
             period: Period, emap: EventMap, cause: str, examples: list[str], evidence_sql: str,
             p_value: float) -> Friction:
    n, zero = int(ev["searches"]), int(ev["zero_results"])
    rate = zero / n if n else 0.0
    gap = max(rate - overall_zero, 0.0)
    tweak_hint = "typo tolerance" if cause == "typo" else "synonyms or catalog coverage"
    return Friction(
        kind="failed_search", title=f"Searches for '{what}' fail ({cause}): needs {tweak_hint}",
        metric="zero_result_rate", step=emap.event_of("search"), segment={level: what}, period=period.label,
        baseline=overall_zero, observed=rate, affected_users=int(ev["users_failed"]),
        est_lost_conversions=float(zero * order_after), p_value=p_value, evidence_sql=evidence_sql,
        weekly_exposed=n / weeks, gap=gap, downstream_rate=order_after,
        detail={"searches": n, "zero_results": zero, "exits": int(ev["exits"]), "cause": cause,
                "examples": examples},
    )
