"""From findings to ranked suggestions (ANALYTICS.md, Prioritization): merge, RICE, opportunity."""

from __future__ import annotations

import re

from prompts import PromptError, load_yaml, placeholders
from tools.format import count, pct
from tools.period import Period, PeriodError, period_weeks
from tools.result import Friction, Suggestion, Uplift, segment_text
from tools.semantic.eventmap import EventMap
from tools.sqltext import lit
from tools.warehouse import Warehouse

MIN_EFFORT = 0.5
# When findings describe the same problem, the more specific kind is kept.
SPECIFICITY = ("release_regression", "error_spike", "slow_page", "experiment_srm", "experiment_loser",
               "failed_search", "retention_dip", "tracking_issue", "funnel_dropoff", "cart_abandonment")
CAUSES_NEXT_STEP = {"error_spike", "slow_page"}


def impact_tier(share: float) -> float:
    """RICE impact from the share of weekly conversions a friction costs."""
    for limit, tier in ((0.10, 3.0), (0.05, 2.0), (0.02, 1.0), (0.005, 0.5)):
        if share >= limit:
            return tier
    return 0.25


def confidence(f: Friction) -> float:
    """100% when p < 0.001 with >= 1,000 users affected, 80% when p < 0.05, else 50%."""
    if f.p_value is not None and f.p_value < 0.001 and f.affected_users >= 1000:
        return 1.0
    if f.p_value is not None and f.p_value < 0.05:
        return 0.8
    return 0.5


def _nested(a: dict, b: dict) -> bool:
    return a.items() <= b.items() or b.items() <= a.items()


def _overlap(a: dict, b: dict) -> bool:
    return _nested(a, b) or bool(a.items() & b.items())


def _next_step(step: str | None, steps: tuple[str, ...]) -> str | None:
    return steps[steps.index(step) + 1] if step in steps[:-1] else None


def same_problem(keep: Friction, other: Friction, steps: tuple[str, ...], after_add: tuple[str, ...]) -> bool:
    """Does `keep` (the more specific or larger finding) explain `other`? `after_add` are the funnel steps
    after the cart add, where cart abandonment shows."""
    if keep.kind == other.kind == "tracking_issue":
        return False  # each broken piece of tracking is its own fix
    if keep.kind == other.kind:
        return keep.step == other.step and _overlap(keep.segment, other.segment)
    if other.kind == "funnel_dropoff":
        if keep.kind == "release_regression":
            return keep.step == other.step and _nested(keep.segment, other.segment)
        if keep.kind in CAUSES_NEXT_STEP:
            return _next_step(keep.step, steps) == other.step and _overlap(keep.segment, other.segment)
        if keep.kind == "cart_abandonment":
            return other.step in after_add and _nested(keep.segment, other.segment)
    if other.kind == "cart_abandonment" and keep.kind in {"funnel_dropoff", *CAUSES_NEXT_STEP}:
        step = _next_step(keep.step, steps) if keep.kind in CAUSES_NEXT_STEP else keep.step
        return step in after_add and _overlap(keep.segment, other.segment)
    return False


def merge(findings: list[Friction], steps: tuple[str, ...], after_add: tuple[str, ...] = ()
          ) -> list[tuple[Friction, list[Friction]]]:
    """Group findings that describe one problem; each group is led by its most specific, largest finding.

    A cart-abandonment finding leads the drop-offs after add-to-cart in its segment unless one of
    them accounts for >= 80% of its lost conversions.
    """
    def rank(f: Friction) -> tuple:
        kind = SPECIFICITY.index(f.kind)
        if f.kind == "cart_abandonment":
            kind = SPECIFICITY.index("funnel_dropoff") - 0.5
        return kind, -round(f.est_lost_conversions, 9), f.id

    def leads(f: Friction, cart: Friction) -> bool:
        return f.est_lost_conversions >= 0.8 * cart.est_lost_conversions

    groups: list[tuple[Friction, list[Friction]]] = []
    for f in sorted(findings, key=rank):
        for i, (lead, members) in enumerate(groups):
            if same_problem(lead, f, steps, after_add) or any(
                    m.kind == f.kind and same_problem(m, f, steps, after_add) for m in members):
                if lead.kind == "cart_abandonment" and f.kind == "funnel_dropoff" and leads(f, lead):
                    groups[i] = (f, [lead, *members])
                else:
                    members.append(f)
                break
            if lead.kind == "funnel_dropoff" and same_problem(f, lead, steps, after_add):
                groups[i] = (f, [lead, *members])
                break
        else:
            groups.append((f, []))
    return groups


