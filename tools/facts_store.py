"""Facts computed once per data version and event map, kept beside the state, shared by scan, ask and digest.

A fact (a scan report, a period's session facts, whether an entity column's hashes are unique) is keyed by
the code that computes it, the engine, the data's fingerprint (a DuckDB file's identity, size and
modification time, or every file of a Parquet lake), the event map and its own parameters. An import
replaces the file and a map edit changes the map, so either makes new keys: stale facts are never looked
up. Facts stay in memory for the process and, for a warehouse `bind`-ed to a state directory (never the
read-only analytics file), on disk for the next process; an entry on disk that does not read back as the
fact of its key (missing, truncated, another key) is computed again.

A DuckDB connection keeps reading the file it opened after an import replaced it, so a file's
fingerprint is taken when the store first sees the warehouse (InsightAgent binds it at start).
A warehouse on shared storage (Spark on s3a://...) has no fingerprint here: its facts are always computed.
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
from typing import Any, Generic, TypeVar

from tools.lake import remote_url

T = TypeVar("T")
Listener = Callable[[str], None]
MEMORY_ENTRIES = 16
SOURCES = (("tools", "**/*.py"), ("prompts", "*.*"), ("data", "*.yaml"))  # what the facts depend on


@dataclass(frozen=True)
class Binding:
    """Where a warehouse's facts are also kept and who hears a scan's progress; a file's fingerprint when bound."""

    state: Path | None = None
    progress: Listener | None = None
    pinned: str | None = None


@dataclass(frozen=True)
class Codec(Generic[T]):
    """How one kind of fact is kept on disk: its folder under the state, how many entries stay, and how an entry
    is written (atomically, carrying its key) and read back (None unless it is the fact of that key)."""

    folder: str
    entries: int
    write: Callable[[Path, str, T], None]
    read: Callable[[Path, str], T | None]
    keep: Callable[[T], bool] = lambda value: True


_bindings: weakref.WeakKeyDictionary[Any, Binding] = weakref.WeakKeyDictionary()
_memory: OrderedDict[str, Any] = OrderedDict()
_running: dict[str, threading.Lock] = {}
_guard = threading.Lock()


def bind(wh: Any, state_dir: str | Path | None = None, progress: Listener | None = None) -> None:
    """Keep the facts of `wh` also in `state_dir` and tell `progress` each step of a scan that runs (the
    scan_frictions tool gets only the warehouse); takes the fingerprint of a DuckDB file now, unless taken before."""
    with _guard:
        pinned = _bindings[wh].pinned if wh in _bindings else _pin(wh)
        _bindings[wh] = Binding(Path(state_dir) if state_dir else None, progress, pinned)


def keep_in(wh: Any, state_dir: str | Path) -> None:
    """Keep the facts of `wh` in `state_dir` unless it is bound to a state directory already (a digest run from
    the command line, a scheduled one, or inside an agent that bound it)."""
    if binding(wh).state is None:
        with _guard:
            _bindings[wh] = Binding(Path(state_dir), _bindings[wh].progress, _bindings[wh].pinned)


def binding(wh: Any) -> Binding:
    """The binding of `wh` (a default one, with the file's fingerprint, for an unbound warehouse)."""
    with _guard:
        if wh not in _bindings:
            _bindings[wh] = Binding(pinned=_pin(wh))
        return _bindings[wh]


def fact_key(wh: Any, name: str, *parts: object) -> str | None:
    """The key of fact `name` with `parts` for the data `wh` reads now, or None when the data has no version
    here (shared storage)."""
    data = binding(wh).pinned or fingerprint(wh.path)
    if data is None:
        return None
    return digest([code_version(), wh.dialect, data, wh.event_map.model_dump_json(), name, *map(str, parts)])


def remembered(wh: Any, name: str, parts: tuple, compute: Callable[[], T], codec: Codec[T] | None = None) -> T:
    """Fact `name` with `parts`: from memory, else from disk (with `codec`, for a bound warehouse), else computed
    once (a second caller of a running computation waits for it) and kept if `codec.keep` allows."""
    key = fact_key(wh, name, *parts)
    if key is None:
        return compute()
    state = binding(wh).state
    folder = state / "facts" / codec.folder if state is not None and codec is not None else None
    with _lock(key):
        value = _memory.get(key)
        if value is None and folder is not None:
            value = codec.read(folder / key, key)
        if value is None:
            value = compute()
            if codec is not None and not codec.keep(value):
                return value
            if folder is not None:
                _store(folder, key, value, codec)
        _remember(key, value)
    return value


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
    return digest(stats)


