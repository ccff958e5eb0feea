"""Known event vocabularies: how teams name the events and fields each role and funnel stage means.

Names are compared after normalization (`$`, case, camelCase, `_`, `-` and spaces folded:
`addToCart`, `add_to_cart` and `Add To Cart` are all `add to cart`), against patterns drawn
from the Segment e-commerce spec, GA4's recommended events, PostHog, Amplitude and Mixpanel
conventions, and the usual snake_case, camelCase and spaced variants.

>>> normalize("addToCart"), normalize("$pageview"), normalize("Order Completed")
('add to cart', 'pageview', 'order completed')
>>> stage_of("begin_checkout"), stage_of("purchase_success"), role_of("view_search_results")
('checkout', 'order', 'search')
"""

from __future__ import annotations

import re

# The e-commerce funnel, in order; a stage is a funnel step when the data has it.
STAGES: dict[str, tuple[str, ...]] = {
    "view": (r"(product|item)s? (viewed|view|details? viewed|page viewed|detail view(ed)?|opened)",
             r"view (item|product)( details?| page)?", r"viewed (product|item)( page)?", r"pdp view(ed)?",
             r"product (page|detail) view(ed)?"),
    "cart_add": (r"(product|item)s? added( to (cart|basket|bag))?", r"add(ed)? (item |product )?to (cart|basket|bag)",
                 r"cart (add|added|item added)", r"add to cart clicked"),
    "checkout": (r"checkout started", r"begin checkout", r"start(ed)? checkout", r"checkout (begin|began|start|"
                 r"initiated|opened)", r"initiate(d)? checkout", r"checkout"),
    "shipping": (r"add shipping info", r"shipping info entered", r"shipping (details|address) (entered|added)"),
    "payment": (r"payment info entered", r"add payment info", r"payment (info|details|method) (entered|added|"
                r"submitted)", r"(enter|entered|add|added) payment( info| details| method)?"),
    "order": (r"order completed", r"purchase", r"purchase (success|succeeded|completed|complete|confirmed)",
              r"(order|purchase) (placed|submitted|confirmed|success|successful|created)", r"complete(d)? purchase",
              r"checkout (completed|complete|success|succeeded|finished)", r"transaction( completed)?",
              r"complete(d)? order", r"purchased", r"order", r"place(d)? order", r"buy", r"bought"),
}
ROLES: dict[str, tuple[str, ...]] = {
    "search": (r"products? searched", r"search(ed)?", r"search (performed|submitted|query|executed|started|"
               r"made|done)", r"view search results", r"site search", r"product search", r"searched products?"),
    "search_click": (r"search result (clicked|click|selected|opened)", r"select search result",
                     r"search click(ed)?", r"clicked search result", r"product clicked", r"select item"),
    "error": (r"error( shown| occurred| displayed| viewed| raised)?", r"exception", r"app exception",
              r"(app|js|javascript|client|api|server|checkout|payment|page) error", r"crash(ed)?"),
    "signup": (r"signed up", r"sign up( completed)?", r"signup( completed)?", r"user (signed up|registered|created)",
               r"account created", r"registered", r"registration( completed| complete)?", r"create(d)? account",
               r"complete(d)? registration"),
    "exposure": (r"exposure", r"experiment (started|viewed|exposure|assigned)", r"feature flag called",
                 r"experiment exposure", r"experience impression"),
}
# Events that are navigation or bookkeeping, never a step of a guessed funnel.
NOISE = (r"page( view(ed)?)?", r"pageview", r"screen( view(ed)?)?", r"application (opened|installed|updated|"
         r"backgrounded)", r"app open(ed)?", r"session start(ed)?", r"first (visit|open)", r"user engagement",
         r"log ?in", r"logged in", r"identify", r"autocapture", r"pageleave", r"page leave", r"rageclick",
         r"set", r"alias", r"create alias", r"mp web page view", r"web vitals", r"scroll", r"click")

