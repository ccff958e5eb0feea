"""The same analyses on the same data give the same numbers on DuckDB and on Spark.

One demo dataset is generated into a DuckDB file and exported to a Parquet lake (events
hive-partitioned by day). Every analysis tool, with several parameter sets, and the full
scan run on three warehouses: the DuckDB file, DuckDB reading the lake in place, and Spark
local reading the lake. Tables must match cell by cell (numbers to 1e-9, relative), summaries
word for word, and scan findings one for one.

Spark needs Java (Debian: `apt-get install openjdk-17-jre-headless`, which .ci/run does). Without
Java these tests are skipped locally and fail under CI.
"""

from __future__ import annotations

import json
import math
import os
import shutil

import pandas as pd
import pytest

from data.export import export_lake
from data.generate import generate
from data.scenario import load_scenario
from tools import TOOLS
from tools.result import ToolResult
from tools.semantic.eventmap import shipped_map
from tools.semantic.metrics import catalog
from tools.trends import daily_metrics
from tools.warehouse import Warehouse

if shutil.which("java") is None:
    reason = "Spark needs Java: apt-get install openjdk-17-jre-headless"
    if os.environ.get("CI") == "true":
        pytest.fail(reason, pytrace=False)
    pytest.skip(reason, allow_module_level=True)
pytest.importorskip("pyspark", reason="pip install '.[spark]'")

from tools.spark_warehouse import SparkWarehouse  # noqa: E402

SQL_CASES = [  # a summary lists rows in result order, so each query orders its rows
    "SELECT platform, count(*) AS n, count(DISTINCT user_id) AS users FROM events GROUP BY platform ORDER BY 1",
    "SELECT date_trunc('week', ts) AS week, sum(revenue) AS revenue FROM events"
    " WHERE event = 'Order Completed' GROUP BY 1 ORDER BY 1",
    "SELECT u.country, avg(e.load_time_ms) AS load, median(e.load_time_ms) AS p50 FROM events e"
    " JOIN users u ON u.user_id = e.user_id WHERE e.load_time_ms IS NOT NULL GROUP BY u.country ORDER BY 1",
]


def _cases() -> list[tuple[str, dict]]:
    cases: list[tuple[str, dict]] = [
        ("schema", {}),
        *[("run_sql", {"query": q}) for q in SQL_CASES],
        ("funnel", {}),
        ("funnel", {"breakdown": "platform"}),
        ("funnel", {"entity": "sessions", "segment": {"country": "DE"}}),
        ("funnel", {"steps": ["Product Viewed", "Order Completed"], "window_days": 1, "period": "last_14_days"}),
        ("dropoffs", {}),
        ("dropoffs", {"entity": "users"}),
        ("cart_abandonment", {}),
        ("cart_abandonment", {"segment": {"platform": "web"}}),
        ("search_quality", {}),
        ("retention", {}),
        ("retention", {"week_n": 2}),
        ("experiments", {}),
        ("errors_and_speed", {}),
        ("release_regressions", {}),
        ("check_tracking", {}),
        *[("trends", {"metric": m, "dimension": "platform"}) for m in daily_metrics(shipped_map("demo"))],
        *[("metric", {"metric": key}) for key in catalog(shipped_map("demo"))],
        ("metric", {"metric": "conversion_rate", "segment": {"platform": "ios"}, "period": "last_28_days"}),
    ]
    return cases


CASES = _cases()


@pytest.fixture(scope="module")
def engines(tmp_path_factory):
    root = tmp_path_factory.mktemp("parity")
    db, lake = root / "demo.duckdb", root / "lake"
    generate(load_scenario("demo").model_copy(update={"users": 6000}), db)
    export_lake(db, lake)
    file_wh, lake_wh, spark_wh = Warehouse(db), Warehouse(lake), SparkWarehouse(lake)
    yield {"duckdb-file": file_wh, "duckdb-lake": lake_wh, "spark": spark_wh}
    for wh in (file_wh, lake_wh, spark_wh):
        wh.close()


def _cell(value: object) -> object:
    """A comparable form of one cell: numbers as floats, times as ISO text, the rest as text."""
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NaT:
        return None
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)) or hasattr(value, "__float__") and not isinstance(value, str):
        try:
            return float(value)
        except (TypeError, ValueError):
            pass
    if isinstance(value, pd.Timestamp) or hasattr(value, "isoformat"):
        return pd.Timestamp(value).isoformat()
    return str(value)


def _rows(df: pd.DataFrame | None) -> list[tuple]:
    """Rows of `df` in a canonical order (engines may return unordered rows in any order)."""
    if df is None:
        return []
    rows = [tuple(_cell(v) for v in row) for row in df.itertuples(index=False)]
    return sorted(rows, key=lambda r: tuple((x is None, str(x)) for x in r))


def _same_rows(a: list[tuple], b: list[tuple]) -> bool:
    if len(a) != len(b):
        return False
    for ra, rb in zip(a, b):
        for x, y in zip(ra, rb, strict=True):
            if isinstance(x, float) and isinstance(y, float):
                if not math.isclose(x, y, rel_tol=1e-9, abs_tol=1e-9):
                    return False
            elif x != y:
                return False
    return True


def _findings(result: ToolResult) -> list[tuple]:
    return sorted((f.kind, f.title, f.step, tuple(sorted(f.segment.items())), f.affected_users,
                   round(f.baseline, 9), round(f.observed, 9)) for f in result.findings)


def run(wh, name: str, params: dict) -> ToolResult:
    tool = TOOLS[name]
    return tool.run(wh, tool.params(**params))


