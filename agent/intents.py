"""Understanding a PM's question without a language model: intent, metric, step, segment, period.

>>> v = Vocabulary(dimensions={"platform": ["ios", "web"], "country": ["DE", "US"]}, data_end="2026-11-23",
...                steps=["view_item", "add_to_cart", "begin_checkout", "add_payment_info", "purchase"])
>>> q = parse("Why did checkout conversion drop last week on iOS?", v)
>>> q.intent, q.period, q.segment
('why_change', 'last_7_days', {'platform': 'ios'})
>>> parse("and in Germany?", v, previous=q).segment
{'country': 'DE'}
>>> parse("Which segments drop off at payment?", v).step
'add_payment_info'
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from datetime import date

from tools.semantic.vocabularies import normalize, stage_of

COUNTRY_NAMES = {
    "germany": "DE", "german": "DE", "brazil": "BR", "brazilian": "BR", "united states": "US", "usa": "US",
    "america": "US", "uk": "GB", "united kingdom": "GB", "britain": "GB", "england": "GB", "france": "FR",
    "french": "FR", "india": "IN", "indian": "IN", "canada": "CA", "canadian": "CA", "japan": "JP",
    "japanese": "JP", "spain": "ES", "italy": "IT", "mexico": "MX", "australia": "AU", "netherlands": "NL",
}
# Words naming a concept of the data (tools.semantic.vocabularies.DIMENSION_CONCEPTS), which the
# Vocabulary resolves to the data's own dimension.
DIMENSION_WORDS = {
    "platform": "platform", "platforms": "platform", "device": "platform", "devices": "platform",
    "os": "os", "operating system": "os", "version": "version", "versions": "version",
    "app version": "version", "release": "version", "releases": "version", "browser": "browser",
    "browsers": "browser", "country": "country", "countries": "country", "market": "country",
    "channel": "channel", "channels": "channel", "acquisition": "channel", "source": "channel",
    "plan": "plan", "plans": "plan", "tier": "plan",
}
# Words for funnel stages (matched to the data's steps by what they mean, whatever their names), in order.
STEP_WORDS = (
    ("add to cart", "cart_add"), ("add-to-cart", "cart_add"), ("adding to cart", "cart_add"),
    ("added to cart", "cart_add"), ("payment", "payment"), ("shipping", "shipping"), ("checkout", "checkout"),
    ("product page", "view"), ("product view", "view"), ("purchase", "order"), ("order", "order"),
)
METRIC_WORDS = (
    ("revenue", "revenue"), ("sales", "revenue"), ("orders", "orders"), ("active users", "dau"),
    ("dau", "dau"), ("add to cart rate", "add_to_cart_rate"), ("add-to-cart rate", "add_to_cart_rate"),
    ("zero result", "zero_result_rate"), ("zero-result", "zero_result_rate"), ("error rate", "error_rate"),
    ("conversion", "conversion_rate"),
)
MONTHS = ("january", "february", "march", "april", "may", "june", "july", "august", "september", "october",
          "november", "december")
# (intent, patterns); the first intent with a matching pattern wins.
INTENT_PATTERNS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("show_sql", (r"\b(show|see|give|what)\b.*\b(sql|query behind|queries behind)\b", r"^sql\??$",
                  r"\bwhich (sql|query)\b")),
    ("run_sql", (r"^\s*(with|select)\b",)),
    ("help", (r"^(help|\?)$", r"\bwhat can you (do|answer)\b", r"\bhow do i use\b")),
    ("unsupported", (r"\b(predict|forecast|next year|weather|poem|joke|stock price|translate)\b",)),
    ("scan", (r"\bfix first\b", r"\bpriorit", r"\bwhat should (we|i) (fix|work on|improve|do)\b",
              r"\b(top|biggest|main|worst) (issues|problems|frictions|opportunities)\b", r"\bwhere do users struggle\b",
              r"\b(suggest|recommend)", r"\bquick wins?\b", r"\bfrictions?\b", r"\bwhat('s| is) broken\b")),
    ("tracking", (r"\btracking\b", r"\binstrumentation\b", r"\bdata quality\b", r"\bevent quality\b",
                  r"\btracking plan\b")),
    ("schema", (r"\b(schema|tables?|columns?|fields)\b", r"\bwhat data\b", r"\bwhich events\b")),
    ("experiments", (r"\bexperiments?\b", r"\ba/?b\b", r"\bab tests?\b", r"\bvariants?\b", r"\bsrm\b",
                     r"\bsample ratio\b", r"\btests? results?\b")),
    ("search", (r"\bsearch", r"\bzero[- ]results?\b", r"\bqueries\b", r"\bquery\b")),
    ("cart", (r"\bcart abandon", r"\babandon", r"(?<!add to )(?<!add-to-)(?<!added to )(?<!adding to )\bcarts?\b")),
    ("retention", (r"\bretention\b", r"\bretain", r"\bcohorts?\b", r"\bcome back\b", r"\bchurn",
                   r"\breturn(ing)? users\b")),
    ("incidents", (r"\bwhat (broke|is broken|went wrong|changed)\b", r"\b(did|has|have) (anything|something) "
                   r"(break|broken|go wrong|gone wrong|change|changed)\b", r"\bincidents?\b", r"\boutages?\b",
                   r"\bwhen did .* (start|begin|stop|drop|fall|break|spike)", r"\b(is|was) (it|that|this) fixed\b",
                   r"\b(has|did) (it|that|this) recover", r"\brecovered\b", r"\bis it (still )?(broken|ongoing)\b",
                   r"\bbroke\b")),
    ("release", (r"\breleases?\b", r"\bregression", r"\bnew version\b", r"^(?!.*\bfunnel\b).*\bapp versions?\b",
                 r"\bupdates? (broke|break)")),
    ("errors", (r"\berrors?\b", r"\bcrash", r"\bbugs?\b", r"\bslow", r"\bload(ing)? times?\b", r"\bspeed\b",
                r"\blatency\b", r"\bperformance\b", r"\bpage load\b")),
    ("why_change", (r"\bwhy\b.*\b(drop|dropped|fall|fell|decline|declined|down|change|changed|lower|worse|"
                    r"increase|increased|up|spike|spiked)\b",)),
    ("trends", (r"\btrends?\b", r"\bover time\b", r"\bweek[- ]over[- ]week\b", r"\bwow\b", r"\bdaily\b",
                r"\banomal", r"\bspikes?\b", r"\bhow (is|are|did) .*\b(revenue|orders|active users|dau)\b",
                r"\b(revenue|dau|active users|add[- ]to[- ]cart rate)\b")),
    ("dropoffs", (r"\bwhy\b", r"\bwhich segments?\b", r"\bwho drops\b", r"\bdrop[- ]?offs?\b", r"\broot cause\b",
                  r"\bwhere do (users|people|customers) (drop|leave|give up)\b", r"\bsegments?\b")),
    ("funnel", (r"\bfunnel\b", r"\bconver", r"\bhow many (users|people|customers)\b", r"\bstep\b")),
)
FOLLOW_UP = re.compile(r"^\s*(and|what about|how about|same for|now for|only for|just for|also for|and for|"
                       r"then for|ok(ay)?,? (and|what about)|what if)\b", re.IGNORECASE)


@dataclass(frozen=True)
class Vocabulary:
    """What the data contains: segment values per dimension, experiments, and its end date."""

    dimensions: dict[str, list[str]] = field(default_factory=dict)
    experiments: dict[str, str] = field(default_factory=dict)  # experiment_id -> name
    data_end: str | None = None
    metrics: dict[str, str] = field(default_factory=dict)  # metric key -> name (the metric catalog)
    steps: list[str] = field(default_factory=list)  # the event map's default funnel
    funnel_name: str = "main"  # and its name
    concepts: dict[str, str] = field(default_factory=dict)  # concept (country, version...) -> the data's dimension

    def dimension(self, concept: str) -> str | None:
        """The data's dimension for a concept; a dimension of that very name when the map says nothing."""
        return self.concepts.get(concept) or (concept if concept in self.dimensions else None)


