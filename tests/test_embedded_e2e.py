"""``agentflow solve`` on the real embedded model: no server, no key, nothing configured.

Slow (a real 135M-parameter model on the CPU) but part of the default suite: it is the README's
first command.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from agentflow_core import Trajectory
from agentflow_core.serde import from_json
from tests.test_cli import agentflow

pytestmark = pytest.mark.slow


def test_solve_on_the_embedded_model(tmp_path: Path) -> None:
    result = agentflow(
        "solve", "What is the capital of France?", "--max-steps", "2", "--json", cwd=tmp_path, timeout=600
    )
    assert result.returncode == 0, result.stderr
    trajectory = from_json(result.stdout, Trajectory)

    assert trajectory.error is None
    assert set(trajectory.engines.values()) == {"llamacpp:smollm2"}
    assert trajectory.analysis is not None and trajectory.analysis.text
    assert 1 <= len(trajectory.steps) <= 2
    for step in trajectory.steps:
        assert step.decision.call is not None and step.tool_call.call is not None
        assert step.verdict is not None and step.verdict.call is not None
        assert step.decision.tool == "base_generator"
    assert trajectory.final_answer is not None and trajectory.final_answer.text
    roles = {call.role for call in trajectory.module_calls()}
    assert roles == {"planner", "executor", "verifier", "generator"}
    structured = [c for c in trajectory.module_calls() if c.purpose in ("next_step", "command", "check")]
    assert structured and all(c.parse_error is None for c in structured), [c.parse_error for c in structured]
    assert all(c.usage.completion_tokens > 0 for c in trajectory.module_calls())
