"""The scope contract: every slot a question carries is applied by the answer's analyses, or the answer says so.

Filters (segment, period, signup period) must be applied by every analysis of the answer;
a breakdown, a comparison period or a step by at least one. What was not applied is said in
the answer's first lines; the heading names only what was computed. The same check runs on
the offline analyst's plan and on a language model's tool calls.

>>> from agent.intents import Question
>>> q = Question(text="", intent="funnel", segment={"platform": "ios"}, breakdown="country")
>>> not_applied(q, [("funnel", {"segment": {"platform": "ios"}})])
['the breakdown by country']
>>> not_applied(q, [("scan_frictions", {})])
['the filter platform = ios (scan_frictions covers everyone)', 'the breakdown by country']
>>> premise_line(Question(text="", intent="why_change", premise="drop"), "conversion_rate",
...              {"value": {"value": 0.041, "kind": "rate"}, "previous": {"value": 0.035, "kind": "rate"},
...               "change": {"value": 0.18, "kind": "change"}}, {"period": "Nov 23-29", "compare": "Nov 16-22"})
'Conversion rate rose 18% (4.1% vs 3.5%, Nov 23-29 vs Nov 16-22); it did not drop.'
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tools.format import change, of_kind
from tools.registry import TOOLS
from tools.semantic.eventmap import segment_values

if TYPE_CHECKING:
    from agent.intents import Question

# slot -> the tool argument carrying it (where a tool names it otherwise)
ARG = {"breakdown": {"trends": "dimension"}}
FILTERS = ("segment", "period", "signup_period")
STEP_INTENTS = {"dropoffs", "errors"}


def arg_name(tool: str, slot: str) -> str:
    return ARG.get(slot, {}).get(tool, slot)


def accepts(tool: str, slot: str) -> bool:
    """Whether a tool's parameters carry a slot."""
    found = TOOLS.get(tool)
    return found is not None and arg_name(tool, slot) in found.params.model_fields


def asked(q: Question) -> dict[str, Any]:
    """The slots a question carries (defaults left out)."""
    slots = {"segment": q.segment or None, "period": None if q.period == "all" else q.period,
             "breakdown": q.breakdown, "compare": q.compare, "signup_period": q.signup_period,
             "step": q.step if q.intent in STEP_INTENTS else None}
    return {k: v for k, v in slots.items() if v}


def _same(a: Any, b: Any) -> bool:
    norm = (lambda s: {k: sorted(v) if isinstance(v, list) else v for k, v in (s or {}).items()}) \
        if isinstance(a, dict) else (lambda s: s)
    return norm(a) == norm(b)


def words(slot: str, value: Any) -> str:
    """A slot in words: `the filter platform = ios or android`, `the breakdown by country`."""
    if slot == "segment":
        return "the filter " + ", ".join(
            f"{k} = {' or '.join(segment_values(v))}" for k, v in value.items())
    return {"period": f"the period {value}", "breakdown": f"the breakdown by {value}",
            "compare": f"the comparison with {value}", "signup_period": f"the signup period {value}",
            "step": f"the step {value}"}[slot]


def not_applied(q: Question, calls: list[tuple[str, dict]]) -> list[str]:
    """What the question asked that the tool calls did not apply, in words."""
    out = []
    for slot, value in asked(q).items():
        applied = [name for name, args in calls if _same(args.get(arg_name(name, slot)), value)]
        if slot in FILTERS:
            missing = [name for name, _ in calls if name not in applied]
            if missing:
                out.append(f"{words(slot, value)} ({', '.join(dict.fromkeys(missing))} covers everyone)"
                           if slot == "segment" else f"{words(slot, value)} ({', '.join(dict.fromkeys(missing))})")
        elif not applied:
            out.append(words(slot, value))
    return out


def shown(fact: dict) -> str:
    """A fact as people read it (tools/format.py by its kind)."""
    return of_kind(float(fact["value"]), fact.get("kind", "count"))


def change_facts(artifacts: list[dict]) -> tuple[dict, dict] | None:
    """The facts and applied scope of the first analysis of an answer that measured a change (its premise check)."""
    return next(((a["facts"], a.get("applied", {})) for a in artifacts if "change" in a.get("facts", {})), None)


def premise_line(q: Question, metric: str, facts: dict, applied: dict) -> str | None:
    """The measured direction, first: what the question presumed (a drop or a rise) against what was measured."""
    if q.premise not in {"drop", "rise"} or "change" not in facts:
        return None
    moved = float(facts["change"]["value"])
    direction = "rose" if moved > 0 else "fell" if moved < 0 else "did not move"
    name = metric.replace("_", " ").capitalize()
    values = ""
    if "value" in facts and "previous" in facts:
        values = f" ({shown(facts['value'])} vs {shown(facts['previous'])}"
        when = [applied.get("period"), applied.get("compare")]
        values += f", {when[0]} vs {when[1]})" if all(when) else ")"
    size = change(abs(moved)).lstrip("+")
    line = f"{name} {direction}" + (f" {size}" if moved else "") + values
    contradicted = (q.premise == "drop" and moved >= 0) or (q.premise == "rise" and moved <= 0)
    return line + (f"; it did not {q.premise}." if contradicted else ".")


def heading(applied: list[dict]) -> str:
    """What the answer computed, for its heading: the filters every analysis applied, a breakdown or comparison
    any applied (`applied`: each analysis's data["applied"], or its arguments)."""
    if not applied:
        return ""
    segments = [a.get("segment") or {} for a in applied]
    common = {k: v for k, v in segments[0].items() if all(_same(s.get(k), v) for s in segments)}
    periods = {a.get("period") for a in applied} - {None, "all", "all time"}
    parts = [words("segment", common).removeprefix("the filter ")] if common else []
    if len(periods) == 1:
        parts.append(periods.pop())
    if by := next((a.get("breakdown") or a.get("dimension") for a in applied if a.get("breakdown")
                   or a.get("dimension")), None):
        parts.append(f"by {by}")
    if versus := next((a["compare"] for a in applied if a.get("compare")), None):
        parts.append(f"vs {versus}")
    return (" for " if common else ", ").join(["", ", ".join(parts)]) if parts else ""
