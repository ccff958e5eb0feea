"""The event map: what a dataset's events and fields mean (the one semantic layer).

Every analysis reads event names, fields and dimensions from here; nothing else names them.
A map holds named funnels (the default one is "the funnel"), roles (order, cart add, search,
error, page load, signup, experiment exposure, release), segment dimensions (any columns of
events or users, any JSON property), extra metric definitions and, optionally, the team's
tracking plan. It is YAML, stored with the data, inferred when absent, and editable.

>>> m = EventMap.model_validate({"funnels": {"leads": ["lead", "deal"]}, "dimensions": {"plan": "users.plan"}})
>>> m.steps, m.user_dims, m.segment_where({"plan": "pro"})
(('lead', 'deal'), ('plan',), 'user_id IN (SELECT user_id FROM users WHERE "plan" = \\'pro\\')')
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from functools import cache
from pathlib import Path

import duckdb
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from tools.semantic.fields import Field as FieldRef
from tools.semantic.fields import FieldError, parse_field
from tools.semantic.plan import TrackingPlan
from tools.semantic.vocabularies import concept_dimensions
from tools.sqltext import lit

SegmentValue = str | Sequence[str]  # one value, or a list meaning any of them (IN)
NAME = re.compile(r"^[a-z_][a-z0-9_]*$")
# columns the analyses' SQL uses internally; a dimension may not take their names
RESERVED = frozenset({
    "event_id", "ts", "user_id", "session_id", "event", "properties", "entity", "level", "cart_level", "path_t1",
    "start_ts", "step", "j", "k", "s", "ord", "err", "load", "converted", "n", "x", "q", "cohort", "signup",
    "first_ts", "kept", "depth", "segment", "day", "num", "den", "value", "week_n", "users", "first_touch",
    "everyone", "signed_up_at", "i", "h", "p", "u", "e", "f", "b", "m", "w", "c", "t",
})


class MapError(ValueError):
    """An event map that cannot be used; the message names the file and the entry."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Role(_Strict):
    """An event with a meaning."""

    event: str


class OrderRole(Role):
    revenue: str | None = Field(None, description="field holding the order's revenue")


class SearchRole(Role):
    query: str | None = Field(None, description="field holding the query text")
    results: str | None = Field(None, description="field holding the number of results")


class ErrorRole(Role):
    code: str | None = Field(None, description="field holding the error code")


class LoadRole(_Strict):
    """Page or screen load times: a duration field on the funnel's step events (the page each step shows)."""

    duration: str = Field(description="field holding the load time in milliseconds")


class ExposureRole(Role):
    experiment: str = Field(description="field naming the experiment (or feature flag)")
    variant: str = Field(description="field naming the variant")


class ReleaseRole(_Strict):
    """Which dimension versions releases, and which one tells platforms apart."""

    version: str
    platform: str | None = None


class Roles(_Strict):
    order: OrderRole | None = None
    cart_add: Role | None = None
    checkout: Role | None = None
    search: SearchRole | None = None
    search_click: Role | None = None
    error: ErrorRole | None = None
    page_load: LoadRole | None = None
    signup: Role | None = None
    exposure: ExposureRole | None = None
    release: ReleaseRole | None = None


# analysis -> (what it needs, a phrase that reads after "the event map has no"; does the map have it?)
NEEDS = {
    "funnel and drop-offs": ("funnel of at least two steps", lambda m: len(m.steps) >= 2),
    "cart abandonment": ("cart_add and order roles among the default funnel's steps",
                         lambda m: m.cart_steps is not None),
    "search quality": ("search role with a query field", lambda m: bool(m.roles.search and m.roles.search.query)),
    "zero-result rate": ("results-count field on the search role",
                         lambda m: bool(m.roles.search and m.roles.search.results)),
    "errors": ("error role", lambda m: m.roles.error is not None),
    "page speed": ("page_load role with a duration field", lambda m: m.roles.page_load is not None),
    "release regressions": ("release role (the dimension that versions releases)",
                            lambda m: m.roles.release is not None),
    "revenue and order value": ("revenue field on the order role",
                                lambda m: bool(m.roles.order and m.roles.order.revenue)),
    "orders and conversion": ("order role", lambda m: m.roles.order is not None),
}


