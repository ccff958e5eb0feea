"""The team's tracking plan: a declaration the data-quality checks hold the data to.

A plan is optional and belongs to one dataset (it lives in that dataset's event map); without
one, only the checks that need no plan run.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

SqlType = Literal["VARCHAR", "INTEGER", "DOUBLE", "BOOLEAN"]


class DimensionRule(BaseModel):
    """Allowed values of a dimension and where it must be present."""

    model_config = ConfigDict(extra="forbid")
    allowed: list[str] = Field(default_factory=list)
    required: bool = False
    required_on: dict[str, list[str]] = Field(
        default_factory=dict, description="dimension -> values where it must be present, e.g. {platform: [web]}")


class EventRule(BaseModel):
    """An event's owner and its required and optional properties with their types."""

    model_config = ConfigDict(extra="forbid")
    owner: str = ""
    required: dict[str, SqlType] = Field(default_factory=dict)
    optional: dict[str, SqlType] = Field(default_factory=dict)


class TrackingPlan(BaseModel):
    """Events with owners and properties, dimensions with allowed values."""

    model_config = ConfigDict(extra="forbid")
    version: int = 1
    dimensions: dict[str, DimensionRule] = Field(default_factory=dict)
    events: dict[str, EventRule] = Field(default_factory=dict)
