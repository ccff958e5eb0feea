"""Vectorized synthetic event generator: a Scenario in, a DuckDB file and its ground truth out.

Every step works on whole numpy arrays (users, then sessions, then events); there is no
Python loop per user or per event. Strings are kept as integer codes and only become
VARCHARs inside DuckDB.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from importlib import resources
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

from data.scenario import EVENTS, STEP_PAGES, PlantedFriction, Scenario
from data.schema import MAP_KEY, create_tables, write_meta

DAY = 86_400
_EPOCH = datetime(1970, 1, 1)
CATEGORIES = ("shoes", "headphones", "jackets", "backpacks", "watches", "lamps",
              "mugs", "chairs", "blankets", "bottles", "sunglasses", "hoodies")
ADJECTIVES = ("red", "black", "wireless", "leather", "running", "waterproof", "cheap",
              "kids", "large", "vintage", "organic", "travel")
PAGES = ("home", "search", "product", "cart", "checkout", "payment", "confirmation")
ERROR_CODES = ("NETWORK_TIMEOUT", "SERVER_500", "VALIDATION_FAILED", "SESSION_EXPIRED", "RATE_LIMITED")
# Session flow along the purchase funnel: (event, page, rate name, load-time median in ms).
FLOW = (
    ("Product Viewed", "product", "browse_view", 900),
    ("Product Added", "product", "add", 0),
    ("Checkout Started", "checkout", "checkout", 1000),
    ("Payment Info Entered", "payment", "payment", 1100),
    ("Order Completed", "confirmation", "order", 800),
)
FUNNEL_OF_FLOW = {name: i for i, (name, *_rest) in enumerate(FLOW)}
CART_MEDIAN_MS = 700
TIMEBOXED = ("funnel_dropoff", "error_spike", "slow_page", "cart_abandonment")  # kinds a start/end makes incidents
SLOW_MS = 3000
Progress = Callable[[str], None]


@dataclass
class _Codes:
    """String dictionaries: value -> code, built once per run."""

    values: dict[str, list[str]] = field(default_factory=dict)

    def add(self, column: str, items: list[str] | tuple[str, ...]) -> None:
        self.values[column] = list(items)

    def code(self, column: str, value: str) -> int:
        try:
            return self.values[column].index(value)
        except ValueError:
            raise ValueError(f"segment value {value!r} is not a value of {column}: {self.values[column]}") from None


def _to_epoch(d: date) -> int:
    return int((datetime.combine(d, time()) - _EPOCH).total_seconds())


def _choice(rng: np.random.Generator, weights: dict[str, float], n: int) -> np.ndarray:
    p = np.array(list(weights.values()), dtype=float)
    return rng.choice(len(p), size=n, p=p / p.sum()).astype(np.int16)


def _iso_week_start(week: str) -> int:
    year, w = week.split("-W")
    return _to_epoch(date.fromisocalendar(int(year), int(w), 1))


class _World:
    """Users and sessions of one scenario, as arrays."""

    def __init__(self, sc: Scenario, rng: np.random.Generator) -> None:
        self.sc, self.rng = sc, rng
        self.noise_rng = np.random.default_rng(sc.seed + 2)  # its own stream: noise leaves the rest unchanged
        self.t0, self.t1 = _to_epoch(sc.start), _to_epoch(sc.end)
        self.codes = _Codes()
        self.codes.add("country", list(sc.countries))
        self.codes.add("acquisition_channel", list(sc.channels))
        self.codes.add("plan", list(sc.plans))
        self.codes.add("platform", list(sc.platforms))
        self.codes.add("os", list(sc.web_os) + ["ios", "android"])
        self.codes.add("browser", list(sc.browsers))
        versions = sc.releases()
        self.release_ts = self.t0 + (np.arange(len(versions)) - 2) * sc.release_every_days * DAY
        self.codes.add("app_version", versions)
        self._users()
        self._sessions()

    def _users(self) -> None:
        sc, rng, n = self.sc, self.rng, self.sc.users
        days = (self.t1 - self.t0) // DAY
        weekday = (np.arange(days) + self.sc.start.weekday()) % 7
        w = np.where(weekday >= 5, sc.weekend_factor, 1.0)
        self.signup = self.t0 + rng.choice(days, size=n, p=w / w.sum()) * DAY + rng.integers(0, DAY, n)
        self.u = {
            "country": _choice(rng, sc.countries, n),
            "acquisition_channel": _choice(rng, sc.channels, n),
            "plan": _choice(rng, sc.plans, n),
            "platform": _choice(rng, sc.platforms, n),
        }
        platform_names = np.array(list(sc.platforms))[self.u["platform"]]
        os_code = _choice(rng, sc.web_os, n)
        os_code = np.where(platform_names == "ios", len(sc.web_os), os_code)
        os_code = np.where(platform_names == "android", len(sc.web_os) + 1, os_code)
        self.u["os"] = os_code.astype(np.int16)
        self.u["browser"] = np.where(platform_names == "web", _choice(rng, sc.browsers, n), -1).astype(np.int16)
        self.activity = rng.gamma(1.5, sc.sessions_per_week / 1.5, n)
        self.update_lag = rng.exponential(3 * DAY, n)
        self.is_app = platform_names != "web"

    def user_mask(self, segment: dict[str, str]) -> np.ndarray:
        """Users matching every user-level dimension of `segment` (event-only dims are skipped)."""
        mask = np.ones(self.sc.users, dtype=bool)
        for dim, value in segment.items():
            if dim in self.u:
                mask &= self.u[dim] == self.codes.code(dim, value)
        return mask

    def _sessions(self) -> None:
        sc, rng, n = self.sc, self.rng, self.sc.users
        weeks = (self.t1 - self.t0) // (7 * DAY) + 1
        curve = np.concatenate([[0.8], 0.55 * np.arange(2, weeks + 1) ** -0.6])
        counts = rng.poisson(self.activity[:, None] * curve[None, :])
        for f in sc.frictions:
            if f.kind == "retention_dip":
                cohort0 = _iso_week_start(f.cohort_week)
                hit = self.user_mask(f.segment) & (self.signup >= cohort0) & (self.signup < cohort0 + 7 * DAY)
                counts[hit & (rng.random(n) < f.effect), 1] = 0
        user = np.repeat(np.repeat(np.arange(n), weeks), counts.ravel())
        week = np.repeat(np.tile(np.arange(weeks), n), counts.ravel())
        start = self.signup[user] + week * 7 * DAY + rng.integers(60, 7 * DAY, user.size)
        user = np.concatenate([np.arange(n), user])
        start = np.concatenate([self.signup, start])
        weekday = ((start // DAY) + 3) % 7  # 1970-01-01 was a Thursday
        keep = (start < self.t1) & ((weekday < 5) | (rng.random(start.size) < sc.weekend_factor))
        for dip in sc.noise.traffic_dips:
            inside = (start >= _to_epoch(dip.start)) & (start < _to_epoch(dip.end))
            keep &= ~(inside & (self.noise_rng.random(start.size) >= dip.keep))
        keep[:n] = True
        order = np.lexsort((start[keep], user[keep]))
        self.s_user, self.s_start = user[keep][order], start[keep][order]
        self.s_first = np.r_[True, self.s_user[1:] != self.s_user[:-1]]
        self.s_signup, self.signed_up_at = self._signups()
        version_at = np.searchsorted(self.release_ts, self.s_start - self.update_lag[self.s_user], "right") - 1
        self.s_version = np.clip(version_at, 0, len(self.release_ts) - 1).astype(np.int16)

    def _signups(self) -> tuple[np.ndarray, np.ndarray]:
        """The session each user signs up in, and when: the first one, or the second for users who browse
        anonymously before signing up (noise) and come back."""
        noise, n = self.sc.noise, self.sc.users
        signup_session = self.s_first.copy()
        signed_up_at = self.signup.copy()
        if noise.anonymous_share > 0:
            first = np.flatnonzero(self.s_first)
            second = first + 1
            has_second = second < self.s_user.size
            has_second[has_second] &= self.s_user[second[has_second]] == self.s_user[first[has_second]]
            late = has_second & (self.s_start[np.minimum(second, self.s_user.size - 1)] - self.s_start[first]
                                 >= noise.anonymous_days * DAY) & (self.noise_rng.random(n) < noise.anonymous_share)
            signup_session[first[late]] = False
            signup_session[second[late]] = True
            signed_up_at[self.s_user[first[late]]] = self.s_start[second[late]]
        return signup_session, signed_up_at

    def session_mask(self, segment: dict[str, str], start: date | None, end: date | None) -> np.ndarray:
        """Sessions matching `segment` (user and session dims) inside [start, end)."""
        mask = self.user_mask(segment)[self.s_user]
        if "app_version" in segment:
            mask &= self.s_version == self.codes.code("app_version", segment["app_version"])
        lo = _to_epoch(start) if start else self.t0
        hi = _to_epoch(end) if end else self.t1
        return mask & (self.s_start >= lo) & (self.s_start < hi)


@dataclass
class _Events:
    """Column arrays of generated events, appended per event type."""

    parts: list[dict[str, np.ndarray]] = field(default_factory=list)

    def add(self, session: np.ndarray, t: np.ndarray, event: str, **cols: np.ndarray | int) -> None:
        if session.size == 0:
            return
        part = {"session": session, "t": t, "event": np.full(session.size, EVENTS.index(event), np.int16)}
        for name, value in cols.items():
            part[name] = np.broadcast_to(np.asarray(value), session.shape).copy()
        self.parts.append(part)

    def frame(self, columns: dict[str, np.dtype]) -> dict[str, np.ndarray]:
        out = {}
        for name in ("session", "t", "event", *columns):
            fill = columns.get(name, np.int64)
            out[name] = np.concatenate([
                p[name] if name in p else np.full(p["session"].size, -1, dtype=fill) for p in self.parts
            ])
        return out


class Generator:
    """Simulate one scenario into DuckDB."""

    def __init__(self, scenario: Scenario, progress: Progress | None = None) -> None:
        self.sc = scenario
        self.rng = np.random.default_rng(scenario.seed)
        self.progress = progress or (lambda _msg: None)

    def run(self, out: str | Path) -> dict:
        """Write the database to `out` atomically and `<stem>.ground_truth.json` beside it."""
        out = Path(out)
        out.parent.mkdir(parents=True, exist_ok=True)
        self.progress("simulating users and sessions")
        world = _World(self.sc, self.rng)
        products = self._catalog()
        self.progress(f"simulating {world.s_user.size:,} sessions")
        events, assignments = self._simulate(world, products)
        tmp = out.with_name(f".{out.name}.generating-{os.getpid()}")
        tmp.unlink(missing_ok=True)
        try:
            self.progress("writing DuckDB")
            n_events = self._write(tmp, world, events, assignments, products)
            os.replace(tmp, out)
        finally:
            tmp.unlink(missing_ok=True)
        truth = self._ground_truth(world, n_events)
        ground_truth_path(out).write_text(json.dumps(truth, indent=2, default=str))
        return truth

    def _catalog(self) -> pd.DataFrame:
        rng, rows = np.random.default_rng(self.sc.seed + 1), []
        for c, cat in enumerate(CATEGORIES):
            for k, adj in enumerate(ADJECTIVES):
                rows.append((f"p{c:02d}{k:02d}", f"{adj.title()} {cat[:-1].title()}", cat,
                             round(float(rng.lognormal(3.6, 0.6)), 2)))
        return pd.DataFrame(rows, columns=["product_id", "name", "category", "price"])

    def _multipliers(self, w: _World) -> np.ndarray:
        """Per flow step and session: the factor on the step's transition probability."""
        mult = np.ones((len(FLOW), w.s_user.size))
        for f in self.sc.frictions:
            mask = w.session_mask(f.segment, f.start, f.end)
            if f.kind in {"funnel_dropoff", "release_regression"}:
                mult[FUNNEL_OF_FLOW[f.step], mask] *= 1 - f.effect
            elif f.kind == "cart_abandonment":
                for step in ("Checkout Started", "Payment Info Entered", "Order Completed"):
                    mult[FUNNEL_OF_FLOW[step], mask] *= (1 - f.effect) ** (1 / 3)
        return mult

    def _experiments(self, w: _World, mult: np.ndarray) -> pd.DataFrame:
        """Assign users at their first session inside each experiment; apply planted effects."""
        frames = []
        for exp in self.sc.experiments:
            lo, hi = _to_epoch(exp.start), _to_epoch(exp.end)
            inside = np.flatnonzero((w.s_start >= lo) & (w.s_start < hi))
            users, first = np.unique(w.s_user[inside], return_index=True)
            variant = self.rng.integers(0, len(exp.variants), users.size)
            assigned_at = w.s_start[inside[first]]
            keep = np.ones(users.size, dtype=bool)
            for f in self.sc.frictions:
                if f.experiment_id != exp.experiment_id:
                    continue
                v = exp.variants.index(f.variant)
                if f.kind == "experiment_srm":
                    keep &= ~((variant == v) & (self.rng.random(users.size) < f.effect * 0.2))
                elif f.kind == "experiment_loser":
                    by_user = np.full(w.sc.users, np.iinfo(np.int64).max)
                    by_user[users[variant == v]] = assigned_at[variant == v]
                    hit = (w.s_start >= by_user[w.s_user]) & (w.s_start < hi)
                    mult[FUNNEL_OF_FLOW[exp.primary_metric], hit] *= 1 - f.effect
            frames.append(pd.DataFrame({
                "experiment_id": exp.experiment_id, "user": users[keep],
                "variant": np.array(exp.variants)[variant[keep]], "assigned_at": assigned_at[keep],
            }))
        return pd.concat(frames) if frames else pd.DataFrame(columns=["experiment_id", "user", "variant", "assigned_at"])

    def _search(self, w: _World, ev: _Events, sess: np.ndarray, t: np.ndarray, n_queries: int) -> tuple:
        """Searches for sessions `sess`; returns (failed, exited) masks per session."""
        rng, r = self.rng, self.sc.rates
        n = sess.size
        ranks = np.arange(1, n_queries + 1)
        zipf = 1 / ranks ** 0.9
        query = rng.choice(n_queries, size=n, p=zipf / zipf.sum())
        form = rng.choice(3, size=n, p=[0.8, 0.12, 0.08])
        results = rng.poisson(24, n) + 1
        failed = rng.random(n) < r.search_zero_results
        for i, f in enumerate(self._search_frictions()):
            hit = w.session_mask(f.segment, f.start, f.end)[sess] & (rng.random(n) < f.search_share)
            query[hit] = n_queries + i * len(ADJECTIVES) + rng.integers(0, len(ADJECTIVES), hit.sum())
            failed |= hit & (rng.random(n) < f.effect)
        results[failed] = 0
        ev.add(sess, t, "Products Searched", page=PAGES.index("search"), query=query * 3 + form,
               results=results)
        clicked = ~failed & (rng.random(n) < r.search_click)
        ev.add(sess[clicked], t[clicked] + rng.exponential(12, clicked.sum()) + 1, "Search Result Clicked",
               page=PAGES.index("search"), query=query[clicked] * 3 + form[clicked])
        retry = failed & (rng.random(n) < r.search_reformulate)
        t2 = t[retry] + rng.uniform(4, 50, retry.sum())
        q2 = rng.choice(n_queries, size=retry.sum(), p=zipf / zipf.sum())
        ev.add(sess[retry], t2, "Products Searched", page=PAGES.index("search"), query=q2 * 3,
               results=rng.poisson(24, retry.sum()) + 1)
        exited = failed & ~retry & (rng.random(n) < r.exit_after_failed_search)
        return clicked, exited

    def _search_frictions(self) -> list[PlantedFriction]:
        return [f for f in self.sc.frictions if f.kind == "failed_search"]

    def _error_names(self) -> list[str]:
        return list(dict.fromkeys([*ERROR_CODES, *(f.error_code for f in self.sc.frictions)]))

    def _simulate(self, w: _World, products: pd.DataFrame) -> tuple[dict[str, np.ndarray], pd.DataFrame]:
        rng, r, n = self.rng, self.sc.rates, w.s_user.size
        mult = self._multipliers(w)
        assignments = self._experiments(w, mult)
        ev = _Events()
        sess = np.arange(n)
        t = w.s_start.astype(float)
        app = w.is_app[w.s_user]
        ev.add(sess[app], t[app], "Application Opened")
        home_load = rng.lognormal(np.log(800), 0.45, n).astype(np.int32)
        ev.add(sess[~app], t[~app], "Page Viewed", page=PAGES.index("home"), load=home_load[~app])
        first = w.s_signup
        ev.add(sess[first], t[first] + 2, "Signed Up")
        t = t + rng.exponential(20, n) + 3
        n_queries = len(CATEGORIES) * (len(ADJECTIVES) + 1)
        searching = rng.random(n) < r.search
        via_search, exited = np.zeros(n, bool), np.zeros(n, bool)
        via_search[searching], exited[searching] = self._search(w, ev, sess[searching], t[searching], n_queries)
        t = t + np.where(searching, 60, 0)
        alive = ~exited
        product = rng.choice(len(products), size=n, p=self._popularity(len(products)))
        error_p = np.full((len(FLOW), n), r.error)
        error_code = np.full((len(FLOW), n), -1, dtype=np.int16)
        load_factor = np.ones((len(FLOW), n))
        for f in self.sc.frictions:
            if f.kind in {"error_spike", "slow_page"}:
                mask = w.session_mask(f.segment, f.start, f.end)
                k = FUNNEL_OF_FLOW[f.step]
                if f.kind == "error_spike":
                    error_p[k, mask] += f.effect
                    error_code[k, mask] = self._error_names().index(f.error_code)
                else:
                    load_factor[k, mask] *= 1 + 3 * f.effect
        for k, (name, page, rate, median_ms) in enumerate(FLOW):
            p = np.where(via_search, 1.0, getattr(r, rate)) if k == 0 else getattr(r, rate)
            alive &= rng.random(n) < p * mult[k]
            t = t + rng.exponential(45, n) + 2
            idx = sess[alive]
            cols = {"page": PAGES.index(page), "product": product[alive]}
            if median_ms:
                load = (rng.lognormal(np.log(median_ms), 0.45, idx.size) * load_factor[k, alive]).astype(np.int32)
                cols["load"] = load
            if name == "Order Completed":
                cols["qty"] = rng.integers(1, 4, idx.size)
            ev.add(idx, t[alive], name, **cols)
            if name == "Product Added":
                cart = alive & (rng.random(n) < r.cart_view)
                ev.add(sess[cart], t[cart] + 5, "Cart Viewed", page=PAGES.index("cart"), product=product[cart],
                       load=rng.lognormal(np.log(CART_MEDIAN_MS), 0.45, cart.sum()).astype(np.int32))
            if median_ms:
                slow = np.zeros(n, bool)
                slow[alive] = load > SLOW_MS
                alive &= ~(slow & (rng.random(n) < r.slow_bounce))
            err = alive & (rng.random(n) < error_p[k])
            code = np.where(error_code[k] >= 0, error_code[k], rng.integers(0, len(ERROR_CODES), n))
            ev.add(sess[err], t[err] + rng.uniform(1, 10, err.sum()), "Error Shown", page=PAGES.index(page),
                   error=code[err])
            alive &= ~(err & (rng.random(n) < np.where(error_code[k] >= 0, 0.8, 0.5)))
        return ev.frame({"page": np.int16, "product": np.int64, "query": np.int64, "results": np.int64,
                         "error": np.int16, "load": np.int32, "qty": np.int64}), assignments

    @staticmethod
    def _popularity(n: int) -> np.ndarray:
        w = 1 / np.arange(1, n + 1) ** 0.7
        return w / w.sum()

    def _query_forms(self) -> list[str]:
        """Every query string a search may carry: base queries, planted ones, three surface forms each."""
        base = list(CATEGORIES) + [f"{adj} {cat}" for adj in ADJECTIVES for cat in CATEGORIES]
        planted = [f"{adj} {f.search_token}" for f in self._search_frictions() for adj in ADJECTIVES]
        return [form for q in base + planted for form in (q, q.title(), f"  {q.upper()} ")]

    def _write(self, path: Path, w: _World, e: dict[str, np.ndarray], assignments: pd.DataFrame,
               products: pd.DataFrame) -> int:
        con = duckdb.connect(str(path))
        try:
            create_tables(con)
            codes = w.codes.values
            users = pd.DataFrame({
                "u": np.arange(self.sc.users),
                "signed_up_at": pd.to_datetime(w.signed_up_at, unit="s"),
                **{d: pd.Categorical.from_codes(w.u[d], codes[d]) for d in ("country", "acquisition_channel", "plan")},
            })
            con.register("users_df", users)
            con.execute("INSERT INTO users SELECT printf('u%07d', u), signed_up_at, country, acquisition_channel,"
                        " plan FROM users_df")
            con.register("products_df", products)
            con.execute("INSERT INTO products SELECT * FROM products_df")
            error_names = self._error_names()
            order = np.argsort(e["t"], kind="stable")
            order = order[e["t"][order] < w.t1]
            noise = self.sc.noise
            if noise.late_days:  # late-arriving data: part of the last days' events is not there yet
                late = e["t"][order] >= w.t1 - noise.late_days * DAY
                order = order[~(late & (w.noise_rng.random(order.size) >= noise.late_keep))]
            user = w.s_user[e["session"]][order]
            prod = e["product"][order]
            has_prod = prod >= 0
            price = np.where(has_prod, products["price"].to_numpy()[np.maximum(prod, 0)], np.nan)
            qty = e["qty"][order]
            frame = pd.DataFrame({
                "i": np.arange(order.size),
                "ts": pd.to_datetime((e["t"][order] * 1e6).astype(np.int64), unit="us"),
                "u": user,
                "s": e["session"][order],
                "event": pd.Categorical.from_codes(e["event"][order], EVENTS),
                "platform": pd.Categorical.from_codes(w.u["platform"][user], codes["platform"]),
                "os": pd.Categorical.from_codes(w.u["os"][user], codes["os"]),
                # app versions exist only in the apps: web events carry none
                "app_version": pd.Categorical.from_codes(
                    np.where(w.is_app[user], w.s_version[e["session"][order]], -1), codes["app_version"]),
                "browser": pd.Categorical.from_codes(w.u["browser"][user], codes["browser"]),
                "country": pd.Categorical.from_codes(w.u["country"][user], codes["country"]),
                "page": pd.Categorical.from_codes(e["page"][order], PAGES),
                "product_id": pd.Categorical.from_codes(np.where(has_prod, prod, -1), products["product_id"]),
                "category": pd.Categorical.from_codes(np.where(has_prod, prod // len(ADJECTIVES), -1), CATEGORIES),
                "price": price,
                "revenue": np.where(qty > 0, price * qty, np.nan).round(2),
                "search_query": pd.Categorical.from_codes(e["query"][order], self._query_forms()),
                "results_count": _nullable_int(e["results"][order]),
                "error_code": pd.Categorical.from_codes(e["error"][order].astype(np.int64), error_names),
                "load_time_ms": _nullable_int(e["load"][order]),
            })
            con.register("events_df", frame)
            con.execute("""
                INSERT INTO events SELECT
                    printf('e%09d', i), ts, printf('u%07d', u), printf('s%08d', s), event,
                    platform, os, app_version, browser, country, page, product_id, category, price,
                    revenue, search_query, results_count, error_code, load_time_ms,
                    CASE WHEN event = 'Products Searched' THEN json_object('source', 'search_bar')::VARCHAR
                         WHEN event = 'Order Completed' THEN json_object('currency', 'USD')::VARCHAR
                    END
                FROM events_df""")
            for exp in self.sc.experiments:
                con.execute("INSERT INTO experiments VALUES (?, ?, ?, ?, ?, ?)",
                            [exp.experiment_id, exp.name, exp.start, exp.end, exp.hypothesis, exp.primary_metric])
            assignments = assignments.assign(assigned_at=pd.to_datetime(assignments["assigned_at"], unit="s"))
            con.register("assign_df", assignments)
            con.execute("INSERT INTO assignments SELECT experiment_id, printf('u%07d', \"user\"), variant,"
                        " assigned_at FROM assign_df")
            write_meta(con, MAP_KEY, demo_map_yaml())
            con.execute("CHECKPOINT")
            return order.size
        finally:
            con.close()

    def _ground_truth(self, w: _World, n_events: int) -> dict:
        frictions = []
        for i, f in enumerate(self.sc.frictions):
            frictions.append({"id": f"planted-{i + 1}", **planted_where(f, w)})
        return {"scenario": self.sc.name, "seed": self.sc.seed, "users": self.sc.users, "events": n_events,
                "period": [self.sc.start.isoformat(), self.sc.end.isoformat()], "frictions": frictions}


def planted_where(f: PlantedFriction, w: _World) -> dict:
    """Ground-truth record of a planted friction: kind, step, affected step, segment, period, effect."""
    start, end = f.start or w.sc.start, f.end or w.sc.end
    segment = dict(f.segment)
    if f.kind == "release_regression" and not f.start:
        release = w.release_ts[w.codes.code("app_version", segment["app_version"])]
        start = (_EPOCH + timedelta(seconds=int(max(release, w.t0)))).date()
    affects = f.step
    if f.kind in {"error_spike", "slow_page"}:
        k = FUNNEL_OF_FLOW[f.step]
        affects = FLOW[k + 1][0] if k + 1 < len(FLOW) else None
    if f.kind == "cart_abandonment":
        affects = "Order Completed"
    if f.kind == "failed_search":
        segment["search_token"] = f.search_token
        affects = "Products Searched"
    if f.kind in {"experiment_loser", "experiment_srm"}:
        exp = next(e for e in w.sc.experiments if e.experiment_id == f.experiment_id)
        segment.update(experiment_id=f.experiment_id, variant=f.variant)
        start, end = exp.start, exp.end
        affects = exp.primary_metric if f.kind == "experiment_loser" else None
    if f.kind == "retention_dip":
        segment["cohort"] = f.cohort_week
        year, week = f.cohort_week.split("-W")
        start = date.fromisocalendar(int(year), int(week), 1)
        end = start + timedelta(days=7)
    return {"kind": f.kind, "step": f.step, "affects_step": affects, "segment": segment,
            "period": [start.isoformat(), end.isoformat()], "effect": f.effect,
            "timeboxed": bool(f.start or f.end) and f.kind in TIMEBOXED,
            "error_code": f.error_code if f.kind == "error_spike" else None,
            "page": STEP_PAGES.get(f.step or "")}


def _nullable_int(values: np.ndarray) -> pd.arrays.IntegerArray:
    """Int32 column with NULL where `values` is negative (the 'absent' marker)."""
    return pd.arrays.IntegerArray(np.maximum(values, 0).astype(np.int32), values < 0)


def demo_map_yaml() -> str:
    """The event map of generated data (the generator writes the demo's vocabulary): data/maps/demo.yaml."""
    return resources.files("data").joinpath("maps", "demo.yaml").read_text(encoding="utf-8")


def ground_truth_path(db: str | Path) -> Path:
    """Where the ground truth of a generated database lives: `<stem>.ground_truth.json` beside it."""
    db = Path(db)
    return db.with_name(f"{db.stem}.ground_truth.json")


def generate(scenario: Scenario, out: str | Path, progress: Progress | None = None) -> dict:
    """Generate `scenario` into the DuckDB file `out`; returns the ground truth."""
    return Generator(scenario, progress).run(out)
