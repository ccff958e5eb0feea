"""Analysis SQL is written once, in DuckDB's dialect; sqlglot rewrites it for another engine.

A few DuckDB functions have no direct counterpart that sqlglot knows; they are mapped here,
on the syntax tree, to the target's equivalent (so the shared SQL stays one text):

>>> to_spark("SELECT epoch(ts) AS s FROM events")
'SELECT UNIX_MICROS(ts) / 1000000.0 AS s FROM events'
"""

from __future__ import annotations

import re
from functools import lru_cache

import sqlglot
from sqlglot import exp


class TranspileError(ValueError):
    """SQL that sqlglot cannot rewrite for the target engine."""


# strip_accents() for Latin scripts: Spark has no Unicode normalization function in SQL
_ACCENTED = "àáâãäåāăąçćĉċčďđèéêëēĕėęěĝğġģĥħìíîïĩīĭįıĵķĺļľŀłñńņňòóôõöøōŏőŕŗřśŝşšţťŧùúûüũūŭůűųŵýÿŷźżž"
_PLAIN = "aaaaaaaaacccccddeeeeeeeeegggghhiiiiiiiiijklllllnnnnoooooooooorrrsssstttuuuuuuuuuuwyyyzzz"
_ACCENTS_FROM = _ACCENTED + _ACCENTED.upper()
_ACCENTS_TO = _PLAIN + _PLAIN.upper()
# schema_of_variant() type names (first word) -> DuckDB json_type() names
_JSON_TYPES = {"BIGINT": "BIGINT", "INT": "BIGINT", "SMALLINT": "BIGINT", "TINYINT": "BIGINT",
               "DOUBLE": "DOUBLE", "FLOAT": "DOUBLE", "DECIMAL": "DOUBLE", "STRING": "VARCHAR",
               "BOOLEAN": "BOOLEAN", "VOID": "NULL", "ARRAY": "ARRAY", "OBJECT": "OBJECT"}


def _json_value(doc: exp.Expression, path: exp.Expression) -> str:
    """Spark SQL for the JSON value at `path` (a VARIANT, NULL when absent), as DuckDB's json_extract."""
    return f"variant_get(try_parse_json({doc.sql(dialect='spark')}), {path.sql(dialect='spark')}, 'variant')"


def _json_type(doc: exp.Expression, path: exp.Expression) -> str:
    """Spark SQL for DuckDB's json_type(doc, path): the variant's type under DuckDB's names."""
    cases = " ".join(f"WHEN '{spark}' THEN '{duck}'" for spark, duck in _JSON_TYPES.items())
    return f"CASE regexp_extract(schema_of_variant({_json_value(doc, path)}), '^[A-Z]+', 0) {cases} END"


def _spark_functions(node: exp.Expression) -> exp.Expression:
    """Rewrite DuckDB-only functions into Spark SQL expressions."""
    if isinstance(node, exp.CTE) and node.args.get("materialized"):
        node.set("materialized", None)  # a planner hint in DuckDB; Spark has no such keyword
    elif isinstance(node, exp.Anonymous):
        name, args = node.name.lower(), node.expressions
        if name == "epoch_us" and len(args) == 1:
            return exp.Anonymous(this="UNIX_MICROS", expressions=args)
        if name == "strip_accents" and len(args) == 1:
            return exp.Anonymous(this="TRANSLATE", expressions=[
                args[0], exp.Literal.string(_ACCENTS_FROM), exp.Literal.string(_ACCENTS_TO)])
        if name == "hash" and len(args) == 1:
            return exp.Anonymous(this="XXHASH64", expressions=args)
    elif isinstance(node, exp.TimeToUnix):  # DuckDB epoch(ts): seconds with the fraction kept
        micros = exp.Anonymous(this="UNIX_MICROS", expressions=[node.this])
        return exp.Div(this=micros, expression=exp.Literal.number("1000000.0"))
    elif isinstance(node, exp.PercentileCont) and node.expression is not None:  # quantile_cont(x, q)
        return exp.Anonymous(this="PERCENTILE", expressions=[node.this, node.expression])
    elif isinstance(node, exp.RegexpReplace):  # Java regex replacements name groups $1, not \1
        replacement = node.args.get("replacement")
        if isinstance(replacement, exp.Literal):
            node.set("replacement", exp.Literal.string(re.sub(r"\\(\d)", r"$\1", replacement.this)))
    elif isinstance(node, exp.JSONType):
        return exp.Paren(this=sqlglot.parse_one(_json_type(node.this, node.expression), read="spark"))
    elif isinstance(node, exp.JSONExtract):
        return exp.Paren(this=sqlglot.parse_one(_json_value(node.this, node.expression), read="spark"))
    return node


@lru_cache(maxsize=4096)
def to_spark(sql: str) -> str:
    """`sql` (DuckDB dialect, one statement) in Spark SQL."""
    try:
        tree = sqlglot.parse_one(sql, read="duckdb")
    except sqlglot.errors.ParseError as error:
        raise TranspileError(f"cannot parse SQL for Spark: {error}") from error
    return tree.transform(_spark_functions).sql(dialect="spark")
