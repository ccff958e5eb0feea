"""Finish an event export into the data model: timestamps, ids, sessions, users, a team's own columns.

Every export format (a wide events file, Amplitude, Mixpanel, PostHog, GA4) first stages its rows
as one flat view with `__rid` (the source row), `ts` (as the export has it), `user_id`, `event` and,
when the export has them, `event_id` and `session_id`; every other column is the team's own and is
kept (with the narrowest type its values fit), and `properties` holds the event's JSON properties.
A users view (`user_id` plus user properties, several rows per user allowed: the last non-empty
value wins) and a first-seen column are optional. Then:

* timestamps: native timestamps, ISO 8601 text with or without a zone, epoch seconds,
  milliseconds or microseconds (told apart by size), or `ts_format` (strptime); common day-first
  and month-first formats are recognized when every value fits one; timestamps (also a team's own
  and first-seen ones) outside [MIN_YEAR, MAX_YEAR) of data.schema are refused;
* event ids: kept when the export has them, else a stable hash of the row; rows sharing an id
  are one event sent twice when the export says ids are insert ids (`dedupe`), else refused;
* sessions: kept when the export has them, else cut at 30 minutes of inactivity per user (the GA
  and Amplitude convention);
* users: derived from the events (first seen = signed up, unless the export says when), with the
  user properties as columns.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from data.importers.core import (
    Connection,
    ImportFailed,
    Staged,
    add_columns,
    check_range,
    clip,
    column_name,
    is_time,
    narrowest_type,
    quote,
    sql_literal,
)

SESSION_GAP_MINUTES = 30
CORE = ("event_id", "ts", "user_id", "session_id", "event", "properties")
# Text formats tried, in order, when timestamps are not ISO 8601 or epoch numbers: day first for '-' and
# '.', month first for '/', as those separators are usually written.
TS_FORMATS = ("%d-%m-%Y %H:%M:%S", "%d-%m-%Y %H:%M", "%d.%m.%Y %H:%M:%S", "%d.%m.%Y %H:%M", "%m/%d/%Y %H:%M:%S",
              "%m/%d/%Y %H:%M", "%m/%d/%Y %I:%M:%S %p", "%m/%d/%Y %I:%M %p", "%d/%m/%Y %H:%M:%S", "%d/%m/%Y %H:%M",
              "%Y/%m/%d %H:%M:%S", "%Y-%m-%d %H:%M:%S.%f", "%Y%m%d%H%M%S", "%d-%m-%Y", "%m/%d/%Y", "%d.%m.%Y")
Note = Callable[[str], None]


@dataclass
class EventExport:
    """A format's events staged as flat rows (see the module docstring)."""

    events: Staged
    users: str | None = None            # view: __rid, user_id and user property columns (the last non-empty wins)
    first_seen: str | None = None       # a column of `events.view`: when the user was first seen (a timestamp)
    dedupe: bool = False                # duplicate event ids are the same event sent twice