@dataclass(frozen=True)
class Question:
    """A parsed question: what to compute."""

    text: str
    intent: str
    period: str = "all"
    segment: dict[str, str] = field(default_factory=dict)
    breakdown: str | None = None
    step: str | None = None
    metric: str = "conversion_rate"
    experiment_id: str | None = None
    week_n: int = 1
    entity: str = "users"
    sql: str | None = None
    metric_name: str | None = None
    follow_up: bool = False


def _intent(q: str) -> str | None:
    for intent, patterns in INTENT_PATTERNS:
        if any(re.search(p, q) for p in patterns):
            return intent
    return None


MONTH = "(" + "|".join(MONTHS) + "|" + "|".join(m[:3] for m in MONTHS) + ")"
PARTS = {"early": (1, 11), "mid": (11, 21), "middle of": (11, 21), "late": (21, 32), "end of": (21, 32)}


def _month_year(month: int, v: Vocabulary) -> int | None:
    """The year of the latest such month at or before the end of the data."""
    if not v.data_end:
        return None
    end = date.fromisoformat(v.data_end[:10])
    return end.year if month <= end.month else end.year - 1


def _day(month_name: str, day: str, v: Vocabulary) -> date | None:
    month = next(i for i, m in enumerate(MONTHS, 1) if m.startswith(month_name[:3]))
    year = _month_year(month, v)
    try:
        return date(year, month, int(day)) if year else None
    except ValueError:
        return None


