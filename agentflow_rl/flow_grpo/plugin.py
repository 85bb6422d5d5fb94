"""Training's plugin (entry point ``flow_grpo``): its hooks, the built-in rewards, rollout backends, task modules.

Registered like any third party's, and loaded by a training run without loading any command:
importing it is cheap, each hook imports what it registers.
"""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType
from typing import TYPE_CHECKING

from agentflow_core import hookimpl

if TYPE_CHECKING:
    from agentflow_core import ModuleRegistrar
    from agentflow_rl.flow_grpo.registry import RewardRegistrar, RolloutBackendRegistrar


@hookimpl
def register_hookspecs(register: Callable[[ModuleType | type], None]) -> None:
    from agentflow_rl.flow_grpo import hookspecs

    register(hookspecs)


@hookimpl
def register_rewards(register: RewardRegistrar) -> None:
    from agentflow_rl.flow_grpo.rewards import BUILTIN_REWARDS

    for name, (fn, description) in BUILTIN_REWARDS.items():
        register(name, fn, description=description)


@hookimpl
def register_rollout_backends(register: RolloutBackendRegistrar) -> None:
    from agentflow_rl.flow_grpo.config import VLLM_BACKEND
    from agentflow_rl.flow_grpo.model.backends.fleet import FleetBackend
    from agentflow_rl.flow_grpo.model.backends.inprocess import InProcessBackend
    from agentflow_rl.flow_grpo.model.backends.worker import WorkerBackend

    register("hf", InProcessBackend, description="generate in the training process, with the live weights")
    register("hf_worker", WorkerBackend, description="generate in a separate process, synced after each step")
    register(VLLM_BACKEND, FleetBackend, description="generate on vLLM servers that load each step's weights")


@hookimpl
def register_modules(register: ModuleRegistrar) -> None:
    from agentflow_rl.flow_grpo.tasks.decisions_only import DecisionsOnlyPlanner
    from agentflow_rl.flow_grpo.tasks.tool_choice import register_tool_choice_modules

    register_tool_choice_modules(register)
    register("planner", "default_decisions", DecisionsOnlyPlanner)