class EventMap(_Strict):
    """One dataset's semantic layer (see the module docstring)."""

    version: int = 1
    funnels: dict[str, list[str]] = Field(default_factory=dict)
    default_funnel: str | None = None
    roles: Roles = Field(default_factory=Roles)
    dimensions: dict[str, str] = Field(default_factory=dict, description="name -> field reference")
    metrics: dict[str, dict] = Field(default_factory=dict, description="extra or overriding metric definitions")
    tracking_plan: TrackingPlan | None = None
    notes: dict[str, str] = Field(default_factory=dict, description="how each entry was found (set by inference)")

    @model_validator(mode="after")
    def _check(self) -> EventMap:
        for name, steps in self.funnels.items():
            if len(steps) < 2 or len(set(steps)) != len(steps):
                raise ValueError(f"funnels.{name}: a funnel needs at least two distinct steps")
        if self.funnels and self.default_funnel is None:
            self.default_funnel = next(iter(self.funnels))
        if self.default_funnel is not None and self.default_funnel not in self.funnels:
            raise ValueError(f"default_funnel {self.default_funnel!r} is not one of funnels: {', '.join(self.funnels)}")
        for name, ref in self.dimensions.items():
            check_dimension_name(name)
            try:
                parse_field(ref)
            except FieldError as exc:
                raise ValueError(f"dimensions.{name}: {exc}") from None
        for role, value in self.roles:
            for key in ("revenue", "query", "results", "code", "duration", "experiment", "variant"):
                ref = getattr(value, key, None) if value is not None else None
                if ref:
                    try:
                        if parse_field(ref).table != "events":
                            raise FieldError(f"field {ref!r}: role fields live on events")
                    except FieldError as exc:
                        raise ValueError(f"roles.{role}.{key}: {exc}") from None
        release = self.roles.release
        for dim in (release.version, release.platform) if release else ():
            if dim is not None and dim not in self.dimensions:
                raise ValueError(f"roles.release: {dim!r} is not one of the dimensions")
        return self

    # -- funnels and roles ---------------------------------------------------------------
    @property
    def steps(self) -> tuple[str, ...]:
        """The default funnel's steps ("the funnel"); empty when the map has none."""
        return tuple(self.funnels[self.default_funnel]) if self.default_funnel else ()

    def funnel(self, name: str | None = None) -> tuple[str, ...]:
        """A named funnel's steps (the default one without a name)."""
        if name is None:
            return self.steps
        if name not in self.funnels:
            raise MapError(f"no funnel {name!r}; funnels: {', '.join(self.funnels) or 'none'}")
        return tuple(self.funnels[name])

    def event_of(self, role: str) -> str | None:
        """The event name a role maps to, or None when it is not mapped."""
        value = getattr(self.roles, role)
        return getattr(value, "event", None) if value is not None else None

    @property
    def cart_steps(self) -> tuple[str, str] | None:
        """(cart add, order) when both are mapped and are steps of the default funnel, in that order."""
        add, order = self.event_of("cart_add"), self.event_of("order")
        steps = self.steps
        if add and order and add in steps and order in steps and steps.index(add) < steps.index(order):
            return add, order
        return None

    @property
    def steps_after_cart(self) -> tuple[str, ...]:
        """Funnel steps after the cart add (where abandonment shows), or none."""
        return self.steps[self.steps.index(self.cart_steps[0]) + 1:] if self.cart_steps else ()

    def field(self, role: str, key: str) -> FieldRef | None:
        """A role's field (`field("search", "query")`), or None when the role or the field is not mapped."""
        value = getattr(self.roles, role)
        ref = getattr(value, key, None) if value is not None else None
        return parse_field(ref) if ref else None

    def unavailable(self) -> dict[str, str]:
        """Analyses this map cannot run -> what they need."""
        return {name: need for name, (need, has) in NEEDS.items() if not has(self)}

    # -- dimensions ----------------------------------------------------------------------
    @property
    def dims(self) -> tuple[str, ...]:
        return tuple(self.dimensions)

    @property
    def event_dims(self) -> tuple[str, ...]:
        return tuple(d for d in self.dimensions if parse_field(self.dimensions[d]).table == "events")

    @property
    def user_dims(self) -> tuple[str, ...]:
        return tuple(d for d in self.dimensions if parse_field(self.dimensions[d]).table == "users")

    def dim_sql(self, name: str, alias: str = "") -> str:
        """SQL of a dimension's value from a row of its table (events or users) under `alias`."""
        return parse_field(self.dimension_ref(name)).sql(alias)

    def dimension_ref(self, name: str) -> str:
        if name not in self.dimensions:
            raise MapError(f"unknown dimension {name!r}; dimensions: {', '.join(self.dimensions) or 'none'}")
        return self.dimensions[name]

    def check_dimensions(self, names) -> None:
        """Refuse (MapError) a name that is not a dimension of this map."""
        for name in names:
            self.dimension_ref(name)

    def segment_where(self, segment: Mapping[str, SegmentValue], alias: str = "") -> str:
        """The one segment filter on events rows (under `alias`): event dimensions compared on the row,
        user dimensions through a subquery of the users table (so no column of the outer query is
        ambiguous); a list of values is any of them. TRUE for everyone.

        >>> EventMap(dimensions={"os": "os", "plan": "users.plan"}).segment_where({"os": ["ios", "android"]}, "e")
        'e."os" IN (\\'ios\\', \\'android\\')'
        """
        prefix = f"{alias}." if alias else ""
        parts = []
        for name, value in segment.items():
            ref = parse_field(self.dimension_ref(name))
            if ref.table == "events":
                parts.append(value_match(ref.sql(alias), value, name))
            else:
                parts.append(f"{prefix}user_id IN (SELECT user_id FROM users WHERE "
                             f"{value_match(ref.sql(), value, name)})")
        return " AND ".join(parts) or "TRUE"

    def concepts(self) -> dict[str, str]:
        """What a question may name (country, version, platform, channel...) -> this data's dimension for it."""
        release = self.roles.release
        return concept_dimensions(self.dims, release.version if release else None,
                                  release.platform if release else None)

    def in_words(self) -> dict[str, str]:
        """The map for a prompt: funnel, roles and dimensions, each as one short line."""
        roles = "; ".join(f"{role} = {value.event!r}" for role, value in self.roles
                          if value is not None and getattr(value, "event", None))
        return {"funnel": " -> ".join(self.steps) or "none defined", "roles": roles or "none recognized",
                "dimensions": ", ".join(self.dims) or "none"}

    # -- files ---------------------------------------------------------------------------
    def to_yaml(self) -> str:
        return yaml.safe_dump(self.model_dump(mode="json", exclude_none=True, exclude_defaults=False),
                              sort_keys=False, allow_unicode=True, width=110)


