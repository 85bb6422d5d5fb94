"""``agentflow solve`` on the real embedded model: no server, no key, nothing configured.

Slow (a real 135M-parameter model on the CPU) but part of the default suite: it is the README's
first command. Every solve also goes through the copied-text check: no sub-goal, tool argument or
answer may repeat the wording of the prompts or of the tools' schemas (issue 34).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from agentflow_core import Trajectory
from agentflow_core.engines import adapter_files
from agentflow_core.records import MODULE_ROLES, ToolSuccess
from agentflow_core.serde import from_json
from agentflow_core.testing import assert_no_copied_text, registry_with, tool_texts
from agentflow_rl.benchmarks.extract import answer_line
from tests.test_cli import agentflow

pytestmark = pytest.mark.slow


def solve(tmp_path: Path, question: str, *flags: str) -> Trajectory:
    result = agentflow("solve", question, "--json", *flags, cwd=tmp_path, timeout=600)
    assert result.returncode == 0, result.stderr
    trajectory = from_json(result.stdout, Trajectory)
    assert trajectory.error is None
    assert_no_copied_text(trajectory, instructions=tool_texts([t.spec for t in registry_with().tools.values()]))
    return trajectory


def _module_engines(trajectory: Trajectory) -> dict[str, str]:
    return {role: engine for role, engine in trajectory.engines.items() if not role.startswith("tool:")}


def test_solve_on_the_embedded_model(tmp_path: Path) -> None:
    trajectory = solve(tmp_path, "What is the capital of France?", "--max-steps", "2", "--tools", "base_generator")

    shipped = {path.stem for path in adapter_files.shipped_folder().glob("*.gguf")}
    assert _module_engines(trajectory) == {
        role: f"llamacpp:smollm2+{role}" if role in shipped else "llamacpp:smollm2" for role in MODULE_ROLES
    }
    assert "paris" in answer_line(trajectory.answer or "").lower()
    assert trajectory.analysis is not None and trajectory.analysis.text
    assert 1 <= len(trajectory.steps) <= 2
    for step in trajectory.steps:
        assert step.decision.call is not None and step.decision.tool == "base_generator"
        assert step.tool_call.arguments == {"query": step.decision.sub_goal}  # no executor call for a query tool
        assert step.verdict is not None and step.verdict.call is not None
    assert trajectory.final_answer is not None and answer_line(trajectory.final_answer.text)
    roles = {call.role for call in trajectory.module_calls()}
    assert roles == {"planner", "verifier", "generator"}
    structured = [c for c in trajectory.module_calls() if c.purpose in ("next_step", "check", "final_answer")]
    assert structured and all(c.parse_error is None for c in structured), [c.parse_error for c in structured]
    assert all(c.usage.completion_tokens > 0 for c in trajectory.module_calls())


def test_exact_arithmetic_runs_in_the_sandbox(tmp_path: Path, sandbox_image: str) -> None:
    """The README's first question, python_coder named, on the embedded model: the sandbox prints 391."""
    trajectory = solve(tmp_path, "What is 17 * 23?", "--max-steps", "1", "--tools", "python_coder")

    [step] = trajectory.steps
    assert step.decision.tool == "python_coder"
    assert step.tool_call.arguments == {"query": step.decision.sub_goal, "question": "What is 17 * 23?"}
    assert step.result.output.startswith("Output:\n391\n"), step.result  # type: ignore[union-attr]
    assert step.result.value == "391"  # type: ignore[union-attr]
    assert trajectory.final_answer is not None and answer_line(trajectory.final_answer.text) == "391"


def test_a_word_problem_gets_one_expression_under_the_grammar(tmp_path: Path, sandbox_image: str) -> None:
    """Not arithmetic as written, so the embedded model writes the expression (``writes = "auto"``):
    one call, recorded as the executor's, made of the question's numbers and the units it names."""
    import json
    import re

    from agentflow_tools.arithmetic import arithmetic_expression, expression_pattern
    from agentflow_tools.units import units_in

    trajectory = solve(tmp_path, "How many minutes are in 3 hours?", "--max-steps", "1", "--tools", "python_coder")

    [step] = trajectory.steps
    [call] = step.result.calls
    assert (call.role, call.purpose) == ("executor", "expression")
    assert call.engine == trajectory.engines["tool:python_coder"] == trajectory.engines["executor"]
    expression = json.loads(call.response)["expression"]
    question, request = "How many minutes are in 3 hours?", step.decision.sub_goal
    assert re.fullmatch(expression_pattern(question, request), expression), expression
    ran = arithmetic_expression(expression, names=units_in(f"{question} {request}"))  # 2.50 runs as 2.5
    shown = step.result.output if isinstance(step.result, ToolSuccess) else step.result.error
    assert ran is not None and ran in shown
    assert call in list(trajectory.module_calls())
