"""The plugin API: every way a package can extend AgentFlow.

A plugin is a module (or object) with functions marked ``@agentflow_core.hookimpl`` whose names
match the specs below, published under the entry-point group ``agentflow``. Each hook receives
a ``register`` callback; a plugin may call it any number of times. Hooks hand over factories,
never live objects, so discovery stays cheap.

Hooks are called through pluggy, so ``@hookimpl(tryfirst=True)``, ``trylast`` and
``wrapper=True`` work as in any pluggy host. Names are unique: registering a name another plugin
(or a built-in) registered is an error naming both, unless the newcomer passes ``replace=True``
to ``register`` (``cli.add_command(cmd, replace=True)`` for commands). A hook that raises is a
warning naming its distribution, and what it registered in that call is dropped.

A package built on the core may declare hooks of its own for its plugins to implement, through
``register_hookspecs``: agentflow_rl's training hooks (``register_rewards``,
``register_rollout_backends``) are declared that way, in ``agentflow_rl.flow_grpo.hookspecs``.
"""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType
from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from agentflow_core.cli.registrar import CommandRegistrar
    from agentflow_core.registry import (
        BenchmarkRegistrar,
        EngineRegistrar,
        ModuleRegistrar,
        ToolRegistrar,
        ToolSourceRegistrar,
    )

hookspec = pluggy.HookspecMarker("agentflow")
hookimpl = pluggy.HookimplMarker("agentflow")


@hookspec
def register_tools(register: ToolRegistrar) -> None:
    """Register tools: ``register(ToolSpec, factory)``."""


@hookspec
def register_tool_sources(register: ToolSourceRegistrar) -> None:
    """Register sources of tools learnt when a solver starts (MCP servers): ``register("section", factory)``."""


@hookspec
def register_engines(register: EngineRegistrar) -> None:
    """Register LLM engine providers: ``register("provider", factory, description=...)``."""


@hookspec
def register_modules(register: ModuleRegistrar) -> None:
    """Register module implementations: ``register("planner", "name", factory)``."""


@hookspec
def register_benchmarks(register: BenchmarkRegistrar) -> None:
    """Register evaluation benchmarks: ``register("name", factory)``."""


@hookspec
def register_hookspecs(register: Callable[[ModuleType | type], None]) -> None:
    """Declare hooks for other plugins to implement: ``register(namespace)``, its functions marked ``@hookspec``."""


@hookspec
def register_commands(cli: CommandRegistrar) -> None:
    """Add subcommands to the ``agentflow`` CLI: ``@cli.command()``, or ``cli.add_command(cmd, replace=False)``."""
