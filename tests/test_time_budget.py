"""``max_time_s`` bounds the whole solve, the answer included, against servers that never answer (#33).

Every engine here has the default ``timeout_s`` of 120 s and several attempts: without the budget
cutting them, each of these solves would take minutes (one took 492 s before).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from agentflow_core import Solver, StopReason
from agentflow_core.config import config_from_dict
from agentflow_core.plugins import load_registry
from agentflow_core.registry import Registry
from agentflow_core.testing import Reply, ScriptedOpenAIServer, scripted_json
from tests.helpers import TestTools, silent_port

#: How far past ``max_time_s`` a solve may return: the cut itself and closing what it cut (docs/reliability.md).
SLACK_S = 1.0
#: What starting and ending the ``agentflow`` process may add on a busy machine, on top of the slack.
PROCESS_S = 15.0


def engine(base_url: str, model: str) -> dict[str, object]:
    # timeout_s and max_attempts as a user leaves them: the budget, not these, must end the wait.
    return {"model": f"openai:{model}", "base_url": base_url, "options": {"retry_base_s": 0.01}}


def config(base_url: str, *, agent: dict[str, object], tools: tuple[str, ...] = ("base_generator",), **models: str):
    return config_from_dict(
        {
            "agent": {"tools": list(tools), **agent},
            "engines": {role: engine(base_url, model) for role, model in models.items()},
            # base_generator would use the generator's engine; here it has the default's.
            "tools": {"base_generator": {"engine": engine(base_url, models["default"])}},
        }
    )


@pytest.fixture
def server():
    with ScriptedOpenAIServer() as server:
        yield server


def script_turn(server: ScriptedOpenAIServer, tool: str = "base_generator") -> None:
    server.enqueue("m", Reply("analysis"), scripted_json({"tool": tool, "question": "6*7?"}))
    if tool != "base_generator":  # base_generator takes the planner's question as it stands: no executor call
        server.enqueue("m", scripted_json({"arguments": {"text": "6*7?"}}))
    server.enqueue("m", Reply("42"), scripted_json({"analysis": "done", "decision": "STOP"}))


async def test_a_server_that_never_answers_is_cut_by_the_budget(registry: Registry) -> None:
    with silent_port() as port:
        agent = {"max_time_s": 2, "answer_reserve_s": 0.5}
        async with Solver(config(f"http://127.0.0.1:{port}/v1", agent=agent, default="m"), registry=registry) as solver:
            started = time.perf_counter()
            trajectory = await solver.asolve("q")
            elapsed = time.perf_counter() - started
    assert elapsed < 2 + SLACK_S
    assert trajectory.stop_reason is StopReason.MAX_TIME
    assert trajectory.final_answer is None and trajectory.analysis is None
    assert trajectory.error == (
        "the time budget (max_time_s = 2 s, 0.5 s of it kept for the answer) ran out during the planner's analyze "
        "call; then the generator's final_answer call ran out too: no answer"
    )


async def test_a_hanging_generator_cannot_hold_the_solve(server: ScriptedOpenAIServer, registry: Registry) -> None:
    script_turn(server)
    server.enqueue("m-gen", Reply("too late", delay_s=600))
    solver_config = config(server.base_url, agent={"max_time_s": 3}, default="m", generator="m-gen")
    async with Solver(solver_config, registry=registry) as solver:
        trajectory = await solver.asolve("What is 6 times 7?")
    assert trajectory.elapsed_s < 3 + SLACK_S
    # The loop ended as it would have; the answer did not come, and the error says so.
    [only] = trajectory.steps
    assert only.result.output == "42"  # type: ignore[union-attr]
    assert trajectory.stop_reason is StopReason.MAX_TIME and trajectory.final_answer is None
    assert trajectory.error is not None and trajectory.error.endswith(
        "ran out during the generator's final_answer call: no answer"
    )


async def test_the_loop_stops_early_enough_to_leave_the_answer_its_reserve(server: ScriptedOpenAIServer) -> None:
    registry = load_registry(entry_points=False, extra=[TestTools()])
    script_turn(server, tool="sleepy")  # the tool never returns; the tool timeout (120 s) is far away
    server.enqueue("m-gen", Reply("6 times 7 is 42", delay_s=0.5))  # a generator that takes its time
    agent = {"max_time_s": 3, "answer_reserve_s": 1.5}
    solver_config = config(server.base_url, agent=agent, tools=("sleepy",), default="m", generator="m-gen")
    async with Solver(solver_config, registry=registry) as solver:
        trajectory = await solver.asolve("What is 6 times 7?")
    assert 1.5 <= trajectory.elapsed_s < 3 + SLACK_S
    assert trajectory.answer == "6 times 7 is 42"
    assert trajectory.stop_reason is StopReason.MAX_TIME
    assert trajectory.error == (
        "the time budget (max_time_s = 3 s, 1.5 s of it kept for the answer) ran out during the call of tool "
        "'sleepy' (turn 1)"
    )
    # The turn the budget cut keeps the calls it made: the planner's decision and the executor's call.
    assert trajectory.steps == ()
    assert trajectory.unfinished is not None and trajectory.unfinished.tool_call is not None
    assert trajectory.unfinished.tool_call.tool == "sleepy"
    assert [(c.role, c.purpose) for c in trajectory.module_calls()] == [
        ("planner", "analyze"),
        ("planner", "next_step"),
        ("executor", "command"),
        ("generator", "final_answer"),
    ]


# -- the CLI, as a user runs it -----------------------------------------------------------------


def run_solve(tmp_path: Path, config_text: str, timeout: float) -> tuple[subprocess.CompletedProcess[str], float]:
    (tmp_path / "agentflow.toml").write_text(config_text)
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "agentflow_core", "solve", "What is 6 times 7?", "--json"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    return result, time.perf_counter() - started


def engines_toml(base_url: str, **models: str) -> str:
    tables = [f'{role} = {{ model = "openai:{model}", base_url = "{base_url}" }}' for role, model in models.items()]
    tool = f'engine = {{ model = "openai:{models["default"]}", base_url = "{base_url}" }}'
    return "\n".join(tables) + f"\n\n[tools.base_generator]\n{tool}\n"


def test_agentflow_solve_returns_within_the_budget_from_a_silent_server(tmp_path: Path) -> None:
    with silent_port() as port:
        text = f"[agent]\nmax_time_s = 5\n\n[engines]\n{engines_toml(f'http://127.0.0.1:{port}/v1', default='m')}\n"
        result, wall = run_solve(tmp_path, text, timeout=5 + SLACK_S + PROCESS_S + 60)
    assert wall < 5 + SLACK_S + PROCESS_S, wall
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "Error: the time budget (max_time_s = 5 s, 1 s of it kept for the answer) ran out during the planner's "
        "analyze call; then the generator's final_answer call ran out too: no answer"
    ]
    assert json.loads(result.stdout)["elapsed_s"] < 5 + SLACK_S


def test_agentflow_solve_returns_within_the_budget_when_only_the_generator_hangs(
    tmp_path: Path, server: ScriptedOpenAIServer
) -> None:
    script_turn(server)
    server.enqueue("g", Reply("too late", delay_s=600))
    # base_generator alone: where Docker runs, python_coder would claim "6 times 7" before the script's tool.
    agent = '[agent]\nmax_time_s = 5\ntools = ["base_generator"]\n'
    text = f"{agent}\n[engines]\n{engines_toml(server.base_url, default='m', generator='g')}\n"
    result, wall = run_solve(tmp_path, text, timeout=5 + SLACK_S + PROCESS_S + 60)
    assert wall < 5 + SLACK_S + PROCESS_S, wall
    assert result.returncode == 1
    [line] = result.stderr.strip().splitlines()
    assert line.endswith("ran out during the generator's final_answer call: no answer"), line
    trajectory = json.loads(result.stdout)
    assert trajectory["elapsed_s"] < 5 + SLACK_S
    assert trajectory["final_answer"] is None and trajectory["stop_reason"] == "max_time"
    assert len(trajectory["steps"]) == 1


@pytest.mark.parametrize("value", ["0", "-1", "0.0", "nan", "inf"])
def test_an_engine_timeout_that_would_wait_forever_is_refused_at_load(tmp_path: Path, value: str) -> None:
    text = f'[engines]\nplanner = {{ model = "openai:m", base_url = "http://127.0.0.1:9/v1", timeout_s = {value} }}\n'
    result, _ = run_solve(tmp_path, text, timeout=60)
    assert result.returncode == 1 and result.stdout == ""
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("Error: agentflow.toml: engines.planner") and "timeout_s" in line, line
