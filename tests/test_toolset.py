from __future__ import annotations

import pytest

from agentflow_core.engine import Message
from agentflow_core.errors import ToolError
from agentflow_core.plugins import load_registry
from agentflow_core.records import ModuleCall, ToolCall, ToolErrorKind, ToolFailure, ToolSuccess
from agentflow_core.tool import ToolContext, ToolOutput, ToolSpec
from agentflow_core.toolset import Toolset
from tests.helpers import TestTools


@pytest.fixture
def toolset() -> Toolset:
    registry = load_registry(entry_points=False, extra=[TestTools()])
    tools = [registry.tool(n).factory(ToolContext(engine=None)) for n in ("sleepy", "crashy", "failing", "upper")]
    return Toolset(tools, timeout_s=0.3)


async def test_success_carries_output_and_time(toolset: Toolset) -> None:
    result = await toolset.run(ToolCall("upper", {"text": "abc"}))
    assert isinstance(result, ToolSuccess) and result.output == "ABC" and result.elapsed_s >= 0


@pytest.mark.parametrize(
    ("call", "kind", "message"),
    [
        (ToolCall("nope", {"text": "x"}), ToolErrorKind.UNKNOWN_TOOL, "unknown tool 'nope'; enabled tools: sleepy, "),
        (ToolCall("upper", {}), ToolErrorKind.BAD_ARGUMENTS, "'text' is a required property"),
        (ToolCall("upper", {"text": 3}), ToolErrorKind.BAD_ARGUMENTS, "text: 3 is not of type 'string'"),
        (ToolCall("sleepy", {"text": "x"}), ToolErrorKind.TIMEOUT, "sleepy did not finish within 0.3 s"),
        (ToolCall("crashy", {"text": "x"}), ToolErrorKind.CRASHED, "crashy raised KeyError"),
        (ToolCall("failing", {"text": "x"}), ToolErrorKind.FAILED, "the backend said no (HTTP 503)"),
    ],
)
async def test_every_failure_is_a_tool_failure(
    toolset: Toolset, call: ToolCall, kind: ToolErrorKind, message: str
) -> None:
    result = await toolset.run(call)
    assert isinstance(result, ToolFailure)
    assert result.kind is kind
    assert message in result.error


class Valued:
    """A tool that returns ``ToolOutput``: text for the modules, a short value for the generator."""

    spec = ToolSpec("valued", "returns a value", {"type": "object", "properties": {}}, output="a value")

    def __init__(self, output: object) -> None:
        self.output = output

    async def run(self, arguments: object) -> object:
        return self.output

    async def aclose(self) -> None:
        pass


@pytest.mark.parametrize(
    ("output", "value"),
    [
        (ToolOutput("Output:\n391", value="391"), "391"),
        (ToolOutput("Output:\n391", value="  a\n b "), "a b"),  # one line, as a choice is offered
        (ToolOutput("Output:\n391", value="   "), None),
        (ToolOutput("Output:\n391"), None),
        ("plain text", None),
    ],
)
async def test_a_tool_may_return_a_short_value_beside_its_text(output: object, value: str | None) -> None:
    result = await Toolset([Valued(output)], timeout_s=1).run(ToolCall("valued", {}))  # type: ignore[list-item]
    assert isinstance(result, ToolSuccess) and result.output.startswith(("Output:", "plain")) and result.value == value


@pytest.mark.parametrize(
    ("candidates", "kept"),
    [
        (("1944", "Prennquay"), ("1944", "Prennquay")),
        (("river\n  Aube", "river Aube", " ", 7, None), ("river Aube",)),  # one line each, once; no blanks or non-text
        ("1944", ()),  # a plugin's bare string is not a tuple of candidates
    ],
)
async def test_candidates_reach_the_result_as_one_line_texts(candidates: object, kept: tuple[str, ...]) -> None:
    output = ToolOutput("Passages ...", candidates=candidates)  # type: ignore[arg-type]
    result = await Toolset([Valued(output)], timeout_s=1).run(ToolCall("valued", {}))  # type: ignore[list-item]
    assert isinstance(result, ToolSuccess) and result.candidates == kept


async def test_the_calls_a_tool_made_reach_the_result_whether_it_succeeds_or_fails() -> None:
    made = ModuleCall("executor", "program", "openai:m", (Message("user", "task"),), "print(1)")
    result = await Toolset([Valued(ToolOutput("Output:\n1", value="1", calls=(made,)))], timeout_s=1).run(  # type: ignore[list-item]
        ToolCall("valued", {})
    )
    assert isinstance(result, ToolSuccess) and result.calls == (made,)

    class Failing(Valued):
        async def run(self, arguments: object) -> object:
            raise ToolError("the program failed", calls=(made, "not a call"))

    result = await Toolset([Failing(None)], timeout_s=1).run(ToolCall("valued", {}))  # type: ignore[list-item]
    assert isinstance(result, ToolFailure) and result.calls == (made,) and result.error == "the program failed"


async def test_a_tool_output_without_text_is_a_crash() -> None:
    result = await Toolset([Valued(ToolOutput(b"bytes"))], timeout_s=1).run(ToolCall("valued", {}))  # type: ignore[arg-type,list-item]
    assert isinstance(result, ToolFailure) and result.kind is ToolErrorKind.CRASHED
