"""Phrasing benchmark (issue #17): PM questions, each scored on the analysis, the slots and the key number.

    python -m benchmarks.phrasing --set dev|dev2|dev3|dev4|dev5|dev6|dev7|dev8|dev9|test|all [--db PATH] [--limit N]
        [--out FILE] [--show-failures]

The items are `benchmarks/phrasing/{dev,dev2,dev3,dev4,dev5,dev6,dev7,dev8,dev9,test}.yaml` (conventions in its
README.md). Each item is asked of the real InsightAgent with the offline analyst (no model), in its own thread, after
its `context` questions. Scores:

- analysis: the expected tool is among the answer's finished steps;
- slots:    the expected args are a subset of that step's args (periods compared by their resolved dates,
            segments order-insensitive with list values as sets);
- number:   the key fact of the expected call (run here, from the contract's `data["facts"]`), formatted
            by tools/format.py as its kind says, appears in the answer;
- premise:  for a question presuming a drop or rise, the first 300 characters state the measured direction;
- decline:  for a question we cannot answer, no tool ran and the answer says so;
- scope:    the answer's heading (first line) claims no segment, breakdown or period that no step carried.

Without --db the demo dataset is built once, as `insight demo` builds it, under .insight/bench/.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any, get_args

import yaml

SET_DIR = Path(__file__).resolve().parent / "phrasing"
SETS = ("dev", "dev2", "dev3", "dev4", "dev5", "dev6", "dev7", "dev8", "dev9", "test")  # "all" runs every set
DEFAULT_DB = Path(".insight") / "bench" / "phrasing-demo.duckdb"
DECLINE = "decline"
PREMISES = ("drop", "rise")
HEAD_CHARS = 300  # the premise must be answered within the answer's first characters

# Contract section 1: the scope slots every tool accepts.
CONTRACT_SLOTS: dict[str, frozenset[str]] = {k: frozenset(v) for k, v in {
    "funnel": ("period", "segment", "breakdown", "entity", "steps", "funnel", "window_days"),
    "dropoffs": ("period", "segment", "step", "entity"),
    "cart_abandonment": ("period", "segment", "breakdown"),
    "trends": ("metric", "period", "dimension", "segment", "compare"),
    "metric": ("metric", "period", "segment", "breakdown", "compare"),
    "search_quality": ("period", "segment", "breakdown"),
    "retention": ("period", "week_n", "segment", "breakdown", "signup_period"),
    "experiments": ("period", "experiment_id", "segment"),
    "errors_and_speed": ("period", "segment", "step", "breakdown"),
    "release_regressions": ("period", "segment"),
    "incidents": ("period", "segment"),
    "scan_frictions": ("period",),
}.items()}
# Contract section 2: the key facts each tool reports in data["facts"].
KEY_FACTS: dict[str, frozenset[str]] = {k: frozenset(v) for k, v in {
    "funnel": ("conversion", "entered", "converted"),
    "dropoffs": ("segments", "worst_rate"),
    "cart_abandonment": ("cart_abandonment", "checkout_abandonment"),
    "trends": ("value", "previous", "change"),
    "metric": ("value", "previous", "change"),
    "search_quality": ("zero_result_rate", "no_click_rate", "searches"),
    "retention": ("retention", "cohorts"),
    "experiments": ("lift", "p_value"),
    "errors_and_speed": ("error_rate",),
    "release_regressions": ("regressions",),
    "incidents": ("incidents", "ongoing"),
    "scan_frictions": ("suggestions",),
}.items()}
# The slots an item may expect (the ones a PM's words carry).
BENCH_SLOTS = frozenset({"period", "segment", "breakdown", "dimension", "step", "metric", "week_n", "experiment_id",
                         "compare", "signup_period", "entity"})
PERIOD_SLOTS = ("period", "compare", "signup_period")


# ----------------------------------------------------------------------------------------------- items

@dataclass(frozen=True)
class Call:
    """One expected tool call: the tool, the slots that matter, and the key fact to find in the answer."""

    tool: str
    args: Mapping[str, Any]
    fact: str | None = None

    def key(self) -> str:
        return json.dumps([self.tool, self.args], sort_keys=True, default=str)


@dataclass(frozen=True)
class Item:
    """A question, the conversation before it, and the calls that answer it (the first is the expected one,
    the others accepted alternatives for a genuinely ambiguous phrasing; none: the question must be declined)."""

    id: str
    question: str
    context: tuple[str, ...] = ()
    calls: tuple[Call, ...] = ()
    premise: str | None = None

    @property
    def decline(self) -> bool:
        return not self.calls

    @property
    def tool(self) -> str:
        return self.calls[0].tool if self.calls else DECLINE


def _call(raw: Mapping, where: str) -> Call:
    if not isinstance(raw, Mapping) or "tool" not in raw:
        raise ValueError(f"{where}: an expected call needs a tool")
    unknown = set(raw) - {"tool", "args", "fact", "premise", "alternatives"}
    if unknown:
        raise ValueError(f"{where}: unknown keys {sorted(unknown)}")
    args = raw.get("args") or {}
    if not isinstance(args, Mapping):
        raise ValueError(f"{where}: args must be a mapping")
    return Call(str(raw["tool"]), dict(args), raw.get("fact"))


def parse_items(doc: Mapping) -> list[Item]:
    """Items of one set file (`{data_end, items: [...]}`)."""
    items = []
    for i, raw in enumerate(doc.get("items") or []):
        where = f"item {raw.get('id', i) if isinstance(raw, Mapping) else i}"
        if not isinstance(raw, Mapping) or not {"id", "question", "expect"} <= set(raw):
            raise ValueError(f"{where}: needs id, question and expect")
        if set(raw) - {"id", "question", "context", "expect"}:
            raise ValueError(f"{where}: unknown keys {sorted(set(raw) - {'id', 'question', 'context', 'expect'})}")
        expect = raw["expect"]
        first = _call(expect, where)
        alternatives = tuple(_call(a, f"{where} alternative") for a in expect.get("alternatives") or ())
        context = raw.get("context") or ()
        if isinstance(context, str) or not all(isinstance(c, str) for c in context):
            raise ValueError(f"{where}: context must be a list of questions")
        calls = () if first.tool == DECLINE else (first, *alternatives)
        items.append(Item(str(raw["id"]), str(raw["question"]), tuple(context), calls, expect.get("premise")))
    return items


def load_set(name: str) -> tuple[list[Item], str | None]:
    """The items of set `name` (dev, dev2, dev3 or test) and the data end their relative periods assume."""
    doc = yaml.safe_load((SET_DIR / f"{name}.yaml").read_text())
    return parse_items(doc), doc.get("data_end")


def validate(items: Iterable[Item], emap: Any, experiments: Iterable[str] | None = None,
             tools: Iterable[str] | None = None) -> list[str]:
    """Problems with the items against the contract, the event map (dimensions, steps, metrics) and the tool
    registry; an empty list when every item is well formed."""
    from tools.period import Period
    from tools.semantic.metrics import catalog

    if tools is None:
        from tools.registry import TOOLS
        tools = TOOLS
    known_experiments = set(experiments) if experiments is not None else set()
    tools, metrics = set(tools), set(catalog(emap))
    problems: list[str] = []
    seen: set[str] = set()
    for item in items:
        say = problems.append
        if item.id in seen:
            say(f"{item.id}: duplicate id")
        seen.add(item.id)
        if not item.question.strip():
            say(f"{item.id}: empty question")
        if item.premise is not None and (item.premise not in PREMISES or item.decline
                                         or any(c.fact != "change" for c in item.calls)):
            say(f"{item.id}: premise must be drop or rise, on calls whose fact is change")
        for call in item.calls:
            if call.tool not in tools:
                say(f"{item.id}: no tool {call.tool!r} in tools.registry.TOOLS")
            if call.tool not in CONTRACT_SLOTS:
                say(f"{item.id}: {call.tool!r} is not an analysis of the contract")
                continue
            if call.fact not in KEY_FACTS[call.tool]:
                say(f"{item.id}: {call.tool} reports no key fact {call.fact!r} ({sorted(KEY_FACTS[call.tool])})")
            for slot, value in call.args.items():
                if slot not in BENCH_SLOTS or slot not in CONTRACT_SLOTS[call.tool]:
                    say(f"{item.id}: {call.tool} has no slot {slot!r}")
                elif slot in PERIOD_SLOTS:
                    try:
                        Period.parse(str(value), datetime(2000, 1, 1))
                    except ValueError as exc:
                        say(f"{item.id}: {slot} {exc}")
                elif slot == "segment":
                    if not isinstance(value, Mapping) or not value:
                        say(f"{item.id}: segment must be a non-empty mapping")
                        continue
                    for dim, v in value.items():
                        if dim not in emap.dims:
                            say(f"{item.id}: segment key {dim!r} is not a dimension of the map")
                        if not (isinstance(v, str) or isinstance(v, list) and v and all(isinstance(x, str) for x in v)):
                            say(f"{item.id}: segment {dim} must be a string or a list of strings")
                elif slot in ("breakdown", "dimension") and value not in emap.dims:
                    say(f"{item.id}: {slot} {value!r} is not a dimension of the map")
                elif slot == "step" and value not in emap.steps:
                    say(f"{item.id}: step {value!r} is not a step of the default funnel")
                elif slot == "metric" and value not in metrics:
                    say(f"{item.id}: no metric {value!r} in the catalog")
                elif slot == "week_n" and not (isinstance(value, int) and 1 <= value <= 12):
                    say(f"{item.id}: week_n must be 1..12")
                elif slot == "entity" and value not in ("users", "sessions"):
                    say(f"{item.id}: entity must be users or sessions")
                elif slot == "experiment_id" and known_experiments and value not in known_experiments:
                    say(f"{item.id}: no experiment {value!r} in the data")
            segment, split = call.args.get("segment") or {}, call.args.get("breakdown") or call.args.get("dimension")
            if split and split in segment:
                say(f"{item.id}: breakdown by {split}, which the segment fixes")
    return problems


# ----------------------------------------------------------------------------------------------- expected values

@dataclass
class Expected:
    """What the expected call reports: its facts, or why it could not be run."""

    facts: dict | None = None
    error: str | None = None

    def value(self, fact: str | None) -> float | None:
        entry = (self.facts or {}).get(fact) if fact else None
        return float(entry["value"]) if isinstance(entry, Mapping) and entry.get("value") is not None else None

    def text(self, fact: str | None) -> str | None:
        entry = (self.facts or {}).get(fact) if fact else None
        return fact_text(entry) if isinstance(entry, Mapping) else None

    def found_in(self, fact: str | None, answer: str) -> bool:
        """Whether the answer states the fact as people read it (a count of 0 may be said `no` or `none`)."""
        number = self.text(fact)
        if number is None:
            return False
        if re.search(rf"(?<![\d.,]){re.escape(number)}(?![\d]|[.,]\d)", answer):
            return True
        kind = (self.facts or {})[fact].get("kind")
        if kind == "change" and number[0] in "+-":  # "rose 18%" says +18%, "fell 3.4%" says -3.4%
            way = "rise" if number[0] == "+" else "drop"
            for m in re.finditer(rf"(?<![\d.,+-]){re.escape(number[1:])}(?![\d]|[.,]\d)", answer):
                if stated_direction(answer[max(0, m.start() - 25):m.start()]) == way:
                    return True
        zero = number == "0" and kind == "count"
        return zero and bool(re.search(r"\b(?:no|none|zero|nothing)\b", answer, re.I))


def fact_text(fact: Mapping) -> str | None:
    """A fact as people read it (contract section 2: tools/format.py by its kind)."""
    from tools import format as fmt
    from tools.result import FactKind

    value, kind = fact.get("value"), fact.get("kind")
    return None if value is None or kind not in get_args(FactKind) else fmt.of_kind(float(value), kind)


def expected_result(wh: Any, call: Call) -> Expected:
    """Run the expected call on the warehouse; a tool that raises, or does not report facts yet, says so."""
    from tools.registry import TOOLS

    try:
        tool = TOOLS[call.tool]
        result = tool.run(wh, tool.params(**call.args))
    except Exception as exc:  # noqa: BLE001 - any failure is a benchmark-item error, reported, never fatal
        return Expected(error=f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"[:300])
    facts = result.data.get("facts") if isinstance(result.data, Mapping) else None
    if not isinstance(facts, Mapping):
        return Expected(facts=None, error=None)
    return Expected(facts=dict(facts))


# ----------------------------------------------------------------------------------------------- vocabulary

COUNTRY_WORDS = {
    "BR": ("brazil", "brazilian", "brazilians"), "DE": ("germany", "german", "germans"),
    "US": ("united states", "usa", "america", "american", "americans"),
    "GB": ("uk", "united kingdom", "britain", "british", "england"), "FR": ("france", "french"),
    "IN": ("india", "indian", "indians"), "CA": ("canada", "canadian", "canadians"),
    "JP": ("japan", "japanese"), "ES": ("spain", "spanish"), "IT": ("italy", "italian"),
    "MX": ("mexico", "mexican"), "AU": ("australia", "australian"), "NL": ("netherlands", "dutch"),
}
VALUE_WORDS = {"ios": ("iphone", "iphones", "ipad"), "macos": ("mac", "macs", "macbook"),
               "paid_search": ("paid search",)}
# Everyday words for a set of values: mobile = the phone platforms, desktop = the web.
GROUP_WORDS = {"mobile": ("platform", ("ios", "android")), "desktop": ("platform", ("web",))}
# Values that are ordinary words: named as a scope only with a noun ("free plan", "email users", "on web").
GENERIC_VALUES = {"web", "email", "social", "organic", "referral", "free", "plus", "pro", "edge", "other", "unknown"}
CONCEPT_WORDS = {
    "country": ("country", "countries", "market", "markets"),
    "platform": ("platform", "platforms", "device", "devices"),
    "os": ("os", "operating system", "operating systems"), "browser": ("browser", "browsers"),
    "app_version": ("app version", "app versions", "version", "versions", "release", "releases"),
    "acquisition_channel": ("channel", "channels", "acquisition channel", "acquisition channels", "source"),
    "plan": ("plan", "plans", "tier", "tiers"),
}
SCOPE_BEFORE = r"(?i:\b(?:for|on|in|among|within|from|only|via)\s+(?:the\s+)?(?:users?\s+(?:on|in|from)\s+)?)"
SCOPE_AFTER = r"(?i:\s+(?:users?|customers?|shoppers?|traffic|visitors?|signups?|buyers?|sessions?|only|plan|tier|" \
              r"cohorts?|app|phones?|browsers?))"
MONTHS = ("january", "february", "march", "april", "may", "june", "july", "august", "september", "october",
          "november", "december")


@dataclass
class Scope:
    """What the data holds (dimension values, its end) and how to compare periods on it."""

    wh: Any
    values: dict[str, list[str]]
    data_end: datetime | None
    value_patterns: list[tuple[str, str, re.Pattern]] = field(default_factory=list)
    dim_patterns: list[tuple[str, re.Pattern]] = field(default_factory=list)

    @classmethod
    def from_warehouse(cls, wh: Any) -> Scope:
        from tools.period import data_bounds
        from tools.schema import dimension_values

        scope = cls(wh, dimension_values(wh), data_bounds(wh)[1])
        scope._compile()
        return scope

    def _compile(self) -> None:
        for dim, values in self.values.items():
            for value in values:
                for pattern in _value_patterns(dim, value):
                    self.value_patterns.append((dim, value, pattern))
            words = {dim, dim.replace("_", " "), *CONCEPT_WORDS.get(dim, ())}
            alt = "|".join(sorted((re.escape(w) for w in words), key=len, reverse=True))
            self.dim_patterns.append((dim, re.compile(
                rf"\b(?:by|per|across|for each|split by|broken down by|grouped by)\s+(?:{alt})\b", re.I)))
        for word, (dim, group) in GROUP_WORDS.items():
            if dim in self.values:
                pattern = re.compile(rf"\b{word}\b(?!\s+(?:vs|versus|and|or)\b)", re.I)
                self.value_patterns.extend((dim, v, pattern) for v in group)

    def period(self, text: str | None) -> tuple[datetime | None, datetime | None] | None:
        """The dates a period string stands for, on this data (None when it does not parse)."""
        from tools.period import resolve_period

        try:
            p = resolve_period(self.wh, text or "all")
        except Exception:  # noqa: BLE001 - a period the data cannot resolve compares as its text
            return None
        return p.start, p.end


def _value_patterns(dim: str, value: str) -> list[re.Pattern]:
    """Patterns for a dimension value named as a scope in a heading: `country=BR`, `for Brazil`, `iOS users`.
    A value named as a finding ("Brazil converts worst") is not a scope claim."""
    out = [re.compile(rf"\b{re.escape(dim)}\s*=\s*{re.escape(value)}(?![\w.])", re.I)]
    if re.fullmatch(r"[A-Z]{2}", value):  # a country code is matched in capitals only ("in" is not India)
        names = COUNTRY_WORDS.get(value, ())
        words = [rf"(?<![A-Za-z]){value}(?![A-Za-z])", *(rf"(?i:\b{re.escape(w)}\b)" for w in names)]
    elif re.fullmatch(r"\d+(\.\d+)+", value):
        words = [rf"(?<![\d.$]){re.escape(value.removesuffix('.0'))}(?:\.0)?(?![\d.%kM])"]
    else:
        base = re.escape(value).replace("_", "[ _]")
        words = [rf"(?i:\b{base}\b)", *(rf"(?i:\b{re.escape(w)}\b)" for w in VALUE_WORDS.get(value, ()))]
    alt = "|".join(words)
    after = rf"(?:{alt}){SCOPE_AFTER}\b"
    out.append(re.compile(rf"{SCOPE_BEFORE}(?:{alt})(?![\w.])|{after}" if value.lower() not in GENERIC_VALUES
                          else rf"{SCOPE_BEFORE}(?:{alt})\b(?!\s*-)|{after}"))
    return out


# ----------------------------------------------------------------------------------------------- scoring

@dataclass
class Score:
    """How one answer did."""

    id: str
    tool: str
    question: str
    analysis: bool | None = None
    slots: bool | None = None
    number: bool | None = None
    premise: bool | None = None
    decline: bool | None = None
    full: bool = False
    violations: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    error: str | None = None
    matched: str | None = None
    expected_number: str | None = None
    seconds: float | None = None
    steps: list[dict] = field(default_factory=list)
    head: str = ""


MISSING = object()


def _values(v: Any) -> frozenset[str]:
    return frozenset(str(x) for x in v) if isinstance(v, list | tuple | set | frozenset) else frozenset({str(v)})


def _segment(seg: Any) -> dict[str, frozenset[str]] | None:
    if not isinstance(seg, Mapping):
        return None
    return {str(k): _values(v) for k, v in seg.items() if v not in (None, "", [])}


def _metric_key(name: Any, scope: Scope | None) -> str:
    text = re.sub(r"[\s-]+", "_", str(name).strip().lower())
    if scope is not None:
        from tools.semantic.metrics import catalog

        for key, d in catalog(scope.wh.event_map).items():
            if text in (key, re.sub(r"[\s-]+", "_", d.name.lower())):
                return key
    return text


def _preceding(span: tuple | None) -> tuple | None:
    """The equal-length period right before a bounded one (the contract's default comparison)."""
    if not span or span[0] is None or span[1] is None:
        return None
    return span[0] - (span[1] - span[0]), span[0]


def slot_problems(expected: Mapping[str, Any], args: Mapping[str, Any], scope: Scope) -> list[str]:
    """Why a step's args do not carry the expected slots (empty: they do). A missing period means all time,
    a missing week_n week 1 and a missing compare the equal span before the period: the contract's defaults."""
    problems = []
    for slot, want in expected.items():
        have = args.get(slot, MISSING)
        if slot == "period":
            ok = _same_period(want, "all" if have is MISSING else have, scope)
        elif slot == "signup_period":
            ok = have is not MISSING and _same_period(want, have, scope)
        elif slot == "compare":
            if have is MISSING or have is None:
                got = _preceding(scope.period(str(args.get("period", "all"))))
                ok = got is not None and got == scope.period(str(want))
            else:
                ok = _same_period(want, have, scope)
        elif slot == "segment":
            ok = _segment(want) == _segment(have)
        elif slot == "metric":
            ok = have is not MISSING and _metric_key(want, None) == _metric_key(have, scope)
        elif slot == "step":
            ok = have is not MISSING and str(have).casefold() == str(want).casefold()
        elif slot == "week_n":
            ok = (1 if have is MISSING else have) == want
        else:
            ok = have is not MISSING and have == want
        if not ok:
            problems.append(f"{slot}: expected {want!r}, got {'(missing)' if have is MISSING else repr(have)}")
    return problems


def _same_period(want: Any, have: Any, scope: Scope) -> bool:
    a, b = scope.period(str(want)), scope.period(str(have))
    return a == b if a is not None and b is not None else str(want) == str(have)


RISE = re.compile(r"\b(?:rose|risen|rises|rising|increased|increases|increasing|grew|grown|grows|growing|climbed|"
                  r"climbs|jumped|jumps|improved|improves|gained|gains|spiked|higher|up(?=\s+(?:by\s+)?[+\d])|"
                  r"(?<=is |as |re |nt |go )up|(?<=went )up|(?<=were )up|(?<=gone )up)\b", re.I)
FALL = re.compile(r"\b(?:dropped|drops|drop(?![- ]?offs?\b)|fell|fallen|falls|falling|decreased|decreases|"
                  r"decreasing|declined|declines|declining|shrank|shrunk|slipped|slid|tanked|worsened|lower|"
                  r"down(?=\s+(?:by\s+)?[-−\d])|(?<=is |as |re |nt |go )down|(?<=went )down|(?<=were )down|"
                  r"(?<=gone )down)\b", re.I)
FLAT = re.compile(r"\b(?:flat|unchanged|steady|stable|no change|did not change|didn't change)\b|(?<![\d.+-])0%", re.I)
NEGATED = re.compile(r"(?:\bnot|\bno|\bnever|n't|\brather than|\binstead of|\bnor)\s+(?:\w+\s+){0,2}$", re.I)


def stated_direction(text: str) -> str | None:
    """The direction a text states first: `rise`, `drop` or `flat` (a negated word, `did not drop`, is skipped)."""
    hits = []
    for kind, pattern in (("rise", RISE), ("drop", FALL), ("flat", FLAT)):
        for m in pattern.finditer(text):
            if not NEGATED.search(text[max(0, m.start() - 30):m.start()]):
                hits.append((m.start(), kind))
    return min(hits)[1] if hits else None


def measured_direction(change: float) -> str:
    return "flat" if round(change, 3) == 0 else "rise" if change > 0 else "drop"


DECLINES = re.compile(
    r"can(?:'|no)?t (?:answer|compute|tell|predict|forecast|see|help)|cannot (?:answer|compute|tell|predict|forecast)|"
    r"not something I (?:compute|can)|(?:don't|do not|doesn't|does not) (?:have|hold|contain|track|cover)|"
    r"no data (?:on|about|for)|(?:isn't|is not|aren't|are not) in (?:the|your) (?:event )?data|"
    r"outside (?:the|your) (?:event )?data|did not recognize|didn't recognize|unable to|not able to|"
    r"I only answer|out of scope", re.I)


def declines(text: str) -> bool:
    return bool(DECLINES.search(text))


def heading(text: str) -> str:
    """The answer's first non-empty line, without Markdown emphasis."""
    line = next((ln for ln in text.splitlines() if ln.strip()), "")
    line = re.sub(r"^\s*(?:#+|>)\s*", "", line)
    return re.sub(r"[*`]+|(?<!\w)_+|_+(?!\w)", "", line).strip()


def scope_violations(head: str, steps: Iterable[Any], scope: Scope) -> list[str]:
    """What the heading claims as scope (a segment value, a breakdown, a period) that no step's args carried."""
    segs: dict[str, set[str]] = {}
    splits: set[str] = set()
    periods: set[tuple] = set()
    open_period, dated = False, []
    for step in steps:
        args = step.args if hasattr(step, "args") else step.get("args", {})
        tool = step.tool if hasattr(step, "tool") else step.get("tool")
        for dim, vals in (_segment(args.get("segment")) or {}).items():
            segs.setdefault(dim, set()).update(vals)
        splits.update(str(args[k]) for k in ("breakdown", "dimension") if args.get(k))
        span = scope.period(str(args.get("period", "all")))
        if span is None or span == (None, None):
            open_period = True
            if tool in ("trends", "metric") and scope.data_end:  # an open period is explained by its last week
                last = (scope.data_end - timedelta(days=7), scope.data_end)
                periods.update({last, _preceding(last)})
        else:
            periods.add(span)
        if tool in ("trends", "metric") and span:
            periods.add(_preceding(span) if args.get("compare") in (None, "") else scope.period(str(args["compare"])))
        for slot in ("compare", "signup_period"):
            if args.get(slot):
                periods.add(scope.period(str(args[slot])))
        if tool in DATED_FINDINGS:
            dated.append(span or (None, None))
    allowed_values = {v for vals in segs.values() for v in vals}
    periods.discard(None)
    out = []
    for dim, value, pattern in scope.value_patterns:
        if value in allowed_values or dim in splits:
            continue
        if m := pattern.search(head):
            out.append(f"segment {dim}={value} ({m.group(0).strip()!r})")
    for dim, pattern in scope.dim_patterns:
        if dim not in splits and (m := pattern.search(head)):
            out.append(f"breakdown {dim} ({m.group(0).strip()!r})")
    for words, text in heading_periods(head, scope):
        if text == "all":
            if not open_period:
                out.append(f"period all time ({words!r})")
        elif (span := scope.period(text)) is not None and span not in periods and not any(
                _within(span, p) for p in dated):
            out.append(f"period {text} ({words!r})")
    return sorted(set(out))


# Analyses whose findings carry their own dates (an incident, an anomalous day, a cohort, a release).
DATED_FINDINGS = {"incidents", "trends", "retention", "release_regressions", "scan_frictions"}


def _within(span: tuple, outer: tuple) -> bool:
    return (outer[0] is None or span[0] is not None and outer[0] <= span[0]) and (
        outer[1] is None or span[1] is not None and span[1] <= outer[1])


RELATIVE = (
    (r"\b(?:last|past|this|previous) week\b|\bsince monday\b|\blast 7 days\b", "last_7_days"),
    (r"\b(?:last|past) (?:fortnight|two weeks|2 weeks)\b|\blast 14 days\b", "last_14_days"),
    (r"\b(?:last|past) month\b|\blast 30 days\b", "last_30_days"),
    (r"\byesterday\b", "last_1_days"),
    (r"\ball time\b", "all"),
)


def heading_periods(head: str, scope: Scope) -> list[tuple[str, str]]:
    """(words, period string) of the periods a heading names as its scope."""
    low, out = head.lower(), []
    for pattern, text in RELATIVE:
        out.extend((m.group(0), text) for m in re.finditer(pattern, low))
    out.extend((m.group(0), f"last_{m.group(1)}_days") for m in re.finditer(r"\blast (\d+) days\b", low)
               if m.group(1) not in ("7", "14", "30"))
    literal = r"\blast_\d+_days?\b|\b\d{4}-\d{2}-\d{2}\.\.\d{4}-\d{2}-\d{2}\b"
    out.extend((m.group(0), m.group(0)) for m in re.finditer(literal, head))
    end = scope.data_end
    if end is None:
        return out
    if re.search(r"\bthis month\b", low):
        out.append(("this month", f"{date(end.year, end.month, 1) if end.day > 1 else _month_start(end, -1)}.."
                                  f"{end.date()}"))
    for m in re.finditer(r"\bq([1-4])\b", low):
        q = int(m.group(1))
        year = end.year if date(end.year, 3 * q - 2, 1) < end.date() else end.year - 1
        out.append((m.group(0), f"{date(year, 3 * q - 2, 1)}..{_month_start(date(year, 3 * q - 2, 1), 3)}"))
    scope_word = r"(?:in|for|during|over|covering|between|period|of)\s+"
    for m in re.finditer(rf"{scope_word}(\d{{4}}-W\d{{2}})\b", head, re.I):
        out.append((m.group(0), m.group(1).upper()))
    short = "|".join(m[:3] for m in MONTHS)
    for m in re.finditer(rf"(?<!since )\b({short})[a-z]* (\d{{1,2}})(?:\s*-\s*(?:({short})[a-z]* )?(\d{{1,2}}))\b",
                         low):
        first = _day(m.group(1), int(m.group(2)), end)
        last = _day(m.group(3) or m.group(1), int(m.group(4)), end)
        if first and last and last >= first:
            out.append((m.group(0), f"{first}..{last + timedelta(days=1)}"))
    for m in re.finditer(rf"\b(?:in|during|for|of|over)\s+({'|'.join(MONTHS)})\b(?!\s+\d)", low):
        if start := _day(m.group(1)[:3], 1, end):
            out.append((m.group(0), f"{start}..{_month_start(start, 1)}"))
    return out


def _month_start(day: date, months: int) -> date:
    """The first day of the month `months` after `day`'s month."""
    index = day.year * 12 + day.month - 1 + months
    return date(index // 12, index % 12 + 1, 1)


def _day(month: str, day: int, end: datetime) -> date | None:
    """`Nov 16` as the latest such date at or before the data's end."""
    number = next(i for i, m in enumerate(MONTHS, 1) if m.startswith(month[:3]))
    year = end.year if number <= end.month else end.year - 1
    try:
        return date(year, number, day)
    except ValueError:
        return None


def score_item(item: Item, answer: Any, expected: Mapping[str, Expected], scope: Scope) -> Score:
    """Score one answer (an agent.api.Answer) against its item; `expected` maps Call.key() to what it reports."""
    text = str(answer.text).replace("\u2212", "-")
    steps = list(answer.steps)
    head = heading(text)
    score = Score(item.id, item.tool, item.question, head=text[:HEAD_CHARS],
                  steps=[{"tool": s.tool, "args": s.args, "ok": s.ok, "ms": s.ms} for s in steps])
    score.violations = scope_violations(head, steps, scope)
    if item.decline:
        score.decline = not steps and declines(text)
        score.full = score.decline
        if not score.decline:
            score.problems.append("tools ran" if steps else "the answer does not decline")
        return score
    finished = [s for s in steps if s.ms is not None]
    best: tuple | None = None
    for call in item.calls:
        exp = expected.get(call.key()) or Expected(error="not computed")
        found = sorted(((slot_problems(call.args, s.args, scope), not s.ok, i, s)
                        for i, s in enumerate(finished) if s.tool == call.tool), key=lambda t: (len(t[0]), t[1], t[2]))
        analysis = bool(found)
        problems = found[0][0] if found else [f"no {call.tool} step"]
        slots = analysis and not problems
        number_text = exp.text(call.fact)
        number = exp.found_in(call.fact, text)
        why = list(problems)
        if exp.error:
            why.append(f"expected call failed: {exp.error}")
        elif number_text is None:
            why.append(f"{call.tool} reports no fact {call.fact!r}")
        elif not number:
            why.append(f"{number_text} not in the answer")
        premise = None
        if item.premise:
            change = exp.value("change")
            premise = change is not None and stated_direction(text[:HEAD_CHARS]) == measured_direction(change)
            if not premise:
                why.append("premise: " + ("no measured change" if change is None else
                                          f"measured {measured_direction(change)}, "
                                          f"the answer states {stated_direction(text[:HEAD_CHARS])}"))
        full = analysis and slots and number
        rank = (full, analysis + slots + number + bool(premise), call is item.calls[0])
        if best is None or rank > best[0]:
            best = (rank, call, analysis, slots, number, premise, why, exp, number_text)
    _, call, score.analysis, score.slots, score.number, score.premise, score.problems, exp, score.expected_number = best
    score.full = bool(score.analysis and score.slots and score.number)
    score.matched = call.tool if call is not item.calls[0] else None
    score.error = exp.error
    return score


# ----------------------------------------------------------------------------------------------- running

def ensure_db(db: Path | None) -> Path:
    """The dataset to ask: `db`, else the demo, built once the way `insight demo` builds it."""
    if db is not None:
        if not db.exists():
            raise SystemExit(f"no dataset at {db}")
        return db
    if not DEFAULT_DB.exists():
        from data.generate import generate
        from data.scenario import load_scenario

        DEFAULT_DB.parent.mkdir(parents=True, exist_ok=True)
        print(f"building the demo dataset at {DEFAULT_DB} (first run only)")
        generate(load_scenario("demo"), DEFAULT_DB)
    return DEFAULT_DB


def run_items(agent: Any, items: Iterable[Item], scope: Scope, cache: dict[str, Expected] | None = None,
              progress: Callable[[int, int, Score], None] | None = None) -> list[Score]:
    """Ask every item (context first, in a thread of its own) and score its answer; `progress(done, total, score)`
    hears each one."""
    cache = {} if cache is None else cache
    items = list(items)
    scores = []
    for item in items:
        for call in item.calls:
            if call.key() not in cache:
                cache[call.key()] = expected_result(agent.warehouse, call)
        thread = f"phrasing-{item.id}-{uuid.uuid4().hex[:8]}"
        try:
            for earlier in item.context:
                agent.ask(earlier, thread_id=thread)
            started = time.perf_counter()
            answer = agent.ask(item.question, thread_id=thread)
            seconds = time.perf_counter() - started
        except Exception as exc:  # noqa: BLE001 - an agent crash is a wrong answer, reported
            score = Score(item.id, item.tool, item.question, analysis=False, slots=False, number=False,
                          premise=False if item.premise else None, decline=False if item.decline else None,
                          problems=[f"the agent raised {type(exc).__name__}: {exc}"[:300]])
        else:
            score = score_item(item, answer, cache, scope)
            score.seconds = round(seconds, 3)
        scores.append(score)
        if progress:
            progress(len(scores), len(items), score)
    return scores


def _share(flags: list[bool | None]) -> float | None:
    vals = [bool(f) for f in flags if f is not None]
    return round(sum(vals) / len(vals), 3) if vals else None


def summarize(scores: list[Score]) -> dict:
    """Shares per component (analysis, slots and number over answerable items; premise over premise items;
    decline over decline items; full over all), scope violations, item errors, median seconds, per tool."""
    answerable = [s for s in scores if s.tool != DECLINE]
    times = [s.seconds for s in scores if s.seconds is not None]
    per_tool: dict[str, dict] = {}
    for tool in sorted({s.tool for s in scores}):
        mine = [s for s in scores if s.tool == tool]
        per_tool[tool] = {"n": len(mine), "full": _share([s.full for s in mine]),
                          "analysis": _share([s.analysis for s in mine]), "slots": _share([s.slots for s in mine]),
                          "number": _share([s.number for s in mine]),
                          "scope_violations": sum(bool(s.violations) for s in mine)}
    return {
        "n": len(scores), "full": _share([s.full for s in scores]),
        "analysis": _share([s.analysis for s in answerable]), "slots": _share([s.slots for s in answerable]),
        "number": _share([s.number for s in answerable]),
        "premise": _share([s.premise for s in scores]), "premise_n": sum(s.premise is not None for s in scores),
        "premise_right": sum(s.premise is True for s in scores),
        "decline": _share([s.decline for s in scores]), "decline_n": sum(s.decline is not None for s in scores),
        "decline_right": sum(s.decline is True for s in scores),
        "scope_violations": sum(bool(s.violations) for s in scores),
        "item_errors": sum(s.error is not None for s in scores),
        "median_seconds": round(statistics.median(times), 2) if times else None,
        "per_tool": per_tool,
    }


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{x:.0%}"


def report(results: dict[str, dict], console: Any, show_failures: bool = False) -> None:
    from rich.table import Table

    table = Table(title="Phrasing benchmark (shares; premise and decline over their items)", padding=(0, 1))
    for col in ("set", "n", "full", "tool", "slots", "num", "prem.", "decl.", "scope!", "err", "s/q"):
        table.add_column(col, justify="left" if col == "set" else "right", no_wrap=True)
    for name, res in results.items():
        s = res["summary"]
        table.add_row(name, str(s["n"]), _pct(s["full"]), _pct(s["analysis"]), _pct(s["slots"]), _pct(s["number"]),
                      f"{s['premise_right']}/{s['premise_n']}", f"{s['decline_right']}/{s['decline_n']}",
                      str(s["scope_violations"]), str(s["item_errors"]), str(s["median_seconds"]))
    console.print(table)
    console.print("full = analysis+slots+number; tool = right analysis; num = key number in the answer; prem. and "
                  "decl. = right/items; scope! = answers whose heading claims a scope no step carried; err = expected "
                  "calls that raised; s/q = median seconds per question", style="dim")
    for name, res in results.items():
        tools = Table(title=f"{name}: per expected analysis", padding=(0, 1))
        for col in ("analysis", "n", "full", "tool", "slots", "num", "scope!"):
            tools.add_column(col, justify="right" if col != "analysis" else "left", no_wrap=True)
        for tool, t in res["summary"]["per_tool"].items():
            tools.add_row(tool, str(t["n"]), _pct(t["full"]), _pct(t["analysis"]), _pct(t["slots"]),
                          _pct(t["number"]), str(t["scope_violations"]))
        console.print(tools)
    if not show_failures:
        return
    for name, res in results.items():
        for s in res["items"]:
            if s["full"] and not s["violations"] and s["premise"] is not False:
                continue
            console.rule(f"{name} {s['id']} ({s['tool']})")
            console.print(f"[bold]Q:[/bold] {s['question']}", markup=True, highlight=False)
            console.print(f"steps: {[(st['tool'], st['args']) for st in s['steps']]}", markup=False, highlight=False)
            for line in s["problems"] + [f"scope: {v}" for v in s["violations"]]:
                console.print(f"  - {line}", markup=False, highlight=False)
            console.print(f"  answer: {s['head'][:200]!r}", markup=False, highlight=False)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.phrasing", description=__doc__.splitlines()[0])
    parser.add_argument("--set", choices=[*SETS, "all"], default="dev")
    parser.add_argument("--db", type=Path, default=None, help="dataset to ask (default: the demo, built once)")
    parser.add_argument("--limit", type=int, default=None, help="the first N items of each set")
    parser.add_argument("--out", type=Path, default=None, help="write every score as JSON")
    parser.add_argument("--show-failures", action="store_true")
    args = parser.parse_args(argv)

    from rich.console import Console

    from agent.api import InsightAgent

    console = Console()
    db = ensure_db(args.db)
    results: dict[str, dict] = {}
    cache: dict[str, Expected] = {}
    with tempfile.TemporaryDirectory(prefix="phrasing-") as state, \
            InsightAgent(db, llm=None, state_dir=state) as agent:
        scope = Scope.from_warehouse(agent.warehouse)
        for name in SETS if args.set == "all" else (args.set,):
            items, data_end = load_set(name)
            if data_end and scope.data_end and str(scope.data_end.date()) != str(data_end):
                console.print(f"warning: {name}.yaml assumes the data ends {data_end}; {db} ends "
                              f"{scope.data_end.date()}: relative periods will not match", style="yellow")
            items = items[: args.limit] if args.limit else items
            with console.status(f"{name}: 0/{len(items)}") as status:
                scores = run_items(agent, items, scope, cache, lambda i, n, score, name=name, status=status:
                                   status.update(f"{name}: {i}/{n} ({score.id})"))
            results[name] = {"summary": summarize(scores), "items": [asdict(s) for s in scores]}
    report(results, console, args.show_failures)
    if args.out:
        args.out.write_text(json.dumps({"db": str(db), "sets": results}, indent=2, default=str))
        console.print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
