"""The scope contract end to end: what a question asks is applied, or the answer says so in its first lines;
a presumed drop or rise gets the measured direction first. Offline analyst and model path (a real ChatOpenAI
over real HTTP to the scripted server), on a real DuckDB file."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from agent.api import InsightAgent
from agent.config import Settings
from data.generate import generate
from data.scenario import load_scenario
from tests.answers import ran
from tests.llm_server import ScriptedLLM, text, tool_call
from tools import TOOLS
from tools.semantic.metrics import catalog
from tools.warehouse import Warehouse


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("scope") / "demo.duckdb"
    generate(load_scenario("demo").model_copy(update={"users": 4000}), path)
    return path


@pytest.fixture(scope="module")
def offline(db: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[InsightAgent]:
    with InsightAgent(db=db, llm=None, state_dir=tmp_path_factory.mktemp("offline-state")) as agent:
        yield agent


@pytest.fixture
def server() -> Iterator[ScriptedLLM]:
    with ScriptedLLM() as s:
        yield s


@pytest.fixture
def make_agent(db: Path, tmp_path: Path, server: ScriptedLLM) -> Iterator[Callable[[], InsightAgent]]:
    agents: list[InsightAgent] = []

    def make() -> InsightAgent:
        settings = Settings(openai_base_url=f"http://127.0.0.1:{server.port}/v1", openai_api_key="test",
                            model="scripted", llm_timeout_s=5, llm_max_retries=0)
        agents.append(InsightAgent(db=db, llm="auto", state_dir=tmp_path / "state", settings=settings))
        return agents[-1]

    yield make
    for agent in agents:
        agent.close()


def trend_change(db: Path, period: str) -> float:
    with Warehouse(db) as wh:
        tool = TOOLS["trends"]
        result = tool.run(wh, tool.params.model_validate({"metric": "conversion_rate", "period": period}))
    return float(result.data["facts"]["change"]["value"])


# ------------------------------------------------------------------------------ offline analyst


def test_a_step_asked_for_is_the_step_analysed(offline: InsightAgent) -> None:
    answer = offline.ask("Which segments drop off at payment?", "step")
    ((tool, args),) = ran(answer)
    step = offline.warehouse.event_map.steps[3]
    assert tool == "dropoffs" and args["step"] == step
    assert "Not applied" not in answer.text
    follow = offline.ask("and on iOS?", "step")
    ((tool, args),) = ran(follow)
    assert tool == "dropoffs" and args["step"] == step and args["segment"] == {"platform": "ios"}


def test_a_filter_no_analysis_takes_is_declined_in_the_first_lines(offline: InsightAgent) -> None:
    answer = offline.ask("What should we fix first on iOS?", "declined")
    assert [t for t, _ in ran(answer)] == ["scan_frictions"]
    first_lines = "\n".join(answer.text.split("\n\n")[:2])
    assert "Not applied: the filter platform = ios" in first_lines
    assert "ios" not in answer.text.split("\n\n")[0].lower()  # the heading claims nothing it did not compute


def test_a_false_premise_gets_the_measured_direction_first(offline: InsightAgent, db: Path) -> None:
    moved = trend_change(db, "last_7_days")
    wrong = "drop" if moved > 0 else "rise"
    answer = offline.ask(f"Why did conversion {wrong} last week?", "premise")
    second = answer.text.split("\n\n")[1]
    assert second.startswith("Conversion rate " + ("rose" if moved > 0 else "fell"))
    assert f"it did not {wrong}" in second


def test_mobile_is_ios_and_android(offline: InsightAgent) -> None:
    answer = offline.ask("cart abandonment on mobile", "mobile")
    ((tool, args),) = ran(answer)
    assert tool == "cart_abandonment" and sorted(args["segment"]["platform"]) == ["android", "ios"]
    assert "Not applied" not in answer.text


# ------------------------------------------------------------------------------ model path


def test_model_that_drops_a_filter_is_sent_back_and_then_the_answer_says_so(server, make_agent) -> None:
    server.push(tool_call("funnel", period="all"), text("Here is the purchase funnel."),
                text("Here is the purchase funnel."))
    answer = make_agent().ask("Show the purchase funnel on iOS", "dropped")
    assert len(server.requests) == 3 and server.exhausted == 0
    retry = server.messages(2)[-1]
    assert retry["role"] == "user" and "platform = ios" in retry["content"]
    assert answer.mode == "llm"
    assert answer.text.startswith("Not applied: the filter platform = ios (funnel covers everyone).")


def test_model_that_corrects_its_call_answers_without_a_note(server, make_agent) -> None:
    server.push(tool_call("funnel", period="all"), text("Here is the purchase funnel."),
                tool_call("funnel", period="all", segment={"platform": "ios"}), text("Here is the iOS funnel."))
    answer = make_agent().ask("Show the purchase funnel on iOS", "corrected")
    assert len(server.requests) == 4 and server.exhausted == 0
    assert answer.text == "Here is the iOS funnel."
    assert [a.get("segment") for _, a in ran(answer)] == [None, {"platform": "ios"}]


def test_model_answering_a_false_premise_gets_the_direction_first(server, make_agent, db: Path) -> None:
    moved = trend_change(db, "last_7_days")
    wrong, claim = ("drop", "dropped") if moved > 0 else ("rise", "rose")
    server.push(tool_call("trends", metric="conversion_rate", period="last_7_days"),
                text(f"Conversion {claim} because of the checkout."))
    answer = make_agent().ask(f"Why did conversion {wrong} last week?", "premise")
    first = answer.text.split("\n\n")[0]
    assert first.startswith("Conversion rate " + ("rose" if moved > 0 else "fell")) and f"did not {wrong}" in first


def test_tool_descriptions_name_the_datas_steps_dimensions_and_metrics(server, make_agent) -> None:
    server.push(text("Hello."))
    agent = make_agent()
    agent.ask("hi", "describe")
    emap = agent.warehouse.event_map
    tools = {t["function"]["name"]: t["function"]["description"] for t in server.requests[0]["tools"]}
    for name in ("funnel", "dropoffs", "cart_abandonment", "trends", "search_quality", "retention"):
        assert all(step in tools[name] for step in emap.steps), name
        assert all(dim in tools[name] for dim in emap.dims), name
    assert all(key in tools["metric"] for key in catalog(emap))


def test_a_question_stopped_mid_answer_leaves_no_unanswered_tool_call_for_the_model(server, make_agent) -> None:
    server.push(tool_call("funnel", period="all"), text("Hello again."))
    agent = make_agent()
    events = agent.stream("Show the purchase funnel", "stopped")
    next(events)  # the tool has started: the question is stopped here, its call unanswered in the checkpoint
    events.close()
    answer = agent.ask("hi", "stopped")
    assert answer.text == "Hello again."
    sent = server.requests[1]["messages"]
    calls = {c["id"] for m in sent if m["role"] == "assistant" for c in m.get("tool_calls") or []}
    replies = {m["tool_call_id"] for m in sent if m["role"] == "tool"}
    assert calls == replies
