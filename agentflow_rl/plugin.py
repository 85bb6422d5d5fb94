"""agentflow_rl's plugin module (entry point ``agentflow_rl``): benchmarks and the commands.

Registered through the same hooks a third-party package uses. Importing it is cheap: scorers
import math-verify, and the eval matplotlib, only when they run. Training registers through its
own plugin module, ``agentflow_rl.flow_grpo.plugin`` (entry point ``flow_grpo``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from agentflow_core import hookimpl

if TYPE_CHECKING:
    import click

    from agentflow_core.registry import BenchmarkRegistrar


@hookimpl
def register_benchmarks(register: BenchmarkRegistrar) -> None:
    from agentflow_rl.benchmarks.catalog import ALL_BENCHMARKS

    for benchmark in ALL_BENCHMARKS:
        register(benchmark.name, lambda benchmark=benchmark: benchmark)


@hookimpl
def register_commands(cli: click.Group) -> None:
    from agentflow_rl.cli import COMMANDS

    for command in COMMANDS:
        cli.add_command(command)
