"""The slots of a question, read against what the data holds: segment, breakdown, step, metric, experiment.

Every value comes from the data's own vocabulary (its dimensions' values, its funnel's steps,
its metric catalog, its experiments); the word lists here only say what everyday words mean.

>>> dims = {"platform": ["android", "ios", "web"], "country": ["BR", "DE"], "browser": ["chrome", "safari"]}
>>> segment("How is mobile doing in Brazil?", dims, {"platform": "platform", "country": "country"})
{'country': 'BR', 'platform': ['android', 'ios']}
>>> segment("Is checkout broken on Safari?", dims, {})
{'browser': 'safari'}
>>> spell("convertion by platfrom", {"conversion", "platform"})
'conversion by platform'
"""

from __future__ import annotations

import re
from difflib import get_close_matches

from tools.semantic.eventmap import segment_values
from tools.semantic.vocabularies import normalize, stage_of

COUNTRY_NAMES = {
    "germany": "DE", "german": "DE", "brazil": "BR", "brazilian": "BR", "brasil": "BR", "united states": "US",
    "usa": "US", "america": "US", "american": "US", "uk": "GB", "united kingdom": "GB", "britain": "GB",
    "british": "GB", "england": "GB", "france": "FR", "french": "FR", "india": "IN", "indian": "IN",
    "canada": "CA", "canadian": "CA", "japan": "JP", "japanese": "JP", "spain": "ES", "spanish": "ES",
    "italy": "IT", "italian": "IT", "mexico": "MX", "mexican": "MX", "australia": "AU", "australian": "AU",
    "netherlands": "NL", "dutch": "NL", "the states": "US", "stateside": "US", "brits": "GB", "brit": "GB",
    "deutschland": "DE", "canuck": "CA", "yanks": "US", "aussie": "AU",
}
# Everyday names of groups of values (matched to the dimension holding all of them).
EVERYDAY = {"mobile": ("ios", "android"), "mobile app": ("ios", "android"), "apps": ("ios", "android"),
            "app users": ("ios", "android"), "desktop": ("web",), "website": ("web",), "browser users": ("web",),
            "iphone": ("ios",), "ipad": ("ios",), "apple": ("ios",), "the app": ("ios", "android"),
            "phones": ("ios", "android"), "phone": ("ios", "android"), "smartphones?": ("ios", "android"),
            "iphones": ("ios",), "ipads": ("ios",),
            # "app sessions", "in-app": the apps, but not "app version", "app store" or "app release"
            r"app(?! versions?\b| releases?\b| updates?\b| stores?\b| builds?\b| ratings?\b| reviews?\b)":
                ("ios", "android")}
# Everyday names of one value, spelled as teams spell it: the first the data has is meant.
ALIASES = {"paid search": ("paid_search", "cpc", "paid"), "google ads": ("paid_search", "cpc", "paid"),
           "adwords": ("paid_search", "cpc"), "ppc": ("paid_search", "cpc"), "paid ads": ("paid_search", "cpc", "paid"),
           "mac": ("macos", "mac os x", "mac"), "macs": ("macos", "mac os x", "mac"), "macbook": ("macos", "mac os x"),
           "social media": ("social",), "socials": ("social",), "newsletter": ("email",), "seo": ("organic",),
           "windows pcs?": ("windows",), "referred": ("referral",), "referrals": ("referral",),
           "word of mouth": ("referral",), "sem": ("paid_search", "cpc", "paid")}
