"""python_coder end to end: its engine on a scripted server writes the code, the Docker sandbox runs it."""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator, Iterator
from typing import Any

import attrs
import pytest
import pytest_asyncio

from agentflow_core import EngineConfig, Fit, Solver, ToolContext, ToolError, ToolFailure, ToolSuccess
from agentflow_core.config import config_from_dict
from agentflow_core.engine import Engine
from agentflow_core.records import ToolErrorKind
from agentflow_core.registry import Registry
from agentflow_core.testing import RecordedRequest, Reply, ScriptedOpenAIServer, scripted_json
from agentflow_tools.arithmetic import arithmetic_expression, expression_pattern
from agentflow_tools.python_coder import PythonCoder, extract_code, printed_value, readiness, writes_for
from agentflow_tools.sandbox import DEFAULT_TAG
from agentflow_tools.sandbox.base import ExecutionResult
from tests.helpers import engine_table

PRODUCT = 123456789 * 987654321  # 121932631112635269
TASK = "Compute 123456789 * 987654321 exactly."
TASK_CODE = "123456789 * 987654321"


def code_reply(body: str) -> Reply:
    """What a chatty model sends: prose around one fenced block."""
    return Reply(f"Sure, here is a program:\n\n```python\n{body}\n```\n\nIt prints the result.")


@pytest.fixture
def server() -> Iterator[ScriptedOpenAIServer]:
    with ScriptedOpenAIServer() as server:
        yield server


@pytest_asyncio.fixture
async def engine(server: ScriptedOpenAIServer, registry: Registry) -> AsyncIterator[Engine]:
    config = EngineConfig(model="openai:m-tool", base_url=server.base_url, max_attempts=1)
    engine = registry.engine("openai").factory(config)
    yield engine
    await engine.aclose()


@contextlib.asynccontextmanager
async def coder(engine: Engine, **settings: Any) -> AsyncIterator[PythonCoder]:
    """The tool with one warm container, closed (containers removed) however the test ends."""
    tool = PythonCoder(ToolContext(engine=engine, settings={"pool_size": 1, **settings}))
    try:
        yield tool
    finally:
        await tool.aclose()


async def test_the_engine_writes_code_and_the_sandbox_runs_it(
    server: ScriptedOpenAIServer, engine: Engine, sandbox_image: str
) -> None:
    server.enqueue("m-tool", code_reply("a, b = 123456789, 987654321\nprint(a * b)"))
    async with coder(engine, image=sandbox_image) as tool:
        output = await tool.run({"query": TASK})
    observation = output.text
    assert f"Output:\n{PRODUCT}" in observation
    assert "print(a * b)" in observation  # the code that ran is part of the observation
    assert output.value == str(PRODUCT)  # one printed line: the generator is offered it as the answer
    [request] = server.requests_for("m-tool")
    assert "PRINTS the result" in request.messages[0]["content"]
    assert request.messages[-1]["content"] == f"Task: {TASK}"


async def test_a_crash_is_a_tool_error_with_the_traceback_tail(
    server: ScriptedOpenAIServer, engine: Engine, sandbox_image: str
) -> None:
    server.enqueue("m-tool", code_reply("print('partial')\nnumbers = [1, 2]\nprint(numbers[5])"))
    async with coder(engine, image=sandbox_image, repair_attempts=0) as tool:
        with pytest.raises(ToolError) as info:
            await tool.run({"query": "print the sixth number"})
    message = str(info.value)
    assert message.startswith("The program failed (exit code 1).")
    assert "Error:\nTraceback (most recent call last):" in message
    assert "IndexError: list index out of range\nOutput before the failure:\npartial" in message


async def test_a_timeout_is_a_tool_error_that_says_so(
    server: ScriptedOpenAIServer, engine: Engine, sandbox_image: str
) -> None:
    server.enqueue("m-tool", code_reply("while True:\n    pass"))
    async with coder(engine, image=sandbox_image, timeout_s=1, repair_attempts=0) as tool:
        with pytest.raises(ToolError, match=r"timed out") as info:
            await tool.run({"query": "loop"})
    assert "did not finish within the 1 s limit" in str(info.value)