@pytest.mark.parametrize(("name", "params"), CASES, ids=[f"{n}-{i}" for i, (n, _) in enumerate(CASES)])
def test_every_analysis_gives_the_same_numbers_on_every_engine(engines, name, params) -> None:
    results = {engine: run(wh, name, params) for engine, wh in engines.items()}
    base = results["duckdb-file"]
    assert base.summary, "the analysis produced no summary"
    for engine, result in results.items():
        assert result.summary == base.summary, f"{engine}: summary differs"
        assert list(result.table.columns) == list(base.table.columns), f"{engine}: columns differ"
        assert _same_rows(_rows(result.table), _rows(base.table)), f"{engine}: table differs\n{result.table}"
        assert _findings(result) == _findings(base), f"{engine}: findings differ"


def test_full_scan_finds_the_same_frictions_in_the_same_order(engines) -> None:
    reports = {engine: run(wh, "scan_frictions", {}).data["report"] for engine, wh in engines.items()}
    base = reports["duckdb-file"]
    assert len(base.findings) >= 8 and not base.warnings
    for engine, report in reports.items():
        assert not report.warnings, f"{engine}: {report.warnings}"
        assert [(f.id, f.affected_users) for f in report.findings] == [(f.id, f.affected_users) for f in base.findings]
        assert [(s.friction_id, s.rice_score, s.tweak) for s in report.suggestions] == \
            [(s.friction_id, s.rice_score, s.tweak) for s in base.suggestions], engine


def test_spark_refuses_what_the_guard_refuses_and_caps_rows(engines) -> None:
    spark = engines["spark"]
    with pytest.raises(Exception, match="(?i)read-only|refus|not allowed|only"):
        spark.run_guarded("DELETE FROM events")
    capped = spark.run_guarded("SELECT event_id FROM events", row_cap=5)
    assert len(capped.df) == 5 and capped.truncated


QUESTIONS = [
    "What should we fix first?",
    "How does the checkout funnel convert on iOS?",
    "What is the zero-result rate of search?",
    "How is week-1 retention by signup cohort?",
]


def test_the_agent_answers_the_same_on_spark(engines, tmp_path) -> None:
    from agent.api import InsightAgent

    lake = engines["duckdb-lake"].path
    answers = {}
    for engine in ("duckdb", "spark"):
        with InsightAgent(db=lake, llm=None, engine=engine, state_dir=tmp_path / engine) as agent:
            assert agent.warehouse.dialect == engine
            answers[engine] = [agent.ask(q, thread_id="parity") for q in QUESTIONS]
    for duck, spark in zip(answers["duckdb"], answers["spark"]):
        assert any(ch.isdigit() for ch in duck.text)
        assert spark.text == duck.text
        assert spark.warnings == duck.warnings


def test_the_weekly_digest_is_the_same_on_spark(engines, tmp_path) -> None:
    from agent.digest import run_digest

    week = None
    digests = {}
    for engine in ("duckdb-file", "spark"):
        d = run_digest(engines[engine], tmp_path / engine, week)
        week = d.week
        digests[engine] = d
    duck, spark = digests["duckdb-file"], digests["spark"]
    assert [k.model_dump() for k in spark.kpis] == [k.model_dump() for k in duck.kpis]
    assert spark.markdown == duck.markdown


def test_cli_scan_with_engine_spark(engines) -> None:
    from typer.testing import CliRunner

    from agent.cli import app

    lake = str(engines["duckdb-lake"].path)
    runner = CliRunner()
    outputs = {}
    for engine in ("duckdb", "spark"):
        result = runner.invoke(app, ["scan", "--db", lake, "--engine", engine, "--json", "--period", "last_28_days"])
        assert result.exit_code == 0, result.output
        outputs[engine] = json.loads(result.stdout)
    assert outputs["spark"]["findings"] == outputs["duckdb"]["findings"]
    assert outputs["spark"]["suggestions"] == outputs["duckdb"]["suggestions"]
    bad = runner.invoke(app, ["scan", "--db", lake, "--engine", "oracle"])
    assert bad.exit_code == 2 and "--engine 'oracle'" in bad.output


def test_spark_needs_a_lake_and_says_so(tmp_path) -> None:
    from tools.warehouse import WarehouseError

    with pytest.raises(WarehouseError, match="lake directory not found.*insight export"):
        SparkWarehouse(tmp_path / "missing")
    (tmp_path / "half").mkdir()
    with pytest.raises(WarehouseError, match="no Parquet files for table 'users'.*'events'"):
        SparkWarehouse(tmp_path / "half")
    with pytest.raises(WarehouseError, match=r"cannot read table 'users' at file:/.*/nowhere/users"):
        SparkWarehouse(f"file://{tmp_path}/nowhere")  # storage URLs are read by Spark itself


def test_a_lake_on_storage_urls_is_read_by_spark(engines) -> None:
    lake = engines["duckdb-lake"].path
    with SparkWarehouse(f"file://{lake}") as wh:  # the URL form a cluster uses (s3a://, abfss://, dbfs:/)
        assert wh.scalar("SELECT count(*) FROM events") == engines["duckdb-file"].scalar("SELECT count(*) FROM events")


def test_a_runaway_spark_query_is_interrupted_and_the_warehouse_stays_usable(engines) -> None:
    from tools.warehouse import WarehouseError

    lake = engines["duckdb-lake"].path
    with SparkWarehouse(lake, timeout_s=3) as wh:
        with pytest.raises(WarehouseError, match=r"interrupted after 3 s"):
            # about 7e9 pairs: far more than 3 s of work, yet finite, so cancelled tasks that do not
            # check for interruption still end soon
            wh.query("SELECT count(*) FROM events a CROSS JOIN events b WHERE a.ts < b.ts")
        wh.timeout_s = 120  # the cancelled tasks may still be winding down on a loaded machine
        assert wh.scalar("SELECT count(*) FROM users") == engines["duckdb-file"].scalar("SELECT count(*) FROM users")