def load_events(con: Connection, export: EventExport, ts_format: str | None, note: Note) -> int:
    """Create events and users from a staged export; returns the number of events."""
    staged = export.events
    view = staged.view
    columns = {r[0]: r[1] for r in con.execute(f"DESCRIBE SELECT * FROM {view}").fetchall()}
    for required in ("ts", "user_id", "event"):
        if required not in columns:
            raise ImportFailed(f"no {required} column found; name it with --columns {required}=<column>",
                               file=staged.label)
        first = con.execute(f"SELECT min(__rid) FROM {view} WHERE {quote(required)} IS NULL").fetchone()[0]
        if first is not None:
            raise staged.fail("missing required value", rid=first, column=required)
    rows = con.execute(f"SELECT count(*) FROM {view}").fetchone()[0]
    if rows == 0:
        raise staged.fail("the events table is empty")
    ts = timestamp_sql(con, staged, "ts", columns["ts"], ts_format, note)
    extras = {c: narrowest_type(con, view, c, t) for c, t in columns.items() if c not in (*CORE, "__rid")
              and c != export.first_seen}
    con.execute(f"CREATE TEMP TABLE typed AS SELECT __rid, {ts} AS ts, CAST(user_id AS VARCHAR) AS user_id, "
                f"CAST(event AS VARCHAR) AS event, "
                + ("CAST(event_id AS VARCHAR)" if "event_id" in columns else "NULL::VARCHAR") + " AS event_id, "
                + ("CAST(session_id AS VARCHAR)" if "session_id" in columns else "NULL::VARCHAR") + " AS session_id, "
                + ("json(properties)" if "properties" in columns else "NULL::JSON") + " AS properties"
                + "".join(f", TRY_CAST({quote(c)} AS {t}) AS {quote(c)}" for c, t in extras.items())
                + (f", {timestamp_sql(con, staged, export.first_seen, columns[export.first_seen], None, note)}"
                   f" AS __first_seen" if export.first_seen else "")
                + f" FROM {view}")
    times = {"ts": "ts", **({export.first_seen: "__first_seen"} if export.first_seen else {}),
             **{c: quote(c) for c, t in extras.items() if is_time(t)}}
    check_range(con, staged, "typed", times)
    _event_ids(con, staged, [c for c in ("ts", "user_id", "event", "session_id", "properties", *extras)],
               dedupe=export.dedupe, given="event_id" in columns, note=note)
    if "session_id" not in columns or not con.execute("SELECT count(session_id) FROM typed").fetchone()[0]:
        _cut_sessions(con)
        note(f"sessions cut at {SESSION_GAP_MINUTES} minutes of inactivity (the export has no session ids)")
    con.execute("DROP TABLE events")
    con.execute("CREATE TABLE events (event_id VARCHAR NOT NULL, ts TIMESTAMP NOT NULL, user_id VARCHAR NOT NULL, "
                "session_id VARCHAR, event VARCHAR NOT NULL, properties JSON)")
    add_columns(con, "events", extras)
    names = ", ".join(quote(c) for c in ("event_id", "ts", "user_id", "session_id", "event", "properties", *extras))
    con.execute(f"INSERT INTO events ({names}) SELECT {names} FROM typed ORDER BY ts, __rid")
    _users(con, export)
    con.execute("DROP TABLE typed")
    return con.execute("SELECT count(*) FROM events").fetchone()[0]


def timestamp_sql(con: Connection, staged: Staged, column: str, source: str, ts_format: str | None,
                  note: Note) -> str:
    """SQL turning `column` of the staged view into a naive UTC TIMESTAMP, whatever form the export uses."""
    c, view = quote(column), staged.view
    if is_time(source):
        return f"CAST({c} AS TIMESTAMP)"
    if ts_format:
        parsed = f"try_strptime(CAST({c} AS VARCHAR), {sql_literal(ts_format)})"
        if error := _unparsed(con, staged, column, parsed, f"does not match --ts-format {ts_format!r}"):
            raise error
        return f"CAST({parsed} AS TIMESTAMP)"
    number = c if source in NUMERIC else f"TRY_CAST({c} AS DOUBLE)"
    number = f"CASE WHEN isfinite(CAST({number} AS DOUBLE)) THEN {number} END"  # 'infinity' is no epoch number
    numeric = con.execute(f"SELECT count({c}) = count({number}), median(abs({number})) FROM {view}").fetchone()
    if numeric[0] and numeric[1] is not None:
        scale, unit = _epoch_unit(float(numeric[1]))
        note(f"{column}: epoch {unit}")
        parsed = f"make_timestamp(TRY_CAST(round({number} * {scale}) AS BIGINT))"
        if error := _unparsed(con, staged, column, parsed, f"is out of range as epoch {unit}"):
            raise error
        return parsed
    iso = f"TRY_CAST(TRY_CAST({c} AS TIMESTAMPTZ) AS TIMESTAMP)"
    error = _unparsed(con, staged, column, iso, "is not a timestamp (ISO 8601, epoch seconds, ms or us); pass "
                      "--ts-format, e.g. --ts-format '%d-%m-%Y %H:%M'")
    if error is None:
        return iso
    for fmt in TS_FORMATS:
        parsed = f"try_strptime(CAST({c} AS VARCHAR), {sql_literal(fmt)})"
        if _unparsed(con, staged, column, parsed, "") is None:
            note(f"{column}: read as {fmt} (pass --ts-format if that is wrong)")
            return f"CAST({parsed} AS TIMESTAMP)"
    raise error


NUMERIC = ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT", "UINTEGER", "UBIGINT",
           "FLOAT", "DOUBLE", "DECIMAL")


def _epoch_unit(magnitude: float) -> tuple[float, str]:
    """Microseconds per unit of an epoch number of this size, and the unit's name."""
    if magnitude >= 1e17:
        return 1e-3, "nanoseconds"
    if magnitude >= 1e14:
        return 1.0, "microseconds"
    if magnitude >= 1e11:
        return 1e3, "milliseconds"
    return 1e6, "seconds"