async def test_a_reply_without_code_is_a_tool_error(
    server: ScriptedOpenAIServer, engine: Engine, sandbox_image: str
) -> None:
    server.enqueue("m-tool", Reply("I believe the answer is roughly 1.2e17."))
    async with coder(engine, image=sandbox_image, repair_attempts=0) as tool:
        with pytest.raises(ToolError, match="the model wrote no Python code"):
            await tool.run({"query": TASK})


async def test_a_failed_program_goes_back_with_its_traceback_and_the_repair_runs(
    server: ScriptedOpenAIServer, engine: Engine, sandbox_image: str
) -> None:
    broken = code_reply("print(multiply(123456789, 987654321))")
    server.enqueue("m-tool", broken, code_reply(f"print({TASK_CODE})"))
    async with coder(engine, image=sandbox_image) as tool:
        observation = (await tool.run({"query": TASK})).text
    assert observation.startswith(f"Output:\n{PRODUCT}\n")
    assert "This program is a repair: 1 earlier attempt(s) failed" in observation
    first, second = server.requests_for("m-tool")
    assert len(first.messages) == 2
    assert second.messages[2] == {"role": "assistant", "content": broken.content}
    feedback = second.messages[3]["content"]
    assert "NameError: name 'multiply' is not defined" in feedback and "corrected program" in feedback


async def test_the_engines_calls_are_recorded_as_the_executors_with_the_result(
    server: ScriptedOpenAIServer, engine: Engine, sandbox_image: str
) -> None:
    """A program and its repair are both in the output's calls; a failure keeps its calls too."""
    server.enqueue("m-tool", code_reply("print(multiply(2, 3))"), code_reply("print(2 * 3)"))
    async with coder(engine, image=sandbox_image) as tool:
        output = await tool.run({"query": "Multiply two by three."})
        assert [(c.role, c.purpose, c.engine) for c in output.calls] == [("executor", "program", "openai:m-tool")] * 2
        assert output.calls[1].response == code_reply("print(2 * 3)").content
        server.enqueue("m-tool", Reply("No code today."), Reply("Still none."))
        with pytest.raises(ToolError) as info:
            await tool.run({"query": "Multiply two by three."})
    assert [c.response for c in info.value.calls] == ["No code today.", "Still none."]  # type: ignore[attr-defined]


async def test_an_expression_is_written_under_a_grammar_of_the_requests_numbers(
    server: ScriptedOpenAIServer, engine: Engine, sandbox_image: str
) -> None:
    request = "What is 30 percent of 6,803?"
    server.enqueue("m-tool", scripted_json({"expression": "30 * 6803 / 100"}))
    async with coder(engine, image=sandbox_image, writes="expression") as tool:
        output = await tool.run({"query": request})
    assert output.value == "2040.9"  # exact: 30 * 0.01 * 6803 in floats is 2040.8999999999999
    assert output.text == "Output:\n2040.9\nComputed exactly: 30 * 6803 / 100"
    [call] = output.calls
    assert (call.role, call.purpose) == ("executor", "expression")
    [sent] = server.requests_for("m-tool")
    assert request in sent.messages[-1]["content"]
    assert sent.response_format is not None
    pattern = sent.response_format["json_schema"]["schema"]["properties"]["expression"]["pattern"]
    assert pattern == expression_pattern(request)


@pytest.mark.parametrize(
    ("question", "written", "value", "shown"),
    [
        ("How many hours are in 161 weeks?", "161 * week", "27048", "161 * week / hour, in hours"),
        ("How many hours are in 161 weeks?", "161 * week / hour", "27048", "161 * week / hour"),
        ("What is 3 hours and 45 minutes in seconds?", "3 * hour + 45 * minute", "13500", None),
        ("How long are 2 hours and 15 minutes?", "2 * hour + 15 * minute", "135", None),  # smallest unit named
    ],
)
async def test_a_quantity_is_given_in_the_unit_the_question_asks_for(
    server: ScriptedOpenAIServer,
    engine: Engine,
    sandbox_image: str,
    question: str,
    written: str,
    value: str,
    shown: str | None,
) -> None:
    """SmolLM2 wrote ``161 * week`` for the hours in 161 weeks; the tool knows it is a time, and which unit is asked."""
    server.enqueue("m-tool", scripted_json({"expression": written}))
    async with coder(engine, image=sandbox_image, writes="expression") as tool:
        output = await tool.run({"query": "Convert it.", "question": question})
    assert output.value == value
    if shown is not None:
        assert output.text.endswith(f"Computed exactly: {shown}")


