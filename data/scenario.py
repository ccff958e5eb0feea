"""Scenario model: what the synthetic generator simulates and which frictions it plants."""

from __future__ import annotations

import re
from datetime import date, timedelta
from importlib import resources
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

# The generator's own vocabulary (Segment e-commerce names, the demo's event map data/maps/demo.yaml).
EVENTS = (
    "Application Opened",
    "Signed Up",
    "Page Viewed",
    "Products Searched",
    "Search Result Clicked",
    "Product Viewed",
    "Product Added",
    "Cart Viewed",
    "Checkout Started",
    "Payment Info Entered",
    "Order Completed",
    "Error Shown",
)
PURCHASE_FUNNEL = (
    "Product Viewed",
    "Product Added",
    "Checkout Started",
    "Payment Info Entered",
    "Order Completed",
)
# The page a funnel step is shown on; errors and load times on that page belong to the step.
STEP_PAGES = {
    "Product Viewed": "product",
    "Product Added": "product",
    "Cart Viewed": "cart",
    "Checkout Started": "checkout",
    "Payment Info Entered": "payment",
    "Order Completed": "confirmation",
}

# Segment dimensions: on events (context) and on users.
EVENT_DIMENSIONS = ("platform", "os", "app_version", "browser", "country")
USER_DIMENSIONS = ("acquisition_channel", "plan")
DIMENSIONS = EVENT_DIMENSIONS + USER_DIMENSIONS

PlantedKind = Literal[
    "funnel_dropoff",
    "failed_search",
    "error_spike",
    "slow_page",
    "release_regression",
    "experiment_loser",
    "experiment_srm",
    "retention_dip",
    "cart_abandonment",
]
# Session flow steps a friction may act on (the purchase funnel plus the search entry).
FLOW_STEPS = PURCHASE_FUNNEL


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class StepRates(_Strict):
    """Baseline per-session probabilities of the session flow."""

    search: float = 0.45
    search_click: float = 0.55
    search_zero_results: float = 0.05
    search_reformulate: float = 0.35
    exit_after_failed_search: float = 0.45
    browse_view: float = 0.5
    add: float = 0.30
    cart_view: float = 0.85
    checkout: float = 0.45
    payment: float = 0.72
    order: float = 0.82
    error: float = 0.01
    slow_bounce: float = 0.45


class ExperimentSpec(_Strict):
    """An A/B test: users active in [start, end) are assigned at their first session."""

    experiment_id: str
    name: str
    start: date
    end: date
    variants: list[str] = ["control", "treatment"]
    hypothesis: str = ""
    primary_metric: str = "Order Completed"

    @model_validator(mode="after")
    def _check(self) -> ExperimentSpec:
        if self.primary_metric not in FLOW_STEPS:
            raise ValueError(f"primary_metric must be one of {', '.join(FLOW_STEPS)}")
        if len(set(self.variants)) < 2:
            raise ValueError("an experiment needs at least two distinct variants")
        if self.end <= self.start:
            raise ValueError("end must be after start")
        return self


class PlantedFriction(_Strict):
    """One friction the generator plants; `effect` in (0, 1] scales its strength."""

    kind: PlantedKind
    step: str | None = Field(None, description="funnel step (event) the friction acts on")
    segment: dict[str, str] = Field(default_factory=dict, description="dimension -> value")
    start: date | None = None
    end: date | None = None
    effect: float = Field(gt=0, le=1)
    error_code: str = "UNKNOWN_ERROR"
    search_token: str | None = None
    search_share: float = 0.04
    experiment_id: str | None = None
    variant: str | None = None
    cohort_week: str | None = Field(None, description="ISO week of signup, e.g. 2026-W39")

    @model_validator(mode="after")
    def _check_kind_fields(self) -> PlantedFriction:
        needs_step = {"funnel_dropoff", "error_spike", "slow_page", "release_regression"}
        if self.kind in needs_step and self.step not in FLOW_STEPS:
            raise ValueError(f"{self.kind} needs step: one of {', '.join(FLOW_STEPS)}")
        if self.kind == "failed_search" and not self.search_token:
            raise ValueError("failed_search needs search_token")
        if self.kind in {"experiment_loser", "experiment_srm"} and not (self.experiment_id and self.variant):
            raise ValueError(f"{self.kind} needs experiment_id and variant")
        if self.kind == "retention_dip" and not re.fullmatch(r"\d{4}-W\d{2}", self.cohort_week or ""):
            raise ValueError("retention_dip needs cohort_week as YYYY-Www")
        if self.kind == "slow_page" and self.step == "Product Added":
            raise ValueError("slow_page needs a step with a page load (Product Added has none)")
        unknown = set(self.segment) - set(DIMENSIONS)
        if unknown:
            raise ValueError(f"unknown segment dimension {sorted(unknown)[0]!r}; use {', '.join(DIMENSIONS)}")
        if self.kind == "release_regression" and "app_version" not in self.segment:
            raise ValueError("release_regression needs segment.app_version")
        return self