@functools.cache
def code_version() -> str:
    """A digest of the sources the facts depend on: any change to them invalidates every stored fact."""
    root = Path(__file__).resolve().parent.parent
    files = sorted(f for package, pattern in SOURCES for f in (root / package).glob(pattern) if f.is_file())
    return hashlib.sha256(b"".join(f.read_bytes() for f in files)).hexdigest()


def digest(parts: list) -> str:
    """A short stable digest of JSON-able parts."""
    return hashlib.sha256(json.dumps(parts, default=str).encode()).hexdigest()[:32]


def atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Write `path` through a temporary file in its folder (`write` fills the given path), then rename it into
    place: a reader never sees half an entry. Nothing is written when the folder cannot be (the fact is then
    recomputed when next needed)."""
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=path.parent, prefix=".fact-", suffix=".tmp")
        os.close(fd)
        tmp = Path(name)
        write(tmp)
        os.replace(tmp, path)
    except OSError:
        if tmp:
            tmp.unlink(missing_ok=True)


def _store(folder: Path, key: str, value: Any, codec: Codec) -> None:
    """Write one entry and keep the newest `codec.entries` of its folder; a folder that cannot be written only
    costs the next process a computation."""
    codec.write(folder / key, key, value)
    try:
        entries = sorted((f for f in folder.iterdir() if not f.name.startswith(".")),
                         key=lambda f: f.stat().st_mtime_ns, reverse=True)
        for old in entries[codec.entries:]:
            old.unlink(missing_ok=True)
    except OSError:
        pass


def _pin(wh: Any) -> str | None:
    """A DuckDB file's fingerprint (the file it reads stays the same); None for a lake, read anew by each query."""
    return fingerprint(wh.path) if Path(str(wh.path)).is_file() else None


def _lock(key: str) -> threading.Lock:
    """The lock of one key: a second request for a running computation waits for its fact instead of computing."""
    with _guard:
        return _running.setdefault(key, threading.Lock())


def _remember(key: str, value: Any) -> None:
    with _guard:
        _memory[key] = value
        _memory.move_to_end(key)
        while len(_memory) > MEMORY_ENTRIES:
            _running.pop(_memory.popitem(last=False)[0], None)


def json_codec(folder: str, entries: int, dump: Callable[[T], Any], load: Callable[[Any], T],
               keep: Callable[[T], bool] = lambda value: True) -> Codec[T]:
    """Facts kept as JSON files `{"key": ..., "value": dump(fact)}`."""

    def write(path: Path, key: str, value: T) -> None:
        text = json.dumps({"key": key, "value": dump(value)})
        atomic_write(path.with_suffix(".json"), lambda tmp: tmp.write_text(text, encoding="utf-8"))

    def read(path: Path, key: str) -> T | None:
        try:
            entry = json.loads(path.with_suffix(".json").read_text(encoding="utf-8"))
            return load(entry["value"]) if entry["key"] == key else None
        except (OSError, ValueError, TypeError, KeyError):  # missing, unreadable, truncated or not a fact
            return None

    return Codec(folder, entries, write, read, keep)


def arrow_codec(folder: str, entries: int) -> Codec:
    """Tables (pyarrow) kept as Parquet files whose schema metadata carries their key."""

    def write(path: Path, key: str, table: Any) -> None:
        import pyarrow.parquet as pq

        keyed = table.replace_schema_metadata({**(table.schema.metadata or {}), b"insight_key": key.encode()})
        atomic_write(path.with_suffix(".parquet"), lambda tmp: pq.write_table(keyed, tmp))

    def read(path: Path, key: str) -> Any:
        import pyarrow as pa
        import pyarrow.parquet as pq

        try:
            table = pq.read_table(path.with_suffix(".parquet"))
        except (OSError, ValueError, pa.ArrowException):
            return None
        return table if (table.schema.metadata or {}).get(b"insight_key") == key.encode() else None

    return Codec(folder, entries, write, read)


def _frame_to_table(df: Any) -> Any:
    import pyarrow as pa

    return pa.Table.from_pandas(df, preserve_index=False)


TABLES = arrow_codec("tables", 8)
_FRAME_TABLES = arrow_codec("frames", 64)
FRAMES = Codec("frames", 64, lambda path, key, df: _FRAME_TABLES.write(path, key, _frame_to_table(df)),
               lambda path, key: None if (t := _FRAME_TABLES.read(path, key)) is None else t.to_pandas())


def frame(wh: Any, sql: str) -> Any:
    """The result of trusted `sql` as a pandas DataFrame (a copy: callers may change it), a fact of the data
    version like any other."""
    return remembered(wh, "frame", (sql,), lambda: wh.query(sql).df, FRAMES).copy()