@pytest.mark.parametrize(
    ("question", "written", "error"),
    [
        ("How many inches are 3 hours and 2 feet?", "3 * hour + 2 * foot", "adds a time and a length"),
        ("A car goes 60 miles in 2 hours; how fast?", "60 * mile / 2 * hour", "is a length * time, and the question"),
    ],
)
async def test_units_that_do_not_fit_are_a_tool_error_before_the_sandbox(
    server: ScriptedOpenAIServer, engine: Engine, sandbox_image: str, question: str, written: str, error: str
) -> None:
    server.enqueue("m-tool", scripted_json({"expression": written}))
    async with coder(engine, image=sandbox_image, writes="expression") as tool:
        with pytest.raises(ToolError, match=re.escape(error)) as info:
            await tool.run({"query": "Work it out.", "question": question})
    assert len(info.value.calls) == 1  # the engine's call stays in the trajectory


def test_one_number_with_nothing_to_add_is_no_expression() -> None:
    with pytest.raises(ValueError, match=r"one number \(2030\) and nothing to compute it with"):
        expression_pattern("How old would Dov be in 2030?")
    assert re.fullmatch(expression_pattern("How old would Dov be in 2030?", found=["1928"]), "2030 - 1928")


@pytest.mark.parametrize(
    ("writes", "question", "fit"),
    [
        ("expression", "What is 30 percent of 6803?", Fit.CLAIMS),
        ("expression", "How many hours are in 161 weeks?", Fit.CLAIMS),  # a number and units
        ("expression", "How old would Dov Kesante be in 2030?", Fit.CANNOT),  # the other operand is a fact
        ("expression", "What does Dreelo Looms make?", Fit.CANNOT),
        ("program", "What does Dreelo Looms make?", Fit.MAY),  # a program may count letters
        ("program", "What is 17 * 23?", Fit.CLAIMS),  # arithmetic as written, whatever writes
    ],
)
async def test_python_coders_fit(engine: Engine, writes: str, question: str, fit: Fit) -> None:
    async with coder(engine, writes=writes) as tool:
        assert (await tool.fit(question, ())).fit is fit


async def test_a_number_found_earlier_makes_one_stated_number_a_claim(engine: Engine) -> None:
    async with coder(engine, writes="expression") as tool:
        assert (await tool.fit("How old would Dov Kesante be in 2030?", ("Harlholm", "1928"))).fit is Fit.CLAIMS
        assert (await tool.fit("How old would Dov Kesante be in 2030?", ("Harlholm",))).fit is Fit.CANNOT
        assert (await tool.fit("What does Dreelo Looms make?", ("1928",))).fit is Fit.CANNOT


async def test_numbers_found_earlier_are_operands_and_shown(
    server: ScriptedOpenAIServer, engine: Engine, sandbox_image: str
) -> None:
    """The year a search found is what "How old would Dov Kesante be in 2030?" subtracts."""
    question = "How old would Dov Kesante be in 2030?"
    server.enqueue("m-tool", scripted_json({"expression": "2030 - 1928"}))
    async with coder(engine, image=sandbox_image, writes="expression") as tool:
        output = await tool.run({"query": question, "question": question, "found": ["1928", "Harlholm", "49,033"]})
    assert output.value == "102"
    [sent] = server.requests_for("m-tool")
    assert "Found earlier: 1928; 49033\n" in sent.messages[-1]["content"]  # the numbers: what it may use
    pattern = sent.response_format["json_schema"]["schema"]["properties"]["expression"]["pattern"]
    assert re.fullmatch(pattern, "2030 - 1928") and re.fullmatch(pattern, "2030 - 49033")
    assert not re.fullmatch(pattern, "1928 - 2030")  # the question's numbers first, as ever
    assert not re.fullmatch(pattern, "2030 - 1929")


