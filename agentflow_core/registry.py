"""What the installed plugins provide, gathered once through the hooks.

The registry is the typed façade over ``pm.hook``: the rest of the code asks it for a tool spec
or an engine factory and never calls a hook by name. Each ``register`` callback records which
plugin an item came from, so a duplicate is an error naming both (rules: ``registrar.py``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

import attrs

from agentflow_core.benchmark import BenchmarkFactory
from agentflow_core.config import CORE_SECTIONS
from agentflow_core.engine import EngineFactory
from agentflow_core.errors import AgentFlowError, PluginError, one_line
from agentflow_core.records import MODULE_ROLES, ModuleRole
from agentflow_core.registrar import Registrar
from agentflow_core.tool import ToolFactory, ToolReadiness, ToolSpec

if TYPE_CHECKING:
    from agentflow_core.tool_source import ToolSourceFactory

ModuleFactory = Callable[..., Any]
T = TypeVar("T")


@attrs.frozen
class RegisteredTool:
    spec: ToolSpec
    factory: ToolFactory
    source: str
    #: Whose registration of the same name this one took over (``replace=True``), if anyone's.
    replaces: str | None = None
    #: The attrs class the tool structures its ``[tools.NAME]`` table into, so that
    #: ``agentflow config reference`` can document its keys; ``None`` when the plugin did not say.
    settings: type | None = None
    #: Among the tools a solver enables when the config names none: always (``True``), never, or where
    #: this check says the tool can run.
    default: bool | ToolReadiness = False


@attrs.frozen
class RegisteredEngine:
    provider: str
    factory: EngineFactory
    description: str
    source: str
    replaces: str | None = None


@attrs.frozen
class RegisteredModule:
    role: ModuleRole
    name: str
    factory: ModuleFactory
    source: str
    replaces: str | None = None


@attrs.frozen
class RegisteredBenchmark:
    name: str
    factory: BenchmarkFactory
    source: str
    replaces: str | None = None


class ToolRegistrar(Registrar[RegisteredTool]):
    """The ``register`` passed to ``register_tools``:
    ``register(spec, factory, settings=None, replace=False, default=False)``.

    ``settings`` is the attrs class the tool reads its ``[tools.NAME]`` table into, for the config reference.
    ``default`` puts the tool among those a solver enables when the config names none: ``True`` always,
    or a ``ToolReadiness`` check, for a tool that needs something a machine may lack (a daemon, a key).
    """

    what = "tool"

    def __call__(
        self,
        spec: ToolSpec,
        factory: ToolFactory,
        *,
        settings: type | None = None,
        replace: bool = False,
        default: bool | ToolReadiness = False,
    ) -> None:
        if not isinstance(spec, ToolSpec):
            raise PluginError(f"register got a {type(spec).__name__} for a tool, expected a ToolSpec")
        if not callable(factory):
            raise PluginError(f"tool {spec.name!r} was registered without a callable factory")
        if not (isinstance(default, bool) or callable(default)):
            raise PluginError(f"tool {spec.name!r}: default must be true, false or a readiness check")
        _check_schema(spec)
        _check_settings(f"tool {spec.name!r}", settings)
        registered = RegisteredTool(spec, factory, self.source, settings=settings, default=default)
        self._add(spec.name, registered, replace=replace)


class EngineRegistrar(Registrar[RegisteredEngine]):
    """The ``register`` passed to ``register_engines``: ``register(provider, factory, description="...")``."""

    what = "engine provider"

    def __call__(self, provider: str, factory: EngineFactory, *, description: str = "", replace: bool = False) -> None:
        if not provider or not isinstance(provider, str) or ":" in provider:
            raise PluginError(f"engine provider {provider!r} is not a valid name; use a non-empty name without ':'")
        if not callable(factory):
            raise PluginError(f"engine provider {provider!r} was registered without a callable factory")
        self._add(provider, RegisteredEngine(provider, factory, description, self.source), replace=replace)


class ModuleRegistrar(Registrar[RegisteredModule]):
    """The ``register`` passed to ``register_modules``: ``register(role, name, factory, replace=False)``."""

    what = "module"

    def __call__(self, role: ModuleRole, name: str, factory: ModuleFactory, *, replace: bool = False) -> None:
        if role not in MODULE_ROLES:
            raise PluginError(f"a module was registered for role {role!r}; roles are {', '.join(MODULE_ROLES)}")
        if not name or not callable(factory):
            raise PluginError(f"a {role} module was registered without a name or a callable factory")
        self._add(f"{role}:{name}", RegisteredModule(role, name, factory, self.source), replace=replace)


class BenchmarkRegistrar(Registrar[RegisteredBenchmark]):
    """The ``register`` passed to ``register_benchmarks``: ``register(name, factory, replace=False)``."""

    what = "benchmark"

    def __call__(self, name: str, factory: BenchmarkFactory, *, replace: bool = False) -> None:
        if not name or not callable(factory):
            raise PluginError("a benchmark was registered without a name or a callable factory")
        self._add(name, RegisteredBenchmark(name, factory, self.source), replace=replace)


@attrs.frozen
class RegisteredToolSource:
    #: Also the name of the config section the source reads (``mcp`` reads ``[mcp]``).
    name: str
    factory: ToolSourceFactory
    description: str
    source: str
    replaces: str | None = None
    #: The attrs class of the section's settings, for ``agentflow config reference``; ``None`` when not given.
    settings: type | None = None
    #: Set when the section holds one ``settings`` table per name, and how the name is shown: ``NAME``
    #: for ``[mcp.NAME]``. Unset: ``settings`` is the section itself.
    settings_key: str | None = None


class ToolSourceRegistrar(Registrar[RegisteredToolSource]):
    """The ``register`` passed to ``register_tool_sources``: ``register("mcp", factory, description="...")``.

    ``settings`` (an attrs class) documents the section's keys in the config reference; with
    ``settings_key="NAME"`` it is the class of each ``[mcp.NAME]`` table rather than of ``[mcp]``.
    """

    what = "tool source"

    def __call__(
        self,
        name: str,
        factory: ToolSourceFactory,
        *,
        description: str = "",
        settings: type | None = None,
        settings_key: str | None = None,
        replace: bool = False,
    ) -> None:
        if not isinstance(name, str) or not name.isidentifier() or name in CORE_SECTIONS:
            raise PluginError(
                f"tool source {name!r} is not a valid name: it names a config section, so it is an identifier "
                f"other than {', '.join(CORE_SECTIONS)}"
            )
        if not callable(factory):
            raise PluginError(f"tool source {name!r} was registered without a callable factory")
        _check_settings(f"tool source {name!r}", settings)
        if settings_key is not None and (settings is None or not settings_key.isidentifier()):
            raise PluginError(f"tool source {name!r}: settings_key names the tables of a settings class, like 'NAME'")
        registered = RegisteredToolSource(
            name, factory, description, self.source, settings=settings, settings_key=settings_key
        )
        self._add(name, registered, replace=replace)


def _check_settings(what: str, settings: object) -> None:
    if settings is not None and not (isinstance(settings, type) and attrs.has(settings)):
        raise PluginError(f"{what}: settings must be an attrs class (the one its table is read into), got {settings!r}")


def _check_schema(spec: ToolSpec) -> None:
    schema = spec.input_schema
    if not isinstance(schema, Mapping) or schema.get("type") != "object":
        raise PluginError(f"tool {spec.name!r}: input_schema must be a JSON schema of type 'object'")


@attrs.frozen
class Registry:
    """Everything the plugins registered, by key; built by ``agentflow_core.plugins.build_registry``."""

    tools: Mapping[str, RegisteredTool]
    engines: Mapping[str, RegisteredEngine]
    modules: Mapping[str, RegisteredModule]
    benchmarks: Mapping[str, RegisteredBenchmark] = attrs.field(factory=dict)
    #: Keyed by the config section each source reads (``mcp``).
    tool_sources: Mapping[str, RegisteredToolSource] = attrs.field(factory=dict)

    def tool(self, name: str) -> RegisteredTool:
        return lookup(self.tools, name, f"unknown tool {name!r}; installed tools")

    def engine(self, provider: str) -> RegisteredEngine:
        return lookup(self.engines, provider, f"unknown engine provider {provider!r}; installed")

    def module(self, role: ModuleRole, name: str) -> RegisteredModule:
        same_role = {m.name: m for m in self.modules.values() if m.role == role}
        return lookup(same_role, name, f"unknown {role} module {name!r}; installed")

    def benchmark(self, name: str) -> RegisteredBenchmark:
        return lookup(self.benchmarks, name, f"unknown benchmark {name!r}; installed")


#: Each collecting hook: the Registry field it fills, and the ``register`` callback its implementations
#: receive. A new ``register_*`` hook is a spec in hookspecs.py, a Registrar, a field above and a line here.
COLLECTING_HOOKS: Mapping[str, tuple[str, type[Registrar[Any]]]] = {
    "tools": ("register_tools", ToolRegistrar),
    "engines": ("register_engines", EngineRegistrar),
    "modules": ("register_modules", ModuleRegistrar),
    "benchmarks": ("register_benchmarks", BenchmarkRegistrar),
    "tool_sources": ("register_tool_sources", ToolSourceRegistrar),
}


def made(make: Callable[[], T], what: str) -> T:
    """Run a registered factory; a crash in it is one line naming the plugin, not a traceback."""
    try:
        return make()
    except AgentFlowError:
        raise
    except Exception as exc:
        raise PluginError(f"{what} could not be made: {type(exc).__name__}: {one_line(exc)}") from exc


def lookup(items: Mapping[str, T], key: str, unknown: str) -> T:
    """``items[key]``, or a ``PluginError`` that says ``<unknown>: <every installed key>``."""
    try:
        return items[key]
    except KeyError:
        raise PluginError(f"{unknown}: {_names(items)}") from None


def _names(items: Iterable[str]) -> str:
    return ", ".join(sorted(items)) or "none"