def _context(f: Friction) -> dict[str, str]:
    """The playbook's placeholders for a finding, in a PM's words (a cohort as `Sep 21-27`, loads as `4,172`)."""
    seg = f.segment
    d = f.detail
    return {
        "segment": segment_text({k: v for k, v in seg.items() if k not in {"cohort", "experiment_id", "variant"}}),
        "step": f.step or "", "previous_step": d.get("previous_step", ""), "page": d.get("page", f.step or ""),
        "error_code": str(d.get("error_code") or "the errors"),
        "examples": ", ".join(f"'{e}'" for e in d.get("examples", [])[:3]),
        "token": seg.get("search_token") or seg.get("search_query", ""), "experiment": str(d.get("experiment", "")),
        "variant": seg.get("variant", ""), "cohort": period_words(seg["cohort"]) if "cohort" in seg else "",
        "app_version": str(d.get("version", "")), "platform": str(d.get("platform") or "all platforms"),
        "previous_version": str(d.get("previous_version", "")), "observed_ms": count(round(f.observed)),
        "baseline_ms": count(round(f.baseline)), "detail": str(d.get("problem", "")),
    }


def _has_word(name: str, words: str) -> bool:
    """Does `name` (an event or dimension name, any case or spacing) contain one of the |-separated words?"""
    flat = re.sub(r"[^a-z0-9]", "", name.lower())
    return any(w and w in flat for w in words.lower().split("|"))


def _matches(when: dict, f: Friction, emap: EventMap) -> bool:
    for key, want in (when or {}).items():
        if key == "step_role" and (f.step is None or f.step != emap.event_of(want)):
            return False
        if key == "step_word" and not _has_word(f.step or "", want):
            return False
        if key == "dimension" and not any(_has_word(d, want) for d in f.segment):
            return False
        if key == "cause" and f.detail.get("cause") != want:
            return False
    return True


def tweak_for(f: Friction, playbook: dict, emap: EventMap) -> tuple[str, float, float | None]:
    """The playbook's tweak text, effort and optional impact override for a finding."""
    for rule in playbook.get(f.kind, []):
        if _matches(rule.get("when"), f, emap):
            ctx = _context(f)
            if unknown := placeholders(rule["tweak"]) - ctx.keys():
                raise PromptError(f"prompts/playbook.yaml ({f.kind}): unknown placeholders {sorted(unknown)}")
            return rule["tweak"].format(**ctx), max(float(rule["effort"]), MIN_EFFORT), rule.get("impact")
    raise PromptError(f"prompts/playbook.yaml has no rule for kind {f.kind!r}")


def period_words(label: str, asked: Period | None = None) -> str:
    """A finding's period label as a PM says it: the asked period's words when it is that period, else the
    label's own (a date range or an ISO week); a label no period reads is kept.

    >>> period_words("2026-10-09..2026-10-30"), period_words("2026-W39"), period_words("all")
    ('Oct 9-29', 'Sep 21-27', 'all time')
    """
    if asked is not None and label == asked.label:
        return asked.words()
    try:
        return Period.parse(label, None).words()
    except PeriodError:
        return label


def _compared_with(f: Friction) -> str:
    """What a finding's baseline is: its own rate before an incident, control, the other cohorts, all searches,
    or the rest of the population."""
    if "incident" in f.detail:
        return "before"
    return {"experiment_loser": f"for {f.detail.get('control', 'control')}", "retention_dip": "for the other cohorts",
            "failed_search": "for all searches"}.get(f.kind, "for the rest")