def _month_range(month: int, year: int, first: int = 1, last: int = 32) -> str:
    """Days [first, last) of a month ('late May' = the 21st to the month's end) as a period."""
    start = date(year, month, first)
    month_end = date(year + (month == 12), month % 12 + 1, 1)
    end = month_end if last > 28 else date(year, month, last)
    return f"{start}..{end}"


def _period(q: str, v: Vocabulary) -> str | None:
    if m := re.search(r"\b(\d{4})-w(\d{1,2})\b", q):
        return f"{m.group(1)}-W{int(m.group(2)):02d}"
    if m := re.search(r"(\d{4}-\d{2}-\d{2})\s*(?:\.\.|to|until|and|-|–)\s*(\d{4}-\d{2}-\d{2})", q):
        return f"{m.group(1)}..{m.group(2)}"
    if m := re.search(rf"\b(?:between|from) {MONTH} (\d{{1,2}})(?:st|nd|rd|th)? (?:and|to|until|-) {MONTH} "
                      rf"(\d{{1,2}})(?:st|nd|rd|th)?\b", q):
        first, last = _day(m.group(1), m.group(2), v), _day(m.group(3), m.group(4), v)
        if first and last and last > first:
            return f"{first}..{last}"
    if m := re.search(r"\b(before|after|since) (?:the )?(?:release |version |v)?(\d+(?:\.\d+)+)(?: release)?\b", q):
        return f"{'before' if m.group(1) == 'before' else 'after'}_release:{m.group(2)}"
    if m := re.search(r"\b(?:last|past|previous)\s+(\d{1,3})\s+(day|week|month)s?\b", q):
        n = int(m.group(1)) * {"day": 1, "week": 7, "month": 30}[m.group(2)]
        return f"last_{n}_days"
    if re.search(r"\b(last|past|previous|this) week\b", q):
        return "last_7_days"
    if re.search(r"\b(last|past|previous|this) month\b", q):
        return "last_30_days"
    if re.search(r"\b(yesterday|today|last day|past day)\b", q):
        return "last_1_days"
    if (m := re.search(r"\bweek (\d{1,2})\b", q)) and v.data_end and "retention" not in q:
        return f"{date.fromisoformat(v.data_end[:10]).isocalendar().year}-W{int(m.group(1)):02d}"
    for i, month in enumerate(MONTHS, 1):
        part = re.search(rf"\b(early|mid|middle of|late|end of)[ -]{month}\b", q)
        whole = re.search(rf"\b(in|during|for|of) {month}\b", q)
        year = _month_year(i, v)
        if (part or whole) and year:
            first, last = PARTS[part.group(1)] if part else (1, 32)
            return _month_range(i, year, first, last)
    if re.search(r"\b(all time|overall|ever|whole period|all data)\b", q):
        return "all"
    return None


