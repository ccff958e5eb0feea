"""One wide events file, as a team exports it from its own warehouse: other column names, no users file,
no event ids, no sessions, day-first or epoch timestamps. Imported with the map inferred and stored, it is
ready to scan with no other step.

Every expected value is worked out by hand from the rows written here.
"""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from data.importers import ImportFailed, detect_format, import_source
from tools.semantic.store import finish_import
from tools.warehouse import Warehouse

ROOT = Path(__file__).resolve().parents[1]
HEADER = "Timestamp,uid,event_name,device_platform,user_plan,order_value,Basket Size\n"
ROWS = [  # (dd-mm-yyyy hh:mm, user, event, platform, plan, order value, basket size)
    ("26-02-2018 19:58", "a", "product_view", "web", "free", "", "1"),
    ("26-02-2018 20:05", "a", "add_to_cart", "web", "free", "", "2"),
    ("26-02-2018 20:50", "a", "product_view", "web", "free", "", "2"),   # 45 min later: a new session
    ("26-02-2018 20:55", "a", "purchase_success", "web", "free", "19.5", "2"),
    ("27-02-2018 08:00", "b", "product_view", "ios", "pro", "", "1"),
    ("27-02-2018 08:20", "b", "add_to_cart", "ios", "pro", "", "1"),     # 20 min later: same session
]


def write_csv(path: Path, rows=ROWS, header: str = HEADER, gz: bool = True) -> Path:
    text = header + "".join(",".join(r) + "\n" for r in rows)
    if gz:
        with gzip.open(path, "wt") as f:
            f.write(text)
    else:
        path.write_text(text)
    return path


def rows(db: Path, sql: str) -> list[tuple]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def test_a_wide_gzipped_csv_with_its_own_names(tmp_path: Path) -> None:
    src, db = write_csv(tmp_path / "events.csv.gz"), tmp_path / "shop.duckdb"
    assert detect_format(src) == "events"
    notes: list[str] = []
    counts = import_source(src, db, progress=notes.append, finish=finish_import(None))
    assert counts["events"] == 6 and counts["users"] == 2
    assert any("read as %d-%m-%Y %H:%M" in n for n in notes), notes
    assert any("sessions cut at 30 minutes" in n for n in notes), notes
    got = rows(db, "SELECT CAST(ts AS VARCHAR), user_id, session_id, event, device_platform, order_value, "
                   "basket_size FROM events ORDER BY ts")
    assert got == [
        ("2018-02-26 19:58:00", "a", "a#1", "product_view", "web", None, 1),
        ("2018-02-26 20:05:00", "a", "a#1", "add_to_cart", "web", None, 2),
        ("2018-02-26 20:50:00", "a", "a#2", "product_view", "web", None, 2),
        ("2018-02-26 20:55:00", "a", "a#2", "purchase_success", "web", 19.5, 2),
        ("2018-02-27 08:00:00", "b", "b#1", "product_view", "ios", None, 1),
        ("2018-02-27 08:20:00", "b", "b#1", "add_to_cart", "ios", None, 1),
    ]
    types = dict(rows(db, "SELECT column_name, data_type FROM duckdb_columns() WHERE table_name = 'events'"))
    assert (types["order_value"], types["basket_size"], types["device_platform"]) == ("DOUBLE", "BIGINT", "VARCHAR")
    # users derived from the events: signed up when first seen
    assert rows(db, "SELECT user_id, CAST(signed_up_at AS VARCHAR) FROM users ORDER BY 1") == [
        ("a", "2018-02-26 19:58:00"), ("b", "2018-02-27 08:00:00")]
    # event ids: a stable hash of the row (the same on a second import), unique here
    ids = rows(db, "SELECT event_id FROM events ORDER BY ts")
    import_source(src, tmp_path / "again.duckdb", finish=finish_import(None))
    assert rows(tmp_path / "again.duckdb", "SELECT event_id FROM events ORDER BY ts") == ids
    assert len(set(ids)) == 6
    with Warehouse(db) as wh:  # the map was inferred and stored with the data
        emap = wh.event_map
        assert emap.steps == ("product_view", "add_to_cart", "purchase_success")
        assert emap.roles.order.revenue == "order_value"
        assert {"device_platform", "user_plan"} <= set(emap.dimensions)


