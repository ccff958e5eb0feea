"""Renderers: write a generated dataset as the export files real teams bring, in public export formats.

`render(db, fmt, out_dir)` reads a DuckDB file the generator wrote (canonical Segment vocabulary) and
writes the same events, plus one exposure event per experiment assignment where the format has one,
as the format's export under `out_dir/<fmt>` (replaced whole on every run). Every module writes with
one DuckDB `COPY` per output file over the staged `render_rows` table (built once here), so the work
is vectorized and the bytes are deterministic for the same input.

A format module provides `EVENTS` (canonical event -> rendered name), `DIMENSIONS` (canonical
dimension -> its name after import), `VALUES` (canonical dimension -> re-spellings; values not listed
stay as they are), `FILE` (the file inside the format folder, or None when the folder is the export)
and `write(con, folder)`.
"""

from __future__ import annotations

import gzip
import importlib
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import duckdb

from data.scenario import EVENT_DIMENSIONS, USER_DIMENSIONS

FORMATS: tuple[str, ...] = ("ga4", "wide_csv", "amplitude", "mixpanel", "posthog")
APP_PLATFORMS = ("ios", "android")
SITE = "https://www.example.com"
# Operating systems and browsers as Mixpanel's and PostHog's SDKs name them ($os, $browser)
SDK_NAMES = {
    "os": {"windows": "Windows", "macos": "Mac OS X", "linux": "Linux", "ios": "iOS", "android": "Android"},
    "browser": {"chrome": "Chrome", "safari": "Safari", "firefox": "Firefox", "edge": "Microsoft Edge"},
}
# canonical dimension -> the column a format's rendering keeps it in, when it keeps every one by its own name
SAME_DIMENSIONS = {d: d for d in ("platform", "os", "app_version", "browser", "country", "acquisition_channel", "plan")}
SESSION_CONTEXT = ("user_id", "platform", "os", "app_version", "browser", "country")
# ISO 3166-1 alpha-2 -> the English short name geo-IP lookups (GA4 geo.country, Amplitude country,
# PostHog $geoip_country_name) report. A code not listed is written as the code itself.
COUNTRY_NAMES: dict[str, str] = {
    "AE": "United Arab Emirates", "AR": "Argentina", "AT": "Austria", "AU": "Australia", "BD": "Bangladesh",
    "BE": "Belgium", "BR": "Brazil", "CA": "Canada", "CH": "Switzerland", "CL": "Chile", "CN": "China",
    "CO": "Colombia", "CZ": "Czechia", "DE": "Germany", "DK": "Denmark", "EG": "Egypt", "ES": "Spain",
    "FI": "Finland", "FR": "France", "GB": "United Kingdom", "GR": "Greece", "HK": "Hong Kong", "HU": "Hungary",
    "ID": "Indonesia", "IE": "Ireland", "IL": "Israel", "IN": "India", "IT": "Italy", "JP": "Japan", "KE": "Kenya",
    "KR": "South Korea", "MX": "Mexico", "MY": "Malaysia", "NG": "Nigeria", "NL": "Netherlands", "NO": "Norway",
    "NZ": "New Zealand", "PE": "Peru", "PH": "Philippines", "PK": "Pakistan", "PL": "Poland", "PT": "Portugal",
    "RO": "Romania", "SA": "Saudi Arabia", "SE": "Sweden", "SG": "Singapore", "TH": "Thailand", "TR": "Türkiye",
    "TW": "Taiwan", "UA": "Ukraine", "US": "United States", "VN": "Vietnam", "ZA": "South Africa",
}


@dataclass(frozen=True)
class Rendering:
    """One rendered export and how it relates to the canonical dataset."""

    format: str
    path: Path  # the file (or folder) to hand to `insight import`
    events: dict[str, str]  # canonical event name -> rendered event name
    dimensions: dict[str, str]  # canonical dimension -> dimension name the data has after import
    values: dict[str, dict[str, str]]  # canonical dimension -> {canonical value: rendered value}


