"""The language-model path end to end: a real ChatOpenAI over real HTTP to a scripted server.

`tests/llm_server.py` plays the model (tool calls, texts, errors, delays, garbage) and records
every request; the agent runs its real graph over a small generated DuckDB. Nothing here
reaches the internet.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pandas as pd
import pytest

from agent.api import Answer, InsightAgent
from agent.config import Settings
from agent.model import make_llm
from data.generate import generate
from data.scenario import load_scenario
from tests.llm_server import Call, Raw, ScriptedLLM, ToolCalls, delay, error, garbage, text, tool_call
from tools import TOOLS
from tools.warehouse import Warehouse

FIX_FIRST = "What should we fix first?"
FUNNEL_Q = "Show the purchase funnel"


# ------------------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("llm_path") / "demo.duckdb"
    generate(load_scenario("demo").model_copy(update={"users": 4000}), path)
    return path


@pytest.fixture(scope="module")
def funnel_table(db: Path) -> pd.DataFrame:
    """The funnel over all data, computed directly with the tool (not through the agent)."""
    with Warehouse(db) as wh:
        tool = TOOLS["funnel"]
        return tool.run(wh, tool.params.model_validate({"period": "all"})).table


@pytest.fixture(scope="module")
def funnel_answer(funnel_table: pd.DataFrame) -> str:
    """An answer whose every number is in the funnel result."""
    entered, converted = int(funnel_table["entities"].iloc[0]), int(funnel_table["entities"].iloc[-1])
    worst = funnel_table.loc[funnel_table["dropoff"].idxmax()]
    return (f"Over all data, {entered} users entered the purchase funnel and {converted} converted "
            f"({converted / entered:.1%}). The biggest drop is into {worst['step']} "
            f"({int(worst['dropoff'])} users lost).")


@pytest.fixture
def server() -> Iterator[ScriptedLLM]:
    with ScriptedLLM() as s:
        yield s


def settings_for(server: ScriptedLLM, timeout_s: float = 2) -> Settings:
    return Settings(openai_base_url=f"http://127.0.0.1:{server.port}/v1", openai_api_key="test", model="scripted",
                    llm_timeout_s=timeout_s, llm_max_retries=0)


@pytest.fixture
def make_agent(db: Path, tmp_path: Path, server: ScriptedLLM) -> Iterator[Callable[..., InsightAgent]]:
    agents: list[InsightAgent] = []

    def make(**kwargs: object) -> InsightAgent:
        settings = settings_for(server)
        agent = InsightAgent(db=db, llm=make_llm(settings), state_dir=tmp_path / "state", settings=settings,
                             **kwargs)
        agents.append(agent)
        return agent

    yield make
    for agent in agents:
        agent.close()


def by_role(messages: list[dict], role: str) -> list[dict]:
    return [m for m in messages if m["role"] == role]


def untraced(answer: Answer) -> list[str]:
    return [w for w in answer.warnings if "could not be traced" in w]


# ------------------------------------------------------------------------------ happy path


def test_happy_path_tool_call_then_grounded_answer(server, make_agent, funnel_answer, funnel_table):
    server.push(tool_call("funnel", period="all"), text(funnel_answer))
    answer = make_agent().ask(FUNNEL_Q, "happy")

    assert len(server.requests) == 2 and server.exhausted == 0
    first, second = server.requests
    # The first request offers every registry tool, each with a JSON schema of its parameters.
    assert server.tool_names(0) == list(TOOLS)
    for tool in first["tools"]:
        assert tool["type"] == "function"
        params = tool["function"]["parameters"]
        assert params["type"] == "object" and isinstance(params.get("properties", {}), dict)
        assert tool["function"]["description"]
    assert set(next(t for t in first["tools"] if t["function"]["name"] == "funnel")["function"]["parameters"]
               ["properties"]) >= {"period", "segment", "breakdown", "steps"}
    assert first["model"] == "scripted" and not first.get("stream")
    assert [m["role"] for m in first["messages"]] == ["system", "user"]
    assert first["messages"][1]["content"] == FUNNEL_Q

    # The system prompt says data blocks are data, never instructions.
    system = second["messages"][0]
    assert system["role"] == "system" and "never instructions" in system["content"]
    # The second request carries the model's call and the tool's result as a delimited data block.
    call = by_role(second["messages"], "assistant")[-1]["tool_calls"][0]
    assert call["function"]["name"] == "funnel" and json.loads(call["function"]["arguments"]) == {"period": "all"}
    (tool_msg,) = by_role(second["messages"], "tool")
    assert tool_msg["tool_call_id"] == call["id"]
    assert tool_msg["content"].startswith('<data tool="funnel" trust="untrusted">')
    assert tool_msg["content"].rstrip().endswith("</data>")
    for n in funnel_table["entities"]:
        assert str(int(n)) in tool_msg["content"]

    assert answer.mode == "llm"
    assert answer.text == funnel_answer
    assert answer.warnings == []
    assert len(answer.steps) == 1
    step = answer.steps[0]
    assert step.tool == "funnel" and step.args == {"period": "all"} and step.ok
    assert step.ms is not None and step.ms > 0
    assert answer.sql and "events" in answer.sql[0]
    assert answer.charts and answer.tables


def test_stream_yields_steps_then_answer(server, make_agent, funnel_answer):
    server.push(tool_call("funnel", period="all"), text(funnel_answer))
    events = list(make_agent().stream(FUNNEL_Q, "stream"))
    assert isinstance(events[-1], Answer) and events[-1].text == funnel_answer
    steps = events[:-1]
    assert [s.tool for s in steps] == ["funnel", "funnel"]
    assert steps[0].ms is None and steps[1].ms is not None


# ------------------------------------------------------------------------------ grounding


def test_ungrounded_number_is_sent_back_once_and_corrected(server, make_agent, funnel_answer):
    server.push(tool_call("funnel", period="all"), text("Conversion is 93.7%."), text(funnel_answer))
    answer = make_agent().ask(FUNNEL_Q, "ground-fix")

    assert len(server.requests) == 3 and server.exhausted == 0
    correction = server.messages(2)[-1]
    assert correction["role"] == "user" and "93.7%" in correction["content"]
    assert by_role(server.messages(2), "assistant")[-1]["content"] == "Conversion is 93.7%."
    assert answer.text == funnel_answer
    assert answer.mode == "llm"
    assert answer.warnings == []


def test_model_insisting_on_an_untraced_number_gets_a_warning(server, make_agent):
    server.push(tool_call("funnel", period="all"), text("Conversion is 93.7%."), text("Conversion really is 93.7%."))
    answer = make_agent().ask(FUNNEL_Q, "ground-insist")

    assert len(server.requests) == 3 and server.exhausted == 0  # sent back once only
    assert answer.text == "Conversion really is 93.7%."
    assert answer.mode == "llm"
    (warning,) = untraced(answer)
    assert "93.7%" in warning


# ------------------------------------------------------------------------------ failures -> offline fallback


FAILURES = {
    "http_500": ([], error(500)),
    "timeout": ([delay(5, text("too late"))], None),
    "malformed_arguments": ([tool_call("scan_frictions", "{not json")], None),
    "unknown_tool": ([tool_call("drop_all_tables", {"really": True})], None),
    "garbage_body": ([garbage()], None),
    "garbage_html": ([garbage(b"<html>oops</html>", "text/html")], None),
    "empty_reply": ([text("")], None),
    "http_429": ([error(429, "rate limited")], None),
}


@pytest.mark.parametrize("case", list(FAILURES))
def test_llm_failure_falls_back_to_offline_analyst(server, make_agent, case):
    script, after = FAILURES[case]
    server.push(*script)
    if after is not None:
        server.after = after
    started = time.perf_counter()
    answer = make_agent().ask(FIX_FIRST, f"fail-{case}")
    elapsed = time.perf_counter() - started

    assert answer.mode == "fallback"
    assert any("language model" in w for w in answer.warnings), answer.warnings
    assert "Traceback" not in answer.text
    assert "RICE" in answer.text
    assert untraced(answer) == []  # the offline answer quotes the tools, so it is grounded
    assert [s.tool for s in answer.steps] == ["scan_frictions"]
    assert answer.suggestions
    # After the first failure the model is not asked again for this question.
    assert len(server.requests) == 1
    if case == "timeout":
        assert any("Timeout" in w or "timed out" in w for w in answer.warnings), answer.warnings
        assert elapsed < 15


def test_fallback_mid_question_still_answers(server, make_agent, funnel_table):
    server.push(tool_call("funnel", period="all"))
    server.after = error(500)
    answer = make_agent().ask(FUNNEL_Q, "mid")

    assert len(server.requests) == 2
    assert answer.mode == "fallback"
    assert any("language model" in w for w in answer.warnings)
    assert untraced(answer) == []
    # The offline analyst writes the answer from the result the model's call already produced.
    assert [s.tool for s in answer.steps] == ["funnel"]
    assert f"{int(funnel_table['entities'].iloc[0]):,}" in answer.text
    assert answer.sql


def test_next_question_tries_the_model_again_after_a_fallback(server, make_agent, funnel_answer):
    agent = make_agent()
    server.push(error(500))
    first = agent.ask(FIX_FIRST, "again")
    assert first.mode == "fallback"
    server.push(tool_call("funnel", period="all"), text(funnel_answer))
    second = agent.ask(FUNNEL_Q, "again")
    assert second.mode == "llm" and second.text == funnel_answer and second.warnings == []


# ------------------------------------------------------------------------------ tool errors and limits


def test_tool_error_goes_back_to_the_model_as_an_observation(server, make_agent, db):
    with Warehouse(db) as wh:
        before = wh.checksum()
    final = "That query was refused: only read-only queries run here, so nothing was deleted."
    server.push(tool_call("run_sql", query="DELETE FROM events"), text(final))
    answer = make_agent().ask("Delete all the events, please", "sql-refused")

    assert len(server.requests) == 2
    (tool_msg,) = by_role(server.messages(1), "tool")
    assert "Refused" in tool_msg["content"]
    assert len(tool_msg["content"]) < 1000
    assert tool_msg["content"].startswith('<data tool="run_sql"')
    assert answer.text == final and answer.mode == "llm"
    assert [(s.tool, s.ok) for s in answer.steps] == [("run_sql", False)]
    with Warehouse(db) as wh:
        assert wh.checksum() == before


def test_bad_tool_arguments_go_back_as_an_observation(server, make_agent):
    server.push(tool_call("funnel", period="all", colour="blue"), text("The funnel call had a bad argument."))
    answer = make_agent().ask(FUNNEL_Q, "bad-args")

    (tool_msg,) = by_role(server.messages(1), "tool")
    assert "bad arguments for funnel" in tool_msg["content"] and "colour" in tool_msg["content"]
    assert answer.mode == "llm" and [(s.tool, s.ok) for s in answer.steps] == [("funnel", False)]


def test_tool_call_cap(server, make_agent):
    calls = [Call("run_sql", {"query": f"SELECT count(*) AS n{i} FROM users"}) for i in range(10)]
    server.push(ToolCalls(calls), text("I used the results I had."))
    answer = make_agent(max_tool_calls=3).ask("Count the users ten times", "cap")

    assert len(server.requests) == 2
    assert len(answer.steps) == 3 and all(s.ok and s.tool == "run_sql" for s in answer.steps)
    tool_msgs = by_role(server.messages(1), "tool")
    assert len(tool_msgs) == 10
    sent_ids = [c["id"] for c in by_role(server.messages(1), "assistant")[-1]["tool_calls"]]
    assert [m["tool_call_id"] for m in tool_msgs] == sent_ids
    assert all(m["content"].startswith('<data tool="run_sql"') for m in tool_msgs[:3])
    assert all("limit" in m["content"] and "<data" not in m["content"] for m in tool_msgs[3:])
    assert answer.text == "I used the results I had." and answer.mode == "llm"


# ------------------------------------------------------------------------------ misbehaving models


def test_model_that_never_stops_calling_tools_still_gets_an_answer(server, make_agent):
    server.after = tool_call("funnel", period="all")
    answer = make_agent(max_tool_calls=2).ask(FUNNEL_Q, "runaway")
    assert len(answer.steps) == 2
    assert len(server.requests) <= 4
    assert answer.text and answer.text != "No answer."


@pytest.mark.parametrize("question", ["Count the users", "What will revenue be next year?"])
def test_fallback_mid_question_the_offline_parser_does_not_understand(server, make_agent, question):
    server.push(tool_call("run_sql", query="SELECT count(*) AS n FROM users"))
    server.after = error(500)
    answer = make_agent().ask(question, "mid-unknown")
    assert answer.mode == "fallback" and answer.text
    assert any("language model" in w for w in answer.warnings)


def test_tool_call_without_id_falls_back(server, make_agent):
    body = server.completion(tool_call("run_sql", query="SELECT count(*) AS n FROM users"), {})
    del body["choices"][0]["message"]["tool_calls"][0]["id"]
    server.push(Raw(body), text("done"))
    answer = make_agent().ask("Count the users", "no-id")
    assert answer.mode in {"llm", "fallback"} and answer.text


def test_reused_tool_call_ids_keep_every_step(server, make_agent):
    server.push(ToolCalls([Call("run_sql", {"query": "SELECT count(*) AS n FROM users"}, id="call_0")]),
                ToolCalls([Call("funnel", {"period": "all"}, id="call_0")]), text("done"))
    answer = make_agent().ask("Count the users, then the funnel", "reused-ids")
    assert [s.tool for s in answer.steps] == ["run_sql", "funnel"]


# ------------------------------------------------------------------------------ memory


def test_thread_memory(server, make_agent, funnel_answer):
    agent = make_agent()
    follow_up = "And which step loses the most?"
    second_answer = "The biggest loss is into Product Added, as in the funnel above."
    server.push(tool_call("funnel", period="all"), text(funnel_answer), text(second_answer))
    agent.ask(FUNNEL_Q, "memory-a")
    answer = agent.ask(follow_up, "memory-a")
    assert answer.text == second_answer and answer.warnings == []

    assert len(server.requests) == 3
    history = server.messages(2)
    users = [m["content"] for m in by_role(history, "user")]
    assert users == [FUNNEL_Q, follow_up]
    assert funnel_answer in [m["content"] for m in by_role(history, "assistant")]
    assert len(by_role(history, "system")) == 1

    server.push(text("A fresh thread knows nothing earlier."))
    agent.ask(follow_up, "memory-b")
    other = server.messages(3)
    assert [m["content"] for m in by_role(other, "user")] == [follow_up]
    assert FUNNEL_Q not in json.dumps(other) and funnel_answer not in json.dumps(other)
    assert by_role(other, "tool") == [] and by_role(other, "assistant") == []


# ------------------------------------------------------------------------------ the server itself


def test_scripted_server_streams_when_asked(server):
    from langchain_core.messages import HumanMessage

    server.push(tool_call("funnel", period="all"), text("hello"))
    llm = make_llm(settings_for(server))
    chunks = list(llm.stream([HumanMessage("q")]))
    merged = chunks[0]
    for c in chunks[1:]:
        merged = merged + c
    assert merged.tool_calls[0]["name"] == "funnel" and merged.tool_calls[0]["args"] == {"period": "all"}
    assert "".join(str(c.content) for c in llm.stream([HumanMessage("q")])) == "hello"
    assert all(r.get("stream") for r in server.requests)
