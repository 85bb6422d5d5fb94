"""Registers the default module implementations, through the same hook a third party uses."""

from __future__ import annotations

from agentflow_core.hookspecs import hookimpl
from agentflow_core.modules.executor import DefaultExecutor
from agentflow_core.modules.generator import DefaultGenerator
from agentflow_core.modules.planner import DefaultPlanner
from agentflow_core.modules.verifier import DefaultVerifier
from agentflow_core.registry import ModuleRegistrar


@hookimpl
def register_modules(register: ModuleRegistrar) -> None:
    register("planner", "default", DefaultPlanner)
    register("executor", "default", DefaultExecutor)
    register("verifier", "default", DefaultVerifier)
    register("generator", "default", DefaultGenerator)
