"""The event map (tools/semantic): reading it, inferring it from data nobody here named, and what an
unmapped role does to the analyses (a plain note, never a crash or a zero-filled number).

Every dataset here is a real DuckDB file built in tmp_path with events named in another vocabulary than
the demo's (GA4, snake_case, camelCase, PostHog, a B2B lead funnel), so nothing can pass by sharing the
demo's names.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import duckdb
import pytest

from data.schema import TABLES
from tools.metrics import MetricError, compute_metric
from tools.period import Period
from tools.scan import scan
from tools.search import search
from tools.semantic.eventmap import EventMap, MapError, load_map, parse_map, shipped_map
from tools.semantic.infer import draft_plan, infer_map
from tools.semantic.vocabularies import normalize, role_of, stage_of
from tools.warehouse import Warehouse

T0 = datetime(2026, 3, 2)  # a Monday
ALL = Period("all", None, None)


def build(path: Path, events: list[tuple], users: list[tuple] | None = None, extra: dict[str, str] | None = None
          ) -> Path:
    """A DuckDB file with `events` (user, minutes after T0, event, session, {column: value}) and no stored map."""
    extra = extra or {}
    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE users (user_id VARCHAR, signed_up_at TIMESTAMP, plan VARCHAR)")
    cols = "".join(f", {c} {t}" for c, t in extra.items())
    con.execute(f"CREATE TABLE events (event_id VARCHAR, ts TIMESTAMP, user_id VARCHAR, session_id VARCHAR, "
                f"event VARCHAR, properties JSON{cols})")
    for table, columns in TABLES.items():
        if table not in ("events", "users"):
            con.execute(f"CREATE TABLE {table} ({', '.join(f'{c} {t}' for c, t in columns.items())})")
    for i, (user, minute, event, session, values) in enumerate(events):
        names = ["event_id", "ts", "user_id", "session_id", "event", *values]
        con.execute(f"INSERT INTO events ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})",
                    [f"e{i}", T0 + timedelta(minutes=minute), user, session, event, *values.values()])
    for row in users or sorted({(e[0], T0, None) for e in events}):
        con.execute("INSERT INTO users VALUES (?, ?, ?)", list(row))
    con.close()
    return path


def shop(names: dict[str, str], users: int = 40) -> list[tuple]:
    """An e-commerce flow under other names: every user views; 3/4 add; 1/2 check out; 1/4 order."""
    depth = {0: 4, 1: 2, 2: 3, 3: 1}
    rows = []
    for u in range(users):
        user, session, t = f"u{u}", f"s{u}", 10 * u
        platform = ("web", "ios")[u % 2]
        flow = ["view", "add", "checkout", "order"][: depth[u % 4]]
        for step in ["page", *flow]:
            rows.append((user, t, names[step], session, {"platform": platform, "page_path": f"/p/{u}/{step}"}))
            t += 1
    return rows


GA4 = {"page": "page_view", "view": "view_item", "add": "add_to_cart", "checkout": "begin_checkout",
       "order": "purchase"}
SNAKE = {"page": "page_view", "view": "product_view", "add": "add_to_cart", "checkout": "checkout_started",
         "order": "purchase_success"}
CAMEL = {"page": "screenView", "view": "viewProduct", "add": "addToCart", "checkout": "startCheckout",
         "order": "orderCompleted"}
POSTHOG = {"page": "$pageview", "view": "product viewed", "add": "added to cart", "checkout": "checkout started",
           "order": "order placed"}


@pytest.mark.parametrize("names", [GA4, SNAKE, CAMEL, POSTHOG], ids=["ga4", "snake", "camel", "posthog"])
def test_known_vocabularies_give_the_funnel_and_roles(tmp_path: Path, names: dict[str, str]) -> None:
    db = build(tmp_path / "shop.duckdb", shop(names), extra={"platform": "VARCHAR", "page_path": "VARCHAR"})
    with Warehouse(db) as wh:
        emap = wh.event_map
    assert emap.steps == tuple(names[s] for s in ("view", "add", "checkout", "order"))
    assert (emap.event_of("order"), emap.event_of("cart_add"), emap.event_of("checkout")) == (
        names["order"], names["add"], names["checkout"])
    assert emap.cart_steps == (names["add"], names["order"])
    assert "recognized" in emap.notes[f"funnels.{emap.default_funnel}"]
    # platform has one value per session: a dimension; the page path changes within a session: not one
    assert emap.dimensions == {"platform": "platform"}


def test_vocabulary_matching_is_by_meaning_not_spelling() -> None:
    assert normalize("addToCart") == normalize("add_to_cart") == normalize("Add To Cart") == "add to cart"
    assert [stage_of(n) for n in ("view_item", "Product Viewed", "begin_checkout", "add_payment_info",
                                  "purchase_success", "Order Completed")] == [
        "view", "view", "checkout", "payment", "order", "order"]
    assert [role_of(n) for n in ("$exception", "view_search_results", "Products Searched", "sign_up",
                                 "$feature_flag_called", "$exposure", "$pageview")] == [
        "error", "search", "search", "signup", "exposure", "exposure", None]


def test_a_funnel_no_vocabulary_knows_is_proposed_from_event_order(tmp_path: Path) -> None:
    """A B2B lead funnel: lead -> qualified -> demo -> deal; some users stop at each step, with other events
    (emails opened, logins) mixed in."""
    rows = []
    for u in range(60):
        steps = ["lead_created", "lead_qualified", "demo_booked", "deal_won"][: 1 + (u % 2 == 0) + (u % 4 == 0)
                                                                            + (u % 8 == 0)]
        t = 100 * u
        for i, step in enumerate(steps):
            rows.append((f"u{u}", t + 60 * i, step, f"s{u}-{i}", {}))
            rows.append((f"u{u}", t + 60 * i + 5, "email_opened", f"s{u}-{i}", {}))
    db = build(tmp_path / "leads.duckdb", rows)
    with Warehouse(db) as wh:
        emap = wh.event_map
        assert emap.steps == ("lead_created", "lead_qualified", "demo_booked", "deal_won")
        assert "guessed" in emap.notes["funnels.main"]
        assert emap.event_of("order") is None and emap.cart_steps is None
        report = scan(wh)
    assert report.warnings == []
    assert any("cart abandonment" in line and "cart_add and order roles" in line for line in report.disabled)
    assert any("search quality" in line for line in report.disabled)


def test_dimensions_are_discovered_from_columns_users_and_json_properties(tmp_path: Path) -> None:
    rows = [(f"u{u}", 10 * u + k, ("page_view", "view_item", "purchase")[k], f"s{u}",
             {"properties": f'{{"user_lifecycle": "{("new", "loyal")[u % 2]}", "item_id": "i{u}{k}"}}',
              "country": ("DE", "FR", "US")[u % 3], "event_uuid": f"x{u}{k}"})
            for u in range(50) for k in range(3)]
    users = [(f"u{u}", T0, ("free", "pro")[u % 2]) for u in range(50)]
    db = build(tmp_path / "dims.duckdb", rows, users, extra={"country": "VARCHAR", "event_uuid": "VARCHAR"})
    with Warehouse(db) as wh:
        emap = wh.event_map
    assert emap.dimensions == {"country": "country", "user_lifecycle": "properties.user_lifecycle",
                               "plan": "users.plan"}  # not the ids, not item_id (many values per session)


def test_map_file_errors_name_the_file_and_entry(tmp_path: Path) -> None:
    bad = tmp_path / "map.yaml"
    bad.write_text("funnels: {main: [a]}\n")
    with pytest.raises(MapError, match=r"map\.yaml: funnels\.main: a funnel needs at least two distinct steps"):
        load_map(bad)
    bad.write_text("funnels: {main: [a, b]}\ndimensions: {Order: country}\n")
    with pytest.raises(MapError, match=r"map\.yaml: dimension name 'Order': use lower-case"):
        load_map(bad)
    bad.write_text("funnels: {main: [a, b]}\ndimensions: {select: country}\n")
    with pytest.raises(MapError, match="'select' is reserved"):
        load_map(bad)
    bad.write_text("roles: {order: {event: x, revenue: users.price}}\n")
    with pytest.raises(MapError, match=r"roles\.order\.revenue: .*role fields live on events"):
        load_map(bad)
    bad.write_text("roles: {release: {version: v}}\n")
    with pytest.raises(MapError, match="'v' is not one of the dimensions"):
        load_map(bad)
    with pytest.raises(MapError, match="event map not found"):
        load_map(tmp_path / "nope.yaml")
    with pytest.raises(MapError, match="not valid YAML"):
        parse_map("funnels: [", "x.yaml")


def test_the_written_map_reads_back_identically(tmp_path: Path) -> None:
    emap = shipped_map("demo")
    (tmp_path / "m.yaml").write_text(emap.to_yaml())
    assert load_map(tmp_path / "m.yaml") == emap


def test_the_one_segment_filter_reads_event_user_and_property_dimensions() -> None:
    emap = EventMap.model_validate({"dimensions": {"os": "os", "plan": "users.plan", "tier": "properties.tier"}})
    assert emap.segment_where({"os": "ios", "plan": "pro", "tier": "gold"}, "e") == (
        "e.\"os\" = 'ios' AND e.user_id IN (SELECT user_id FROM users WHERE \"plan\" = 'pro') AND "
        "json_extract_string(e.properties, '$.\"tier\"') = 'gold'")
    with pytest.raises(MapError, match="unknown dimension 'colour'; dimensions: os, plan, tier"):
        emap.segment_where({"colour": "red"})


def test_unmapped_roles_say_so_instead_of_showing_zero(tmp_path: Path) -> None:
    """Searches without a results count, orders without revenue: the rate and the revenue are not shown as 0."""
    rows = [(f"u{u}", 10 * u + k, ev, f"s{u}", {"properties": f'{{"search_term": "q{u % 3}"}}'})
            for u in range(30) for k, ev in enumerate(("search", "view_item", "purchase"))]
    db = build(tmp_path / "bare.duckdb", rows)
    with Warehouse(db) as wh:
        emap = wh.event_map
        assert emap.roles.search.query == "properties.search_term" and emap.roles.search.results is None
        assert set(emap.unavailable()) >= {"zero-result rate", "revenue and order value", "errors", "page speed"}
        result = search(wh, ALL)
        assert result.data["zero_result_rate"] is None
        assert "zero-result rate not measured" in result.summary
        assert "Zero results not measured: the event map has no results-count field on the search role" in (
            result.summary)
        with pytest.raises(MetricError, match=r"Revenue \(revenue\) is not available: the event map has no order "
                                              r"role with its revenue field"):
            compute_metric(wh, "revenue", ALL)
        assert compute_metric(wh, "orders", ALL).data["value"] == 30


def test_a_plan_can_be_started_from_the_data(tmp_path: Path) -> None:
    db = build(tmp_path / "plan.duckdb", shop(GA4), extra={"platform": "VARCHAR", "page_path": "VARCHAR"})
    with Warehouse(db) as wh:
        plan = draft_plan(wh)
    assert set(plan.events) == set(GA4.values())
    assert plan.dimensions["platform"].allowed == ["ios", "web"]


def test_inference_runs_on_an_import_connection_too(tmp_path: Path) -> None:
    from tools.semantic.store import ConnectionSource

    db = build(tmp_path / "c.duckdb", shop(SNAKE), extra={"platform": "VARCHAR", "page_path": "VARCHAR"})
    con = duckdb.connect(str(db))
    try:
        assert infer_map(ConnectionSource(con)).steps[0] == "product_view"
    finally:
        con.close()


def test_no_code_outside_the_semantic_layer_names_an_event() -> None:
    """Analyses read event names from the map: no string literal in tools/ (but tools/semantic), agent/ or ui/
    names one of the demo's events (docstrings may mention them as examples)."""
    import ast

    from data.scenario import EVENTS

    root = Path(__file__).resolve().parents[1]
    offenders = []
    for folder in ("tools", "agent", "ui"):
        for path in (root / folder).rglob("*.py"):
            if "semantic" in path.parts:
                continue
            tree = ast.parse(path.read_text())
            docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                          if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
                          and node.body and isinstance(node.body[0], ast.Expr)}
            offenders += [f"{path.relative_to(root)}:{node.lineno}" for node in ast.walk(tree)
                          if isinstance(node, ast.Constant) and isinstance(node.value, str)
                          and id(node) not in docstrings and any(e in node.value for e in EVENTS)]
    assert offenders == []