class TrafficDip(_Strict):
    """Fewer sessions of every kind from one date to another (a holiday, an ad budget cut)."""

    start: date
    end: date
    keep: float = Field(0.6, gt=0, le=1, description="share of the sessions kept")


class Noise(_Strict):
    """The noise of real data, none of it a friction: a scan must not report it."""

    traffic_dips: list[TrafficDip] = []
    late_days: int = Field(0, ge=0, description="the last N days are incomplete (late-arriving events)")
    late_keep: float = Field(0.3, gt=0, le=1, description="share of those days' events present")
    anonymous_share: float = Field(0.0, ge=0, le=1, description="users who browse anonymously before signing up")
    anonymous_days: float = Field(2.0, ge=0, description="how long before signing up they browse")


class Scenario(_Strict):
    """A synthetic product: population, baselines, experiments, planted frictions and real-data noise."""

    name: str
    description: str = ""
    start: date = date(2026, 8, 31)
    end: date = date(2026, 11, 23)
    users: int = Field(50_000, gt=0)
    seed: int = 7
    weekend_factor: float = 0.8
    sessions_per_week: float = 2.0
    release_every_days: int = 14
    first_version: int = 5
    rates: StepRates = StepRates()
    countries: dict[str, float] = {"US": .34, "GB": .12, "DE": .12, "FR": .10, "IN": .10, "BR": .08, "CA": .08, "JP": .06}
    channels: dict[str, float] = {"organic": .38, "paid_search": .25, "social": .15, "email": .12, "referral": .10}
    plans: dict[str, float] = {"free": .78, "plus": .16, "pro": .06}
    platforms: dict[str, float] = {"web": .5, "ios": .26, "android": .24}
    web_os: dict[str, float] = {"windows": .55, "macos": .35, "linux": .10}
    browsers: dict[str, float] = {"chrome": .58, "safari": .22, "firefox": .10, "edge": .10}
    experiments: list[ExperimentSpec] = []
    frictions: list[PlantedFriction] = []
    noise: Noise = Noise()

    @model_validator(mode="after")
    def _check(self) -> Scenario:
        if self.end <= self.start + timedelta(days=14):
            raise ValueError("end must be at least 14 days after start")
        known = {e.experiment_id: e for e in self.experiments}
        values = self.dimension_values()
        for i, f in enumerate(self.frictions):
            if f.experiment_id and f.experiment_id not in known:
                raise ValueError(f"frictions.{i}: unknown experiment {f.experiment_id!r}")
            if f.variant and f.experiment_id and f.variant not in known[f.experiment_id].variants:
                raise ValueError(f"frictions.{i}: unknown variant {f.variant!r} of {f.experiment_id}")
            for dim, value in f.segment.items():
                if value not in values[dim]:
                    raise ValueError(f"frictions.{i}: {dim}={value!r} is not generated; values: {values[dim]}")
        return self

    def releases(self) -> list[str]:
        """App versions released during the scenario (two before its start), oldest first."""
        n = (self.end - self.start).days // self.release_every_days + 3
        return [f"{self.first_version}.{i}.0" for i in range(n)]

    def dimension_values(self) -> dict[str, list[str]]:
        """Every value the generator produces for each segment dimension."""
        return {"country": list(self.countries), "acquisition_channel": list(self.channels),
                "plan": list(self.plans), "platform": list(self.platforms),
                "os": [*self.web_os, "ios", "android"], "browser": list(self.browsers), "app_version": self.releases()}

    def scaled(self, factor: float) -> Scenario:
        """The same scenario with every planted effect multiplied by `factor`."""
        frictions = [f.model_copy(update={"effect": min(1.0, f.effect * factor)}) for f in self.frictions]
        return self.model_copy(update={"frictions": frictions})


def load_scenario(name_or_path: str | Path) -> Scenario:
    """Load a shipped scenario by name (`demo`, `null`, ...) or a YAML file."""
    path = Path(name_or_path)
    if path.suffix in {".yaml", ".yml"}:
        if not path.exists():
            raise FileNotFoundError(f"scenario file not found: {path}")
        text = path.read_text()
    else:
        shipped = resources.files("data").joinpath("scenarios", f"{name_or_path}.yaml")
        if not shipped.is_file():
            raise FileNotFoundError(f"unknown scenario {name_or_path!r}; shipped: {', '.join(shipped_scenarios())}")
        text, path = shipped.read_text(), Path(str(shipped))
    try:
        return Scenario.model_validate(yaml.safe_load(text))
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ValueError(f"{path}: {where}: {first['msg']}") from None


def shipped_scenarios() -> list[str]:
    """Names of the scenarios shipped in data/scenarios."""
    folder = resources.files("data").joinpath("scenarios")
    return sorted(p.name.removesuffix(".yaml") for p in folder.iterdir() if p.name.endswith(".yaml"))
