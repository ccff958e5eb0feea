"""Import hardening: impossible timestamps, symbolic links out of the folder, glob characters in file names,
bounded error messages and the temp files of killed imports."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from data.importers import ImportFailed, import_source
from tests.importing import existing_database
from tests.test_import import GOOD_EVENTS, USERS, query, segment_line, sha256, write

ROOT = Path(__file__).resolve().parents[1]
RANGE = "is outside 1990..2099"
TRACK = {"type": "track", "event": "Order Completed", "userId": "u1", "messageId": "m1",
         "timestamp": "2026-01-01T10:00:00Z"}


def refused_by_import(source: Path, target: Path, prefix: str, *fragments: str) -> str:
    """Import `source` into `target`, which must fail with a one-line message starting with `prefix` and leave
    `target` as it was (byte-identical, or absent with no file next to it)."""
    before = sha256(target) if target.exists() else None
    with pytest.raises(ImportFailed) as info:
        import_source(source, target)
    message = str(info.value)
    assert message.startswith(prefix) and len(message.splitlines()) == 1, message
    for fragment in fragments:
        assert fragment in message, message
    if before is None:
        assert not target.parent.exists() or not any(target.parent.iterdir())
    else:
        assert sha256(target) == before
    return message


def target_db(tmp_path: Path, existing: bool) -> Path:
    return existing_database(tmp_path) if existing else tmp_path / "fresh" / "insight.duckdb"


# ------------------------------------------------------------------------------ impossible timestamps


def _timestamp_parquet(path: Path, bad: str) -> None:
    """events with a team's own TIMESTAMP column `renewed_at`, `bad` in row 2 (DuckDB writes what Python cannot)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with duckdb.connect() as con:
        con.execute(f"""COPY (SELECT 'e' || i AS event_id, TIMESTAMP '2026-01-01' + INTERVAL (i) HOUR AS ts,
                              'u1' AS user_id, 'Page Viewed' AS event,
                              CASE WHEN i = 1 THEN TRY_CAST(TRY_CAST($bad AS TIMESTAMPTZ) AS TIMESTAMP)
                                   ELSE TIMESTAMP '2026-02-01' END AS renewed_at
                              FROM range(2) t(i)) TO '{path}' (FORMAT parquet)""", {"bad": bad})


def _tables_events(d: Path, bad: str) -> Path:
    return write(d, {"users.csv": USERS, "events.csv": GOOD_EVENTS + f"e4,{bad},u2,Order Completed,s2,,,\n"})


def _tables_users(d: Path, bad: str) -> Path:
    return write(d, {"users.csv": USERS + f"u3,{bad},FR,free\n", "events.csv": GOOD_EVENTS})


def _tables_experiments(d: Path, bad: str) -> Path:
    return write(d, {"users.csv": USERS, "events.csv": GOOD_EVENTS,
                     "experiments.csv": f"experiment_id,started_at\nx1,{bad}\n"})


def _tables_parquet(d: Path, bad: str) -> Path:
    _timestamp_parquet(d / "events.parquet", bad)
    return write(d, {"users.csv": USERS})


def _segment_track(d: Path, bad: str) -> Path:
    lines = segment_line(**TRACK) + segment_line(**{**TRACK, "messageId": "m2", "timestamp": bad})
    return write(d, {"track.jsonl": lines}) / "track.jsonl"


def _segment_identify(d: Path, bad: str) -> Path:
    lines = segment_line(**TRACK) + segment_line(type="identify", userId="u1", traits={"created_at": bad})
    return write(d, {"track.jsonl": lines}) / "track.jsonl"


def _wide_parquet(d: Path, bad: str) -> Path:
    _timestamp_parquet(d / "events.parquet", bad)
    return d / "events.parquet"


def _amplitude(d: Path, bad: str) -> Path:
    record = {"event_type": "open", "user_id": "u1", "event_time": "2024-03-04 09:00:00.000000", "$insert_id": "i1",
              "user_creation_time": bad}
    return write(d, {"export.json": json.dumps(record) + "\n"}) / "export.json"


# case -> (write the source into a folder, with `bad` in it; the message's start)
TIMESTAMP_CASES: dict[str, tuple[Callable[[Path, str], Path], str]] = {
    "tables events.ts": (_tables_events, "events.csv row 4, column ts: timestamp "),
    "tables users.signed_up_at": (_tables_users, "users.csv row 3, column signed_up_at: timestamp "),
    "tables experiments.started_at": (_tables_experiments, "experiments.csv row 1, column started_at: timestamp "),
    "tables own parquet column": (_tables_parquet, "events.parquet row 2, column renewed_at: timestamp "),
    "segment timestamp": (_segment_track, "track.jsonl line 2, field timestamp: timestamp "),
    "segment traits.created_at": (_segment_identify, "track.jsonl line 2, field traits.created_at: timestamp "),
    "wide own parquet column": (_wide_parquet, "events.parquet row 2, column renewed_at: timestamp "),
    "amplitude user_creation_time": (_amplitude, "export.json line 1, field user_creation_time: timestamp "),
}
IMPOSSIBLE = ["9999-12-31 23:59:59", "infinity", "-infinity", "0044-03-15 (BC)", "-0044-03-15 12:00:00",
              "0001-01-01 00:00:00", "1989-12-31 23:59:59", "2100-01-01 00:00:00"]