def _segment(text: str, v: Vocabulary) -> dict[str, str]:
    """Dimension values named in the question (country names and codes, versions, platform words...)."""
    q = text.lower()
    out: dict[str, str] = {}
    country, version, plan = v.dimension("country"), v.dimension("version"), v.dimension("plan")
    for name, code in COUNTRY_NAMES.items():
        if country and re.search(rf"\b{name}\b", q) and code in v.dimensions.get(country, []):
            out[country] = code
    for code in v.dimensions.get(country, []) if country else []:
        if re.search(rf"\b{re.escape(code)}\b", text) and len(code) == 2:
            out.setdefault(country, code)
    for value in v.dimensions.get(version, []) if version else []:
        short = re.escape(value.removesuffix(".0"))
        if re.search(rf"(?<![\d.]){short}(\.0)?(?![\d.])", q):
            out[version] = value
    for dim in v.dimensions:
        if dim in (country, version) or dim in out:
            continue
        for value in v.dimensions.get(dim, []):
            word = re.escape(value.lower()).replace("_", "[ _]")
            needs_context = dim == plan or value.lower() in {"web", "email", "organic", "social"}
            if needs_context and not re.search(rf"\b{word}\b\s*(plan|tier|users?|customers?|channel|traffic)\b|"
                                               rf"\b(on|from|via|plan|channel)\s+{word}\b", q):
                continue
            if re.search(rf"\b{word}\b", q):
                out[dim] = value
                break
    platform, os_ = v.dimension("platform"), v.dimension("os")
    if platform and os_ and out.get(platform) and out.get(platform) == out.get(os_):
        out.pop(os_)  # "on iOS": the platform, not also the OS
    return out


def _breakdown(q: str, v: Vocabulary) -> str | None:
    """The dimension a question breaks down by: a concept word ("by country"), or a dimension's own name."""
    m = re.search(r"\b(?:by|per|across|split by|broken down by|for each|each)\s+(operating system|app version|"
                  r"[a-z_]+)", q)
    if not m:
        return None
    concept = DIMENSION_WORDS.get(m.group(1))
    return v.dimension(concept) if concept else (m.group(1) if m.group(1) in v.dimensions else None)


def _step(q: str, v: Vocabulary) -> str | None:
    """The funnel step a question names: by a stage word ("payment", "add to cart") matched to what the
    data's steps mean, else by a word of a step's own name ("demo" in `demo_scheduled`)."""
    for word, stage in STEP_WORDS:
        if word in q:
            step = next((s for s in v.steps if stage_of(s) == stage), None)
            if step:
                return step
    words = set(re.findall(r"[a-z0-9]+", q)) - GENERIC_STEP_WORDS
    return next((s for s in v.steps if words & (set(normalize(s).split()) - GENERIC_STEP_WORDS)), None)


# Words of step names that say nothing about which step it is.
GENERIC_STEP_WORDS = {"viewed", "view", "started", "start", "completed", "complete", "entered", "info", "add",
                      "added", "clicked", "the", "a", "at", "to", "of", "in", "on", "and", "or", "step", "page",
                      "event", "user", "users", "who", "drop", "off", "for", "is", "are", "which", "what", "why",
                      "segments", "segment", "conversion", "rate", "funnel", "how", "many", "does", "do"}


def _metric(q: str) -> str | None:
    """The metric the question names, if any."""
    return next((metric for word, metric in METRIC_WORDS if word in q), None)


GENERIC_WORDS = {"experiment", "exp", "test", "the", "a", "an", "of", "new", "and", "ab", "variant"}


def _experiment(q: str, v: Vocabulary) -> str | None:
    """The experiment named by id, by name, or by the most words of its name."""
    words = set(re.findall(r"[a-z0-9]+", q)) - GENERIC_WORDS
    best, score = None, 0
    for exp_id, name in v.experiments.items():
        if exp_id.lower() in q or (name and name.lower() in q):
            return exp_id
        overlap = len(words & (set(re.findall(r"[a-z0-9]+", f"{exp_id} {name}".lower())) - GENERIC_WORDS))
        if overlap > score:
            best, score = exp_id, overlap
    return best