# Words naming a concept of the data (tools.semantic.vocabularies.DIMENSION_CONCEPTS).
DIMENSION_WORDS = {
    "platform": "platform", "platforms": "platform", "device": "platform", "devices": "platform",
    "os": "os", "operating system": "os", "version": "version", "versions": "version",
    "app version": "version", "release": "version", "releases": "version", "browser": "browser",
    "browsers": "browser", "country": "country", "countries": "country", "market": "country", "markets": "country",
    "geo": "country", "region": "country", "channel": "channel", "channels": "channel", "acquisition": "channel",
    "acquisition channel": "channel", "source": "channel", "sources": "channel", "traffic source": "channel",
    "plan": "plan", "plans": "plan", "tier": "plan", "tiers": "plan", "subscription": "plan",
}
# Everyday words for funnel stages, matched to the data's steps by what the steps mean, whatever their names.
STEP_WORDS = (
    ("add to cart", "cart_add"), ("add-to-cart", "cart_add"), ("adding to cart", "cart_add"),
    ("added to cart", "cart_add"), ("adding items", "cart_add"), ("into the cart", "cart_add"),
    ("to the cart", "cart_add"), ("into cart", "cart_add"), ("payment", "payment"), ("paying", "payment"),
    ("pay", "payment"), ("card details", "payment"), ("card entry", "payment"), ("card form", "payment"),
    ("ordering", "order"), ("checking out", "checkout"), ("shipping", "shipping"), ("checkout", "checkout"),
    ("check out", "checkout"), ("product page", "view"), ("product view", "view"), ("purchase", "order"),
    ("buying", "order"), ("buy", "order"), ("order", "order"), ("cart", "cart_add"), ("basket", "cart_add"),
)
METRIC_WORDS = (
    ("bought", "buyers"), ("buyers", "buyers"), ("order count", "orders"), ("bring in", "revenue"),
    ("add-to-cart rate", "add_to_cart_rate"), ("add to cart rate", "add_to_cart_rate"),
    ("add-to-cart", "add_to_cart_rate"),
    ("brought in", "revenue"), ("into orders", "conversion_rate"),
    ("revenue", "revenue"), ("sales", "revenue"), ("gmv", "revenue"), ("money", "revenue"), ("orders", "orders"),
    ("purchases", "orders"), ("sell more", "revenue"), ("sell less", "revenue"), ("sold more", "revenue"),
    ("spend", "revenue"), ("spent", "revenue"), ("active users", "dau"), ("dau", "dau"),
    ("add to cart rate", "add_to_cart_rate"),
    ("add-to-cart rate", "add_to_cart_rate"), ("zero result", "zero_result_rate"),
    ("zero-result", "zero_result_rate"), ("error rate", "error_rate"), ("conversion", "conversion_rate"),
    ("purchase rate", "conversion_rate"), ("conv rate", "conversion_rate"), ("cvr", "conversion_rate"),
    ("visits", "sessions"), ("traffic", "sessions"),
)
# Words of step names that say nothing about which step it is.
GENERIC_STEP_WORDS = {"viewed", "view", "started", "start", "completed", "complete", "entered", "info", "add",
                      "added", "clicked", "the", "a", "at", "to", "of", "in", "on", "and", "or", "step", "page",
                      "event", "user", "users", "who", "drop", "off", "for", "is", "are", "which", "what", "why",
                      "segments", "segment", "conversion", "rate", "funnel", "how", "many", "does", "do"}
GENERIC_WORDS = {"experiment", "exp", "test", "the", "a", "an", "of", "new", "and", "ab", "variant"}
# Words of what a question may ask about: the targets of spelling correction (with the data's own words).
LEXICON = ("conversion", "converting", "retention", "retained", "checkout", "funnel", "abandonment", "abandon",
           "experiment", "experiments", "revenue", "search", "searches", "payment", "purchase", "platform",
           "country", "browser", "channel", "incident", "incidents", "release", "releases", "errors", "segments",
           "segment", "cohort", "cohorts", "trend", "trends", "anomalies", "quarter", "weekly", "monthly", "daily",
           "yesterday", "fortnight", "compare", "comparison", "conversions", "breakdown", "mobile", "desktop",
           "android", "safari", "chrome", "firefox", "german", "germany", "brazil", "brazilian", "dropoff",
           "dropping", "struggling", "version", "orders", "queries", "results", "abandoned", "signup", "signed",
           "month", "weeks", "broken", "crashes", "performance", "latency", "loading", "subscription", "variant",
           "variants", "significant", "improve", "prioritize", "priority", "suggestions", "customers", "shoppers",
           "september", "october", "november", "december", "january", "february", "august", "tracking", "spend",
           "spent", "average", "value", "first", "groups", "finish", "worse", "defined", "define", "definition",
           "calculated", "calculate", "computed", "compute", "measured", "measure", "meaning", "please", "thanks",
           "should", "would", "could", "their", "there", "these", "those", "where", "which", "while", "about",
           "after", "before", "since", "users", "people", "number", "share", "percent", "today", "showing",
           "dropoffs", "dropoff", "erroring", "laggy", "killers", "predecessor", "folks", "basket", "tanked",
           "cratered", "plummeted", "nosedived", "searching", "searched", "searchers", "searcher")