async def test_a_reply_that_is_no_expression_never_runs(
    server: ScriptedOpenAIServer, engine: Engine, sandbox_image: str
) -> None:
    """A server that ignores the grammar: what it wrote is refused before the sandbox, and kept."""
    server.enqueue("m-tool", scripted_json({"expression": "__import__('os').getcwd()"}))
    async with coder(engine, image=sandbox_image, writes="expression") as tool:
        with pytest.raises(ToolError, match="the model wrote no arithmetic expression") as info:
            await tool.run({"query": "What is 30 percent of 6803?"})
    [call] = info.value.calls  # type: ignore[attr-defined]
    assert "__import__" in call.response


async def test_an_expression_needs_a_stated_number(
    server: ScriptedOpenAIServer, engine: Engine, sandbox_image: str
) -> None:
    """A fact sent to the calculator is refused before the model could make a number up; the
    question decides, as a small planner's request has numbers of its own."""
    async with coder(engine, image=sandbox_image, writes="expression") as tool:
        with pytest.raises(ToolError, match=r"^nothing to compute: the question states no number"):
            await tool.run({"query": "What does Dreelo Looms make?", "question": "What does Dreelo Looms make?"})
        with pytest.raises(ToolError, match=r"^nothing to compute: the question states no number"):  # invented
            await tool.run({"query": "Pim Falelo was born in 2018.", "question": "In what year was Pim Falelo born?"})
        server.enqueue("m-tool", scripted_json({"expression": "3018 / 2"}))
        output = await tool.run({"query": "Halve it.", "question": "What is half of 3,018?"})  # in words counts
    assert server.requests_for("m-tool")[0].messages[-1]["content"].startswith("Question: What is half of 3,018?")
    assert output.value == "1509"


@pytest.mark.parametrize(
    ("setting", "engine_name", "writes"),
    [
        ("auto", "llamacpp:smollm2", "expression"),
        ("auto", "llamacpp:smollm2+executor", "expression"),
        ("auto", "openai:gpt-4o-mini", "program"),
        ("auto", "llamacpp:/models/qwen2.5-7b.gguf", "program"),
        ("program", "llamacpp:smollm2", "program"),
        ("expression", "openai:gpt-4o-mini", "expression"),
    ],
)
def test_auto_writes_expressions_only_with_the_embedded_default(setting: str, engine_name: str, writes: str) -> None:
    assert writes_for(setting, engine_name) == writes


@pytest.mark.parametrize(
    ("request_text", "expression", "admitted"),
    [
        ("What is 30 percent of 6,803?", "30 * 6803 / 100", True),  # a percentage states 100
        ("What is 15% of 6,803?", "6803 * 15 / 100", True),
        ("What is 15% of 6,803?", "15 / 100 * 6803", False),  # what is not the question's comes last
        ("What is 30 percent of 6803?", "6803 * 0.3", False),  # a number nobody stated
        ("What is 30 percent of 6803?", "6803 / 100", False),  # every number of the question is used
        ("What is 30 percent of 6803?", "30 * 6803 * percent", False),
        ("How many hours are in 161 weeks?", "161 * week / hour", True),
        ("How many hours are in 161 weeks?", "161 * 7 * 24", False),
        ("How many hours are in 161 weeks?", "161 * minute", False),  # a unit nobody mentioned
        ("An inch is 2.54 centimetres. How many are 184 inches?", "184 * 2.54", True),
        ("An inch is 2.54 centimetres. How many are 184 inches?", "2.54 * 184 * inch / centimetre", True),
        ("An inch is 2.54 centimetres. How many are 184 inches?", "2.54 * 184 * inch / inch", False),  # extras once
        ("What is the sum of 5, 5 and 6?", "5 + 6 + 5", True),  # as often as stated, in any order
        ("What is the sum of 5, 5 and 6?", "5 + 6", False),
        ("What is half of 3,018?", "3018 / 2", True),  # a number in words
        ("What is 3018 shared by 2?", "3018 / 2 / 2", False),  # a stated number once, not again
        ("What is 1234 plus 12?", "1234 + 12", True),
        ("What is 1234 plus 12?", "1 + 2 + 3 + 4 + 5 + 6", False),  # at most five operands
        ("What is 1234 plus 12?", "(1234 + 12)", False),
        ("What is 1234 plus 12?", "1234+12", False),  # one layout: single spaces around operators
        ("Name a number.", "7 + 5", True),  # nothing stated: whole numbers to 999, five at most
        ("Name a number.", "7", False),  # a lone number computes nothing
        ("Name a number.", "1000 + 1", False),
        ("How old would Dov be in 2030? In 2029 he was", "2030", False),
    ],
)
def test_the_expression_grammar(request_text: str, expression: str, admitted: bool) -> None:
    assert bool(re.fullmatch(expression_pattern(request_text), expression)) is admitted