@pytest.mark.parametrize("bad", IMPOSSIBLE)
@pytest.mark.parametrize("case", TIMESTAMP_CASES)
def test_impossible_timestamps_are_refused_in_every_importer(tmp_path: Path, case: str, bad: str) -> None:
    make, prefix = TIMESTAMP_CASES[case]
    source = make(tmp_path / "src", bad)
    target = target_db(tmp_path, existing=len(bad) % 2 == 0)  # over an existing database or into a new file
    refused_by_import(source, target, prefix, RANGE)


OUT_OF_RANGE = st.one_of(st.datetimes(max_value=datetime(1989, 12, 31, 23, 59, 59, 999999)),
                         st.datetimes(min_value=datetime(2100, 1, 1)))


@settings(max_examples=25, deadline=None)
@given(OUT_OF_RANGE, st.sampled_from(["tables events.ts", "tables users.signed_up_at", "segment timestamp"]))
def test_any_timestamp_out_of_range_is_refused(when: datetime, case: str) -> None:
    make, prefix = TIMESTAMP_CASES[case]
    with tempfile.TemporaryDirectory() as tmp:
        source = make(Path(tmp) / "src", when.isoformat(sep=" "))
        refused_by_import(source, target_db(Path(tmp), existing=True), prefix, RANGE)


# ------------------------------------------------------------------------------ symbolic links


def _amplitude_line(event: str) -> str:
    return json.dumps({"event_type": event, "user_id": "u1", "event_time": "2024-03-04 09:00:00.000000",
                       "$insert_id": event}) + "\n"


SECRET = "root:x:0:0:SECRET-LINE:/root:/bin/bash"


@pytest.mark.parametrize(("files", "link", "named"), [
    ({"users.csv": USERS}, "events.csv", "events.csv: "),
    ({"users.csv": USERS, "events/part-1.csv": GOOD_EVENTS}, "events/part-2.csv", "events/part-2.csv: "),
    ({"users.csv": USERS}, "events", "events/: "),
    ({"2024/01.jsonl": _amplitude_line("open")}, "2024/02.jsonl", "2024/02.jsonl: "),
    ({"02.jsonl": _amplitude_line("open")}, "01.jsonl", "01.jsonl: "),
])
def test_symlinks_out_of_the_folder_are_refused_unread(tmp_path: Path, files: dict, link: str, named: str) -> None:
    outside = write(tmp_path / "outside", {"secret.csv": SECRET + "\n", "events.csv": SECRET + "\n",
                                           "secret.jsonl": _amplitude_line(SECRET)})
    source = write(tmp_path / "src", files)
    (source / link).parent.mkdir(parents=True, exist_ok=True)
    pointee = outside if link == "events" else outside / f"secret{Path(link).suffix}"
    (source / link).symlink_to(pointee)
    message = refused_by_import(source, existing_database(tmp_path), named, "outside the import folder")
    assert "SECRET" not in message


def test_a_symlink_inside_the_folder_is_read(tmp_path: Path) -> None:
    source = write(tmp_path / "src", {"users.csv": USERS, ".data/events.txt": GOOD_EVENTS})  # hidden: no table
    (source / "events.csv").symlink_to(Path(".data") / "events.txt")
    assert import_source(source, tmp_path / "x.duckdb")["events"] == 3


# ------------------------------------------------------------------------------ glob characters in file names


def _parquet(path: Path, columns: dict[str, list]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table(columns), path)


def _events(fmt: str, ids: list[str]) -> str:
    rows = [{"event_id": i, "ts": "2026-01-01 10:00:00", "user_id": "u1", "event": "Page Viewed"} for i in ids]
    if fmt == "jsonl":
        return "".join(json.dumps(row) + "\n" for row in rows)
    return "event_id,ts,user_id,event\n" + "".join(",".join(row.values()) + "\n" for row in rows)


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "parquet"])
@pytest.mark.parametrize(("tricky", "plain"), [("part *", "part 1"), ("part[1]", "part1"), ("part?", "part1"),
                                               ("part {1,2}", "part 1")])