# Everyday words that look like a slip of a known word ("other" ~ "order"): never corrected.
COMMON = ("other", "others", "every", "during", "between", "against", "without", "within", "among", "right",
          "wrong", "still", "again", "maybe", "really", "great", "quick", "little", "large", "small", "think",
          "doing", "going", "being", "having", "getting", "making", "seeing", "looking", "coming", "using",
          "working", "trying", "happen", "happened", "happening", "anything", "something", "everything", "nothing",
          "anyone", "person", "total", "whole", "point", "order", "older", "newer", "later", "earlier", "lately",
          "recently", "compared", "across", "tell", "explain", "happy", "worst", "better", "best", "most", "least",
          "fewer", "under", "above", "below", "over", "whose", "whom", "what", "when", "kind", "sort", "type",
          "group", "place", "spend", "send", "spent", "speed", "speeds", "hours", "minutes", "seconds", "times",
          "prior", "score", "store", "stores", "month", "months", "operating", "system", "systems",
          "stage", "stages", "sticky", "stickier", "ranking", "ranked", "story", "level", "levels", "placed", "turned",
          "rather", "thing", "things", "black", "latest", "hearing", "beating", "bailed", "close", "loses", "wants",
          "competitor", "competitors", "shipping", "called", "opportunity", "opportunities", "delivery", "deliveries",
          "audience", "audiences", "volume", "curve", "deeper", "focus", "kinds", "types", "timeouts", "failures",
          "sliding", "slipping", "returned", "estimate", "clicks", "emails", "pages", "steps", "stick", "whether",
          "switch", "switched", "filling", "finding", "wandering")


def spell(text: str, known: set[str]) -> str:
    """`text` with words of five letters or more that are close to a known word (and not one) corrected."""
    def fix(m: re.Match) -> str:
        word = m.group(0)
        if len(word) < 5 or word in known:
            return word
        close = get_close_matches(word, known, n=1, cutoff=0.8)
        return close[0] if close else word
    return re.sub(r"[a-z]+", fix, text)


def known_words(dimensions: dict[str, list[str]], steps: list[str], metrics: dict[str, str]) -> set[str]:
    """What spelling correction may correct to: the lexicon and the data's own words."""
    words = set(LEXICON) | set(COMMON) | {  # every word of the everyday names ("the states", "word of mouth")
        w for name in (*COUNTRY_NAMES, *DIMENSION_WORDS, *EVERYDAY, *ALIASES) for w in name.split() if w.isalpha()}
    for text in [*dimensions, *(v for vs in dimensions.values() for v in vs), *steps, *metrics, *metrics.values()]:
        words.update(w for w in normalize(str(text)).split() if w.isalpha())
    return {w for w in words if " " not in w}


def _country_value(code: str, values: list[str]) -> str | None:
    """The data's value for a country: its code (`BR`) or its name (`Brazil`, as GA4 and Amplitude write it)."""
    names = {n for n, c in COUNTRY_NAMES.items() if c == code}
    return next((v for v in values if v == code or str(v).lower() in names), None)


def _value_word(value: str) -> str:
    return re.escape(value.lower()).replace("_", "[ _-]")


