"""Metric definitions: data/metrics.yaml (in role terms) plus the event map's own metrics.

Each metric is defined once, structurally, against the map's roles, so "conversion rate" means
the same in the metric tool, the trends, the digest's KPIs and its chart, on any vocabulary.
A metric needing a role the map lacks is unavailable and says which role.
"""

from __future__ import annotations

import re
from functools import cache
from importlib import resources
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

from tools.semantic.eventmap import EventMap
from tools.semantic.fields import parse_field
from tools.sqltext import lit

ROLE_EVENTS = ("order", "cart_add", "checkout", "search", "search_click", "error", "signup")
STEP_EVENTS = ("funnel_start", "funnel_end")
PLACEHOLDER = re.compile(r"\{([a-z_]+)(?:\.([a-z_]+))?\}")


class MetricError(ValueError):
    """A metric that is not defined, cannot be computed on this map, or a definition that is wrong."""


class MetricDef(BaseModel):
    """One named metric, structurally defined."""

    model_config = ConfigDict(extra="forbid")

    key: str
    name: str
    description: str
    owner: str = ""
    aggregation: Literal["count", "count_distinct", "sum", "ratio", "one_minus_ratio", "retention"]
    event: str | None = None
    event_name: str | None = None   # a literal event, for a team's own metrics
    entity: Literal["user_id", "session_id"] | None = None
    per: Literal["day", "week", "month"] | None = None
    value: str | None = None
    filter: str | None = None
    numerator: str | None = None
    denominator: str | None = None
    week: int = 1
    worse: Literal["lower", "higher"] | None = None  # which way a share of sessions or events is bad

    @model_validator(mode="after")
    def _check(self) -> MetricDef:
        if self.aggregation in {"ratio", "one_minus_ratio"} and not (self.numerator and self.denominator):
            raise ValueError("a ratio needs numerator and denominator")
        if self.aggregation == "count_distinct" and not self.entity:
            raise ValueError("count_distinct needs an entity")
        if self.aggregation == "sum" and not self.value:
            raise ValueError("sum needs a value (a role's field, e.g. order.revenue)")
        if self.event is not None and self.event not in {"any", *ROLE_EVENTS, *STEP_EVENTS}:
            raise ValueError(f"event {self.event!r}: use any, funnel_start, funnel_end or a role "
                             f"({', '.join(ROLE_EVENTS)}); a literal event name goes in event_name")
        return self

    @property
    def is_rate(self) -> bool:
        return self.aggregation in {"ratio", "one_minus_ratio", "retention"} and self.key != "aov"


@cache
def _shipped() -> dict[str, dict]:
    return yaml.safe_load(resources.files("data").joinpath("metrics.yaml").read_text())


def catalog(emap: EventMap) -> dict[str, MetricDef]:
    """Every metric by key: data/metrics.yaml overridden and extended by the map's `metrics`."""
    raw = {**_shipped(), **emap.metrics}
    try:
        defs = {key: MetricDef(key=key, **body) for key, body in raw.items()}
    except ValidationError as exc:
        first = exc.errors()[0]
        raise MetricError(f"metric definition {'.'.join(map(str, first['loc']))}: {first['msg']}") from None
    for d in defs.values():
        for ref in (d.numerator, d.denominator):
            if ref and ref not in defs:
                raise MetricError(f"metric {d.key} refers to undefined metric {ref!r}")
    return defs


def missing_roles(key: str, defs: dict[str, MetricDef], emap: EventMap) -> list[str]:
    """Roles (or role fields) metric `key` needs that the map does not have."""
    d = defs[key]
    need: list[str] = []
    if d.numerator:
        need += missing_roles(d.numerator, defs, emap) + missing_roles(d.denominator, defs, emap)
    if d.event in ROLE_EVENTS and emap.event_of(d.event) is None:
        need.append(f"{d.event} role")
    if d.event in STEP_EVENTS and not emap.steps:
        need.append("a default funnel")
    for text in (d.filter or "", "{" + d.value + "}" if d.value else ""):
        for role, fld in PLACEHOLDER.findall(text):
            if role == "scope":
                continue
            if emap.event_of(role) is None if not fld else emap.field(role, fld) is None:
                need.append(f"{role} role" + (f" with its {fld} field" if fld else ""))
    return list(dict.fromkeys(need))


def event_condition(d: MetricDef, emap: EventMap) -> str:
    """SQL condition on an events row: is it an event this metric counts?"""
    if d.event_name:
        return f"event = {lit(d.event_name)}"
    if d.event in (None, "any"):
        return "TRUE"
    name = {"funnel_start": emap.steps[:1], "funnel_end": emap.steps[-1:]}.get(d.event)
    event = name[0] if name else emap.event_of(d.event)
    if event is None:
        raise MetricError(f"metric {d.key} needs the {d.event} role, which the event map does not have")
    return f"event = {lit(event)}"


def expand(text: str, emap: EventMap, scope: str) -> str:
    """A filter or value with its placeholders replaced: {role} by the event name, {role.field} by the
    field's SQL, {scope} by `scope`."""
    def one(m: re.Match) -> str:
        role, fld = m.groups()
        if role == "scope" and not fld:
            return scope
        try:
            if fld:
                ref = emap.field(role, fld)
                if ref is None:
                    raise MetricError(f"the event map has no {role} role with a {fld} field")
                return ref.sql(cast="DOUBLE") if fld in {"revenue", "results", "duration"} else ref.sql()
            event = emap.event_of(role)
        except AttributeError:
            raise MetricError(f"unknown role {role!r} in {text!r}") from None
        if event is None:
            raise MetricError(f"the event map has no {role} role")
        return lit(event)
    return PLACEHOLDER.sub(one, text)


def value_sql(d: MetricDef, emap: EventMap) -> str:
    """The SQL of a sum's value: a role's field (`order.revenue`) or a field reference."""
    if d.value and "." in d.value and d.value.split(".")[0] in ROLE_EVENTS:
        return expand("{" + d.value + "}", emap, "TRUE")
    return parse_field(d.value).sql(cast="DOUBLE")


def find(name: str, defs: dict[str, MetricDef]) -> MetricDef | None:
    """A metric by key or by name, case-insensitive ('MAU', 'Monthly active users')."""
    wanted = " ".join(name.lower().replace("_", " ").split())
    for d in defs.values():
        if wanted in {d.key.replace("_", " "), d.name.lower()}:
            return d
    return None

