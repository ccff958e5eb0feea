"""The one contract of every analysis: ToolResult, Friction and Suggestion."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Literal

import pandas as pd
from pydantic import BaseModel, Field

FrictionKind = Literal[
    "funnel_dropoff", "failed_search", "error_spike", "slow_page", "release_regression",
    "experiment_loser", "experiment_srm", "retention_dip", "cart_abandonment", "tracking_issue",
]


def friction_id(kind: str, step: str | None, segment: dict[str, str]) -> str:
    """Stable id: a short hash of kind and where (step and segment)."""
    key = json.dumps([kind, step, sorted(segment.items())], separators=(",", ":"))
    return f"{kind}-{hashlib.sha1(key.encode()).hexdigest()[:10]}"


def segment_text(segment: dict[str, str]) -> str:
    """`os=android, app_version=5.2.0`, or `everyone`."""
    return ", ".join(f"{k}={v}" for k, v in segment.items()) or "everyone"


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