def _names(q: str, value: str, plan: bool) -> bool:
    """Whether the question names a value; plan names and common words need context ("pro plan", "on web")."""
    word = _value_word(value)
    if (plan or value.lower() in {"web", "email", "organic", "social", "free", "other", "unknown"}) and not re.search(
            rf"\b{word}\b(-\w+)?[\s-]*(plan|tier|users?|customers?|channel|traffic|visitors?|signups?|shoppers?|"
            rf"cohorts?|folks|people|buyers|campaigns?|subscribers?|members?)\b|\b(on|from|via|plan|channel|for|did|does|through)\s+(the\s+)?{word}\b|"
            rf"^(and|what about|how about|same for|now|just|only)\s+(the\s+)?{word}\b|(^|, )\s*{word}\s*(,|$)|"
            rf"\b{word}\s+(vs\.?|versus|or)\s|\b(vs\.?|versus|or)\s+(the\s+)?{word}\b|\b{word}\s+only\b|"
            rf"\bonly\s+(on\s+|for\s+)?(the\s+)?{word}\b", q):
        return False
    return bool(re.search(rf"\b{word}\b", q))


APP_WORDS = {"the app", "apps", "app users", "mobile app", next(w for w in EVERYDAY if w.startswith("app("))}


def _everyday(q: str, dimensions: dict[str, list[str]], out: dict, version: str | None) -> None:
    """'mobile' = ios + android, 'desktop' = web: on the dimension holding every value of the group."""
    literal = {str(v).lower() for vs in dimensions.values() for v in vs}
    for word, values in EVERYDAY.items():
        named = {str(x).lower() for v in out.values() for x in segment_values(v)}
        if word in literal or not re.search(rf"\b{word}\b", q) or named & set(values) or (
                version and version in out and word in APP_WORDS):
            continue  # a word that is a value of the data ("mobile" of a device type) means that value; a value
            # already named ("iPhone users of the app") says it more precisely
        for dim, present in dimensions.items():
            lower = {str(v).lower(): v for v in present}
            if all(v in lower for v in values):
                found = sorted({*(segment_values(out[dim]) if dim in out else ()), *(lower[v] for v in values)})
                out[dim] = found[0] if len(found) == 1 else found  # "web users vs app users": both
                break


# Words excluding what follows ("everyone except web users", "excluding Brazil", "non-mobile"): the values left.
EXCLUDE = re.compile(r"\b(?:except(?: for)?|excluding|exclude|not including|other than|apart from|outside(?: of)?|"
                     r"without|but not|not on|(?:everyone|everybody|everything|all|anyone|users|people|countries|"
                     r"markets|platforms|browsers) but)\s+(?:the\s+|any\s+)?([^,.;:?!()]+)|"
                     r"\bnon[- ]([a-z][^,.;:?!()]*)",
                     re.IGNORECASE)
EXCLUDE_END = re.compile(r"\s(?:in|on|for|over|during|since|last|this|past|from|by|per|vs\.?|versus|compared|when|"
                         r"where|who|which|what|and then|right|is|are|was|were|did|do|does)\b.*", re.IGNORECASE)


def _excluded(q: str, text: str, dimensions: dict[str, list[str]], concepts: dict[str, str]
              ) -> tuple[str, str, dict[str, str | list[str]]]:
    """The question and the text as typed without an exclusion, and the segment it excludes ({} when none)."""
    m, typed = EXCLUDE.search(q), EXCLUDE.search(text)
    if not m:
        return q, text, {}
    window, as_typed = _excluded_words(m), _excluded_words(typed) if typed else _excluded_words(m)
    found = segment(" ".join(window.split()[:4]), dimensions, concepts, original=" ".join(as_typed.split()[:4]))
    if not found:
        return q, text, {}
    return _cut(q, m, window), _cut(text, typed, as_typed) if typed else text, found