def _rationale(f: Friction, weekly_lost: float, share: float) -> str:
    """The evidence of a suggestion in a PM's words: its finding, the gap, users affected and conversions lost a
    week (the p-value is the finding's, for a details part)."""
    if f.kind == "tracking_issue":
        users = f"; {count(f.affected_users)} users affected" if f.affected_users else ""
        return f"{f.title}{users}. Analyses that use this data are unreliable until fixed."
    if f.metric == "p75_load_ms":
        gap = f"p75 load {count(round(f.observed))} ms vs {count(round(f.baseline))} ms {_compared_with(f)}"
    elif f.metric == "assigned_users":  # the title gives both counts
        return f"{f.title}; {count(f.affected_users)} users in the experiment; its results are unreliable until fixed."
    else:
        gap = f"{f.metric.replace('_', ' ')} {pct(f.observed)} vs {pct(f.baseline)} {_compared_with(f)}"
    return (f"{f.title}: {gap}; {count(f.affected_users)} users affected; about {count(round(weekly_lost, 1))} "
            f"conversions lost a week ({pct(share)} of weekly conversions).")


def business_numbers(wh: Warehouse, period: Period) -> tuple[float, float]:
    """Weekly conversions and average order value in the period: orders of the event map's order role
    (else entities finishing its default funnel), revenue from its revenue field (else 0)."""
    emap = wh.event_map
    conversion = emap.event_of("order") or (emap.steps[-1] if emap.steps else None)
    if conversion is None:
        return 0.0, 0.0
    revenue = emap.field("order", "revenue") if emap.event_of("order") else None
    orders, aov = wh.query(
        f"SELECT count(*) AS orders, coalesce(avg({revenue.sql(cast='DOUBLE') if revenue else 'NULL'}), 0) AS aov"
        f" FROM events WHERE event = {lit(conversion)} AND {period.where()}").df.iloc[0]
    return float(orders) / period_weeks(wh, period), float(aov)


def prioritize(wh: Warehouse, findings: list[Friction], period: Period) -> list[Suggestion]:
    """Suggestions ranked by RICE score, one per group of findings that describe the same problem;
    product friction first, data-quality (tracking) suggestions after it."""
    emap = wh.event_map
    playbook = load_yaml("playbook")
    weeks = period_weeks(wh, period)
    weekly_conversions, aov = business_numbers(wh, period)
    out = []
    for lead, members in merge(findings, emap.steps, emap.steps_after_cart):
        tweak, effort, impact_override = tweak_for(lead, playbook, emap)
        weekly_lost = lead.est_lost_conversions / weeks
        share = weekly_lost / weekly_conversions if weekly_conversions else 0.0
        reach = lead.affected_users / weeks
        impact = float(impact_override) if impact_override is not None else impact_tier(share)
        conf = confidence(lead)
        high = lead.weekly_exposed * lead.gap * lead.downstream_rate
        out.append(Suggestion(
            friction_id=lead.id, kind=lead.kind, title=lead.title, tweak=tweak,
            rationale=_rationale(lead, weekly_lost, share), reach=round(reach, 1), impact=impact,
            confidence=conf, effort=effort, rice_score=round(reach * impact * conf / effort, 1),
            est_weekly_uplift=Uplift(conversions_low=round(high / 2, 1), conversions_high=round(high, 1),
                                     revenue_low=round(high / 2 * aov, 2), revenue_high=round(high * aov, 2)),
            evidence=f"{lead.title} ({period_words(lead.period, period)})", evidence_sql=lead.evidence_sql,
            related=[m.id for m in members],
        ))
    # data quality never outranks product friction: it has its own section, after it
    return sorted(out, key=lambda s: (s.kind == "tracking_issue", -s.rice_score, s.friction_id))