def test_part_names_with_glob_characters_are_read_literally(tmp_path: Path, fmt: str, tricky: str, plain: str
                                                            ) -> None:
    source = write(tmp_path / "src", {"users.csv": USERS})
    parts = {f"events/{tricky}.{fmt}": ["t1", "t2"], f"events/{plain}.{fmt}": ["p1"]}
    for name, ids in parts.items():
        if fmt == "parquet":
            _parquet(source / name, {"event_id": ids, "ts": [datetime(2026, 1, 1)] * len(ids),
                                     "user_id": ["u1"] * len(ids), "event": ["Page Viewed"] * len(ids)})
        else:
            write(source, {name: _events(fmt, ids)})
    db = tmp_path / "x.duckdb"
    assert import_source(source, db)["events"] == 3
    assert query(db, "SELECT event_id FROM events ORDER BY 1") == [("p1",), ("t1",), ("t2",)]


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_a_wide_file_with_glob_characters_is_read_literally(tmp_path: Path, fmt: str) -> None:
    src = write(tmp_path, {f"events [eu].{fmt}": _events(fmt, ["t1"]), f"events e.{fmt}": _events(fmt, ["e1", "e2"])})
    db = tmp_path / "x.duckdb"
    assert import_source(src / f"events [eu].{fmt}", db)["events"] == 1
    assert query(db, "SELECT event_id FROM events") == [("t1",)]


# ------------------------------------------------------------------------------ bounded messages

HUGE = "x" * 2_000_000
BIG = "y" * 100_000  # a CSV column name (Python's csv module reads fields up to 128 KiB)


@pytest.mark.parametrize("files", [
    {"users.csv": USERS, "events.csv": f"event_id,ts,user_id,event,Bad {BIG}\n"},  # not a plain identifier
    {"users.csv": USERS, "events.csv": GOOD_EVENTS, "experiments.csv": f"experiment_id,{BIG}\nx1,1\n"},  # unknown
    {"users.csv": USERS, "events.csv": f"event_id,ts,user_id,event,{BIG},{BIG}\n"},  # twice in the header
    {"users.csv": USERS, "events.jsonl": json.dumps({"event_id": "e1", "ts": "2026-01-01", "user_id": "u1",
                                                     "event": "x", f"Bad {HUGE}": 1}) + "\n"},
    {"users.csv": USERS, "events.csv": GOOD_EVENTS, "notes\n\x1b[31m.csv": "a\n"},  # unknown table, odd name
    {"users.csv": USERS, "events.csv": GOOD_EVENTS + f'e4,"2026\n{BIG}",u1,x,,,,\n'},  # a value
    {"events.jsonl": json.dumps({f"time\n{HUGE}": "2026-01-01", "uid": "u1", "event": "x"}) + "\n"},  # no ts
    {"events.csv": f"time,who,event,{BIG}\n2026-01-01,u1,x,1\n"},  # no user_id: the columns are listed
], ids=["column name", "unknown column", "duplicate column", "json key", "file name", "value", "wide key",
        "wide column"])
def test_messages_are_one_short_line(tmp_path: Path, files: dict[str, str]) -> None:
    source = write(tmp_path / "src", files)
    if len(files) == 1:
        source = source / next(iter(files))
    with pytest.raises(ImportFailed) as info:
        import_source(source, tmp_path / "x.duckdb")
    message = str(info.value)
    assert len(message) < 1000 and len(message.splitlines()) == 1 and message.isprintable(), message[:2000]


# ------------------------------------------------------------------------------ temp files of killed imports


def test_temp_files_of_killed_imports_are_removed_but_not_those_of_running_ones(tmp_path: Path) -> None:
    source = write(tmp_path / "src", {"users.csv": USERS, "events.csv": GOOD_EVENTS})
    db = tmp_path / "dbdir" / "insight.duckdb"
    hang = (f"from data.importers import import_source; import time; "
            f"import_source({str(source)!r}, {str(db)!r}, finish=lambda con: time.sleep(600))")
    killed = subprocess.Popen([sys.executable, "-c", hang], cwd=ROOT)
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    try:
        stale = db.with_name(f".{db.name}.importing-{killed.pid}.duckdb")
        deadline = time.monotonic() + 60
        while not stale.exists() and killed.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.2)  # well into `finish`
        os.kill(killed.pid, signal.SIGKILL)
        killed.wait()
        assert stale.exists()
        Path(f"{stale}.wal").write_bytes(b"log")
        Path(f"{stale}.tmp").mkdir(exist_ok=True)
        live = db.with_name(f".{db.name}.importing-{sleeper.pid}.duckdb")
        for path in (live, Path(f"{live}.wal")):
            path.write_bytes(b"in use")
        assert import_source(source, db)["events"] == 3
        assert sorted(p.name for p in db.parent.iterdir()) == sorted([db.name, live.name, f"{live.name}.wal"])
    finally:
        for process in (killed, sleeper):
            if process.poll() is None:
                process.kill()
            process.wait()
