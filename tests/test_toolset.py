from __future__ import annotations

import pytest

from agentflow_core.plugins import load_registry
from agentflow_core.records import ToolCall, ToolErrorKind, ToolFailure, ToolSuccess
from agentflow_core.tool import ToolContext
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