async def test_repairs_are_bounded_and_the_last_failure_is_the_error(
    server: ScriptedOpenAIServer, engine: Engine, sandbox_image: str
) -> None:
    server.enqueue("m-tool", Reply("Roughly 1.2e17."), code_reply("print(1 / 0)"), code_reply("print(undefined)"))
    async with coder(engine, image=sandbox_image, repair_attempts=2) as tool:
        with pytest.raises(ToolError) as info:
            await tool.run({"query": TASK})
    message = str(info.value)
    assert message.startswith("3 programs failed; the last one: The program failed (exit code 1).")
    assert "NameError: name 'undefined' is not defined" in message
    assert len(server.requests_for("m-tool")) == 3
    assert "single ```python code block" in server.requests_for("m-tool")[1].messages[-1]["content"]


async def test_a_missing_image_is_one_line_and_costs_no_tokens(
    server: ScriptedOpenAIServer, engine: Engine, docker_daemon: None
) -> None:
    async with coder(engine, image="agentflow-no-such-image:1") as tool:
        with pytest.raises(ToolError) as info:
            await tool.run({"query": TASK})
    message = str(info.value)
    assert "\n" not in message
    assert "agentflow sandbox build" in message and '[tools.python_coder] image = "agentflow-sandbox:local"' in message
    assert server.requests == []


async def test_a_program_that_prints_nothing_goes_back_for_a_repair(
    server: ScriptedOpenAIServer, engine: Engine, sandbox_image: str
) -> None:
    silent = code_reply("def product(a, b):\n    return a * b")  # what SmolLM2 writes: a function never called
    server.enqueue("m-tool", silent, code_reply(f"print({TASK_CODE})"))
    async with coder(engine, image=sandbox_image) as tool:
        observation = (await tool.run({"query": TASK})).text
    assert observation.startswith(f"Output:\n{PRODUCT}\n")
    feedback = server.requests_for("m-tool")[1].messages[3]["content"]
    assert feedback.startswith("The program ran but printed nothing; it must print its result with print().")


@pytest.mark.parametrize(
    ("query", "printed", "code"),
    [
        ("What is 17 * 23?", "391", "17 * 23"),
        ("123456789 times 987654321", str(PRODUCT), "123456789 * 987654321"),
        ("Compute 2^100.", str(2**100), "2 ** 100"),
        ("What is 190281 / 221?", "861", "190281 / 221"),  # exact: a whole quotient prints whole
        ("What is 0.1 + 0.2?", "0.3", "0.1 + 0.2"),  # not 0.30000000000000004
        ("What is 1 / 3?", "0.3333333333333333", "1 / 3"),  # decimals that never end: as a float
    ],
)
async def test_arithmetic_runs_as_written_without_asking_the_engine(
    server: ScriptedOpenAIServer, engine: Engine, sandbox_image: str, query: str, printed: str, code: str
) -> None:
    async with coder(engine, image=sandbox_image) as tool:
        output = await tool.run({"query": query})
    assert output.text == f"Output:\n{printed}\nComputed exactly: {code}"
    assert output.value == printed
    assert server.requests == []  # exact arithmetic never depends on the model's code


async def test_a_question_that_is_arithmetic_runs_as_written_whatever_the_request(
    server: ScriptedOpenAIServer, engine: Engine, sandbox_image: str
) -> None:
    """SmolLM2's request for "What is 180557 divided by 221?" carried a number of its own."""
    question, request = "What is 180557 divided by 221?", "Divide 180557 by 221 = 180557.2365"
    async with coder(engine, image=sandbox_image, writes="expression") as tool:
        output = await tool.run({"query": request, "question": question})
    assert output.value == "817" and output.text.endswith("Computed exactly: 180557 / 221")
    assert server.requests == []


