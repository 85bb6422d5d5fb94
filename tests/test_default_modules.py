"""The default modules' prompts and replies: nothing a small model could copy as a value, a sub-goal
that reaches a request-taking tool as it stands, and an answer that ends with its short form (issue 34)."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any

import pytest

from agentflow_core import FlowState, Query, Solver, ToolError, ToolExample, ToolOutput, ToolSpec, hookimpl
from agentflow_core.testing import RecordedRequest, Reply, ScriptedOpenAIServer, registry_with, scripted_json
from agentflow_core.tool import FOUND_INPUT, QUESTION_INPUT, query_input
from tests.helpers import config_for

EXAMPLE_VALUE = "In one sentence, what does photosynthesis produce?"
INPUT_DESCRIPTION = "the unit to convert into, spelled out in full"


class ConvertTool:
    """A third-party tool whose spec carries exactly what a small model copies: an example and descriptions."""

    spec = ToolSpec(
        name="convert",
        description="Converts a quantity between units.",
        input_schema={
            "type": "object",
            "properties": {
                "amount": {"type": "number", "description": "the amount to convert, as a plain number"},
                "unit": {"type": "string", "description": INPUT_DESCRIPTION},
            },
            "required": ["amount", "unit"],
        },
        output="the converted amount",
        examples=(ToolExample("a conversion", {"amount": 3, "unit": EXAMPLE_VALUE}),),
    )

    async def run(self, arguments: Mapping[str, Any]) -> str:
        return f"{arguments['amount']} {arguments['unit']}"

    async def aclose(self) -> None:
        pass


class ConvertPlugin:
    @hookimpl
    def register_tools(self, register: Any) -> None:
        register(ConvertTool.spec, lambda context: ConvertTool())


@pytest.fixture
def server() -> Iterator[ScriptedOpenAIServer]:
    with ScriptedOpenAIServer() as server:
        yield server


def _texts(requests: list[RecordedRequest]) -> str:
    return "\n".join(str(m.get("content")) for r in requests for m in r.messages)


async def test_no_prompt_shows_a_worked_example_or_an_input_description(server: ScriptedOpenAIServer) -> None:
    server.enqueue(
        "m",
        Reply("Convert it."),
        scripted_json({"tool": "convert", "question": "3 miles in feet"}),
        scripted_json({"arguments": {"amount": 3, "unit": "feet"}}),
        scripted_json({"analysis": "done", "decision": "CONTINUE"}),
        scripted_json({"tool": "base_generator", "question": "Check 3 miles in feet"}),
        scripted_json({"analysis": "done", "decision": "STOP"}),
        scripted_json({"reasoning": "The tool converted it.", "answer": "15840 feet"}),
    )
    server.set_responder("t", lambda request: Reply("It is 15840 feet."))
    registry = registry_with(ConvertPlugin())
    config = config_for(server, tools=("base_generator", "convert", "python_coder"), default="m", tool="t")
    async with Solver(config, registry=registry) as solver:
        trajectory = await solver.asolve("How many feet are in 3 miles?")

    assert trajectory.error is None and len(trajectory.steps) == 2
    shown = _texts(server.requests)
    for spec in (ConvertTool.spec, *(registry.tool(n).spec for n in ("base_generator", "python_coder"))):
        for prop in spec.input_schema["properties"].values():
            assert prop.get("description", "\0") not in shown
        for example in spec.examples:
            assert all(str(value) not in shown for value in example.arguments.values() if len(str(value)) > 3)
    assert EXAMPLE_VALUE not in shown and INPUT_DESCRIPTION not in shown
    # The executor still learns the inputs by name and type, and the schema it answers carries them.
    command = server.requests_for("m")[2]
    assert "- amount: number\n- unit: string" in command.messages[-1]["content"]
    schema = command.response_format["json_schema"]["schema"]
    assert schema["properties"]["arguments"]["properties"]["unit"]["description"] == INPUT_DESCRIPTION


async def test_a_request_taking_tool_gets_the_sub_goal_and_one_without_words_is_the_question(
    server: ScriptedOpenAIServer,
) -> None:
    server.enqueue(
        "m",
        Reply("analysis"),
        scripted_json({"tool": "base_generator", "question": "  Who wrote\n Dune?  "}),
        scripted_json({"analysis": "more", "decision": "CONTINUE"}),
        scripted_json({"tool": "base_generator", "question": "{"}),
        scripted_json({"analysis": "enough", "decision": "STOP"}),
        Reply("Frank Herbert."),  # not the JSON asked for: kept as it came
    )
    server.set_responder("t", lambda request: Reply(f"asked: {request.messages[-1]['content']}"))
    async with Solver(config_for(server, default="m", tool="t"), registry=registry_with()) as solver:
        trajectory = await solver.asolve("Who wrote the novel Dune?")

    first, second = trajectory.steps
    assert first.tool_call.arguments == {"query": "Who wrote Dune?"} and first.tool_call.call is None
    assert second.tool_call.arguments == {"query": "Who wrote the novel Dune?"}
    assert [r.messages[-1]["content"] for r in server.requests_for("t")] == [
        "Who wrote Dune?",
        "Who wrote the novel Dune?",
    ]
    assert trajectory.answer == "Frank Herbert."


class FindAndCompute:
    """A search that finds a year (as a value and candidates) and a calculator that takes what was found."""

    lookup = ToolSpec("lookup", "Looks a person up.", query_input("who"), output="a passage")
    compute = ToolSpec(
        "compute", "Computes.", query_input("what", question=QUESTION_INPUT, found=FOUND_INPUT), output="a number"
    )

    def __init__(self) -> None:
        self.computed: list[Mapping[str, Any]] = []

    @hookimpl
    def register_tools(self, register: Any) -> None:
        register(self.lookup, lambda context: _Fixed(self.lookup, self._lookup))
        register(self.compute, lambda context: _Fixed(self.compute, self._compute))

    async def _lookup(self, arguments: Mapping[str, Any]) -> ToolOutput:
        return ToolOutput("Dov Kesante was born in 1928 in Harlholm.", value="1928", candidates=("1928", "Harlholm"))

    async def _compute(self, arguments: Mapping[str, Any]) -> ToolOutput:
        self.computed.append(arguments)
        if "found" not in arguments:
            raise ToolError("one number and nothing to compute it with")
        return ToolOutput("Output: 102", value="102")


class _Fixed:
    def __init__(self, spec: ToolSpec, run: Any) -> None:
        self.spec, self.run = spec, run

    async def aclose(self) -> None:
        pass


async def test_a_tool_that_declares_found_gets_what_earlier_turns_found(server: ScriptedOpenAIServer) -> None:
    """SmolLM2's second request repeats the question; the year the search found reaches the calculator anyway."""
    question = "How old would Dov Kesante be in 2030?"
    plugin = FindAndCompute()
    server.enqueue(
        "m",
        Reply("Find the birth year, then subtract."),
        scripted_json({"tool": "compute", "question": question}),
        scripted_json({"analysis": "no year yet", "decision": "CONTINUE"}),
        scripted_json({"tool": "lookup", "question": "Dov Kesante"}),
        scripted_json({"analysis": "found the year", "decision": "CONTINUE"}),
        scripted_json({"tool": "compute", "question": question}),
        scripted_json({"analysis": "done", "decision": "STOP"}),
        scripted_json({"answer": "102"}),
    )
    config = config_for(server, tools=("lookup", "compute"), default="m")
    async with Solver(config, registry=registry_with(plugin)) as solver:
        trajectory = await solver.asolve(question)
    assert trajectory.error is None
    before, after = plugin.computed
    assert before == {"query": question, "question": question}  # nothing found yet: no ``found`` at all
    assert after == {"query": question, "question": question, "found": ["1928", "Harlholm"]}
    # What the calculator was given is its input, not an answer: the choice offers its result alone.
    choice = server.requests_for("m")[-1]
    assert choice.response_format["json_schema"]["schema"]["properties"]["answer"]["enum"] == ["102", "none of these"]
    assert trajectory.answer == "compute returned 102.\n\nAnswer: 102"


