"""Guard for untrusted SQL: admit exactly one read-only query over known tables.

The statement is parsed with sqlglot (DuckDB dialect) and every node is checked,
not just the root: DuckDB runs DML inside a CTE (`WITH t AS (DELETE ... RETURNING *)
SELECT ...`). Table sources are allow-listed (known tables, visible CTEs, a few
generators); functions that reach files, the network, settings, session state or
internals are refused wherever they appear. A query over MAX_SQL_CHARS characters is
refused before parsing, one over MAX_NODES syntax nodes before checking. The caller
executes the returned, regenerated SQL, so what runs is exactly what was checked.
"""

from __future__ import annotations

import re
from collections.abc import Collection

import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError, SqlglotError

MAX_MESSAGE = 300
MAX_SQL_CHARS = 20_000
MAX_NODES = 5_000
DIALECT = "duckdb"

# Nodes that change data, schema, settings, sessions or the file system.
_FORBIDDEN: tuple[type[exp.Expr], ...] = (
    exp.Insert, exp.Update, exp.Delete, exp.Merge, exp.Create, exp.Drop, exp.Alter,
    exp.TruncateTable, exp.Copy, exp.Attach, exp.Detach, exp.Pragma, exp.Set, exp.SetItem,
    exp.Command, exp.Use, exp.Transaction, exp.Commit, exp.Rollback, exp.Into, exp.Install,
    exp.Export, exp.LoadData, exp.Analyze, exp.Grant, exp.Revoke, exp.Kill, exp.Cache,
    exp.Uncache, exp.Declare, exp.Execute, exp.Refresh, exp.Returning,
)
_READ_ONLY_ROOTS = (exp.Select, exp.SetOperation, exp.Subquery, exp.Describe, exp.Show, exp.Summarize)
_SHOW_KINDS = {"TABLES", "ALL TABLES"}
# Table-valued functions that only generate values; everything else in FROM is refused.
_GENERATORS = {"range", "generate_series", "unnest", "json_each", "json_tree"}
# Functions refused in any position: files, network, SQL execution, settings, session state (paths, limits,
# the running query, users, transactions), logs, statistics, internals.
_DENIED_FUNCTION = re.compile(
    r"(getenv|query|query_table|glob|load|install|sniff_csv|which_secret|checkpoint|force_checkpoint"
    r"|json_execute_serialized_sql|read_\w*|\w*_scan|pragma_\w*|duckdb_\w*|enable_\w*|disable_\w*"
    r"|sqlite_\w*|postgres_\w*|mysql_\w*|parquet_\w*|iceberg_\w*|delta_\w*|http\w*|s3\w*"
    r"|current_(setting|query|query_id|database|catalog|schemas?|user|role|connection_id|transaction_id|version)"
    r"|getvariable|version|session_user|user|txid_current|in_search_path|has_\w*_privilege|pg_\w*|stats|write_log)",
    re.IGNORECASE,
)
# Bare words DuckDB reads as those functions when no column has the name.
_DENIED_WORDS = {"current_catalog", "current_schema", "current_role", "current_user", "session_user", "user"}
_EXPLAIN = re.compile(r"\s*(ANALYZE\s+)?(.*)", re.IGNORECASE | re.DOTALL)


class SqlRefused(ValueError):
    """The SQL is not a single read-only query over the known tables; the message says why."""


def check_sql(sql: str, known_tables: Collection[str]) -> str:
    """Return `sql` as one normalized read-only DuckDB statement, or raise SqlRefused.

    The normalized text is checked again and must regenerate to itself, so the text the
    caller executes is one the guard has approved.
    """
    known = {name.lower() for name in known_tables}
    if len(sql) > MAX_SQL_CHARS:
        raise _refused(f"the SQL is {len(sql):,} characters long, at most {MAX_SQL_CHARS:,} characters are allowed",
                       known)
    try:
        normalized = _normalize(sql, known)
        if _normalize(normalized, known) != normalized:
            raise _refused("the SQL does not survive normalization; write it more plainly", known)
        return normalized
    except RecursionError as error:
        raise _refused("the SQL is nested too deeply", known) from error


def _normalize(sql: str, known: set[str]) -> str:
    statement = _parse_one(sql, known)
    if isinstance(statement, exp.Command) and statement.name.upper() == "EXPLAIN":
        analyze, inner = _EXPLAIN.fullmatch(statement.text("expression")).groups()
        inner_statement = _parse_one(inner, known)
        _check(inner_statement, known)
        return f"EXPLAIN {'ANALYZE ' if analyze else ''}{_generate(inner_statement)}"
    _check(statement, known)
    return _generate(statement)


