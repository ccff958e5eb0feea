"""Search quality (ANALYTICS.md, Search): rates, failing queries and tokens, likely causes."""

from __future__ import annotations

import numpy as np
import pandas as pd

from tools.charts import bar_chart
from tools.period import Period, period_weeks
from tools.result import Friction, ToolResult
from tools.sqltext import lit
from tools.stats import bh, two_proportion_p
from tools.warehouse import Warehouse

MIN_SEARCHES = 30
MIN_RATIO = 1.5
NORMALIZED = ("regexp_replace(lower(trim(regexp_replace(strip_accents(search_query), '\\s+', ' ', 'g'))),"
              " '(\\w{3,})s\\b', '\\1', 'g')")


def searches_sql(period: Period) -> str:
    """One row per search: normalized query, zero result, click within 5 min, exit, reformulation, order."""
    return f"""WITH s AS (
    SELECT event_id, ts, user_id, session_id, search_query, results_count, {NORMALIZED} AS q
    FROM events WHERE event = 'Products Searched' AND search_query IS NOT NULL AND {period.where()}),
clicks AS (SELECT session_id, ts FROM events WHERE event = 'Search Result Clicked'
           AND session_id IN (SELECT session_id FROM s)),
sess AS (SELECT session_id, max(ts) AS last_ts, max(ts) FILTER (WHERE event = 'Order Completed') AS order_ts
         FROM events WHERE session_id IN (SELECT session_id FROM s) GROUP BY session_id),
with_click AS (SELECT s.*, c.ts AS click_ts FROM s ASOF LEFT JOIN clicks c
               ON s.session_id = c.session_id AND s.ts <= c.ts),
nxt AS (SELECT event_id, lead(ts) OVER (PARTITION BY session_id ORDER BY ts, event_id) AS next_search_ts FROM s)
SELECT w.event_id, w.ts, w.user_id, w.session_id, w.q,
       w.results_count = 0 AS zero,
       w.results_count > 0 AND w.click_ts IS NOT NULL AND w.click_ts <= w.ts + INTERVAL 5 MINUTE AS clicked,
       w.ts >= m.last_ts AS exited,
       n.next_search_ts IS NOT NULL AND n.next_search_ts <= w.ts + INTERVAL 60 SECOND AS reformulated,
       m.order_ts IS NOT NULL AND m.order_ts >= w.ts AS ordered
FROM with_click w JOIN sess m USING (session_id) JOIN nxt n USING (event_id)"""


def metrics_sql(period: Period) -> str:
    return f"""WITH searches AS ({searches_sql(period)})
SELECT count(*) AS searches, count(DISTINCT user_id) AS users,
       avg(zero::INT) AS zero_result_rate,
       count(*) FILTER (WHERE NOT zero AND NOT clicked) / nullif(count(*) FILTER (WHERE NOT zero), 0) AS no_click_rate,
       avg(exited::INT) AS exit_rate, avg(reformulated::INT) AS reformulation_rate,
       avg(ordered::INT) FILTER (WHERE NOT zero) AS order_rate_after_results,
       avg(ordered::INT) FILTER (WHERE zero) AS order_rate_after_zero
FROM searches"""


def queries_sql(period: Period) -> str:
    return f"""WITH searches AS ({searches_sql(period)})
SELECT q, count(*) AS n, sum(zero::INT) AS zero, sum(exited::INT) AS exits, count(DISTINCT user_id) AS users
FROM searches GROUP BY q"""


def token_sql(period: Period, token: str) -> str:
    """Evidence for one token: searches containing it, zero-result ones, exits, users."""
    return f"""WITH searches AS ({searches_sql(period)})
SELECT count(*) AS searches, sum(zero::INT) AS zero_results, sum(exited::INT) AS exits,
       count(DISTINCT user_id) AS users, count(DISTINCT user_id) FILTER (WHERE zero) AS users_failed
FROM searches WHERE list_contains(string_split(q, ' '), {lit(token)})"""


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
    """p-values of zero-result and exit rates against the rest, per row."""
    out = frame.copy()
    for metric in ("zero", "exits"):
        rest_n, rest_x = total_n - out["n"], total[metric] - out[metric]
        out[f"p_{metric}"] = two_proportion_p(out[metric], out["n"], rest_x, rest_n)
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
    family = family[family["n"] >= MIN_SEARCHES]
    qv = bh(np.concatenate([family["p_zero"], family["p_exits"]]))
    family["q_zero"], family["q_exits"] = qv[: len(family)], qv[len(family):]
    family["fails"] = ((family["q_zero"] < q) & (family["ratio_zero"] >= MIN_RATIO)) | (
        (family["q_exits"] < q) & (family["ratio_exits"] >= MIN_RATIO))
    candidates = set(family.loc[family["fails"] & (family["level"] == "token"), "key"])
    remaining, picked = queries, []
    while candidates:
        stats = _test(_tokens(remaining), total_n, total)
        stats = stats[stats["token"].isin(candidates) & (stats["n"] >= MIN_SEARCHES)]
        stats = stats[((stats["p_zero"] < q) & (stats["ratio_zero"] >= MIN_RATIO))
                      | ((stats["p_exits"] < q) & (stats["ratio_exits"] >= MIN_RATIO))]
        if stats.empty:
            break
        best = stats.assign(excess=stats["zero"] + stats["exits"]).sort_values("excess").iloc[-1]
        picked.append(best)
        candidates.discard(best["token"])
        remaining = remaining[~remaining["q"].str.split(" ").map(lambda ts: best["token"] in ts)]
    failing_queries = family[family["fails"] & (family["level"] == "query") & family["key"].isin(remaining["q"])]
    return pd.DataFrame(picked), failing_queries.sort_values("zero", ascending=False)