def test_core_columns_named_on_the_command_line(tmp_path: Path) -> None:
    header = "created,who,what,colour\n"
    data = [("2026-03-02T10:00:00Z", "u1", "signup", "red"), ("2026-03-02T10:01:00+01:00", "u1", "login", "red")]
    src = write_csv(tmp_path / "export.csv", data, header, gz=False)
    with pytest.raises(ImportFailed, match=r"export\.csv: no ts column found among created, who, what, colour; "
                                           r"name it with --columns ts=<column>"):
        import_source(src, tmp_path / "x.duckdb")
    db = tmp_path / "named.duckdb"
    import_source(src, db, columns="ts=created,user_id=who,event=what")
    # ISO with a zone is UTC: 10:01+01:00 is 09:01 UTC, before the other event
    assert rows(db, "SELECT CAST(ts AS VARCHAR), event, colour FROM events ORDER BY ts") == [
        ("2026-03-02 09:01:00", "login", "red"), ("2026-03-02 10:00:00", "signup", "red")]
    with pytest.raises(ImportFailed, match=r"--columns ts=nope: no such column; columns: created, who, what"):
        import_source(src, tmp_path / "y.duckdb", columns="ts=nope")
    with pytest.raises(ImportFailed, match=r"--columns 'when=created': 'when' is not one of ts, user_id"):
        import_source(src, tmp_path / "y.duckdb", columns="when=created")


@pytest.mark.parametrize(("scale", "unit"), [(1, "seconds"), (1000, "milliseconds"), (1_000_000, "microseconds")])
def test_epoch_timestamps_in_any_unit(tmp_path: Path, scale: int, unit: str) -> None:
    src = tmp_path / "events.jsonl"
    epoch = 1_772_445_600  # 2026-03-02 10:00:00 UTC
    src.write_text("\n".join(json.dumps({"time": (epoch + 60 * i) * scale, "distinct_id": "u1", "event": e,
                                         "props": {"k": i}}) for i, e in enumerate(("open", "buy"))) + "\n")
    db, notes = tmp_path / "e.duckdb", []
    import_source(src, db, progress=notes.append)
    assert any(f"epoch {unit}" in n for n in notes), notes
    assert rows(db, "SELECT CAST(ts AS VARCHAR), event, props FROM events ORDER BY ts") == [
        ("2026-03-02 10:00:00", "open", '{"k":0}'), ("2026-03-02 10:01:00", "buy", '{"k":1}')]


@pytest.mark.parametrize("bad", ["9999-12-31 23:59:59", "1899-01-01 00:00:00", "infinity", "-infinity"])
def test_impossible_timestamps_are_refused_naming_row_and_column(tmp_path: Path, bad: str) -> None:
    data = [("2026-03-02 10:00:00", "u1", "open"), (bad, "u1", "buy")]
    src = write_csv(tmp_path / "events.csv", data, "timestamp,user_id,event\n", gz=False)
    target = tmp_path / "t.duckdb"
    duckdb.connect(str(target)).close()
    before = target.read_bytes()
    with pytest.raises(ImportFailed, match=r"events\.csv row 2, column timestamp: ") as err:
        import_source(src, target)
    assert "outside 1990..2099" in str(err.value) or "is not a timestamp" in str(err.value)
    assert target.read_bytes() == before


def test_missing_user_names_the_row(tmp_path: Path) -> None:
    src = write_csv(tmp_path / "events.csv", [("2026-03-02 10:00", "u1", "a"), ("2026-03-02 10:01", "", "b")],
                    "ts,user_id,event\n", gz=False)
    with pytest.raises(ImportFailed, match=r"events\.csv row 2, column user_id: missing required value"):
        import_source(src, tmp_path / "m.duckdb")


def test_text_timestamps_that_fit_no_format_ask_for_ts_format(tmp_path: Path) -> None:
    src = write_csv(tmp_path / "events.csv", [("2026-03-02 10:00", "u1", "a"), ("yesterday", "u1", "b")],
                    "ts,user_id,event\n", gz=False)
    with pytest.raises(ImportFailed, match=r"row 2, column ts: 'yesterday' is not a timestamp .*--ts-format"):
        import_source(src, tmp_path / "m.duckdb")
    src = write_csv(tmp_path / "f.csv", [("2026/03/02 10h00", "u1", "a")], "ts,user_id,event\n", gz=False)
    db = tmp_path / "f.duckdb"
    import_source(src, db, ts_format="%Y/%m/%d %Hh%M")
    assert rows(db, "SELECT CAST(ts AS VARCHAR) FROM events") == [("2026-03-02 10:00:00",)]


