"""Scans computed once per data version, event map and period, then reused.

A report is keyed by the data's fingerprint (a DuckDB file's identity, size and modification time,
or every file of a Parquet lake), the event map, the resolved period and the scan's code. An import
replaces the file, so its scans are computed anew. Reports stay in memory for the process and, for a
warehouse `bind`-ed to a directory (the state directory, never the analytics file), on disk for the
next process; an entry on disk that does not read back as the report of its key is computed again.

A DuckDB connection keeps reading the file it opened after an import replaced it, so a file's
fingerprint is taken when the cache first sees the warehouse (InsightAgent binds it at start).
A warehouse on shared storage (Spark on s3a://...) has no fingerprint here: its scans always run.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import tempfile
import threading
import weakref
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tools.lake import remote_url
from tools.period import Period, resolve_period
from tools.scan import ScanReport, scan
from tools.warehouse import Warehouse

Listener = Callable[[str], None]
MEMORY_ENTRIES = 16
DISK_ENTRIES = 32
SOURCES = (("tools", "**/*.py"), ("prompts", "*.*"), ("data", "*.yaml"))  # what a scan's output depends on


@dataclass(frozen=True)
class Binding:
    """Where a warehouse's scans are also kept and who hears their progress; a file's fingerprint when bound."""

    directory: Path | None = None
    progress: Listener | None = None
    pinned: str | None = None


_bindings: weakref.WeakKeyDictionary[Any, Binding] = weakref.WeakKeyDictionary()
_memory: OrderedDict[str, ScanReport] = OrderedDict()
_running: dict[str, threading.Lock] = {}
_guard = threading.Lock()


def bind(wh: Warehouse, state_dir: str | Path | None = None, progress: Listener | None = None) -> None:
    """Keep the scans of `wh` also in `state_dir` and tell `progress` each step of a scan that runs (the
    scan_frictions tool gets only the warehouse); takes the fingerprint of a DuckDB file now, unless taken before."""
    with _guard:
        pinned = _bindings[wh].pinned if wh in _bindings else _pin(wh)
        _bindings[wh] = Binding(Path(state_dir) / "scans" if state_dir else None, progress, pinned)


def cached_scan(wh: Warehouse, period: str | Period = "all", progress: Listener | None = None) -> ScanReport:
    """`scan(wh, period)`, computed once per data version, event map and period.

    `progress` (else the bound one) hears each step of a scan that runs. A cached report is the same
    object each time: do not change it. A report with a failed detector is not kept (it may be a timeout).
    """
    binding = _binding(wh)
    p = period if isinstance(period, Period) else resolve_period(wh, period)
    data = binding.pinned or fingerprint(wh.path)
    if data is None:
        return scan(wh, p, progress=progress or binding.progress)
    key = scan_key(wh, data, p)
    with _lock(key):
        report = _memory.get(key) or read_entry(binding.directory, key)
        if report is None:
            report = scan(wh, p, progress=progress or binding.progress)
            if report.warnings:
                return report
            write_entry(binding.directory, key, report)
        _remember(key, report)
    return report


def fingerprint(path: str | Path) -> str | None:
    """The version of the data at `path`: a file's (and its WAL's) path, inode, size and modification time, or
    those of every file of a lake directory; None for shared storage or a path that cannot be read."""
    if remote_url(path):
        return None
    root = Path(path).resolve()
    if root.is_dir():
        files = sorted(f for f in root.rglob("*") if f.is_file())
    else:
        wal = root.with_name(root.name + ".wal")
        files = [root, wal] if wal.exists() else [root]
    try:
        stats = [(str(f), s.st_dev, s.st_ino, s.st_size, s.st_mtime_ns) for f in files for s in [f.stat()]]
    except OSError:
        return None
    return _digest(stats)


def scan_key(wh: Warehouse, data: str, period: Period) -> str:
    """The cache key of a scan: the scan's code, the engine, the data version, the event map and the period."""
    return _digest([code_version(), wh.dialect, data, wh.event_map.model_dump_json(),
                    period.label, str(period.start), str(period.end)])


@functools.cache
def code_version() -> str:
    """A digest of the sources a scan's output depends on: any change to them invalidates every cached scan."""
    root = Path(__file__).resolve().parent.parent
    files = sorted(f for package, pattern in SOURCES for f in (root / package).glob(pattern) if f.is_file())
    return hashlib.sha256(b"".join(f.read_bytes() for f in files)).hexdigest()


def read_entry(directory: Path | None, key: str) -> ScanReport | None:
    """The report stored under `key`, or None when there is none or it does not read back as that report."""
    if directory is None:
        return None
    try:
        entry = json.loads((directory / f"{key}.json").read_text(encoding="utf-8"))
        return ScanReport.model_validate(entry["report"]) if entry["key"] == key else None
    except (OSError, ValueError, TypeError, KeyError):  # missing, unreadable, truncated or not a report
        return None


def write_entry(directory: Path | None, key: str, report: ScanReport) -> None:
    """Store `report` under `key` atomically, keeping the newest DISK_ENTRIES; a directory that cannot be written
    only costs the next process a scan."""
    if directory is None:
        return
    tmp = None
    try:
        directory.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=".scan-", suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump({"key": key, "report": report.model_dump(mode="json")}, out)
        os.replace(tmp, directory / f"{key}.json")
        entries = sorted(directory.glob("*.json"), key=lambda f: f.stat().st_mtime_ns, reverse=True)
        for old in entries[DISK_ENTRIES:]:
            old.unlink(missing_ok=True)
    except OSError:
        if tmp:
            Path(tmp).unlink(missing_ok=True)


def _binding(wh: Warehouse) -> Binding:
    with _guard:
        if wh not in _bindings:
            _bindings[wh] = Binding(pinned=_pin(wh))
        return _bindings[wh]


def _pin(wh: Warehouse) -> str | None:
    """A DuckDB file's fingerprint (the file it reads stays the same); None for a lake, read anew by each query."""
    return fingerprint(wh.path) if Path(str(wh.path)).is_file() else None


def _lock(key: str) -> threading.Lock:
    """The lock of one key: a second request for a running scan waits for its report instead of scanning again."""
    with _guard:
        return _running.setdefault(key, threading.Lock())


def _remember(key: str, report: ScanReport) -> None:
    with _guard:
        _memory[key] = report
        _memory.move_to_end(key)
        while len(_memory) > MEMORY_ENTRIES:
            _running.pop(_memory.popitem(last=False)[0], None)


def _digest(parts: list) -> str:
    return hashlib.sha256(json.dumps(parts, default=str).encode()).hexdigest()[:32]