def likely_cause(token: str, good_tokens: set[str]) -> str:
    """`typo` when within edit distance 2 of a token of succeeding queries, else `synonym / catalog gap`."""
    if len(token) >= 4 and any(abs(len(token) - len(g)) <= 2 and edit_distance(token, g) <= 2
                               for g in good_tokens if g != token):
        return "typo"
    return "synonym / catalog gap"


def search(wh: Warehouse, period: Period) -> ToolResult:
    """Search health and the queries and tokens that fail, with their likely cause."""
    m_sql, q_sql = metrics_sql(period), queries_sql(period)
    m = wh.query(m_sql).df.iloc[0]
    if not m["searches"]:
        return ToolResult("Search", f"No searches in period {period.label}.", sql=[m_sql])
    queries = wh.query(q_sql).df
    tokens, bad_queries = failing(queries)
    token_stats = _tokens(queries)
    overall_zero = float(m["zero_result_rate"])
    good = set(token_stats.loc[token_stats["zero"] / token_stats["n"] <= overall_zero, "token"])
    weeks = period_weeks(wh, period)
    after = float(m["order_rate_after_results"] or 0.0)
    findings, sql = [], [m_sql, q_sql]
    for t in tokens.itertuples():
        ev_sql = token_sql(period, t.token)
        ev = wh.query(ev_sql).df.iloc[0]
        examples = queries[queries["q"].str.split(" ").map(lambda ts, tok=t.token: tok in ts)]
        examples = examples.sort_values("zero", ascending=False)["q"].head(5).tolist()
        findings.append(_finding(t.token, "search_token", ev, overall_zero, after, weeks, period,
                                 likely_cause(t.token, good), examples, ev_sql, float(min(t.p_zero, t.p_exits))))
        sql.append(ev_sql)
    for row in bad_queries.head(10).itertuples():
        ev = pd.Series({"searches": row.n, "zero_results": row.zero, "exits": row.exits,
                        "users_failed": row.users, "users": row.users})
        cause = "typo" if any(likely_cause(tok, good) == "typo" for tok in row.q.split(" ") if tok not in good) \
            else "synonym / catalog gap"
        findings.append(_finding(row.q, "search_query", ev, overall_zero, after, weeks, period, cause, [row.q],
                                 q_sql + f"\n-- filter: q = {lit(row.q)}", float(min(row.p_zero, row.p_exits))))
    table = pd.DataFrame([{"failing": f.segment.get("search_token") or f.segment.get("search_query"),
                           "level": next(iter(f.segment)), "searches": f.detail["searches"],
                           "zero_result_rate": f.observed, "cause": f.detail["cause"],
                           "examples": ", ".join(f.detail["examples"])} for f in findings])
    summary = (f"Search (period {period.label}): {int(m['searches'])} searches by {int(m['users'])} users; "
               f"zero-result rate {overall_zero:.1%}, no-click rate {float(m['no_click_rate'] or 0):.1%}, "
               f"exit rate {float(m['exit_rate']):.1%}, reformulation rate {float(m['reformulation_rate']):.1%}. ")
    summary += ("Failing: " + "; ".join(
        f"'{f.segment.get('search_token') or f.segment.get('search_query')}' ({f.detail['cause']}, "
        f"{f.observed:.0%} zero results over {f.detail['searches']} searches)" for f in findings[:5])
        if findings else "No query or token fails significantly more than the rest.")
    chart = bar_chart(table["failing"], table["zero_result_rate"], "Zero-result rate of failing searches",
                      "zero-result rate", baseline=overall_zero) if findings else None
    data = {k: (None if pd.isna(v) else float(v)) for k, v in m.items()}
    return ToolResult("Search", summary, table, chart, sql, findings, data)


def _finding(what: str, level: str, ev: pd.Series, overall_zero: float, order_after: float, weeks: float,
             period: Period, cause: str, examples: list[str], evidence_sql: str, p_value: float) -> Friction:
    n, zero = int(ev["searches"]), int(ev["zero_results"])
    rate = zero / n if n else 0.0
    gap = max(rate - overall_zero, 0.0)
    tweak_hint = "typo tolerance" if cause == "typo" else "synonyms or catalog coverage"
    return Friction(
        kind="failed_search", title=f"Searches for '{what}' fail ({cause}): needs {tweak_hint}",
        metric="zero_result_rate", step="Products Searched", segment={level: what}, period=period.label,
        baseline=overall_zero, observed=rate, affected_users=int(ev["users_failed"]),
        est_lost_conversions=float(zero * order_after), p_value=p_value, evidence_sql=evidence_sql,
        weekly_exposed=n / weeks, gap=gap, downstream_rate=order_after,
        detail={"searches": n, "zero_results": zero, "exits": int(ev["exits"]), "cause": cause,
                "examples": examples},
    )