def test_the_requests_numbers_are_no_operands_where_the_question_states_its_own() -> None:
    pattern = expression_pattern("How many hours are in 213 weeks?", "213 weeks is 213.56 hours")
    assert re.fullmatch(pattern, "213 * week / hour")
    assert not re.fullmatch(pattern, "213 * 213.56")
    assert re.fullmatch(
        expression_pattern("Halve it.", "What is 3018 / 2?"), "3018 / 2"
    )  # no question's: the request's


async def test_arithmetic_that_fails_is_a_tool_error_not_a_repair(
    server: ScriptedOpenAIServer, engine: Engine, sandbox_image: str
) -> None:
    async with coder(engine, image=sandbox_image) as tool:
        with pytest.raises(ToolError, match=r"ZeroDivisionError: division by zero"):
            await tool.run({"query": "What is 1 / 0?"})
    assert server.requests == []


@pytest.mark.parametrize(
    ("request_text", "expression"),
    [
        ("What is 17 * 23?", "17 * 23"),
        ("17*23=?", "17 * 23"),
        ("what's (3 + 4) × 2", "(3 + 4) * 2"),
        ("Calculate 7 divided by 2.", "7 / 2"),
        ("Compute 2^10 minus 1,000.", "2 ** 10 - 1000"),
        ("What is 2 to the power of 20?", "2 ** 20"),
        ("Find the value of -5 + 3.5", "-5 + 3.5"),
        ("How many feet are in 3.5 miles?", None),
        ("Compute 123456789 * 987654321 exactly.", None),  # more than an expression: the engine writes it
        ("What is 15% of 240?", None),
        ("42", None),
        ("print(1)", None),
        ("x * 2", None),
        ("1 < 2", None),
        ("__import__('os')", None),
    ],
)
def test_only_a_request_that_is_nothing_but_arithmetic_is_an_expression(
    request_text: str, expression: str | None
) -> None:
    assert arithmetic_expression(request_text) == expression