def _excluded_words(m: re.Match) -> str:
    """What an EXCLUDE match excludes, up to the words that start the rest of the question ("web users last week":
    "web users")."""
    return EXCLUDE_END.sub("", " " + (m.group(1) or m.group(2))).strip()


def _cut(s: str, m: re.Match, words: str) -> str:
    """`s` without the exclusion `m` and the excluded `words` after it."""
    start = m.start(1) if m.group(1) else m.start(2)
    return s[:m.start()] + " " + s[start + len(words):]


def _joined(q: str, values: list[str]) -> list[str]:
    """Values named together ("plus & pro", "web + ios", "email and social"): each is meant, with no other context."""
    joined = set()
    for a in values:
        for b in values:
            first, second = _value_word(str(a)), _value_word(str(b))
            if a != b and re.search(rf"\b{first}\s*(?:&|\+|and|/)\s*(?:the\s+)?{second}\b", q):
                joined |= {a, b}
    return [v for v in values if v in joined]


def segment(text: str, dimensions: dict[str, list[str]], concepts: dict[str, str], original: str | None = None
            ) -> dict[str, str | list[str]]:
    """Dimension values named in the question: country names and codes (in capitals in `original`, the question
    as typed), versions, everyday groups, any value; values excluded ("except web") leave the others."""
    q, text = text.lower(), original or text
    q, text, excluded = _excluded(q, text, dimensions, concepts)
    out: dict[str, str | list[str]] = {}
    country, version, plan = (concepts.get(c) or (c if c in dimensions else None)
                              for c in ("country", "version", "plan"))
    countries = [value for name, code in COUNTRY_NAMES.items()
                 if country and re.search(rf"\b{name}s?\b", q) and (value := _country_value(code, dimensions[country]))]
    countries += [code for code in (dimensions.get(country, []) if country else [])
                  if len(code) == 2 and re.search(rf"\b{re.escape(code)}\b", text)]
    if countries:
        found = sorted(set(countries))
        out[country] = found[0] if len(found) == 1 else found
    for value in dimensions.get(version, []) if version else []:
        short = re.escape(value.removesuffix(".0"))
        if re.search(rf"(?<![\d.]){short}(\.0)?(?![\d.])", q):
            out[version] = value
    for dim, values in dimensions.items():
        if dim in (country, version) or dim in out:
            continue
        found = [value for value in values if _names(q, str(value), dim == plan)]
        named = [value for value in values if re.search(rf"\b{_value_word(str(value))}\b", q)]
        if len(named) > 1 and re.search(r"\b(vs\.?|versus|or)\b", q):
            found = named  # "free vs plus vs pro": values compared need no other context
        elif len(named) > 1 and (joined := _joined(q, named)):
            found = sorted({*found, *joined}, key=named.index)
        if found:
            out[dim] = found[0] if len(found) == 1 else sorted(found)
    # "web vs app", "app or desktop": the app compared
    compared = re.sub(r"(?<!the )\bapp (vs\.?|versus|or)\b", r"the app \1", q)
    _everyday(re.sub(r"\b(vs\.?|versus|or) app\b", r"\1 the app", compared), dimensions, out, version)
    for word, spellings in ALIASES.items():
        if re.search(rf"\b{word}\b", q):
            for dim, present in dimensions.items():
                lower = {str(v).lower(): v for v in present}
                if hit := next((lower[x] for x in spellings if x in lower), None):
                    if dim not in out:
                        out[dim] = hit
                    elif hit not in segment_values(out[dim]):  # "Windows users vs Mac users": both values
                        out[dim] = sorted({*segment_values(out[dim]), hit})
                    break
    platform, os_ = concepts.get("platform"), concepts.get("os")
    lowered = {dim: {str(v).lower() for v in segment_values(out[dim])} for dim in (platform, os_) if dim in out}
    if platform in lowered and os_ in lowered and lowered[os_] <= lowered[platform]:
        out.pop(os_)  # "on iOS", "iOS vs Android": the platform, not also the OS
    for dim, values in excluded.items():  # "everyone except web users": the values left
        left = [v for v in (segment_values(out[dim]) if dim in out else dimensions[dim])
                if v not in segment_values(values)]
        if left:
            out[dim] = left[0] if len(left) == 1 else left
    return dict(sorted(out.items()))