def test_experiments_come_from_exposure_events(tmp_path: Path) -> None:
    header = "timestamp,user_id,event,experiment,variant\n"
    data = [("2026-03-02 10:00", "u1", "experiment_viewed", "new_checkout", "control"),
            ("2026-03-02 10:05", "u1", "experiment_viewed", "new_checkout", "treatment"),  # first exposure wins
            ("2026-03-02 11:00", "u2", "experiment_viewed", "new_checkout", "treatment"),
            ("2026-03-02 11:10", "u2", "purchase", "", "")]
    src = write_csv(tmp_path / "events.csv", data, header, gz=False)
    db = tmp_path / "x.duckdb"
    import_source(src, db, finish=finish_import(None))
    assert rows(db, "SELECT experiment_id, user_id, variant, CAST(assigned_at AS VARCHAR) FROM assignments ORDER BY 2"
                ) == [("new_checkout", "u1", "control", "2026-03-02 10:00:00"),
                      ("new_checkout", "u2", "treatment", "2026-03-02 11:00:00")]
    assert rows(db, "SELECT experiment_id, CAST(started_at AS VARCHAR), primary_metric FROM experiments") == [
        ("new_checkout", "2026-03-02 10:00:00", "purchase")]


def test_from_export_to_scan_in_two_commands(tmp_path: Path) -> None:
    """`insight import FILE --db D`, then `insight scan --db D`: nothing else."""
    src, db = write_csv(tmp_path / "events.csv.gz"), tmp_path / "cli.duckdb"
    done = subprocess.run([sys.executable, "-m", "agent.cli", "import", str(src), "--db", str(db)], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "funnel product_view -> add_to_cart -> purchase_success" in " ".join(done.stdout.split())
    scanned = subprocess.run([sys.executable, "-m", "agent.cli", "scan", "--db", str(db), "--json"], cwd=ROOT,
                             capture_output=True, text=True, timeout=120)
    assert scanned.returncode == 0, scanned.stderr
    payload = json.loads(scanned.stdout)
    assert payload["period"] == "all" and isinstance(payload["findings"], list)
    assert any("search quality" in line for line in payload["disabled"])  # no search events: said, not crashed


def test_the_map_is_shown_written_edited_and_used(tmp_path: Path) -> None:
    """`insight map` shows what was recognized; `--write` saves it; an edited copy is used with --map."""
    src, db = write_csv(tmp_path / "events.csv.gz"), tmp_path / "m.duckdb"
    import_source(src, db, finish=finish_import(None))

    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "agent.cli", *args], cwd=ROOT, capture_output=True, text=True,
                              timeout=120)

    shown = cli("map", "--db", str(db), "--json")
    assert shown.returncode == 0, shown.stderr
    payload = json.loads(shown.stdout)
    assert payload["funnels"] == {"purchase": ["product_view", "add_to_cart", "purchase_success"]}
    assert "recognized" in payload["notes"]["funnels.purchase"]
    assert "search quality" in payload["unavailable"]
    written = tmp_path / "map.yaml"
    assert cli("map", "--db", str(db), "--write", str(written), "--with-plan").returncode == 0
    text = written.read_text()
    assert "tracking_plan:" in text and "allowed:" in text  # a plan started from the data
    written.write_text(text.replace("default_funnel: purchase", "default_funnel: short").replace(
        "funnels:\n", "funnels:\n  short:\n  - product_view\n  - purchase_success\n", 1))
    asked = cli("ask", "Show the funnel", "--db", str(db), "--map", str(written), "--json")
    assert asked.returncode == 0, asked.stderr
    assert "of users entering the funnel converted (all time): 1 of 2 went from product_view to purchase_success" in (
        json.loads(asked.stdout)["text"])
    broken = tmp_path / "broken.yaml"
    broken.write_text("funnels: {x: [only_one]}\n")
    refused = cli("scan", "--db", str(db), "--map", str(broken))
    assert refused.returncode == 2 and "broken.yaml: funnels.x: a funnel needs at least two distinct steps" in (
        " ".join(refused.stderr.split()))