# Field names (normalized to snake_case) each role field is usually given.
FIELDS: dict[str, tuple[str, ...]] = {
    "order.revenue": ("revenue", "value", "amount", "total", "order_total", "order_value", "purchase_revenue",
                      "total_price", "order_amount", "grand_total", "price"),
    "search.query": ("search_query", "query", "search_term", "term", "keyword", "keywords", "q", "search_string",
                     "search_text", "search"),
    "search.results": ("results_count", "result_count", "num_results", "number_of_results", "results", "hits",
                       "search_results",
                       "search_results_count", "total_results", "nb_results", "n_results", "results_total"),
    "error.code": ("error_code", "code", "error_type", "error_name", "exception_type", "error", "type", "reason",
                   "error_message", "message", "description"),
    "page_load.duration": ("load_time_ms", "load_time", "page_load_time", "page_load_ms", "load_ms", "duration_ms",
                           "latency_ms", "load_duration", "time_to_load", "performance_page_loaded", "load_duration_ms",
                           "page_load_time_ms"),
    "exposure.experiment": ("experiment", "experiment_id", "experiment_name", "experiment_key", "flag_key",
                            "feature_flag", "flag", "test_name"),
    "exposure.variant": ("variant", "variation", "variant_name", "variant_id", "feature_flag_response", "arm",
                         "group", "experiment_variant", "bucket"),
}
RELEASE_NAMES = ("app_version", "version", "version_name", "app_version_string", "release", "app_release",
                 "build_version", "client_version", "app_info_version")
RELEASE_WORDS = ("version", "release", "build")
PLATFORM_NAMES = ("platform", "device_type", "device_category", "device")


def normalize(name: str) -> str:
    """Lower-case words of an event or field name, whatever its casing and separators."""
    text = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", str(name).replace("$", " "))
    return " ".join(re.sub(r"[^a-z0-9]+", " ", text.lower()).split())


def snake(name: str) -> str:
    """A field name in snake_case (`$current_url` -> `current_url`, `searchTerm` -> `search_term`)."""
    return normalize(name).replace(" ", "_")


def _match(name: str, patterns: tuple[str, ...]) -> int | None:
    """Index of the first pattern the normalized name matches in full (lower = more typical)."""
    text = normalize(name)
    return next((i for i, p in enumerate(patterns) if re.fullmatch(p, text)), None)


def stage_of(name: str) -> str | None:
    """The e-commerce funnel stage an event name means, if any."""
    hits = [(i, stage) for stage, patterns in STAGES.items() if (i := _match(name, patterns)) is not None]
    return min(hits)[1] if hits else None


def role_of(name: str) -> str | None:
    """The non-funnel role an event name means (search, search_click, error, signup, exposure), if any."""
    hits = [(i, role) for role, patterns in ROLES.items() if (i := _match(name, patterns)) is not None]
    return min(hits)[1] if hits else None


def preference(name: str, patterns: tuple[str, ...]) -> int:
    """How typical a name is for a pattern list (0 = most); large when it does not match."""
    found = _match(name, patterns)
    return 999 if found is None else found


def is_noise(name: str) -> bool:
    return _match(name, NOISE) is not None

# What a question may break down or filter by, and the words a dimension's name has when it holds it.
DIMENSION_CONCEPTS: dict[str, tuple[str, ...]] = {
    "platform": ("platform", "device_type", "device_category", "device"),
    "os": ("os", "operating_system", "os_name"),
    "version": ("app_version", "version", "release", "build"),
    "browser": ("browser", "browser_name"),
    "country": ("country", "geo_country", "market"),
    "channel": ("acquisition_channel", "channel", "acquisition", "source", "medium", "utm_source", "campaign"),
    "plan": ("plan", "tier", "subscription"),
}


def concept_dimensions(dims: tuple[str, ...], release_version: str | None = None,
                       release_platform: str | None = None) -> dict[str, str]:
    """concept -> the data's dimension holding it: the release role's dimensions for version and platform, else
    a dimension named as the concept, else one whose name has one of its words (`geo_country` for country)."""
    out = {"version": release_version, "platform": release_platform}
    for concept, words in DIMENSION_CONCEPTS.items():
        if out.get(concept):
            continue
        exact = next((d for w in words for d in dims if d == w), None)
        out[concept] = exact or next((d for w in words for d in dims if w in d.split("_") or d.endswith(f"_{w}")),
                                     None)
    return {c: d for c, d in out.items() if d}