async def test_the_choice_offers_each_results_value_and_its_likeliest_candidate(server: ScriptedOpenAIServer) -> None:
    """SmolLM2 chose right among local_search's spans 10 of 10 times offered the first, 4 of 10 offered all."""
    plugin = FindAndCompute()
    server.enqueue(
        "m",
        Reply("Look it up."),
        scripted_json({"tool": "lookup", "question": "Dov Kesante"}),
        scripted_json({"analysis": "found", "decision": "STOP"}),
        scripted_json({"answer": "1928"}),
    )
    async with Solver(config_for(server, tools=("lookup",), default="m"), registry=registry_with(plugin)) as solver:
        trajectory = await solver.asolve("When was Dov Kesante born?")
    choice = server.requests_for("m")[-1]
    assert choice.response_format["json_schema"]["schema"]["properties"]["answer"]["enum"] == ["1928", "none of these"]
    assert "Harlholm" not in choice.messages[-1]["content"].split("Which of these")[1]
    assert trajectory.answer == "lookup returned 1928.\n\nAnswer: 1928"


@pytest.mark.parametrize(
    ("reply", "answer"),
    [
        ({"reasoning": "The tool printed it.", "answer": " 391\n"}, "The tool printed it.\n\nAnswer: 391"),
        ({"reasoning": "", "answer": "Paris"}, "Answer: Paris"),
        ({"reasoning": "I cannot tell.", "answer": ""}, '{"reasoning": "I cannot tell.", "answer": ""}'),
    ],
)
async def test_the_answer_is_the_reasoning_then_a_last_answer_line(
    server: ScriptedOpenAIServer, reply: dict[str, str], answer: str
) -> None:
    server.enqueue("m", Reply(json.dumps(reply)))
    async with Solver(config_for(server, default="m"), registry=registry_with()) as solver:
        state_answer = await solver.generator.direct_answer(FlowState(query=Query("What is 17 * 23?"), tools=()))
    assert state_answer.text == answer
    assert state_answer.call is not None and state_answer.call.response == json.dumps(reply)
