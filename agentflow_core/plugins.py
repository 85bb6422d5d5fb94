"""Finding plugins: built-ins, entry points, and the off-switches.

Each entry point is loaded on its own, so one broken plugin is a warning naming its
distribution, never a dead CLI. ``AGENTFLOW_DISABLE_PLUGINS=a,b`` (or ``*``) skips entry points
by name or distribution to bisect a bad install; ``AGENTFLOW_STRICT_PLUGINS=1`` turns the
warnings into errors, for plugin authors.
"""

from __future__ import annotations

import importlib
import os
import warnings
from collections.abc import Iterable, Mapping
from importlib import metadata
from types import ModuleType
from typing import Any

import pluggy

from agentflow_core import hookspecs
from agentflow_core.errors import PluginError
from agentflow_core.registry import (
    BenchmarkRegistrar,
    EngineRegistrar,
    ModuleRegistrar,
    RegisteredBenchmark,
    RegisteredEngine,
    RegisteredModule,
    RegisteredTool,
    Registry,
    ToolRegistrar,
)

ENTRY_POINT_GROUP = "agentflow"

#: The core's own plugins, registered like any other (tools ship as an entry point).
BUILTIN_PLUGINS = (
    "agentflow_core.engines.plugin",
    "agentflow_core.modules.plugin",
)


class PluginLoadWarning(UserWarning):
    """A plugin could not be loaded; the others were."""


class AgentFlowPluginManager(pluggy.PluginManager):
    """A pluggy manager that remembers which distribution each entry-point plugin came from."""

    def __init__(self) -> None:
        super().__init__("agentflow")
        self.distributions: dict[str, str] = {}


def make_plugin_manager(
    *, entry_points: bool = True, extra: Iterable[Any] = (), env: Mapping[str, str] | None = None
) -> AgentFlowPluginManager:
    """A fresh manager: built-ins, then installed entry points, then ``extra`` plugin objects."""
    env = os.environ if env is None else env
    pm = AgentFlowPluginManager()
    pm.add_hookspecs(hookspecs)
    for name in BUILTIN_PLUGINS:
        pm.register(importlib.import_module(name), name=name)
    if entry_points:
        _load_entry_points(pm, env)
    for plugin in extra:
        pm.register(plugin)
    pm.check_pending()
    return pm


def _load_entry_points(pm: AgentFlowPluginManager, env: Mapping[str, str]) -> None:
    disabled = {d.strip() for d in env.get("AGENTFLOW_DISABLE_PLUGINS", "").split(",") if d.strip()}
    strict = env.get("AGENTFLOW_STRICT_PLUGINS", "") not in ("", "0")
    if "*" in disabled:
        return
    for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
        dist = ep.dist.name if ep.dist else "?"
        if ep.name in disabled or dist in disabled or pm.get_plugin(ep.name) is not None:
            continue
        try:
            pm.register(ep.load(), name=ep.name)
            pm.distributions[ep.name] = f"{dist} {ep.dist.version if ep.dist else ''}".strip()
        except Exception as exc:
            message = f'Error loading plugin "{ep.name}" from {dist}: {type(exc).__name__}: {exc}'
            if strict:
                raise PluginError(message) from exc
            warnings.warn(message, PluginLoadWarning, stacklevel=2)


def plugin_source(pm: pluggy.PluginManager, plugin: object) -> str:
    """The distribution (or module) a plugin came from, for provenance and error messages."""
    name = pm.get_name(plugin) or repr(plugin)
    if isinstance(pm, AgentFlowPluginManager) and name in pm.distributions:
        return f"{pm.distributions[name]} ({name})"
    if not isinstance(plugin, ModuleType):  # an object registered in code: pluggy names it by id()
        name = f"{type(plugin).__module__}.{type(plugin).__qualname__}"
    return f"agentflow (built-in {name})" if name in BUILTIN_PLUGINS else name


def build_registry(pm: pluggy.PluginManager) -> Registry:
    """Ask every plugin what it provides, one implementation at a time so provenance is exact."""
    tools: dict[str, RegisteredTool] = {}
    engines: dict[str, RegisteredEngine] = {}
    modules: dict[str, RegisteredModule] = {}
    benchmarks: dict[str, RegisteredBenchmark] = {}
    registrars = (
        (pm.hook.register_tools, lambda src: ToolRegistrar(tools, src)),
        (pm.hook.register_engines, lambda src: EngineRegistrar(engines, src)),
        (pm.hook.register_modules, lambda src: ModuleRegistrar(modules, src)),
        (pm.hook.register_benchmarks, lambda src: BenchmarkRegistrar(benchmarks, src)),
    )
    for caller, make in registrars:
        # get_hookimpls() is in registration order (pluggy *calls* them in reverse): built-ins first.
        for impl in caller.get_hookimpls():
            impl.function(register=make(plugin_source(pm, impl.plugin)))
    return Registry(tools=tools, engines=engines, modules=modules, benchmarks=benchmarks)


def load_registry(*, entry_points: bool = True, extra: Iterable[ModuleType | object] = ()) -> Registry:
    return build_registry(make_plugin_manager(entry_points=entry_points, extra=extra))