def _parse_one(sql: str, known: set[str]) -> exp.Expr:
    try:
        statements = [s for s in sqlglot.parse(sql, read=DIALECT) if s is not None]
    except ParseError as error:
        first = error.errors[0] if error.errors else {}
        where = f" at line {first.get('line')}, col {first.get('col')}" if first else ""
        raise _refused(f"could not parse the SQL{where}: {first.get('description') or error}", known) from error
    except SqlglotError as error:
        reason = (str(error).splitlines() or [type(error).__name__])[0]
        raise _refused(f"could not parse the SQL: {reason}", known) from error
    if len(statements) != 1:
        raise _refused(f"found {len(statements)} statements" if statements else "found no statement", known)
    if sum(1 for _ in statements[0].walk()) > MAX_NODES:
        raise _refused(f"the SQL is too large (over {MAX_NODES:,} syntax nodes); write a simpler query", known)
    return statements[0]


def _check(statement: exp.Expr, known: set[str]) -> None:
    is_show = isinstance(statement, exp.Show) or (
        isinstance(statement, exp.Command) and statement.name.upper() == "SHOW"
    )
    if is_show and not (isinstance(statement, exp.Show) and statement.name.upper() in _SHOW_KINDS):
        raise _refused("only SHOW TABLES is allowed; use DESCRIBE <table> for columns", known)
    if not isinstance(statement, _READ_ONLY_ROOTS):
        raise _refused(f"found {_label(statement)}", known)
    for node in statement.walk():
        if isinstance(node, _FORBIDDEN):
            raise _refused(f"found {_label(node)}", known)
        if isinstance(node, exp.Func) and _DENIED_FUNCTION.fullmatch(_function_name(node)):
            raise _refused(f"function {_function_name(node)}() is not allowed (no files, settings or session state)",
                           known)
        if isinstance(node, exp.Column) and not node.table and node.name.lower() in _DENIED_WORDS:
            raise _refused(f"{node.name} reads session state; qualify a column of that name (t.{node.name})", known)
        if isinstance(node, exp.Table):
            _check_table(node, known)
        if isinstance(node, exp.Lateral) and isinstance(node.this, exp.Func):
            _check_source_function(node.this, known)


def _check_table(table: exp.Table, known: set[str]) -> None:
    if table.args.get("db") or table.args.get("catalog"):
        raise _refused(f"qualified name {table.sql(DIALECT)}; use plain table names", known)
    if isinstance(table.this, exp.Func):
        _check_source_function(table.this, known)
        return
    if not isinstance(table.this, exp.Identifier):
        raise _refused(f"unsupported table source {table.sql(DIALECT)[:60]}", known)
    name = table.name.lower()
    if name not in known and name not in _visible_ctes(table):
        raise _refused(f"unknown table {table.name[:60]!r}", known)


def _check_source_function(function: exp.Func, known: set[str]) -> None:
    if _function_name(function) not in _GENERATORS:
        raise _refused(f"table function {_function_name(function)}() is not allowed", known)


def _visible_ctes(table: exp.Table) -> set[str]:
    """CTE names in scope at `table`: earlier siblings in each enclosing WITH, all CTEs for a body."""
    names: set[str] = set()
    child, node = table, table.parent
    while node is not None:
        if isinstance(node, exp.With):
            ctes = node.expressions
            position = next((i for i, cte in enumerate(ctes) if cte is child), 0)
            stop = position + bool(node.args.get("recursive"))
            names.update(cte.alias_or_name.lower() for cte in ctes[:stop])
        elif isinstance(node, exp.Query) and not isinstance(child, exp.With):
            names.update(cte.alias_or_name.lower() for cte in node.ctes)
        child, node = node, node.parent
    return names


def _function_name(function: exp.Func) -> str:
    return (function.name if isinstance(function, exp.Anonymous) else function.sql_name()).lower()


def _label(node: exp.Expr) -> str:
    """The statement keyword a refusal names: COPY, DELETE, LOAD, SELECT INTO, ..."""
    if isinstance(node, exp.Into):
        return "SELECT INTO"
    words = (node.name if isinstance(node, exp.Command) else node.sql(DIALECT)).split()
    return words[0].upper()[:40] if words else node.key.upper()


def _generate(statement: exp.Expr) -> str:
    return statement.sql(dialect=DIALECT, comments=False)


def _refused(reason: str, known: set[str]) -> SqlRefused:
    tables = ", ".join(sorted(known)) or "(none)"
    message = (
        f"Refused: {reason}. Only one read-only SELECT/WITH/DESCRIBE/SHOW/EXPLAIN "
        f"over tables {tables} is allowed."
    )
    return SqlRefused(message if len(message) <= MAX_MESSAGE else message[: MAX_MESSAGE - 3] + "...")
