"""Rollouts: G trajectories per question through the real ``Solver``, trained modules on the live policy.

The policy reaches the solver the way any engine does: a plugin registers the provider
``policy`` through ``register_engines``; ``policy:<role>`` generates with that trained module's
weights (its LoRA adapter, or its own model) and ``policy:base`` with the untrained base. Nothing is
patched; the solver, its modules and tools run exactly as at inference time. Afterwards every
``ModuleCall`` of a trained module that carries a ``TokenTrace`` becomes one training turn.

A group that does not finish within ``timeout_s`` is cut off: its trajectories are dropped from the
step and counted, so a hung tool or module shows in the log instead of stalling the run.
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection, Sequence
from typing import Any

import attrs

from agentflow_core import EngineRegistrar, Solver, TokenTrace, Trajectory, hookimpl
from agentflow_core.engine import EngineFactory
from agentflow_core.engines.token_runtime import SerialWorker, engine_for_model
from agentflow_core.records import ModuleRole
from agentflow_rl.flow_grpo.model.backends.base import RolloutBackendError
from agentflow_rl.flow_grpo.tasks.records import TrainRecord

#: The provider name under which the live policy is registered.
POLICY_PROVIDER = "policy"
#: What the paper trains, and what a rollout collects turns of unless told otherwise.
PLANNER_ONLY: tuple[ModuleRole, ...] = ("planner",)


class PolicyEngines:
    """Registers the provider ``policy``: ``policy:<role>`` generates with that trained module's weights.

    ``make`` is the engine factory of the run's rollout backend, which is chosen before this plugin
    is made; it runs only when a solver makes its engines.
    """

    def __init__(self, make: EngineFactory) -> None:
        self.make = make

    @classmethod
    def for_model(cls, model: Any, tokenizer: Any) -> PolicyEngines:
        """Every ``policy:<name>`` engine generates with this one model (tests, one-off rollouts)."""
        worker = SerialWorker()
        return cls(lambda config: engine_for_model(model, tokenizer, config, worker=worker))

    @hookimpl
    def register_engines(self, register: EngineRegistrar) -> None:
        register(POLICY_PROVIDER, self.make, description="the modules being trained by Flow-GRPO")


@attrs.frozen
class TrainTurn:
    """One LLM call of a trained module, with what it sampled."""

    role: ModuleRole
    trace: TokenTrace


@attrs.frozen
class Rollout:
    """One trajectory of a group, and the trained modules' turns the trainer learns from."""

    record: TrainRecord
    #: Index of the question's group within the batch.
    group: int
    trajectory: Trajectory
    turns: tuple[TrainTurn, ...]

    def turns_of(self, role: ModuleRole) -> tuple[TrainTurn, ...]:
        return tuple(t for t in self.turns if t.role == role)


def trained_turns(trajectory: Trajectory, roles: Collection[ModuleRole]) -> tuple[TrainTurn, ...]:
    """Every call of a trained module that recorded tokens, in the order they were made."""
    return tuple(
        TrainTurn(call.role, call.tokens)
        for call in trajectory.module_calls()
        if call.role in roles and call.tokens is not None
    )


def planner_turns(trajectory: Trajectory) -> tuple[TokenTrace, ...]:
    """The planner's recorded calls (analysis included when it used the model)."""
    return tuple(turn.trace for turn in trained_turns(trajectory, PLANNER_ONLY))


def refuse_stale(rollouts: Sequence[Rollout], expected: int | None) -> None:
    """Fail the step, in one line, on a trained turn sampled by other weights than the ones just published.

    ``expected`` is the backend's (``RolloutBackend.expected_version``); ``None`` checks nothing.
    Never trained on silently: a stale turn's log-probabilities belong to a policy the trainer no
    longer holds, and its ratio would be against the wrong weights.
    """
    if expected is None:
        return
    for rollout in rollouts:
        for turn in rollout.turns:
            got = turn.trace.policy_version
            if got != expected:
                sampled = "weights of no single version" if got is None else f"weights version {got}"
                raise RolloutBackendError(
                    f"{turn.role}: a sample came from {sampled}, but the trainer published version {expected} "
                    "for this batch; refusing to train on a stale sample"
                )


@attrs.frozen
class RolloutBatch:
    rollouts: list[Rollout]
    #: Groups cut off by the deadline (their trajectories are not in ``rollouts``).
    timed_out: int = 0


async def rollout_group(
    solver: Solver, record: TrainRecord, group: int, size: int, roles: Collection[ModuleRole] = PLANNER_ONLY
) -> list[Rollout]:
    """``size`` concurrent solves of one question; sampling temperature is each engine's."""
    trajectories = await asyncio.gather(*(solver.asolve(record.question) for _ in range(size)))
    return [Rollout(record, group, t, trained_turns(t, roles)) for t in trajectories]


async def rollout_batch(
    solver: Solver,
    records: Sequence[TrainRecord],
    size: int,
    roles: Collection[ModuleRole] = PLANNER_ONLY,
    *,
    timeout_s: float | None = None,
) -> RolloutBatch:
    """All groups of a batch at once, so tools and fixed modules of one overlap another's decoding."""

    async def one(index: int, record: TrainRecord) -> list[Rollout] | None:
        try:
            async with asyncio.timeout(timeout_s):
                return await rollout_group(solver, record, index, size, roles)
        except TimeoutError:
            return None

    groups = await asyncio.gather(*(one(i, r) for i, r in enumerate(records)))
    rollouts = [rollout for group in groups if group is not None for rollout in group]
    return RolloutBatch(rollouts, timed_out=sum(group is None for group in groups))
