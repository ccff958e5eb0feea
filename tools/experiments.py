"""A/B tests (ANALYTICS.md, Experiments): conversion per variant, lift with CI, SRM."""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd

from tools.charts import bar_chart
from tools.format import change, count, p_value, pct
from tools.funnel import check_scope
from tools.period import Period, period_weeks
from tools.result import Friction, ToolResult, applied, facts, scope_words
from tools.semantic.eventmap import EventMap, SegmentValue
from tools.sqltext import lit
from tools.stats import relative_lift, srm_p
from tools.warehouse import Warehouse

SRM_P = 0.001
LOSER_P = 0.05
CONTROL_NAMES = ("control", "baseline", "a", "original")


def users_of(emap: EventMap, segment: Mapping[str, SegmentValue], alias: str) -> list[str]:
    """SQL conditions on a row's user_id (under `alias`): the segment's user dimensions from the users table, its
    event dimensions on any of the user's events; none for everyone."""
    on_events = {d: v for d, v in segment.items() if d in emap.event_dims}
    on_users = {d: v for d, v in segment.items() if d not in on_events}
    return ([emap.segment_where(on_users, alias)] if on_users else []) + (
        [f"{alias}.user_id IN (SELECT user_id FROM events WHERE {emap.segment_where(on_events)})"] if on_events else [])


def variants_sql(period: Period, experiment_id: str | None = None, emap: EventMap | None = None,
                 segment: Mapping[str, SegmentValue] | None = None) -> str:
    """Per experiment running in the period and variant: users assigned (of the segment: see users_of), users
    converting (primary metric after their assignment to that variant, before the end), and the share of the
    experiment's run inside the period. One row per (experiment, variant, user) carries both counts."""
    run_end = "coalesce(x.ended_at, (SELECT max(ts) FROM events))"
    overlap = [f"{run_end} > TIMESTAMP '{period.start:%Y-%m-%d %H:%M:%S}'"] if period.start else []
    overlap += [f"x.started_at < TIMESTAMP '{period.end:%Y-%m-%d %H:%M:%S}'"] if period.end else []
    if experiment_id:
        overlap.append(f"x.experiment_id = {lit(experiment_id)}")
    if segment:
        overlap += users_of(emap, segment, "a")
    only = "WHERE " + " AND ".join(overlap) if overlap else ""
    lo = f"greatest(x.started_at, TIMESTAMP '{period.start:%Y-%m-%d %H:%M:%S}')" if period.start else "x.started_at"
    hi = f"least({run_end}, TIMESTAMP '{period.end:%Y-%m-%d %H:%M:%S}')" if period.end else run_end
    return f"""WITH a AS (
    SELECT a.experiment_id, a.user_id, a.variant, a.assigned_at, x.primary_metric, x.started_at, x.ended_at
    FROM assignments a JOIN experiments x USING (experiment_id) {only}),
conv AS (
    SELECT a.experiment_id, a.variant, a.user_id, bool_or(e.event IS NOT NULL) AS converted
    FROM a LEFT JOIN events e ON e.user_id = a.user_id AND e.event = a.primary_metric
        AND e.ts >= coalesce(a.assigned_at, a.started_at) AND (a.ended_at IS NULL OR e.ts < a.ended_at)
    GROUP BY ALL)
SELECT c.experiment_id, any_value(x.name) AS name, any_value(x.primary_metric) AS primary_metric, c.variant,
       count(*) AS users, count(*) FILTER (WHERE c.converted) AS converted,
       any_value(greatest(epoch({hi}) - epoch({lo}), 0) / nullif(epoch({run_end}) - epoch(x.started_at), 0))
           AS share_in_period
FROM conv c JOIN experiments x USING (experiment_id)
GROUP BY c.experiment_id, c.variant ORDER BY c.experiment_id, c.variant"""


def _control(variants: list[str]) -> str:
    for v in variants:
        if v.lower() in CONTROL_NAMES:
            return v
    return sorted(variants)[0]


def analyze(df: pd.DataFrame) -> pd.DataFrame:
    """Add rate, lift vs control, CI, p-value and the experiment's SRM p-value to per-variant rows."""
    rows = []
    for exp_id, g in df.groupby("experiment_id", sort=True):
        control = _control(list(g["variant"]))
        c = g[g["variant"] == control].iloc[0]
        srm = srm_p(g["users"].to_numpy())
        for r in g.itertuples():
            lift, p, ci = (0.0, 1.0, (0.0, 0.0)) if r.variant == control else \
                relative_lift(int(c["converted"]), int(c["users"]), int(r.converted), int(r.users))
            rows.append({"experiment_id": exp_id, "name": r.name, "primary_metric": r.primary_metric,
                         "variant": r.variant, "is_control": r.variant == control, "users": int(r.users),
                         "converted": int(r.converted), "rate": r.converted / r.users if r.users else 0.0,
                         "lift": lift, "ci_low": ci[0], "ci_high": ci[1], "p_value": p, "srm_p": srm,
                         "share_in_period": _share(getattr(r, "share_in_period", 1.0))})
    return pd.DataFrame(rows)


def _share(value: object) -> float:
    """The part of an experiment's run inside the period, in [0, 1] (1 when unknown)."""
    return 1.0 if value is None or value != value else min(max(float(value), 0.0), 1.0)


