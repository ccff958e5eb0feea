"""Speed you can feel: the command line starts without the heavy libraries, and a scan is computed once per
data version, event map and period (tools/scan_cache.py, tools/facts_store.py). No test here measures wall time."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import OrderedDict
from pathlib import Path

import pytest

import tools.scan as scan_module
from agent.api import InsightAgent, Progress
from data.generate import generate
from data.scenario import load_scenario
from tools import TOOLS, facts_store
from tools.facts_store import bind
from tools.scan_cache import REPORTS, cached_scan
from tools.semantic.eventmap import shipped_map
from tools.warehouse import Warehouse

ROOT = Path(__file__).resolve().parent.parent
RUN_CLI = """
import json, sys
sys.argv = ["insight", *sys.argv[1:]]
from agent.cli import app
try:
    app()
except SystemExit:
    pass
sys.stderr.write("\\nLOADED " + json.dumps(sorted(m.split(".")[0] for m in sys.modules)) + "\\n")
"""


def loaded_by(*args: str) -> set[str]:
    """Top-level modules loaded by `insight ARGS` run in a fresh interpreter."""
    out = subprocess.run([sys.executable, "-c", RUN_CLI, *args], capture_output=True, text=True, cwd=ROOT,
                         timeout=120)
    line = next(x for x in out.stderr.splitlines() if x.startswith("LOADED "))
    return set(json.loads(line.removeprefix("LOADED ")))


@pytest.fixture
def db(small_demo_copy: Path) -> Path:
    return small_demo_copy


class Counter:
    """A scan's progress listener: how many steps ran."""

    def __init__(self) -> None:
        self.steps: list[str] = []

    def __call__(self, text: str) -> None:
        self.steps.append(text)


def scanned(wh: Warehouse, period: str = "all"):
    """The cached scan of `period` and how many detectors ran for it."""
    counter = Counter()
    report = cached_scan(wh, period, progress=counter)
    return report, len([s for s in counter.steps if s in scan_module.DETECTORS])


def test_help_loads_no_heavy_library():
    assert loaded_by("--help") & {"langgraph", "langchain_core", "gradio", "scipy", "pandas", "duckdb", "sqlglot"} \
        == set()


def test_sql_loads_neither_the_agent_nor_scipy(db: Path):
    assert loaded_by("sql", "SELECT count(*) FROM events", "--db", str(db)) & {
        "langgraph", "langchain_core", "gradio", "scipy"} == set()


def test_lazy_exports_still_import():
    import agent
    import tools

    assert agent.InsightAgent is InsightAgent and tools.TOOLS is TOOLS
    with pytest.raises(AttributeError):
        _ = agent.nothing_here


def test_second_scan_is_the_same_report_without_detectors(db: Path):
    with Warehouse(db) as wh:
        first, ran = scanned(wh)
        again, ran_again = scanned(wh)
    assert ran > 0 and ran_again == 0
    assert again is first


def test_the_tool_and_the_agent_share_one_scan(db: Path, tmp_path: Path):
    with InsightAgent(db=db, llm=None, state_dir=tmp_path / "state") as agent:
        report = agent.scan("all")
        result = TOOLS["scan_frictions"].run(agent.warehouse, TOOLS["scan_frictions"].params(period="all"))
        assert result.data["report"] is report


def test_first_question_streams_detector_progress_and_second_reuses_the_scan(db: Path, tmp_path: Path):
    with InsightAgent(db=db, llm=None, state_dir=tmp_path / "state") as agent:
        first = list(agent.stream("What should we fix first?"))
        second = list(agent.stream("What should we fix first?"))
    progress = [e for e in first if isinstance(e, Progress)]
    assert {p.tool for p in progress} == {"scan_frictions"}
    assert {"dropoffs", "tracking"} <= {p.text for p in progress}
    assert not any(isinstance(e, Progress) for e in second)
    assert first[-1].suggestions == second[-1].suggestions != []


def test_a_new_process_reads_the_scan_from_the_state_directory(db: Path, tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch):
    with Warehouse(db) as wh:
        bind(wh, tmp_path)
        first, _ = scanned(wh)
    monkeypatch.setattr(facts_store, "_memory", OrderedDict())  # what a new process starts with
    with Warehouse(db) as wh:
        bind(wh, tmp_path)
        again, ran = scanned(wh)
    assert ran == 0 and again == first and again is not first


@pytest.mark.parametrize("damage", ["garbage", "truncated", "other key", "not a report"])
def test_a_damaged_entry_on_disk_is_rebuilt(damage: str, db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    with Warehouse(db) as wh:
        bind(wh, tmp_path)
        first, _ = scanned(wh)
    (entry,) = (tmp_path / "facts" / "scans").glob("*.json")
    text = entry.read_text()
    entry.write_text({"garbage": "\x00not json", "truncated": text[: len(text) // 2],
                      "other key": text.replace(entry.stem, "0" * len(entry.stem)),
                      "not a report": json.dumps({"key": entry.stem, "value": {"period": 7}})}[damage])
    monkeypatch.setattr(facts_store, "_memory", OrderedDict())
    with Warehouse(db) as wh:
        bind(wh, tmp_path)
        again, ran = scanned(wh)
    assert ran > 0 and again.public() == first.public()  # all but the timings
    assert REPORTS.read(tmp_path / "facts" / "scans" / entry.stem, entry.stem) == again


def test_an_import_replacing_the_file_is_scanned_anew(db: Path, tmp_path: Path):
    with Warehouse(db) as wh:
        first, _ = scanned(wh)
        new = tmp_path / "new.duckdb"
        generate(load_scenario("demo").model_copy(update={"users": 1200, "seed": 7}), new)
        os.replace(new, db)  # what an import does
        _, ran = scanned(wh)
        assert ran == 0  # this connection still reads the file it opened: its scan still holds
    with Warehouse(db) as wh:
        replaced, ran = scanned(wh)
    assert ran > 0 and replaced.public() != first.public()


def test_another_period_or_map_is_scanned_anew(db: Path):
    with Warehouse(db) as wh:
        scanned(wh)
        _, ran = scanned(wh, "last_14_days")
    assert ran > 0
    emap = shipped_map("demo")
    with Warehouse(db, event_map=emap.model_copy(update={"dimensions": dict(list(emap.dimensions.items())[:2])})) \
            as wh:
        _, ran = scanned(wh)
    assert ran > 0


def test_a_scan_with_a_failed_detector_is_not_kept(db: Path, monkeypatch: pytest.MonkeyPatch):
    def broken(wh, facts):
        raise TimeoutError("slow today")

    monkeypatch.setitem(scan_module.DETECTORS, "broken", broken)
    with Warehouse(db) as wh:
        first, _ = scanned(wh)
        again, ran = scanned(wh)
    assert first.warnings and ran > 0 and again is not first


def test_a_scan_draws_no_charts_but_a_question_does(db: Path, monkeypatch: pytest.MonkeyPatch):
    """The scan keeps findings only, so its detectors build no figure (a figure costs more than many a query);
    the same analysis asked as a question afterwards still answers with its chart."""
    import plotly.graph_objects as go

    from tools.search import search

    drawn = []

    class Counted(go.Figure):
        def __init__(self, *args, **kwargs):
            drawn.append(1)
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(go, "Figure", Counted)
    with Warehouse(db) as wh:
        report = scan_module.scan(wh, "all")
        assert report.findings and not report.warnings and drawn == []
        assert search(wh, scan_module.resolve_period(wh, "all")).chart is not None and drawn == [1]
