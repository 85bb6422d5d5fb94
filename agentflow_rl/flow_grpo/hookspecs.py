"""The training hooks: how a plugin adds rewards and rollout backends, declared by agentflow_rl.

The core knows nothing of training; ``agentflow_rl.flow_grpo.plugin`` declares these specs through
the core's ``register_hookspecs`` hook, and any plugin implements them with ``@hookimpl`` like the
core's own hooks. What each ``register`` accepts is in ``agentflow_rl.flow_grpo.registry``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from agentflow_core import hookspec

if TYPE_CHECKING:
    from agentflow_rl.flow_grpo.registry import RewardRegistrar, RolloutBackendRegistrar


@hookspec
def register_rewards(register: RewardRegistrar) -> None:
    """Register reward functions: ``register("name", fn, description=...)``, ``fn(RewardContext) -> float``."""


@hookspec
def register_rollout_backends(register: RolloutBackendRegistrar) -> None:
    """Register where trained modules generate: ``register("name", factory, description=...)``,
    ``factory(BackendContext) -> RolloutBackend``."""