def experiments(wh: Warehouse, period: Period, experiment_id: str | None = None,
                segment: Mapping[str, SegmentValue] | None = None) -> ToolResult:
    """Every experiment (or one), over the users of `segment`: variants, lift with 95% CI and p-value,
    sample-ratio mismatch."""
    emap, segment = wh.event_map, segment or {}
    check_scope(emap, segment)
    sql = variants_sql(period, experiment_id, emap, segment)
    table = analyze(wh.query(sql).df)
    scope = applied(period, segment, experiment_id=experiment_id)
    if table.empty:
        return ToolResult("Experiments", "No experiment assignments in the data" +
                          (f" for {experiment_id!r}" if experiment_id else "") + f" ({scope_words(scope)}).",
                          sql=[sql], data={"applied": scope, "facts": {}})
    weeks = period_weeks(wh, period)
    findings, lines, details = [], [], []
    for exp_id, g in table.groupby("experiment_id", sort=True):
        control = g[g["is_control"]].iloc[0]
        srm = float(g["srm_p"].iloc[0])
        lines.append(_verdict(g, control, srm))
        details.append(f"{exp_id}: " + "; ".join(
            f"{r.variant} {change(r.lift)} (95% CI {change(r.ci_low)} to {change(r.ci_high)}, {p_value(r.p_value)})"
            for r in g[~g["is_control"]].itertuples()) + f"; sample ratio {p_value(srm)}")
        if srm < SRM_P:
            worst = g.assign(dev=(g["users"] - g["users"].mean()).abs()).sort_values("dev").iloc[-1]
            findings.append(_srm_finding(g, worst, srm, period, sql))
            continue
        for r in g[~g["is_control"]].itertuples():
            if r.p_value < LOSER_P and r.lift < 0:
                findings.append(_loser_finding(r, control, weeks, period, sql))
    first = table[~table["is_control"]].head(1)
    data = {"applied": scope, "facts": facts(lift=(first["lift"].iloc[0] if len(first) else None, "change"),
                                             p_value=(first["p_value"].iloc[0] if len(first) else None, "p_value"))}
    summary = (f"Experiments ({scope_words(scope)}): " + " ".join(lines) + "\n\nDetails: lift is relative to "
               "control, with a 95% delta-method confidence interval and a two-sided z-test; a sample ratio "
               f"mismatch (chi-square p<{SRM_P:g}) means the lift is not interpreted. " + "; ".join(details) + ".")
    chart = bar_chart([f"{r.experiment_id}:{r.variant}" for r in table.itertuples()], table["rate"],
                      "Conversion per variant", "conversion")
    return ToolResult("Experiments", summary, table, chart, [sql], findings, data)


def _verdict(g: pd.DataFrame, control: pd.Series, srm: float) -> str:
    """One experiment in a sentence: each variant wins, loses or shows no significant difference against control,
    with both rates and users; or its sample ratio mismatch."""
    head = f"{g['experiment_id'].iloc[0]} ({g['name'].iloc[0]}):"
    sizes = ", ".join(f"{r.variant} {count(r.users)}" for r in g.itertuples())
    if srm < SRM_P:
        return f"{head} sample ratio mismatch (users assigned: {sizes}), so the lift is not interpreted."
    parts = []
    for r in g[~g["is_control"]].itertuples():
        outcome = ("loses" if r.lift < 0 else "wins") if r.p_value < LOSER_P else "shows no significant difference"
        parts.append(f"{r.variant} {outcome}, {change(r.lift)} on {r.primary_metric} ({pct(r.rate)} of its users "
                     f"vs {pct(control['rate'])} of {control['variant']}'s did it after assignment)")
    return f"{head} " + "; ".join(parts) + f"; users assigned: {sizes}."


def _srm_finding(g: pd.DataFrame, worst, srm: float, period: Period, sql: str) -> Friction:
    expected = float(g["users"].mean())
    return Friction(
        kind="experiment_srm", title=f"Sample ratio mismatch in {worst.experiment_id}: {worst.variant} has "
        f"{count(int(worst.users))} users, {count(round(expected))} expected", metric="assigned_users",
        segment={"experiment_id": worst.experiment_id, "variant": worst.variant}, period=period.label,
        baseline=expected, observed=float(worst.users),
        affected_users=round(int(g["users"].sum()) * worst.share_in_period),
        est_lost_conversions=0.0, p_value=srm, evidence_sql=sql,
        detail={"experiment": worst["name"], "counts": dict(zip(g["variant"], g["users"].astype(int)))},
    )


def _loser_finding(r, control: pd.Series, weeks: float, period: Period, sql: str) -> Friction:
    """A losing variant; its users and losses are counted for the part of its run inside the period."""
    share = r.share_in_period
    lost = r.users * (control["rate"] - r.rate) * share
    return Friction(
        kind="experiment_loser", title=f"Variant {r.variant} of {r.experiment_id} loses: {change(r.lift)} "
        f"{r.primary_metric}",
        metric="conversion", step=r.primary_metric, segment={"experiment_id": r.experiment_id, "variant": r.variant},
        period=period.label, baseline=float(control["rate"]), observed=float(r.rate),
        affected_users=round(r.users * share), est_lost_conversions=float(lost), p_value=float(r.p_value),
        ci=(float(r.ci_low), float(r.ci_high)), evidence_sql=sql, weekly_exposed=float(r.users * share / weeks),
        gap=float(control["rate"] - r.rate),
        detail={"experiment": r.name, "lift": float(r.lift), "control": str(control["variant"])},
    )