def render(db: str | Path, fmt: str, out_dir: str | Path) -> Rendering:
    """Write the dataset in `db` as format `fmt` under `out_dir/<fmt>`; returns what was written."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown export format {fmt!r}; formats: {', '.join(FORMATS)}")
    db, out_dir = Path(db), Path(out_dir)
    if not db.is_file():
        raise FileNotFoundError(f"database file not found: {db}")
    module = importlib.import_module(f"{__name__}.{fmt}")
    out_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{fmt}.", dir=out_dir))
    staging.chmod(0o755)
    try:
        with duckdb.connect(str(db), read_only=True) as con:
            present = [r[0] for r in con.execute("SELECT DISTINCT event FROM events ORDER BY 1").fetchall()]
            unnamed = [e for e in present if e not in module.EVENTS]
            if unnamed:
                raise ValueError(f"format {fmt!r} has no name for canonical event(s) {', '.join(unnamed)}")
            stage_rows(con)
            module.write(con, staging)
            values = _values(con, module.VALUES)
        target = out_dir / fmt
        if target.exists():
            shutil.rmtree(target)
        os.replace(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return Rendering(fmt, target / module.FILE if module.FILE else target, {e: module.EVENTS[e] for e in present},
                     dict(module.DIMENSIONS), values)


def stage_rows(con: duckdb.DuckDBPyConnection) -> None:
    """Create temp table `render_rows`: every event, then every timed assignment as kind 'exposure'.

    Rows carry the user's attributes and their session (start, per-user number); an exposure takes the
    session that starts at its `assigned_at` (the generator assigns at a session start) and that
    session's context (its first event's user and device). `seq` is the output order (time, events
    before exposures, id); `app_version` is NULL off the apps and `quantity` is revenue / price on orders.
    """
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE render_rows AS
        WITH sessions AS (
            SELECT session_id, min(ts) AS session_start, {", ".join(
                f"first({c} ORDER BY ts, event_id) AS {c}" for c in SESSION_CONTEXT)}
            FROM events WHERE session_id IS NOT NULL GROUP BY session_id
        ), numbered AS (
            SELECT *, row_number() OVER (PARTITION BY user_id ORDER BY session_start, session_id) AS session_number
            FROM sessions
        ), starting AS (
            SELECT * FROM numbered
            QUALIFY row_number() OVER (PARTITION BY user_id, session_start ORDER BY session_id) = 1
        ), unioned AS (
            SELECT 'event' AS kind, e.event_id, e.ts, e.user_id, e.session_id, s.session_start, s.session_number,
                   e.event, e.platform, e.os, e.app_version, e.browser, e.country, e.page, e.product_id,
                   e.category, e.price, e.revenue, e.search_query, e.results_count, e.error_code, e.load_time_ms,
                   e.properties, NULL AS experiment_id, NULL AS variant
            FROM events e LEFT JOIN numbered s USING (session_id)
            UNION ALL
            SELECT 'exposure', 'x:' || a.experiment_id || ':' || a.user_id, a.assigned_at, a.user_id, s.session_id,
                   s.session_start, s.session_number, NULL, s.platform, s.os, s.app_version, s.browser,
                   coalesce(s.country, u.country), NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
                   a.experiment_id, a.variant
            FROM assignments a LEFT JOIN users u USING (user_id)
            LEFT JOIN starting s ON s.user_id = a.user_id AND s.session_start = a.assigned_at
            WHERE a.assigned_at IS NOT NULL
        )
        SELECT row_number() OVER (ORDER BY r.ts, r.kind, r.event_id) AS seq,
               r.* REPLACE (CASE WHEN r.platform IN {APP_PLATFORMS} THEN r.app_version END AS app_version),
               p.name AS product_name,
               CASE WHEN r.revenue IS NOT NULL AND r.price > 0 THEN round(r.revenue / r.price)::BIGINT END
                   AS quantity,
               u.signed_up_at, u.plan, u.acquisition_channel
        FROM unioned r LEFT JOIN users u USING (user_id) LEFT JOIN products p USING (product_id)
    """)