def test_readiness_says_why_python_coder_cannot_run(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_HOST", "tcp://127.0.0.1:9")  # nothing listens on the discard port
    why = readiness({})
    assert why is not None and "\n" not in why
    assert why.startswith("exact arithmetic needs its Docker sandbox, and no Docker daemon answers")
    assert "agentflow sandbox build" in why


def test_readiness_finds_the_built_image_and_names_a_missing_one(sandbox_image: str) -> None:
    assert readiness({}) is None  # the image `agentflow sandbox build` makes
    assert readiness({"image": sandbox_image}) is None
    why = readiness({"image": "agentflow-no-such-image:1"})
    assert why is not None and "image 'agentflow-no-such-image:1' is missing: `docker pull" in why  # not built


# -- through the solver -------------------------------------------------------------------------


def step(sub_goal: str = TASK) -> Reply:
    """The planner's turn; the sub-goal is python_coder's query as it stands (no executor call)."""
    return scripted_json({"tool": "python_coder", "question": sub_goal})


def verdict(decision: str) -> Reply:
    return scripted_json({"analysis": "checked", "decision": decision})


def answer_from_memory(request: RecordedRequest) -> Reply:
    """A generator that can only answer with a number it finds in its prompt."""
    found = re.findall(r"\b\d{15,}\b", request.messages[-1]["content"])
    return Reply(f"The product is {found[-1]}." if found else "I do not know.")


def solver_config(server: ScriptedOpenAIServer, image: str, repair_attempts: int = 1) -> Any:
    coder = {"engine": engine_table(server, "m-tool"), "image": image, "pool_size": 1}
    coder["repair_attempts"] = repair_attempts
    return config_from_dict(
        {
            "agent": {"tools": ["python_coder"], "max_steps": 3},
            "engines": {"default": engine_table(server, "m"), "generator": engine_table(server, "m-gen")},
            "tools": {"python_coder": coder},
        }
    )


async def test_solve_answers_with_the_computed_product(
    server: ScriptedOpenAIServer, registry: Registry, sandbox_image: str
) -> None:
    server.enqueue("m", Reply("Exact multiplication: use python_coder."), step(), verdict("STOP"))
    server.enqueue("m-tool", code_reply("print(123456789 * 987654321)"))
    server.set_responder("m-gen", answer_from_memory)
    async with Solver(solver_config(server, sandbox_image), registry=registry) as solver:
        trajectory = await solver.asolve("What is 123456789 times 987654321?")

    assert trajectory.error is None
    assert str(PRODUCT) in (trajectory.answer or "")
    [only] = trajectory.steps
    assert isinstance(only.result, ToolSuccess) and str(PRODUCT) in only.result.output
    assert trajectory.engines["tool:python_coder"] == "openai:m-tool"


async def test_the_executor_hands_python_coder_the_question_its_request_serves(
    server: ScriptedOpenAIServer, registry: Registry, sandbox_image: str
) -> None:
    """A terse request ("How many centimetres are 208 inches?") lost the factor the question gives; with
    the question beside it the expression may use 2.54, which the request alone would not admit."""
    question = "An inch is 2.54 centimetres. How many centimetres are 208 inches?"
    server.enqueue("m", Reply("Convert."), step("How many centimetres are 208 inches?"), verdict("STOP"))
    server.enqueue("m-tool", scripted_json({"expression": "208 * 2.54"}))
    server.set_responder("m-gen", lambda request: Reply("I do not know."))
    config = solver_config(server, sandbox_image)
    config = attrs.evolve(
        config,
        tools={
            "python_coder": attrs.evolve(
                config.tools["python_coder"], settings={**config.tools["python_coder"].settings, "writes": "expression"}
            )
        },
    )
    async with Solver(config, registry=registry) as solver:
        trajectory = await solver.asolve(question)

    [only] = trajectory.steps
    assert only.tool_call.arguments == {"query": "How many centimetres are 208 inches?", "question": question}
    assert isinstance(only.result, ToolSuccess) and only.result.value == "528.32"
    [sent] = server.requests_for("m-tool")
    assert sent.messages[-1]["content"].startswith(f"Question: {question}\nRequest: How many centimetres")
    pattern = sent.response_format["json_schema"]["schema"]["properties"]["expression"]["pattern"]  # type: ignore[index]
    assert re.fullmatch(pattern, "208 * 2.54")
    assert not re.fullmatch(expression_pattern(only.decision.sub_goal), "208 * 2.54")


@pytest.mark.parametrize("choice", [str(PRODUCT), "none of these"])
async def test_the_generator_chooses_the_printed_value_or_writes_its_own_answer(
    server: ScriptedOpenAIServer, registry: Registry, sandbox_image: str, choice: str
) -> None:
    server.enqueue("m", Reply("Exact multiplication: use python_coder."), step(), verdict("STOP"))
    server.enqueue("m-tool", code_reply("print(123456789 * 987654321)"))
    server.enqueue("m-gen", scripted_json({"answer": choice}), scripted_json({"reasoning": "r", "answer": "own"}))
    async with Solver(solver_config(server, sandbox_image), registry=registry) as solver:
        trajectory = await solver.asolve("What is 123456789 times 987654321?")

    [offer, *written] = server.requests_for("m-gen")
    enum = offer.response_format["json_schema"]["schema"]["properties"]["answer"]["enum"]  # type: ignore[index]
    assert enum == [str(PRODUCT), "none of these"]
    assert str(PRODUCT) in offer.messages[-1]["content"]  # chosen with the result in view
    answer = trajectory.final_answer
    assert answer is not None
    calls = [call.purpose for call in trajectory.module_calls() if call.role == "generator"]
    if choice == str(PRODUCT):
        assert written == [] and answer.text == f"python_coder returned {PRODUCT}.\n\nAnswer: {PRODUCT}"
        assert calls == ["choose_result"]
    else:  # declined: the answer is written, and the declined offer stays in the trajectory
        assert len(written) == 1 and answer.text == "r\n\nAnswer: own"
        assert calls == ["choose_result", "final_answer"]


async def test_failing_code_shows_in_memory_and_the_loop_goes_on(
    server: ScriptedOpenAIServer, registry: Registry, sandbox_image: str
) -> None:
    server.enqueue(
        "m",
        Reply("Exact multiplication: use python_coder."),
        step(),
        verdict("CONTINUE"),
        step("Compute 123456789 * 987654321 again, without helper functions."),
        verdict("STOP"),
    )
    server.enqueue("m-tool", code_reply("print(multiply(123456789, 987654321))"), code_reply(f"print({PRODUCT})"))
    server.set_responder("m-gen", answer_from_memory)
    config = solver_config(server, sandbox_image, repair_attempts=0)  # the planner, not the tool, retries here
    async with Solver(config, registry=registry) as solver:
        # Not arithmetic as written (that would run without a program): the product, asked in words.
        trajectory = await solver.asolve("Multiplying 123456789 by 987654321 gives what?")

    first, second = trajectory.steps
    assert isinstance(first.result, ToolFailure) and first.result.kind is ToolErrorKind.FAILED
    assert "exit code 1" in first.result.error
    assert "NameError: name 'multiply' is not defined" in first.result.error
    assert isinstance(second.result, ToolSuccess) and str(PRODUCT) in second.result.output
    second_plan = server.requests_for("m")[3].messages[-1]["content"]
    assert "TOOL ERROR (failed)" in second_plan and "NameError" in second_plan
    assert str(PRODUCT) in (trajectory.answer or "")


# -- pieces that need no Docker -----------------------------------------------------------------


def test_the_tool_is_registered_with_an_engine(registry: Registry) -> None:
    spec = registry.tool("python_coder").spec
    assert spec.uses_engine and spec.input_schema["required"] == ["query"]
    assert any("network" in line for line in spec.limitations)


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        ("```python\nprint(1)\n```", "print(1)"),
        ("Here:\n```py\nx = 2\nprint(x)\n```\nDone.", "x = 2\nprint(x)"),
        ("```\nprint(3)\n```", "print(3)"),
        ("```text\nnot code\n```\n```python\nprint(4)\n```", "print(4)"),
        ("```python\nprint(5)\n", "print(5)"),  # the reply was cut off before the closing fence
        ("print(6)", "print(6)"),  # bare code
        ("print(7)\n```", None),
        ("The answer is 42.", None),
        ("42", None),
        ("", None),
    ],
)
def test_extract_code_is_tolerant(reply: str, expected: str | None) -> None:
    assert extract_code(reply) == expected


