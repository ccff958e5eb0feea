"""Every prompt file loads, and its placeholders are exactly what its callers pass."""

from __future__ import annotations

import typing
from importlib import resources

import pytest

from prompts import PromptError, fill, load_prompt, load_yaml, placeholders
from tools.prioritize import _context
from tools.result import Friction, FrictionKind

CALLERS = {  # prompt -> the values its caller passes (agent/nodes, agent/offline.py, agent/digest.py)
    "system": {"data_start", "data_end", "funnel", "roles", "dimensions"},
    "grounding_retry": {"numbers"},
    "scope_retry": {"what"},
    "help": set(),
    "decline": {"reason", "help"},
    "digest": {"week", "period_start", "period_end", "kpis", "new_count", "new", "ongoing_count", "ongoing",
               "resolved_count", "resolved", "suggestions", "incidents_since", "incidents"},
}


def test_every_markdown_prompt_has_a_caller():
    files = {p.name.removesuffix(".md") for p in resources.files("prompts").iterdir() if p.name.endswith(".md")}
    assert files == set(CALLERS)


@pytest.mark.parametrize("name", sorted(CALLERS))
def test_prompt_loads_with_exactly_its_callers_values(name):
    text = resources.files("prompts").joinpath(f"{name}.md").read_text()
    assert placeholders(text) == CALLERS[name]
    filled = load_prompt(name, **{k: f"<{k}>" for k in CALLERS[name]})
    assert all(f"<{k}>" in filled for k in CALLERS[name])


def test_missing_or_extra_values_are_refused():
    with pytest.raises(PromptError, match="missing"):
        load_prompt("decline", reason="x")
    with pytest.raises(PromptError, match="unexpected"):
        fill("Hello {name}", "inline", name="a", other="b")
    with pytest.raises(PromptError, match="no prompt file"):
        load_prompt("nope")


def test_answer_templates_use_only_scope_and_no_numbers():
    answers = load_yaml("answers")
    for key, template in answers.items():
        entries = template.values() if isinstance(template, dict) else [template]
        for t in entries:
            # the not-applied line names the slots in words; an item quotes the ranked list's own fields
            allowed = {"not_applied": {"what"}, "no_item": {"n", "count"},
                       "item": {"n", "count", "tweak", "rice", "reach", "impact", "confidence", "effort", "evidence"}}
            assert placeholders(t) <= allowed.get(key, {"scope", "funnel"}), key
            assert not any(ch.isdigit() for ch in t.replace("week-2", "")), f"{key}: numbers must come from tools"


def test_playbook_covers_every_kind_with_known_placeholders():
    playbook = load_yaml("playbook")
    kinds = set(typing.get_args(FrictionKind))
    assert kinds <= set(playbook), kinds - set(playbook)
    known = set(_context(Friction(kind="funnel_dropoff", title="t", metric="m", period="all", baseline=0,
                                  observed=0, affected_users=0, est_lost_conversions=0, evidence_sql="")))
    for kind, rules in playbook.items():
        assert rules[-1]["when"] == {}, f"{kind}: the last rule must be the fallback"
        for rule in rules:
            assert placeholders(rule["tweak"]) <= known, (kind, rule["tweak"])
            assert float(rule["effort"]) >= 0.5
            assert "investigate" not in rule["tweak"].lower()
