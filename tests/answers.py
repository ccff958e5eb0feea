"""Helpers for tests that read an agent's answers."""

from __future__ import annotations


def ran(answer) -> list[tuple[str, dict]]:
    """The (tool, args) of the steps an answer ran."""
    return [(s.tool, s.args) for s in answer.steps if s.ms is not None]


def assert_first_step(answer, tool: str, args: dict) -> None:
    """The answer's first step ran `tool` with these slots (a segment's list values in any order)."""
    steps = ran(answer)
    assert steps and steps[0][0] == tool, steps
    got = steps[0][1]
    for slot, value in args.items():
        have = got.get(slot)
        if isinstance(value, dict):
            have = {k: sorted(v) if isinstance(v, list) else v for k, v in (have or {}).items()}
        assert have == value, (slot, got)


def assert_declined(answer) -> None:
    """The answer ran no tool and says it cannot answer."""
    assert ran(answer) == [] and "can't answer" in answer.text
