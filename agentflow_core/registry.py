"""What the installed plugins provide, gathered once through the hooks.

The registry is the typed façade over ``pm.hook``: the rest of the code asks it for a tool spec
or an engine factory and never calls a hook by name. Each ``register`` callback records which
plugin an item came from, so a duplicate is an error naming both.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

import attrs

from agentflow_core.benchmark import BenchmarkFactory
from agentflow_core.engine import EngineFactory
from agentflow_core.errors import PluginError
from agentflow_core.records import MODULE_ROLES, ModuleRole
from agentflow_core.tool import ToolFactory, ToolSpec

ModuleFactory = Callable[..., Any]
T = TypeVar("T")


@attrs.frozen
class RegisteredTool:
    spec: ToolSpec
    factory: ToolFactory
    source: str


@attrs.frozen
class RegisteredEngine:
    provider: str
    factory: EngineFactory
    description: str
    source: str


@attrs.frozen
class RegisteredModule:
    role: ModuleRole
    name: str
    factory: ModuleFactory
    source: str


@attrs.frozen
class RegisteredBenchmark:
    name: str
    factory: BenchmarkFactory
    source: str


class ToolRegistrar:
    """The ``register`` passed to ``register_tools``: ``register(spec, factory)``."""

    def __init__(self, into: dict[str, RegisteredTool], source: str) -> None:
        self._into, self._source = into, source

    def __call__(self, spec: ToolSpec, factory: ToolFactory) -> None:
        if not isinstance(spec, ToolSpec):
            raise PluginError(
                f"plugin {self._source} registered a tool with a {type(spec).__name__}, expected ToolSpec"
            )
        if not callable(factory):
            raise PluginError(f"plugin {self._source} registered tool {spec.name!r} without a callable factory")
        _check_schema(spec, self._source)
        _add(self._into, spec.name, RegisteredTool(spec, factory, self._source), "tool")


class EngineRegistrar:
    """The ``register`` passed to ``register_engines``: ``register(provider, factory, description=...)``."""

    def __init__(self, into: dict[str, RegisteredEngine], source: str) -> None:
        self._into, self._source = into, source

    def __call__(self, provider: str, factory: EngineFactory, *, description: str = "") -> None:
        if not provider or ":" in provider:
            raise PluginError(
                f"plugin {self._source} registered an engine provider {provider!r}; use a name without ':'"
            )
        _add(self._into, provider, RegisteredEngine(provider, factory, description, self._source), "engine provider")


class ModuleRegistrar:
    """The ``register`` passed to ``register_modules``: ``register(role, name, factory)``."""

    def __init__(self, into: dict[str, RegisteredModule], source: str) -> None:
        self._into, self._source = into, source

    def __call__(self, role: ModuleRole, name: str, factory: ModuleFactory) -> None:
        if role not in MODULE_ROLES:
            raise PluginError(
                f"plugin {self._source} registered a module for role {role!r}; roles are {', '.join(MODULE_ROLES)}"
            )
        _add(self._into, f"{role}:{name}", RegisteredModule(role, name, factory, self._source), f"{role} module")


class BenchmarkRegistrar:
    """The ``register`` passed to ``register_benchmarks``: ``register(name, factory)``."""

    def __init__(self, into: dict[str, RegisteredBenchmark], source: str) -> None:
        self._into, self._source = into, source

    def __call__(self, name: str, factory: BenchmarkFactory) -> None:
        if not name or not callable(factory):
            raise PluginError(f"plugin {self._source} registered a benchmark without a name or a callable factory")
        _add(self._into, name, RegisteredBenchmark(name, factory, self._source), "benchmark")


def _add(into: dict[str, Any], key: str, item: Any, what: str) -> None:
    if key in into:
        raise PluginError(f"{what} {key!r} is registered twice: by {into[key].source} and by {item.source}")
    into[key] = item


def _check_schema(spec: ToolSpec, source: str) -> None:
    schema = spec.input_schema
    if not isinstance(schema, Mapping) or schema.get("type") != "object":
        raise PluginError(f"plugin {source}: tool {spec.name!r} input_schema must be a JSON schema of type 'object'")


@attrs.frozen
class Registry:
    tools: Mapping[str, RegisteredTool]
    engines: Mapping[str, RegisteredEngine]
    modules: Mapping[str, RegisteredModule]
    benchmarks: Mapping[str, RegisteredBenchmark] = attrs.field(factory=dict)

    def tool(self, name: str) -> RegisteredTool:
        return _lookup(self.tools, name, f"unknown tool {name!r}; installed tools")

    def engine(self, provider: str) -> RegisteredEngine:
        return _lookup(self.engines, provider, f"unknown engine provider {provider!r}; installed")

    def module(self, role: ModuleRole, name: str) -> RegisteredModule:
        same_role = {m.name: m for m in self.modules.values() if m.role == role}
        return _lookup(same_role, name, f"unknown {role} module {name!r}; installed")

    def benchmark(self, name: str) -> RegisteredBenchmark:
        return _lookup(self.benchmarks, name, f"unknown benchmark {name!r}; installed")


def _lookup(items: Mapping[str, T], key: str, unknown: str) -> T:
    try:
        return items[key]
    except KeyError:
        raise PluginError(f"{unknown}: {_names(items)}") from None


def _names(items: Iterable[str]) -> str:
    return ", ".join(sorted(items)) or "none"
