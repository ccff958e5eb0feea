"""The one contract of every analysis: ToolResult, Friction and Suggestion."""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import pandas as pd
from pydantic import BaseModel, Field

from tools.semantic.eventmap import SegmentValue, segment_values

if TYPE_CHECKING:
    from tools.period import Period

FrictionKind = Literal[
    "funnel_dropoff", "failed_search", "error_spike", "slow_page", "release_regression",
    "experiment_loser", "experiment_srm", "retention_dip", "cart_abandonment", "tracking_issue",
]

FactKind = Literal["rate", "change", "money", "count", "ms", "p_value"]


def friction_id(kind: str, step: str | None, segment: dict[str, str]) -> str:
    """Stable id: a short hash of kind and where (step and segment)."""
    key = json.dumps([kind, step, sorted(segment.items())], separators=(",", ":"))
    return f"{kind}-{hashlib.sha1(key.encode()).hexdigest()[:10]}"


def segment_text(segment: Mapping[str, SegmentValue]) -> str:
    """`os=android, app_version=5.2.0`, `platform=ios or android` for a list, or `everyone`.

    >>> segment_text({"platform": ["ios", "android"], "plan": "pro"}), segment_text({})
    ('platform=ios or android, plan=pro', 'everyone')
    """
    return ", ".join(f"{k}={' or '.join(segment_values(v))}" for k, v in segment.items()) or "everyone"


def applied(period: Period, segment: Mapping[str, SegmentValue] | None = None, breakdown: str | None = None,
            step: str | None = None, compare: Period | None = None, **specific: Any) -> dict[str, Any]:
    """data["applied"]: the scope an analysis really computed, in words (periods as `Nov 16-22`)."""
    return {"period": period.words(), "segment": {k: v if isinstance(v, str) else list(segment_values(v))
                                                  for k, v in (segment or {}).items()},
            "breakdown": breakdown, "step": step, "compare": compare.words() if compare else None, **specific}


def scope_words(scope: Mapping[str, Any]) -> str:
    """The period and segment of data["applied"] as a heading says them: `Nov 16-22, platform=ios or android`.

    >>> scope_words({"period": "Nov 16-22", "segment": {"platform": ["ios", "android"]}})
    'Nov 16-22, platform=ios or android'
    """
    return scope["period"] + (f", {segment_text(scope['segment'])}" if scope.get("segment") else "")


def facts(**named: tuple[float | None, FactKind]) -> dict[str, dict[str, float | str]]:
    """data["facts"]: key numbers by name, each `{"value": float, "kind": ...}`; a missing one is left out.

    >>> facts(conversion=(0.041, "rate"), converted=(12, "count"), lift=(None, "change"))
    {'conversion': {'value': 0.041, 'kind': 'rate'}, 'converted': {'value': 12.0, 'kind': 'count'}}
    """
    return {name: {"value": float(value), "kind": kind} for name, (value, kind) in named.items()
            if value is not None and math.isfinite(float(value))}


class Friction(BaseModel):
    """A place where users struggle, with the numbers that show it."""

    id: str = ""
    kind: FrictionKind
    title: str
    metric: str
    step: str | None = None
    segment: dict[str, str] = Field(default_factory=dict)
    period: str
    baseline: float
    observed: float
    affected_users: int
    est_lost_conversions: float
    p_value: float | None = None
    ci: tuple[float, float] | None = None
    evidence_sql: str
    weekly_exposed: float = Field(0.0, description="entities per week entering the affected step (N_{k-1})")
    gap: float = Field(0.0, description="rate gap versus the rest (p_rest - p_segment), >= 0")
    downstream_rate: float = Field(1.0, description="product of later step rates up to the conversion")
    detail: dict[str, Any] = Field(default_factory=dict)

    def model_post_init(self, _context: Any) -> None:
        if not self.id:
            self.id = friction_id(self.kind, self.step, self.segment)


class Uplift(BaseModel):
    """Estimated weekly gain of fixing a friction: a conservative-to-optimistic range."""

    conversions_low: float
    conversions_high: float
    revenue_low: float
    revenue_high: float


class Suggestion(BaseModel):
    """A concrete tweak for one friction, scored with RICE."""

    friction_id: str
    kind: FrictionKind
    title: str
    tweak: str
    rationale: str
    reach: float
    impact: float
    confidence: float
    effort: float
    rice_score: float
    est_weekly_uplift: Uplift
    evidence: str
    evidence_sql: str = ""
    related: list[str] = Field(default_factory=list, description="ids of findings merged into this one")


@dataclass
class ToolResult:
    """What an analysis returns: text for the model, a payload for people."""

    title: str
    summary: str
    table: pd.DataFrame = field(default_factory=pd.DataFrame)
    chart: Any = None
    sql: list[str] = field(default_factory=list)
    findings: list[Friction] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)