def _values(con: duckdb.DuckDBPyConnection, respell: dict[str, dict[str, str]]) -> dict[str, dict[str, str]]:
    """Canonical dimension -> {each value in the data: its rendered spelling}."""
    out = {}
    for table, dims in (("events", EVENT_DIMENSIONS), ("users", USER_DIMENSIONS)):
        for dim in dims:
            present = con.execute(f"SELECT DISTINCT {dim} FROM {table} WHERE {dim} IS NOT NULL ORDER BY 1").fetchall()
            out[dim] = {v: respell.get(dim, {}).get(v, v) for (v,) in present}
    return out


def lit(value: str | Path) -> str:
    """A SQL string literal."""
    return "'" + str(value).replace("'", "''") + "'"


def case(expr: str, mapping: dict[str, str]) -> str:
    """SQL re-spelling `expr` by `mapping`; values not in it pass through unchanged."""
    whens = " ".join(f"WHEN {lit(k)} THEN {lit(v)}" for k, v in mapping.items())
    return f"(CASE {expr} {whens} ELSE {expr} END)"


def uuid(expr: str) -> str:
    """SQL: a UUID-shaped id derived from md5 of `expr` (deterministic)."""
    return rf"regexp_replace(md5({expr}), '^(.{{8}})(.{{4}})(.{{4}})(.{{4}})(.{{12}})$', '\1-\2-\3-\4-\5')"


def page_url(page: str = "page") -> str:
    """SQL: the web page URL of a canonical page name (`home` is the site root)."""
    return f"{lit(SITE)} || CASE {page} WHEN 'home' THEN '/' ELSE '/' || {page} END"


def compact(*pairs: tuple[str, str]) -> str:
    """SQL: a JSON object of (key, SQL expression) pairs without the NULL ones."""
    args = ", ".join(f"{lit(k)}, {v}" for k, v in pairs)
    return f"json_merge_patch('{{}}', json_object({args}))"


def copy(con: duckdb.DuckDBPyConnection, select: str, path: Path, options: str) -> None:
    """Write the rows of `select` (a query over `render_rows` that keeps its `seq`) to `path`, in `seq` order.

    A `.gz` path is written plain by DuckDB, then compressed here: gzip level 1 with no name or time in
    the header, several times faster than DuckDB's own gzip writer and as deterministic.
    """
    plain = path.with_suffix("") if path.suffix == ".gz" else path
    con.execute(f"COPY (SELECT * EXCLUDE (seq) FROM ({select}) ORDER BY seq) TO {lit(plain)} ({options})")
    if plain != path:
        with plain.open("rb") as raw, path.open("wb") as out:
            with gzip.GzipFile(filename="", mode="wb", fileobj=out, compresslevel=1, mtime=0) as packed:
                shutil.copyfileobj(raw, packed, 1 << 24)
        plain.unlink()


def copy_by_day(con: duckdb.DuckDBPyConnection, select: str, folder: Path, name: str, options: str) -> None:
    """Like `copy`, one file per UTC day of the rows' `ts`: `name` is formatted with `day` (a datetime.date)."""
    con.execute(f"""CREATE OR REPLACE TEMP TABLE render_out AS
        SELECT o.*, r.ts::DATE AS render_day FROM ({select}) o JOIN render_rows r USING (seq)""")
    days = [r[0] for r in con.execute("SELECT DISTINCT render_day FROM render_out ORDER BY 1").fetchall()]
    for day in days:
        copy(con, f"SELECT * EXCLUDE (render_day) FROM render_out WHERE render_day = DATE {lit(day.isoformat())}",
             folder / name.format(day=day), options)
