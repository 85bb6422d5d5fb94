"""agentflow_rl's plugin module (entry point ``agentflow_rl``): benchmarks, rewards, training modules, commands.

Registered through the same hooks a third-party package uses. Importing it is cheap: scorers
import math-verify, and the eval matplotlib, only when they run.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from agentflow_core import hookimpl

if TYPE_CHECKING:
    import click

    from agentflow_core.registry import BenchmarkRegistrar, ModuleRegistrar, RewardRegistrar, RolloutBackendRegistrar


@hookimpl
def register_benchmarks(register: BenchmarkRegistrar) -> None:
    from agentflow_rl.benchmarks.catalog import ALL_BENCHMARKS

    for benchmark in ALL_BENCHMARKS:
        register(benchmark.name, lambda benchmark=benchmark: benchmark)


@hookimpl
def register_rewards(register: RewardRegistrar) -> None:
    from agentflow_rl.flow_grpo.rewards import BUILTIN_REWARDS

    for name, (fn, description) in BUILTIN_REWARDS.items():
        register(name, fn, description=description)


@hookimpl
def register_rollout_backends(register: RolloutBackendRegistrar) -> None:
    from agentflow_rl.flow_grpo.backends.inprocess import InProcessBackend
    from agentflow_rl.flow_grpo.backends.worker import WorkerBackend

    register("hf", InProcessBackend, description="generate in the training process, with the live weights")
    register("hf_worker", WorkerBackend, description="generate in a separate process, synced after each step")


@hookimpl
def register_modules(register: ModuleRegistrar) -> None:
    from agentflow_rl.flow_grpo.tool_choice import register_tool_choice_modules

    register_tool_choice_modules(register)


@hookimpl
def register_commands(cli: click.Group) -> None:
    from agentflow_rl.cli import COMMANDS

    for command in COMMANDS:
        cli.add_command(command)