def segment_values(value: SegmentValue) -> tuple[str, ...]:
    """The values a segment entry matches: one, or each of a list (in order, without repeats)."""
    return tuple(dict.fromkeys(value)) if isinstance(value, (list, tuple, set, frozenset)) else (value,)


def value_match(expr: str, value: SegmentValue, name: str = "segment") -> str:
    """`expr = 'v'`, or `expr IN ('a', 'b')` for a list; MapError for an empty list (it matches nobody).

    >>> value_match("os", "ios"), value_match("os", ["ios"]), value_match("os", ["ios", "android"])
    ("os = 'ios'", "os = 'ios'", "os IN ('ios', 'android')")
    """
    values = segment_values(value)
    if not values:
        raise MapError(f"segment {name}: an empty list of values matches nobody")
    if len(values) == 1:
        return f"{expr} = {lit(values[0])}"
    return f"{expr} IN ({', '.join(lit(v) for v in values)})"


def check_dimension_name(name: str) -> None:
    """A dimension name must be a plain lower-case identifier that no SQL here uses otherwise."""
    if not NAME.match(name):
        raise ValueError(f"dimension name {name!r}: use lower-case letters, digits and _ (e.g. user_lifecycle)")
    if name in RESERVED or name in sql_keywords():
        raise ValueError(f"dimension name {name!r} is reserved; rename it (e.g. {name}_value)")


@cache
def sql_keywords() -> frozenset[str]:
    """DuckDB's keywords that cannot be a bare column name."""
    rows = duckdb.sql("SELECT keyword_name FROM duckdb_keywords() WHERE keyword_category <> 'unreserved'").fetchall()
    return frozenset(r[0] for r in rows)


def safe_dimension_name(raw: str) -> str:
    """A valid dimension name from any column or property name (`$os` -> `os`, `Order` -> `order_value`)."""
    name = re.sub(r"[^a-z0-9]+", "_", re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", raw).lower()).strip("_") or "dimension"
    if name[0].isdigit():
        name = f"d_{name}"
    if name in RESERVED or name in sql_keywords():
        name = f"{name}_value"
    return name


def parse_map(text: str, where: str) -> EventMap:
    """An event map from YAML text; MapError names `where` and the entry."""
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise MapError(f"{where}: not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise MapError(f"{where}: expected a mapping with funnels, roles and dimensions")
    try:
        return EventMap.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(map(str, first["loc"]))
        raise MapError(f"{where}: {loc + ': ' if loc else ''}{first['msg'].removeprefix('Value error, ')}") from None


def load_map(path: str | Path) -> EventMap:
    """The event map in a YAML file."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise MapError(f"event map not found: {p}") from None
    except OSError as exc:
        raise MapError(f"cannot read event map {p}: {exc.strerror}") from None
    return parse_map(text, str(p))


def shipped_map(name: str = "segment") -> EventMap:
    """A map shipped in data/maps (`segment`: the Segment e-commerce default; `demo`: the demo's, with its plan)."""
    from importlib import resources

    file = resources.files("data").joinpath("maps", f"{name}.yaml")
    if not file.is_file():
        raise MapError(f"no shipped event map {name!r}")
    return parse_map(file.read_text(encoding="utf-8"), f"data/maps/{name}.yaml")