def _unparsed(con: Connection, staged: Staged, column: str, parsed: str, problem: str) -> ImportFailed | None:
    """The error naming the first row whose non-empty value `parsed` cannot read, or None when all read."""
    c = quote(column)
    rid = con.execute(f"SELECT min(__rid) FROM {staged.view} WHERE {c} IS NOT NULL AND {parsed} IS NULL").fetchone()[0]
    if rid is None:
        return None
    value = con.execute(f"SELECT CAST({c} AS VARCHAR) FROM {staged.view} WHERE __rid = ?", [rid]).fetchone()[0]
    return staged.fail(f"{clip(value)!r} {problem}", rid=rid, column=column)


def _event_ids(con: Connection, staged: Staged, columns: list[str], *, dedupe: bool, given: bool, note: Note
               ) -> None:
    """Fill missing ids with a stable hash of the row (its `columns`); drop repeats of one id (dedupe, or
    rows repeated exactly) or refuse them (given ids that are not insert ids)."""
    row = ", ".join(f"{quote(c)} := {quote(c)}" for c in columns)
    con.execute(f"UPDATE typed SET event_id = md5(CAST(to_json(struct_pack({row})) AS VARCHAR)) WHERE event_id IS NULL")
    dup = con.execute("SELECT event_id, count(*) AS n, list(__rid ORDER BY __rid) AS rids FROM typed "
                      "GROUP BY 1 HAVING count(*) > 1 ORDER BY min(__rid)").fetchall()
    if not dup:
        return
    if given and not dedupe:
        event_id, _, rids = dup[0]
        where = ", ".join(staged.position(r) for r in rids[:5])
        raise staged.fail(f"duplicate value {clip(event_id)!r} (at {where})", rid=rids[1], column="event_id")
    extra = sum(n - 1 for _, n, _ in dup)
    con.execute("DELETE FROM typed WHERE __rid NOT IN (SELECT min(__rid) FROM typed GROUP BY event_id)")
    note(f"dropped {extra:,} repeated events (the same " + ("insert id" if given else "row") + " sent twice)")


def _cut_sessions(con: Connection) -> None:
    """Sessions per user, cut at SESSION_GAP_MINUTES of inactivity: `<user_id>#<n>`."""
    con.execute(f"""UPDATE typed SET session_id = s.sid FROM (
        SELECT __rid, user_id || '#' || sum(new::INT) OVER (PARTITION BY user_id ORDER BY ts, __rid) AS sid
        FROM (SELECT __rid, user_id, ts, coalesce(ts - lag(ts) OVER (PARTITION BY user_id ORDER BY ts, __rid)
                     > INTERVAL {SESSION_GAP_MINUTES} MINUTE, TRUE) AS new FROM typed)) s
        WHERE typed.__rid = s.__rid""")


def _users(con: Connection, export: EventExport) -> None:
    """Every user of the events, signed up when first seen (or when the export says), with user properties."""
    first = "min(__first_seen)" if export.first_seen else "min(ts)"
    props: dict[str, str] = {}  # stored column -> column of the users view
    types: dict[str, str] = {}
    if export.users:
        described = {r[0]: r[1] for r in con.execute(f"DESCRIBE SELECT * FROM {export.users}").fetchall()}
        props = {column_name(raw): raw for raw in described if raw not in ("user_id", "__rid", "signed_up_at")}
        types = {c: narrowest_type(con, export.users, raw, described[raw]) for c, raw in props.items()}
    con.execute("DROP TABLE users")
    con.execute("CREATE TABLE users (user_id VARCHAR PRIMARY KEY, signed_up_at TIMESTAMP)")
    if props:
        add_columns(con, "users", types)
        latest = ", ".join(f"arg_max(TRY_CAST({quote(raw)} AS {types[c]}), __rid) FILTER (WHERE {quote(raw)} IS NOT "
                           f"NULL) AS {quote(c)}" for c, raw in props.items())
        con.execute(f"CREATE TEMP TABLE user_props AS SELECT CAST(user_id AS VARCHAR) AS user_id, {latest} "
                    f"FROM {export.users} GROUP BY 1")
    cols = list(props)
    join = " LEFT JOIN user_props p USING (user_id)" if props else ""
    con.execute(f"INSERT INTO users (user_id, signed_up_at{''.join(', ' + quote(c) for c in cols)}) "
                f"SELECT s.user_id, s.first{''.join(', p.' + quote(c) for c in cols)} "
                f"FROM (SELECT user_id, {first} AS first FROM typed GROUP BY 1) s{join}")