def breakdown(q: str, dimensions: dict[str, list[str]], concepts: dict[str, str]) -> str | None:
    """The dimension a question breaks down by: a concept word ("by country"), or a dimension's own name; the
    first "by ..." that names one ("per day, split by country" breaks down by country)."""
    for m in re.finditer(r"\b(?:by|per|across|split by|broken down by|broken out by|split out by|segmented by|cut by|"
                         r"for each|each|between|among|than other|to other|vs\.? other|versus other|compared to other|"
                         r"from other|which|what)\s+(?:the\s+)?(operating system|app version|acquisition channel|"
                         r"traffic source|[a-z_]+)", q):
        word = m.group(1)
        concept = DIMENSION_WORDS.get(word) or DIMENSION_WORDS.get(word.removesuffix("s"))
        found = (concepts.get(concept) or (concept if concept in dimensions else None)) if concept else None
        if found or word in dimensions:
            return found or word
    return None


def step(q: str, steps: list[str]) -> str | None:
    """The funnel step a question names: by a stage word ("payment", "add to cart") matched to what the
    data's steps mean, else by a word of a step's own name ("demo" in `demo_scheduled`). A step named as one
    ("the order step") comes first."""
    spaced = re.sub(r"[-_]", " ", q)
    if found := next((s for s in steps if re.search(rf"\b{re.escape(normalize(s))}\b", spaced)), None):
        return found  # a step named as the data names it ("the product-added step")
    if (named := re.search(r"\b(\w+(?: \w+)?) (?:step|stage)\b", q)) and (
            found := step(named.group(1), steps)):
        return found
    if (missed := re.search(r"\b(?:but|and|then|yet) (?:never|didn'?t|did not|don'?t|do not|not|fail(?:ed)? to) (?:"
                             r"complet\w*|finish\w*|reach\w*|plac\w*|get to|got to|make it to|go on to|went on to) "
                             r"(?:the |an? |their )?([a-z][a-z -]+)", q)) and (found := step(missed.group(1), steps)):
        return found  # "entered their card details but never completed the order": the step not reached
    if (into := re.search(r"\b(?:between .+? and|from .+? (?:to|into)) (?:the )?([a-z][a-z -]+)", q)) and (
            found := step(into.group(1), steps)):
        return found  # "the drop between product page and cart": the step reached
    for word, stage in STEP_WORDS:
        if re.search(rf"\b{re.escape(word)}\b", q):
            found = next((s for s in steps if stage_of(s) == stage), None)
            if found:
                return found
    words = set(re.findall(r"[a-z0-9]+", q)) - GENERIC_STEP_WORDS
    return next((s for s in steps if words & (set(normalize(s).split()) - GENERIC_STEP_WORDS)), None)


def metric(q: str) -> str | None:
    """The metric the question names, if any."""
    return next((key for word, key in METRIC_WORDS if re.search(rf"\b{re.escape(word)}", q)), None)