def test_agentflow_solve_with_python_coder_prints_the_computed_product(
    server: ScriptedOpenAIServer, sandbox_image: str, tmp_path: Any
) -> None:
    """The issue's bar: `agentflow solve --tools python_coder` answers what only execution knows, and a new
    user's config names no image: after `agentflow sandbox build` the tool finds the built one."""
    from tests.test_cli import agentflow

    server.enqueue("m", Reply("Exact multiplication: use python_coder."), step(), verdict("STOP"))
    server.enqueue("m-tool", code_reply("a, b = 123456789, 987654321\nprint(a * b)"))
    server.set_responder("m-gen", answer_from_memory)
    config = tmp_path / "agentflow.toml"
    config.write_text(
        f'[engines]\ndefault = {{ model = "openai:m", base_url = "{server.base_url}" }}\n'
        f'generator = {{ model = "openai:m-gen", base_url = "{server.base_url}" }}\n'
        f'[tools.python_coder]\nengine = {{ model = "openai:m-tool", base_url = "{server.base_url}" }}\n'
        "pool_size = 1\n"
    )
    assert sandbox_image == DEFAULT_TAG
    result = agentflow(
        "solve", "What is 123456789 times 987654321?", "--tools", "python_coder", "--config", str(config), cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    assert str(PRODUCT) in result.stdout


@pytest.mark.parametrize(
    ("stdout", "truncated", "value"),
    [
        ("391\n", False, "391"),
        ("  [2, 3]  \n", False, "[2, 3]"),
        ("first\nsecond\n", False, None),  # a table or a log is no single value
        ("", False, None),
        ("x" * 61, False, None),  # a sentence, not a value
        ("123", True, None),  # cut output: the value may be the start of a longer one
    ],
)
def test_only_one_short_printed_line_is_a_value(stdout: str, truncated: bool, value: str | None) -> None:
    assert printed_value(ExecutionResult(stdout, "", 0, truncated=truncated)) == value
