"""Tools' word on a question before the planner chooses: the order of the menu, who is left out, the record."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agentflow_core import Fit, Solver, ToolContext, ToolFit, ToolSpec, Trajectory, hookimpl
from agentflow_core.serde import from_json, to_json
from agentflow_core.testing import Reply, ScriptedOpenAIServer, registry_with, scripted_json
from agentflow_core.toolset import Toolset
from agentflow_tools.local_search import LocalSearch
from agentflow_tools.search.names import names_in
from tests.helpers import config_for
from tests.test_tool_local_search import write_corpus


class Opinionated:
    """A tool whose ``fit`` says what it is told to, or fails as it is told to."""

    def __init__(self, name: str, says: object) -> None:
        self.spec = ToolSpec(
            name, f"the {name} tool", {"type": "object", "properties": {"text": {"type": "string"}}}, output="text"
        )
        self.says = says
        self.asked: list[str] = []

    async def fit(self, question: str) -> object:
        self.asked.append(question)
        if self.says == "slow":
            await asyncio.Event().wait()
        if isinstance(self.says, Exception):
            raise self.says
        return self.says

    async def run(self, arguments: object) -> str:
        return f"{self.spec.name} ran"

    async def aclose(self) -> None:
        pass


class Silent(Opinionated):
    """A tool with no ``fit`` at all, as every tool written before fits were."""

    fit = None  # type: ignore[assignment]


async def test_tools_that_claim_come_first_and_those_that_cannot_are_left_out() -> None:
    tools = [
        Silent("plain", None),
        Opinionated("calc", ToolFit(Fit.CANNOT, "the question states no number")),
        Opinionated("search", ToolFit(Fit.CLAIMS, "a passage names Pim")),
        Opinionated("other", ToolFit()),
    ]
    toolset = Toolset(tools, timeout_s=1)
    fits = await toolset.fits("What does Pim make?")
    assert list(fits) == ["search", "plain", "other", "calc"]
    assert fits["calc"] == ToolFit(Fit.CANNOT, "the question states no number")
    assert [spec.name for spec in toolset.offered(fits)] == ["search", "plain", "other"]
    assert tools[2].asked == ["What does Pim make?"]


async def test_when_no_tool_can_help_all_are_offered() -> None:
    """A planner must have a tool to name; the fits are a preference, not a veto on the whole solve."""
    toolset = Toolset([Opinionated(n, ToolFit(Fit.CANNOT, "no")) for n in ("a", "b")], timeout_s=1)
    assert [spec.name for spec in toolset.offered(await toolset.fits("q"))] == ["a", "b"]


@pytest.mark.parametrize(
    ("says", "why"),
    [
        (KeyError("index"), "its fit raised KeyError: 'index'"),
        ("slow", "its fit did not answer within 0.2 s"),
        ("claims", "its fit returned str, not ToolFit"),
    ],
)
async def test_a_fit_that_fails_is_no_opinion_and_says_why(says: object, why: str) -> None:
    toolset = Toolset([Opinionated("claimer", ToolFit(Fit.CLAIMS)), Opinionated("odd", says)], timeout_s=0.2)
    fits = await toolset.fits("q")
    assert fits["odd"] == ToolFit(Fit.MAY, why)
    assert list(fits) == ["claimer", "odd"]


class FitPlugin:
    """A third party's tools with fits, registered through the same hook as every tool."""

    def __init__(self, tools: list[Opinionated]) -> None:
        self.tools = tools

    @hookimpl
    def register_tools(self, register: Any) -> None:
        for tool in self.tools:
            register(tool.spec, lambda context, tool=tool: tool)


@pytest.fixture
def server() -> Iterator[ScriptedOpenAIServer]:
    with ScriptedOpenAIServer() as server:
        yield server


