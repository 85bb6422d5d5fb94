"""Rollouts: G trajectories per question through the real ``Solver``, the Planner on the live policy.

The policy reaches the solver the way any engine does: a plugin registers the provider
``policy`` through ``register_engines``, and its factory wraps the model being trained with
``HFEngine.from_pretrained_objects``. Nothing is patched; the solver, its modules and tools run
exactly as at inference time. Afterwards every planner ``ModuleCall`` that carries a
``TokenTrace`` becomes one training turn.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import attrs

from agentflow_core import Engine, EngineConfig, EngineRegistrar, Solver, TokenTrace, Trajectory, hookimpl
from agentflow_rl.flow_grpo.data import TrainRecord

#: The provider name under which the live policy is registered.
POLICY_PROVIDER = "policy"


class PolicyEngines:
    """Registers ``policy:<name>`` engines that generate with the model being trained.

    The engine shares the model's parameters, so every optimizer step is visible to the next
    rollout without copying weights. It is not a serving engine: one generation at a time.
    """

    def __init__(self, model: Any, tokenizer: Any) -> None:
        self.model, self.tokenizer = model, tokenizer

    @hookimpl
    def register_engines(self, register: EngineRegistrar) -> None:
        register(POLICY_PROVIDER, self._engine, description="the policy being trained by Flow-GRPO (in-process)")

    def _engine(self, config: EngineConfig) -> Engine:
        from agentflow_core.engines.hf_engine import HFEngine

        return HFEngine.from_pretrained_objects(self.model, self.tokenizer, name=config.model, config=config)


@attrs.frozen
class Rollout:
    """One trajectory of a group, and the planner turns the trainer learns from."""

    record: TrainRecord
    #: Index of the question's group within the batch.
    group: int
    trajectory: Trajectory
    turns: tuple[TokenTrace, ...]


def planner_turns(trajectory: Trajectory) -> tuple[TokenTrace, ...]:
    """Every planner call that recorded tokens, in order (analysis included when it used the model)."""
    return tuple(
        call.tokens for call in trajectory.module_calls() if call.role == "planner" and call.tokens is not None
    )


async def rollout_group(solver: Solver, record: TrainRecord, group: int, size: int) -> list[Rollout]:
    """``size`` concurrent solves of one question; sampling temperature is the planner engine's."""
    trajectories = await asyncio.gather(*(solver.asolve(record.question) for _ in range(size)))
    return [Rollout(record, group, t, planner_turns(t)) for t in trajectories]


async def rollout_batch(solver: Solver, records: Sequence[TrainRecord], size: int) -> list[Rollout]:
    """All groups of a batch at once, so tools and fixed modules of one overlap another's decoding."""
    groups = await asyncio.gather(*(rollout_group(solver, r, i, size) for i, r in enumerate(records)))
    return [rollout for group in groups for rollout in group]