# Everyday descriptions of a metric of the catalog (used only when the catalog has that metric).
METRIC_PHRASES = (
    (r"\b(?:sessions?|visits?) (?:that|which) (?:end|ended|ending|result\w*|turn\w*) (?:in|with|into) (?:an? )?"
     r"(?:order|purchase|sale)", "conversion_rate"),
    (r"\b(?:turn\w*|convert\w*) (?:sessions|visits) into (?:orders|purchases|sales)\b", "conversion_rate"),
    (r"\b(?:cart|basket) adders?\b.{0,30}\b(?:buy|bought|purchas\w*|order\w*|convert\w*)\b|"
     r"\b(?:purchase|buy|buying|conversion|order|checkout) rate (?:of|among|for) (?:the )?(?:cart|basket) adders\b",
     "buyers_among_adders"),
    (r"\b(?:put|puts|putting|add|adds|added|adding|placed) (?:something|anything|items?|products?|stuff|things) "
     r"(?:in|into|to) (?:their|the|a|his|her) cart\b.{0,60}\b(?:bought|completed|went on to|ordered|purchased|"
     r"paid|paying|checked out|converted|end(?:ed)? up (?:buying|paying|ordering|purchasing))\b",
     "buyers_among_adders"),
    (r"\b(?:put|puts|putting|add|adds|added|adding|placed) (?:something|anything|items?|products?|stuff|things) "
     r"(?:in|into|to) (?:their|the|a|his|her) cart\b", "cart_adders"),
    (r"\b(?:people|users|shoppers|customers|visitors|folks|buyers) (?:adding|putting|who add|who put) "
     r"(?:\w+ )?(?:in|into|to) (?:the |their |a )?cart\b", "cart_adders"),  # ("users who added to cart": the funnel)
    (r"\b(?:how many|number of|count of|# of) sessions? (?:\w+ ){0,2}(?:an? |any )?errors?\b|"
     r"\berror(?:ed|ing)? sessions\b", "error_sessions"),
    (r"\b(?:spend|spent|spends|revenue|paid|pay|pays) per order\b|\bper[- ]order (?:value|spend|revenue)\b", "aov"),
)
MEASURES = r"(?:count|counts|volume|volumes|trend|trends|total|totals|numbers|curve|chart|figures|level|levels)"


def _singular(word: str) -> str:
    return word[:-2] if re.search(r"(ch|sh|ss|x)es$", word) else word[:-1] if word.endswith("s") else word


def described_metric(q: str, metrics: dict[str, str]) -> str | None:
    """A metric of the catalog described in everyday words ("sessions that end in an order")."""
    return next((key for pattern, key in METRIC_PHRASES if key in metrics and re.search(pattern, q)), None)


def named_metric(q: str, metrics: dict[str, str]) -> str | None:
    """A metric of the metrics layer named by key (`mau`), name (`monthly active users`), everyday description
    ("sessions that end in an order") or its singular with a measure ("session count", "order volume")."""
    if described := described_metric(q, metrics):
        return described
    spaced = q.replace("_", " ").replace("-", " ")
    found = [(len(name or key), key) for key, name in metrics.items()
             if re.search(rf"\b{re.escape(key.replace('_', ' '))}\b", spaced)
             or (name and re.search(rf"\b{re.escape(name.lower())}\b", q))]
    found += [(len(name or key) - 1, key) for key, name in metrics.items()
              if name and name.lower().endswith("s") and " " not in name
              and re.search(rf"\b{re.escape(_singular(name.lower()))} {MEASURES}\b", spaced)]
    return max(found)[1] if found else None  # the longest: "zero-result searches", not "searches"


def experiment(q: str, experiments: dict[str, str]) -> str | None:
    """The experiment named by id, by name, or by the most words of its name."""
    words = set(re.findall(r"[a-z0-9]+", q)) - GENERIC_WORDS
    best, score = None, 0
    for exp_id, name in experiments.items():
        if exp_id.lower() in q or (name and name.lower() in q):
            return exp_id
        overlap = len(words & (set(re.findall(r"[a-z0-9]+", f"{exp_id} {name}".lower())) - GENERIC_WORDS))
        if overlap > score:
            best, score = exp_id, overlap
    return best


def without_values(q: str, seg: dict[str, str | list[str]]) -> str:
    """The question without the segment values it names, or their everyday names ('paid search users' is not
    about search)."""
    values = {str(v).lower() for value in seg.values() for v in segment_values(value)}
    for v in values:
        q = re.sub(rf"\b{_value_word(v)}\b", " ", q)
    for word, group in [*EVERYDAY.items(), *ALIASES.items()]:
        if values & set(group):
            q = re.sub(rf"\b{word}\b", " ", q)
    return q
