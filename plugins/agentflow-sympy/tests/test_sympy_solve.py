"""A whole solve with ``symbolic_math`` enabled, on scripted models from ``agentflow_core.testing``.

This is how a plugin author checks the integration: the installed plugin is found through its
entry point, the planner picks the tool, the executor's arguments reach it, and its real output
lands in the trajectory and in the prompts that follow.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from agentflow_core import Solver, ToolFailure, ToolSuccess, load_config
from agentflow_core.testing import Reply, ScriptedOpenAIServer, scripted_json


@pytest.fixture
def server() -> Iterator[ScriptedOpenAIServer]:
    with ScriptedOpenAIServer() as server:
        yield server


@pytest.fixture(autouse=True)
def plugins_on(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AGENTFLOW_DISABLE_PLUGINS", raising=False)


def config_file(tmp_path: Path, server: ScriptedOpenAIServer) -> Path:
    roles = "\n".join(
        f'{role} = {{ model = "openai:{role}", base_url = "{server.base_url}" }}'
        for role in ("planner", "executor", "verifier", "generator")
    )
    path = tmp_path / "agentflow.toml"
    path.write_text(
        f'[agent]\ntools = ["symbolic_math"]\n\n[engines]\n{roles}\n\n[tools.symbolic_math]\ntimeout_s = 30\n'
    )
    return path


def script(server: ScriptedOpenAIServer, arguments: dict[str, str]) -> None:
    server.enqueue(
        "planner",
        Reply("A quadratic: solve it exactly."),
        scripted_json({"question": "Find the roots.", "tool": "symbolic_math"}),
    )
    server.enqueue("executor", scripted_json({"arguments": arguments}))
    server.enqueue("verifier", scripted_json({"analysis": "done", "decision": "STOP"}))
    server.enqueue("generator", Reply("The roots are 2 and 3."))


def test_the_tool_output_reaches_the_trajectory(tmp_path: Path, server: ScriptedOpenAIServer) -> None:
    script(server, {"expression": "x**2 - 5*x + 6", "operation": "solve", "variable": "x"})
    with Solver(load_config(config_file(tmp_path, server))) as solver:
        trajectory = solver.solve("What are the roots of x^2 - 5x + 6?")
    (step,) = trajectory.steps
    assert step.result == ToolSuccess("solutions for x: [2, 3]", elapsed_s=step.result.elapsed_s)
    assert trajectory.final_answer is not None and trajectory.final_answer.text == "The roots are 2 and 3."
    # The verifier read the real result in its prompt.
    verifier_prompt = server.requests_for("verifier")[0].messages[-1]["content"]
    assert "solutions for x: [2, 3]" in verifier_prompt
    # The executor was asked for exactly the tool's schema.
    schema = server.requests_for("executor")[0].response_format["json_schema"]["schema"]  # type: ignore[index]
    assert schema["properties"]["arguments"]["properties"]["operation"]["enum"][0] == "simplify"


def test_a_refused_expression_is_an_observation_not_a_crash(tmp_path: Path, server: ScriptedOpenAIServer) -> None:
    script(server, {"expression": "__import__('os').getcwd()", "operation": "simplify"})
    with Solver(load_config(config_file(tmp_path, server))) as solver:
        trajectory = solver.solve("Where am I?")
    result = trajectory.steps[0].result
    assert isinstance(result, ToolFailure) and "is not allowed" in result.error
    assert trajectory.final_answer is not None
