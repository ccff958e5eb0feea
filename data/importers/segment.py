"""Import a Segment-spec JSONL file of ``track`` (and ``identify``) calls."""

from __future__ import annotations

from pathlib import Path

from data.importers.core import (
    Connection,
    Finish,
    ImportFailed,
    Progress,
    Staged,
    build,
    cast_sql,
    insert,
    load_jsonl,
    quiet,
    quote,
    validate,
)
from data.schema import TABLES


def import_segment(source: str | Path, db: str | Path, *, progress: Progress = None, finish: Finish = None
                   ) -> dict[str, int]:
    """Import a Segment-spec JSONL file into `db`, REPLACING the database content.

    ``track`` lines become events, ``identify`` lines users (latest trait wins); users seen
    only in events get signed_up_at = their first event. Other call types are skipped and
    reported through `progress`. Returns {table: row_count}.
    """
    path = Path(source)
    note = progress or quiet

    def load(con: Connection) -> None:
        note(f"reading {path.name}")
        con.execute("CREATE TEMP TABLE raw_segment (json JSON)")
        load_jsonl(con, "raw_segment", path, path.name)
        kinds = dict(
            con.execute(
                "SELECT coalesce(json->>'$.type', 'track'), count(*) FROM raw_segment GROUP BY ALL ORDER BY ALL"
            ).fetchall()
        )
        skipped = {kind: n for kind, n in kinds.items() if kind not in ("track", "identify")}
        if skipped:
            detail = ", ".join(f"{kind}: {n:,}" for kind, n in skipped.items())
            note(f"skipped {sum(skipped.values()):,} lines that are not track or identify calls ({detail})")
        events = _segment_view(con, path, "events", "track")
        rows = validate(con, events, "event_id")
        if rows == 0:
            raise ImportFailed("no track calls in the file", file=path.name)
        insert(con, events)
        users = _segment_view(con, path, "users", "identify")
        validate(con, users, None)
        traits = ", ".join(
            f"arg_max({c}, __rid) FILTER (WHERE {c} IS NOT NULL) AS {c}"
            for c in ("signed_up_at", "country", "acquisition_channel", "plan")
        )
        casts = ", ".join(f"{cast_sql(c, t, TABLES['users'][c])} AS {c}" for c, t in users.types.items())
        con.execute(
            f"""INSERT INTO users
            WITH identified AS (
                SELECT user_id, {traits} FROM (SELECT __rid, {casts} FROM {users.view}) GROUP BY user_id),
            seen AS (SELECT user_id, min(ts) AS first_ts FROM events GROUP BY user_id)
            SELECT coalesce(i.user_id, s.user_id), coalesce(i.signed_up_at, s.first_ts),
                   i.country, i.acquisition_channel, i.plan
            FROM identified i FULL JOIN seen s ON i.user_id = s.user_id"""
        )
        note(f"loaded {rows:,} events")

    return build(Path(db), load, finish)


# ------------------------------------------------------------------------------ Segment


def _j(path: str) -> str:
    return f"json_extract_string(json, '$.{path}')"


_USER_AGENT = _j("context.userAgent")
# events column -> (field named in errors, SQL over a track call's JSON)
_SEGMENT_EVENTS = {
    "event_id": ("messageId", _j("messageId")),
    "ts": ("timestamp", _j("timestamp")),
    "user_id": ("userId", f"coalesce({_j('userId')}, {_j('anonymousId')})"),
    "session_id": ("properties.session_id", f"coalesce({_j('properties.session_id')}, {_j('context.session_id')})"),
    "event": ("event", _j("event")),
    "platform": (
        "context.device.type",
        f"coalesce({_j('context.device.type')}, CASE WHEN {_USER_AGENT} IS NOT NULL THEN 'web' END)",
    ),
    "os": ("context.os.name", f"lower({_j('context.os.name')})"),
    "app_version": ("context.app.version", _j("context.app.version")),
    "browser": (
        "context.userAgent",
        f"""CASE WHEN regexp_matches({_USER_AGENT}, 'Edg(e|A|iOS)?/') THEN 'edge'
            WHEN regexp_matches({_USER_AGENT}, '(Firefox|FxiOS)/') THEN 'firefox'
            WHEN regexp_matches({_USER_AGENT}, '(Chrome|CriOS)/') THEN 'chrome'
            WHEN regexp_matches({_USER_AGENT}, 'Safari/') THEN 'safari' END""",
    ),
    "country": ("context.location.country", _j("context.location.country")),
    "page": ("properties.page", f"coalesce({_j('properties.page')}, {_j('context.page.path')})"),
    "product_id": ("properties.product_id", _j("properties.product_id")),
    "category": ("properties.category", _j("properties.category")),
    "price": ("properties.price", _j("properties.price")),
    "revenue": ("properties.revenue", _j("properties.revenue")),
    "search_query": ("properties.query", _j("properties.query")),
    "results_count": ("properties.results_count", _j("properties.results_count")),
    "error_code": ("properties.error_code", _j("properties.error_code")),
    "load_time_ms": ("properties.load_time_ms", _j("properties.load_time_ms")),
    "properties": (
        "properties",
        "CASE WHEN json_type(json, '$.properties') <> 'NULL' THEN json_extract(json, '$.properties') END",
    ),
}
# users column -> (field named in errors, SQL over an identify call's JSON)
_SEGMENT_USERS = {
    "user_id": ("userId", f"coalesce({_j('userId')}, {_j('anonymousId')})"),
    "signed_up_at": ("traits.created_at", f"coalesce({_j('traits.created_at')}, {_j('traits.createdAt')})"),
    "country": ("traits.country", _j("traits.country")),
    "acquisition_channel": ("traits.acquisition_channel", _j("traits.acquisition_channel")),
    "plan": ("traits.plan", _j("traits.plan")),
}


def _segment_view(con: Connection, path: Path, table: str, kind: str) -> Staged:
    """View of the `kind` calls in raw_segment mapped onto `table`'s columns."""
    fields = _SEGMENT_EVENTS if table == "events" else _SEGMENT_USERS
    view = f"segment_{table}"
    columns = ", ".join(f"{sql} AS {quote(column)}" for column, (_, sql) in fields.items())
    con.execute(
        f"CREATE TEMP VIEW {view} AS SELECT rowid AS __rid, {columns} FROM raw_segment "
        f"WHERE coalesce(json->>'$.type', 'track') = '{kind}'"
    )
    types = {column: "JSON" if column == "properties" else "VARCHAR" for column in fields}
    names = {column: name for column, (name, _) in fields.items()}
    return Staged(table, view, types, [(path, path.name, 0)], path.name, jsonl=True, noun="field", names=names)


