"""Tools' word on a question before the planner chooses: the order of the menu, who is left out, the record."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agentflow_core import Decision, Fit, Solver, ToolContext, ToolFit, ToolOutput, ToolSpec, Trajectory, hookimpl
from agentflow_core.serde import from_json, to_json
from agentflow_core.testing import RecordedRequest, Reply, ScriptedOpenAIServer, registry_with, scripted_json
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
        self.asked: list[tuple[str, tuple[str, ...]]] = []

    async def fit(self, question: str, found: tuple[str, ...]) -> object:
        self.asked.append((question, found))
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
    assert tools[2].asked == [("What does Pim make?", ())]


async def test_when_no_tool_can_help_all_are_offered() -> None:
    """A planner must have a tool to name; the fits are a preference, not a veto on the whole solve."""
    toolset = Toolset([Opinionated(n, ToolFit(Fit.CANNOT, "no")) for n in ("a", "b")], timeout_s=1)
    assert [spec.name for spec in toolset.offered(await toolset.fits("q"))] == ["a", "b"]


async def test_among_equals_a_tool_that_has_not_answered_yet_comes_first() -> None:
    """A fresh claim beats a repeated one: after a search found the year, the calculator's claim goes first."""
    toolset = Toolset([Opinionated(n, ToolFit(Fit.CLAIMS)) for n in ("search", "calc")], timeout_s=1)
    assert list(await toolset.fits("q", answered={"search"})) == ["calc", "search"]
    assert list(await toolset.fits("q")) == ["search", "calc"]
    # Without a claim the configured order holds, answered or not: each turn's prompt opens alike.
    quiet = Toolset([Opinionated(n, ToolFit()) for n in ("search", "calc")], timeout_s=1)
    assert list(await quiet.fits("q", answered={"search"})) == ["search", "calc"]


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


async def test_the_planner_tries_an_untried_claim_first_then_sees_the_tools_in_the_fits_order(
    server: ScriptedOpenAIServer,
) -> None:
    tools = [
        Opinionated("calc", ToolFit(Fit.CANNOT, "the question states no number")),
        Opinionated("notes", ToolFit()),
        Opinionated("search", ToolFit(Fit.CLAIMS, "a passage names Pim Falelo")),
        Silent("extra", None),
    ]
    server.enqueue(
        "m",
        Reply("Look it up."),
        scripted_json({"tool": "search", "question": "What does Pim Falelo make?"}),
        scripted_json({"arguments": {"text": "Pim Falelo"}}),
        scripted_json({"analysis": "check it", "decision": "CONTINUE"}),
        scripted_json({"tool": "notes", "question": "Pim Falelo"}),
        scripted_json({"arguments": {"text": "Pim Falelo"}}),
        scripted_json({"analysis": "found", "decision": "STOP"}),
        scripted_json({"reasoning": "The search said so.", "answer": "kettles"}),
    )
    names = ("calc", "notes", "search", "extra")
    config = config_for(server, tools=names, planner="m", executor="m", verifier="m", generator="m")
    async with Solver(config, registry=registry_with(FitPlugin(tools))) as solver:
        trajectory = await solver.asolve("What does Pim Falelo make?")
    assert trajectory.error is None and [s.decision.tool for s in trajectory.steps] == ["search", "notes"]
    fits = trajectory.steps[0].tool_fits
    assert list(fits) == ["search", "notes", "extra", "calc"]
    assert fits["search"].why == "a passage names Pim Falelo"
    analyze, first, _, _, second = server.requests_for("m")[:5]
    described = analyze.messages[-1]["content"]
    places = [described.index(f"- {name}:") for name in ("search", "notes", "extra")]
    assert places == sorted(places) and "- calc:" not in described

    def enum(request: RecordedRequest) -> list[str]:
        return request.response_format["json_schema"]["schema"]["properties"]["tool"]["enum"]

    assert enum(first) == ["search"]  # a claim nobody has tried: the only tool offered
    assert enum(second) == ["search", "notes", "extra"]  # tried: every tool that can help, claims first
    menu = second.messages[-1]["content"]
    assert menu.index("- search:") < menu.index("- notes:") < menu.index("- extra:") and "- calc:" not in menu
    assert from_json(to_json(trajectory), Trajectory) == trajectory


class Calculator(Opinionated):
    """Claims the question once a number was found; before that, says what it was told to."""

    async def fit(self, question: str, found: tuple[str, ...]) -> ToolFit:
        self.asked.append((question, found))
        return ToolFit(Fit.CLAIMS, "a number was found") if found else self.says  # type: ignore[return-value]

    async def run(self, arguments: object) -> str:
        return "102"


class YearSearch(Opinionated):
    async def run(self, arguments: object) -> ToolOutput:
        return ToolOutput("born in 1928", value="1928")


async def lookup_then_compute(server: ScriptedOpenAIServer, before: ToolFit) -> tuple[Trajectory, Calculator]:
    """A search that finds a year, then the calculator (saying ``before`` until a number is found)."""
    calc, search = Calculator("calc", before), YearSearch("search", ToolFit(Fit.CLAIMS, "names Dov"))
    server.enqueue(
        "m",
        Reply("Look up, then compute."),
        scripted_json({"tool": "search", "question": "Dov"}),
        scripted_json({"arguments": {"text": "Dov"}}),
        scripted_json({"tool": "calc", "question": "2030 - 1928"}),
        scripted_json({"arguments": {"text": "2030 - 1928"}}),
        scripted_json({"analysis": "done", "decision": "STOP"}),
        scripted_json({"reasoning": "Computed.", "answer": "102"}),
    )
    config = config_for(server, tools=("search", "calc"), planner="m", executor="m", verifier="m", generator="m")
    async with Solver(config, registry=registry_with(FitPlugin([search, calc]))) as solver:
        return await solver.asolve("How old would Dov be in 2030?"), calc


async def test_the_verifier_does_not_stop_while_a_claim_is_untried(server: ScriptedOpenAIServer) -> None:
    """After a lookup the calculator claims the question: the turn goes on without asking the model."""
    trajectory, _ = await lookup_then_compute(server, ToolFit(Fit.CANNOT, "one number"))
    first, second = trajectory.steps
    assert first.verdict is not None and first.verdict.call is None  # no model asked
    assert first.verdict.decision is Decision.CONTINUE
    why = "not done yet: calc (a number was found) claims the question and has not been tried"
    assert first.verdict.analysis == why
    assert second.decision.tool == "calc" and second.verdict is not None and second.verdict.call is not None


async def test_each_turn_asks_the_fits_again_with_what_was_found(server: ScriptedOpenAIServer) -> None:
    trajectory, calc = await lookup_then_compute(server, ToolFit())
    question = "How old would Dov be in 2030?"
    assert calc.asked[0] == (question, ()) and set(calc.asked[1:]) == {(question, ("1928",))}
    first, second = (list(step.tool_fits) for step in trajectory.steps)
    assert first == ["search", "calc"] and second == ["calc", "search"]  # the search has answered
    second_menu = server.requests_for("m")[3]
    assert second_menu.response_format["json_schema"]["schema"]["properties"]["tool"]["enum"] == ["calc"]


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
    assert trajectory.steps[0].tool_fits == {}
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
        assert await search.fit(question, ()) == ToolFit(fit, why)
    finally:
        await search.aclose()
