"""The rollouts a training step keeps for `agentflow view`: chosen, written and read back."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import attrs
import pytest

from agentflow_core import Query, StopReason, Trajectory
from agentflow_rl.flow_grpo.run.kept_rollouts import choose, kept_path, kept_steps, read_kept_rollouts

_EMPTY = Trajectory(Query("q"), None, (), None, None, StopReason.VERIFIER_STOP, 0.0)


@attrs.frozen
class _Rollout:
    group: int
    record: Any = None
    trajectory: Trajectory = _EMPTY
    turns: tuple[Any, ...] = ()


def test_groups_that_disagree_are_kept_first_and_whole() -> None:
    rollouts = [_Rollout(g) for g in (0, 0, 1, 1, 2, 2)]
    rewards = [0.0, 0.0, 1.0, 0.0, 1.0, 1.0]
    assert choose(rollouts, rewards, 3) == [2, 3, 0]
    assert choose(rollouts, rewards, 0) == []
    assert choose(rollouts, rewards, 10) == [2, 3, 0, 1, 4, 5]


def test_a_training_run_keeps_its_rollouts_per_step(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    pytest.importorskip("accelerate")
    from agentflow_rl.flow_grpo import trainer
    from agentflow_rl.flow_grpo.config import load_train_config
    from agentflow_rl.flow_grpo.testing import write_config

    def run(name: str, keep: int) -> Path:
        output = tmp_path / name
        path = write_config(
            tmp_path / f"{name}.toml",
            {
                "rollout": {"group_size": 4, "questions_per_step": 2, "temperature": 1.0, "max_new_tokens": 8},
                "optim": {"lr": 1e-2, "micro_batch_turns": 16},
                "run": {"output_dir": str(output), "max_steps": 2, "eval_every": 0, "checkpoint_every": 0},
            },
        )
        config = load_train_config(path, {"run.trackers": [], "run.sample_rollouts": keep})
        trainer.train(config)
        return output

    output = run("kept", 3)
    assert kept_steps(output) == [1, 2]
    for step in (1, 2):
        samples = read_kept_rollouts(kept_path(output, step))
        assert len(samples) == 3 and {s.step for s in samples} == {step}
        for sample in samples:
            calls = list(sample.trajectory.module_calls())
            assert sample.trained_calls and len(sample.advantages) == len(sample.trained_calls)
            assert all(calls[i].role == "planner" for i in sample.trained_calls)
            assert sample.trained_roles == ("planner",) * len(sample.trained_calls)
            assert all(call.tokens is None for call in calls)  # token ids stay out of the file
            assert sample.reward in (0.0, 1.0) and sample.gold and sample.question == sample.trajectory.query.text
    assert not (run("none", 0) / "samples").exists()