async def test_the_planner_sees_the_tools_in_the_fits_order_and_the_trajectory_keeps_the_fits(
    server: ScriptedOpenAIServer,
) -> None:
    tools = [
        Opinionated("calc", ToolFit(Fit.CANNOT, "the question states no number")),
        Opinionated("notes", ToolFit()),
        Opinionated("search", ToolFit(Fit.CLAIMS, "a passage names Pim Falelo")),
    ]
    server.enqueue(
        "m",
        Reply("Look it up."),
        scripted_json({"tool": "search", "question": "What does Pim Falelo make?"}),
        scripted_json({"arguments": {"text": "Pim Falelo"}}),
        scripted_json({"analysis": "found", "decision": "STOP"}),
        scripted_json({"reasoning": "The search said so.", "answer": "kettles"}),
    )
    config = config_for(
        server, tools=("calc", "notes", "search"), planner="m", executor="m", verifier="m", generator="m"
    )
    async with Solver(config, registry=registry_with(FitPlugin(tools))) as solver:
        trajectory = await solver.asolve("What does Pim Falelo make?")
    assert trajectory.error is None and trajectory.steps[0].decision.tool == "search"
    assert list(trajectory.tool_fits) == ["search", "notes", "calc"]
    assert trajectory.tool_fits["search"].why == "a passage names Pim Falelo"
    analyze, next_step = server.requests_for("m")[:2]
    assert next_step.response_format["json_schema"]["schema"]["properties"]["tool"]["enum"] == ["search", "notes"]
    menu = next_step.messages[-1]["content"]
    assert menu.index("- search:") < menu.index("- notes:") and "- calc:" not in menu
    assert "- calc:" not in analyze.messages[-1]["content"]
    assert from_json(to_json(trajectory), Trajectory) == trajectory


async def test_tools_without_an_opinion_leave_no_record(server: ScriptedOpenAIServer) -> None:
    server.enqueue(
        "m",
        Reply("Say it."),
        scripted_json({"tool": "notes", "question": "hi"}),
        scripted_json({"arguments": {"text": "hi"}}),
        scripted_json({"analysis": "done", "decision": "STOP"}),
        scripted_json({"reasoning": "Said.", "answer": "hi"}),
    )
    config = config_for(server, tools=("notes",), planner="m", executor="m", verifier="m", generator="m")
    async with Solver(config, registry=registry_with(FitPlugin([Silent("notes", None)]))) as solver:
        trajectory = await solver.asolve("hi")
    assert trajectory.tool_fits == {}
    assert from_json(to_json(trajectory), Trajectory) == trajectory


@pytest.mark.parametrize(
    ("question", "names"),
    [
        ("How old would Dov Kesante be in 2030?", ("Dov", "Kesante")),
        ("In what year was Pim Falelo born?", ("Pim", "Falelo")),
        ("What is 30 percent of 6803?", ()),
        ("An inch is 2.54 centimetres. How many centimetres are 184 inches?", ()),
        ("Did I see McAllister? Where is the iPhone made?", ("McAllister", "iPhone")),
        ("Which river flows through Neskholm?", ("Neskholm",)),
    ],
)
def test_names_are_capitalised_words_that_do_not_open_a_sentence(question: str, names: tuple[str, ...]) -> None:
    assert names_in(question) == names


@pytest.mark.parametrize(
    ("question", "fit", "why"),
    [
        (
            "When did Marie Curie win the Nobel Prize in Chemistry?",
            Fit.CLAIMS,
            "a passage names Marie Curie Nobel Prize Chemistry",
        ),
        ("Where does the barn owl nest?", Fit.MAY, ""),  # names nothing: no opinion
        ("What did Albert Einstein discover?", Fit.MAY, "no passage names Albert Einstein"),
        ("What does Brayton trade?", Fit.CLAIMS, "a passage names Brayton"),
    ],
)
async def test_local_search_claims_a_question_whose_names_its_best_passage_has(
    tmp_path: Path, question: str, fit: Fit, why: str
) -> None:
    search = LocalSearch(ToolContext(engine=None, settings={"corpus": str(write_corpus(tmp_path / "wiki.jsonl"))}))
    try:
        assert await search.fit(question) == ToolFit(fit, why)
    finally:
        await search.aclose()
