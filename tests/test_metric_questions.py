"""The metrics layer through the agent: definitions from the file, values from the definition."""

from __future__ import annotations

import duckdb
import pytest

from agent.api import InsightAgent
from data.generate import generate
from data.scenario import load_scenario


@pytest.fixture(scope="module")
def agent(tmp_path_factory):
    path = tmp_path_factory.mktemp("metrics") / "demo.duckdb"
    generate(load_scenario("demo").model_copy(update={"users": 4000}), path)
    copy = path.with_name("copy.duckdb")
    copy.write_bytes(path.read_bytes())
    with InsightAgent(db=path, llm=None, state_dir=path.parent / "state") as a:
        yield a, copy


def test_definition_comes_from_the_file(agent):
    a, _ = agent
    answer = a.ask("How is MAU defined?", "def")
    assert [s.tool for s in answer.steps] == ["metric_definition"]
    assert "Users with any event in a calendar month" in answer.text and "product-analytics" in answer.text


def test_value_is_computed_from_the_definition(agent):
    a, copy = agent
    answer = a.ask("MAU in 2026-W46 on Android", "value")
    assert answer.steps[0].args == {"metric": "mau", "period": "2026-W46", "segment": {"platform": "android"}}
    con = duckdb.connect(str(copy), read_only=True)
    mau = con.execute("SELECT count(DISTINCT user_id) FROM events WHERE platform = 'android' "
                      "AND ts >= '2026-11-09' AND ts < '2026-11-16'").fetchone()[0]
    assert f"Monthly active users: {mau:,} in Nov 9-15 for platform=android" in answer.text  # one calendar month
    assert answer.warnings == []


@pytest.mark.parametrize("question", ["How is NPS defined?", "What is our NPS?"])
def test_undefined_metric_is_said_to_be_undefined(agent, question):
    a, _ = agent
    answer = a.ask(question, question)
    assert "is not defined" in answer.text and "mau" in answer.text
