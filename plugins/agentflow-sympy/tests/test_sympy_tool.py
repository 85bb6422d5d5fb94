"""``symbolic_math`` as the solver runs it: through ``ToolContext``, with settings and a deadline."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest
from agentflow_sympy import tool as tool_module
from agentflow_sympy import worker
from agentflow_sympy.plugin import make_tool
from agentflow_sympy.spec import SPEC

from agentflow_core import ConfigError, Tool, ToolContext, ToolError
from agentflow_core.testing import wait_until


def run(arguments: dict[str, Any], **settings: Any) -> str:
    tool = make_tool(ToolContext(engine=None, settings=settings))
    return asyncio.run(tool.run(arguments))


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        ({"expression": "x**2 - 5*x + 6", "operation": "solve", "variable": "x"}, "solutions for x: [2, 3]"),
        ({"expression": "2*x + 3 = 7", "operation": "solve"}, "solutions for x: [2]"),
        ({"expression": "x**2 + 1", "operation": "solve"}, "solutions for x: [-I, I]"),
        ({"expression": "exp(x) = 0", "operation": "solve"}, "solutions for x: none found"),
        ({"expression": "x**3", "operation": "diff"}, "derivative with respect to x: 3*x**2"),
        ({"expression": "a*x**2", "operation": "diff", "variable": "a"}, "derivative with respect to a: x**2"),
        ({"expression": "2*x", "operation": "integrate"}, "antiderivative with respect to x (plus a constant): x**2"),
        ({"expression": "sin(x)**2 + cos(x)**2", "operation": "simplify"}, "1"),
        ({"expression": "x**2 - 1", "operation": "factor"}, "(x - 1)*(x + 1)"),
        ({"expression": "360", "operation": "factor"}, "2**3 * 3**2 * 5"),
        ({"expression": "(x + 1)**2", "operation": "expand"}, "x**2 + 2*x + 1"),
        ({"expression": "sqrt(2)*pi", "operation": "evaluate"}, "4.44288293815837"),
        ({"expression": "1/3", "operation": "evaluate"}, "1/3 = 0.333333333333333"),
        ({"expression": "2**10", "operation": "evaluate"}, "1024"),
    ],
)
def test_operations(arguments: dict[str, Any], expected: str) -> None:
    assert run(arguments) == expected


def test_roots_without_a_closed_form_are_given_as_numbers() -> None:
    assert run({"expression": "x**5 - x + 1", "operation": "solve"}).startswith(
        "solutions for x (numeric): [-1.16730397826,"
    )


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"expression": "x*y", "operation": "solve"}, "the expression has x, y; set 'variable'"),
        ({"expression": "x + y", "operation": "evaluate"}, "evaluate needs numbers only"),
        ({"expression": "x = 2", "operation": "expand"}, "only 'solve' accepts"),
        ({"expression": "exp(x**x)", "operation": "integrate"}, "no closed form"),
        ({"expression": "x", "operation": "plot"}, "'operation' must be one of"),
        ({"expression": 42, "operation": "solve"}, "'expression' must be a string"),
        ({"expression": "x", "operation": "diff", "variable": "__class__"}, "is not a valid name"),
        ({"expression": "pi*x", "operation": "diff", "variable": "pi"}, "pi is a constant, not a variable"),
    ],
)
def test_bad_requests_are_one_line_tool_errors(arguments: dict[str, Any], message: str) -> None:
    with pytest.raises(ToolError, match=message.replace("(", r"\(")):
        run(arguments)


def test_long_results_are_cut() -> None:
    output = run({"expression": "(x + y)**60", "operation": "expand"}, max_output_chars=100)
    assert len(output) < 140 and output.endswith("more characters]")


def test_settings_are_checked_at_startup() -> None:
    with pytest.raises(ConfigError, match="settings: timeout_s: expected a number"):
        make_tool(ToolContext(engine=None, settings={"timeout_s": "fast"}))
    with pytest.raises(ConfigError, match="extra fields found"):
        make_tool(ToolContext(engine=None, settings={"timeout": 3}))


def test_the_tool_meets_the_protocol() -> None:
    tool = make_tool(ToolContext(engine=None))
    assert isinstance(tool, Tool) and tool.spec is SPEC


def test_a_slow_computation_gives_up_at_the_deadline(monkeypatch: pytest.MonkeyPatch) -> None:
    release = threading.Event()
    monkeypatch.setattr(tool_module, "compute", lambda *a, **k: release.wait(5) and "late")
    started = time.perf_counter()
    try:
        with pytest.raises(ToolError, match=r"symbolic_math gave up after 0.2 s"):
            run({"expression": "x", "operation": "simplify"}, timeout_s=0.2)
    finally:
        release.set()
    assert time.perf_counter() - started < 2


def test_overrunning_computations_are_capped() -> None:
    """Threads cannot be stopped; once MAX_RUNNING overrun, further calls are refused instead of piling up."""
    release = threading.Event()

    async def overrun_all() -> None:
        for _ in range(worker.MAX_RUNNING):
            with pytest.raises(ToolError, match="gave up"):
                await worker.run_with_deadline(lambda: release.wait(5), timeout_s=0.01, what="t")
        with pytest.raises(ToolError, match="still running past their time limit"):
            await worker.run_with_deadline(lambda: 1, timeout_s=1, what="t")

    try:
        asyncio.run(overrun_all())
    finally:
        release.set()

    def a_slot_is_free() -> bool:  # once the overrunning threads finish, their slots are free again
        try:
            return asyncio.run(worker.run_with_deadline(lambda: 7, timeout_s=1, what="t")) == 7
        except ToolError:
            return False

    wait_until(a_slot_is_free, timeout_s=5, what="a worker slot to be free again")


def test_errors_inside_the_worker_reach_the_caller() -> None:
    def boom() -> None:
        raise ToolError("bad input")

    with pytest.raises(ToolError, match="bad input"):
        asyncio.run(worker.run_with_deadline(boom, timeout_s=1, what="t"))