def parse(text: str, vocabulary: Vocabulary, previous: Question | None = None) -> Question:
    """Parse one question; a follow-up ("and on iOS?") reuses the previous question's intent."""
    q = " ".join(text.lower().split())
    if previous is not None and previous.intent == "retention":  # "and week 3?" asks for week-3 retention
        q = re.sub(r"\bweek[- ]?([1-9]|1[0-2])\b(?! retention)", r"week-\1 retention", q)
    period, segment, breakdown = _period(q, vocabulary), _segment(text, vocabulary), _breakdown(q, vocabulary)
    intent = _intent(_without_values(q, segment))
    if intent is None and any(i.lower() in q or (n and n.lower() in q) for i, n in vocabulary.experiments.items()):
        intent = "experiments"  # "results of exp_onboarding", "how is the new onboarding test doing?"
    follow = previous is not None and previous.intent not in {"help", "unsupported", "show_sql"} and (
        bool(FOLLOW_UP.match(q)) or intent is None) and bool(period or segment or breakdown or FOLLOW_UP.match(q))
    if follow and (intent is None or intent in {"funnel", "dropoffs"} and FOLLOW_UP.match(q)):
        merged = ({**previous.segment, **segment} if _narrows(q) else segment) if segment else previous.segment
        keep = breakdown or previous.breakdown
        return replace(previous, text=text, period=period or previous.period, segment=merged,
                       breakdown=None if keep in merged else keep, metric=_metric(q) or previous.metric,
                       follow_up=True)
    definition = DEFINITION.search(q)
    named = _named_metric(q, vocabulary)
    if definition:
        intent = "metric_definition"
        named = named or next(g for g in definition.groups() if g).strip(" ?.'\"")
    elif named and (intent is None or intent in ("trends", "funnel") and named not in ANALYSED_ELSEWHERE
                    and not re.search(r"\b(trend|over time|daily|funnel|week[- ]over[- ]week|wow)", q)):
        intent = "metric"  # "MAU last month on Android" is computed from its definition
    elif intent is None and (unknown := re.search(r"\bwhat(?:'s| is) (?:our|the) ([a-z][\w -]{1,30}?)\??$", q)):
        intent, named = "metric_definition", unknown.group(1)  # "what is our NPS?": say whether it is defined
    metric = _metric(q)
    if intent == "why_change" and metric is None and previous and previous.intent in {"trends", "why_change"}:
        metric, segment = previous.metric, segment or previous.segment  # "why did it change?" after a trend
    week = re.search(r"\bweek[- ]?(\d{1,2}) retention\b|\bretention (?:in|at|for) week (\d{1,2})\b", q)
    sql = text[re.search(r"(?i)\b(with|select)\b", text).start():].strip() if intent == "run_sql" else None
    return Question(
        text=text, intent=intent or "unknown", period=period or "all", segment=segment, breakdown=breakdown,
        step=_step(q, vocabulary), metric=metric or "conversion_rate", experiment_id=_experiment(q, vocabulary),
        week_n=int(next(g for g in week.groups() if g)) if week else 1,
        entity="sessions" if re.search(r"\bsessions?\b", q) else "users", sql=sql, metric_name=named,
    )


# Metrics whose questions the funnel, trends, cart and search analyses answer in more depth.
ANALYSED_ELSEWHERE = {"conversion_rate", "orders", "revenue", "cart_abandonment", "zero_result_rate",
                      "add_to_cart_rate", "error_rate"}
DEFINITION = re.compile(
    r"\bhow (?:is|are) (?:the |our )?(.+?) (?:defined|calculated|computed|measured)\b"
    r"|\bhow do (?:we|you) (?:define|calculate|compute|measure) (?:the |our )?(.+?)\s*\??$"
    r"|\b(?:definition of|define) (?:the |our )?(.+?)\s*\??$"
    r"|\bwhat (?:is|does) (?:the )?(?:metric )?(.+?) mean\??$")


def _named_metric(q: str, v: Vocabulary) -> str | None:
    """A metric of the metrics layer named by key (`mau`) or name (`monthly active users`)."""
    for key, name in v.metrics.items():
        if re.search(rf"\b{re.escape(key.replace('_', ' '))}\b", q.replace("_", " ")) or (
                name and re.search(rf"\b{re.escape(name.lower())}\b", q)):
            return key
    return None


def _without_values(q: str, segment: dict[str, str]) -> str:
    """The question without the segment values it names ('paid search users' is not about search)."""
    for value in segment.values():
        q = re.sub(rf"\b{re.escape(value.lower()).replace('_', '[ _]')}\b", " ", q)
    return q


def _narrows(q: str) -> bool:
    """'and among those, on iOS?' narrows the previous segment; otherwise a new segment replaces it."""
    return bool(re.search(r"\b(within|among|of those|also|as well|in addition)\b", q))
