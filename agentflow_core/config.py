"""``agentflow.toml``: read once, structured by the converter into frozen attrs classes.

Every error names the key and the file, e.g.
``agentflow.toml: engines.planner: engine 'gpt4' is not of the form provider:model``.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

import attrs
import cattrs
import cattrs.gen
from cattrs.v import format_exception

from agentflow_core.engine import EngineConfig, split_model
from agentflow_core.errors import ConfigError
from agentflow_core.records import MODULE_ROLES, ModuleRole

T = TypeVar("T")

#: The config's own sections; every other top-level table belongs to a tool source (``[mcp]``).
CORE_SECTIONS = ("agent", "engines", "modules", "tools")

#: What every module runs on when nothing is configured: SmolLM2-135M-Instruct, shipped in a wheel.
EMBEDDED_ENGINE = "llamacpp:smollm2"


@attrs.frozen
class AgentConfig:
    #: Tools the planner may choose from, by name; unset: the default tools that can run here
    #: (``base_generator``, and ``python_coder`` where Docker and the sandbox image are present).
    tools: tuple[str, ...] | None = None
    #: Turns of plan, execute, verify before the generator must answer.
    max_steps: int = attrs.field(default=5, validator=attrs.validators.ge(1))
    #: Wall-clock budget of the loop; the final answer is still written when it runs out.
    max_time_s: float = attrs.field(default=300.0, validator=attrs.validators.gt(0))
    #: Token budget over all module calls of one solve; ``None`` for no budget.
    max_tokens: int | None = None
    #: Wall-clock limit of one tool call.
    tool_timeout_s: float = attrs.field(default=120.0, validator=attrs.validators.gt(0))
    #: Also ask the generator for a direct answer without tools (the reference's "direct output").
    direct_answer: bool = False


@attrs.frozen
class EnginesConfig:
    """Per-module engines; a module without its own falls back to ``default``."""

    default: EngineConfig | None = None
    planner: EngineConfig | None = None
    executor: EngineConfig | None = None
    verifier: EngineConfig | None = None
    generator: EngineConfig | None = None

    def for_module(self, role: ModuleRole) -> EngineConfig:
        chosen: EngineConfig | None = getattr(self, role) or self.default
        return chosen or EngineConfig(model=EMBEDDED_ENGINE)


@attrs.frozen
class ModulesConfig:
    """Which registered implementation plays each role."""

    planner: str = "default"
    executor: str = "default"
    verifier: str = "default"
    generator: str = "default"


@attrs.frozen
class ToolConfig:
    #: Engine for tools that call an LLM; default: the generator's engine, as in the paper.
    engine: EngineConfig | None = None
    #: Every other key of ``[tools.NAME]``, handed to the tool, which validates it.
    settings: Mapping[str, Any] = attrs.field(factory=dict)


@attrs.frozen
class Config:
    agent: AgentConfig = AgentConfig()
    engines: EnginesConfig = EnginesConfig()
    modules: ModulesConfig = ModulesConfig()
    tools: Mapping[str, ToolConfig] = attrs.field(factory=dict)
    #: Every other top-level table (``[mcp]``), kept for the tool source of that name, which checks it.
    #: A solver rejects a section no installed tool source claims.
    tool_source_sections: Mapping[str, Mapping[str, Any]] = attrs.field(factory=dict)
    #: Where this config was read from, for error messages; not part of the file.
    source: str = attrs.field(default="config", eq=False)
    #: Keys set by command-line flags rather than the file, and the flag: ``{"engines.planner": "--planner-engine"}``.
    origins: Mapping[str, str] = attrs.field(factory=dict, eq=False)

    def where(self, key: str) -> str:
        """How an error about ``key`` starts: the flag that set it, else the file and the key."""
        return self.origins.get(key) or f"{self.source}: {key}"

    def engine_key(self, role: ModuleRole) -> str:
        """The key that chose ``role``'s engine: its own, else the default's."""
        return f"engines.{role}" if getattr(self.engines, role) is not None else "engines.default"

    def tool_engine(self, name: str) -> EngineConfig:
        own = self.tools.get(name)
        return (own.engine if own and own.engine else None) or self.engines.for_module("generator")

    def tool_settings(self, name: str) -> Mapping[str, Any]:
        own = self.tools.get(name)
        return own.settings if own else {}


_SCALARS: dict[type, str] = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}


def _strict_scalar(value: Any, type_: type) -> Any:
    # TOML values are already typed; cattrs' default int("5") / int(5.7) coercion would hide mistakes.
    ok = isinstance(value, type_) and not (type_ is int and isinstance(value, bool))
    if type_ is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if not ok:
        raise TypeError(f"expected {_SCALARS[type_]}, got {value!r}")
    return value


def _string_list(value: Any, _: type) -> tuple[str, ...]:
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"expected a list of strings, got {value!r}")
    return tuple(value)


def _config_converter() -> cattrs.Converter:
    conv = cattrs.Converter(forbid_extra_keys=True)
    engine_fields = cattrs.gen.make_dict_structure_fn(EngineConfig, conv, _cattrs_forbid_extra_keys=True)

    def structure_engine(value: Any, _: type) -> EngineConfig:
        if isinstance(value, str):
            value = {"model": value}
        if not isinstance(value, Mapping):
            raise ValueError("an engine is a 'provider:model' string or a table with a 'model' key")
        engine = engine_fields(value, EngineConfig)
        split_model(engine.model)
        return engine

    def structure_tool(value: Any, _: type) -> ToolConfig:
        if not isinstance(value, Mapping):
            raise ValueError("a tool's settings are a table")
        settings = dict(value)
        engine = settings.pop("engine", None)
        return ToolConfig(
            engine=structure_engine(engine, EngineConfig) if engine is not None else None, settings=settings
        )

    for scalar in _SCALARS:
        conv.register_structure_hook(scalar, _strict_scalar)
    conv.register_structure_hook_func(lambda t: t == tuple[str, ...], _string_list)
    conv.register_structure_hook(EngineConfig, structure_engine)
    conv.register_structure_hook(ToolConfig, structure_tool)
    conv.register_structure_hook_func(lambda t: t == Mapping[str, Any], lambda v, _: dict(v))
    return conv


_converter = _config_converter()


def config_from_dict(data: Mapping[str, Any], *, source: str = "config") -> Config:
    """Structure a parsed TOML document; errors name the key and ``source``."""
    core = {k: v for k, v in data.items() if k in CORE_SECTIONS}
    sections = {k: v for k, v in data.items() if k not in CORE_SECTIONS}
    for key, value in sections.items():
        if not isinstance(value, Mapping):
            raise ConfigError(f"{source}: {key}: expected a table (a section such as [agent] or a tool source's)")
    config = structure_settings(Config, core, where=source)
    return attrs.evolve(config, tool_source_sections={k: dict(v) for k, v in sections.items()}, source=source)


def structure_settings(cls: type[T], data: Mapping[str, Any], *, where: str) -> T:
    """Structure a config table into an attrs class with the config's strict rules.

    Tools use it for their ``[tools.NAME]`` table, so their errors read like the core's:
    ``<where>: timeout_s: expected a number``.
    """
    try:
        return _converter.structure(data, cls)
    except cattrs.BaseValidationError as exc:
        raise ConfigError(f"{where}: {'; '.join(_describe(exc))}") from None
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"{where}: {exc}") from None


def _describe(exc: cattrs.BaseValidationError) -> list[str]:
    lines = []
    for line in cattrs.transform_error(exc, path="$", format_exception=_format_exception):
        message, _, where = line.rpartition(" @ ")
        key = where.removeprefix("$").removeprefix(".")
        lines.append(f"{key}: {message}" if key else message)
    return lines


def _format_exception(exc: BaseException, type_: type | None) -> str:
    # Our own hooks and attrs validators raise ValueError with a message meant for people.
    if type_ in _SCALARS:
        return f"expected {_SCALARS[type_]}"
    if isinstance(exc, ValueError) and not isinstance(exc, cattrs.BaseValidationError) and str(exc):
        return str(exc)
    return format_exception(exc, type_)


def config_path(explicit: str | os.PathLike[str] | None, env: Mapping[str, str] | None = None) -> Path | None:
    """``--config``, else ``AGENTFLOW_CONFIG``, else ``./agentflow.toml`` if present."""
    env = os.environ if env is None else env
    if explicit:
        return Path(explicit)
    if env.get("AGENTFLOW_CONFIG"):
        return Path(env["AGENTFLOW_CONFIG"])
    local = Path("agentflow.toml")
    return local if local.is_file() else None


def load_config(path: str | os.PathLike[str] | None = None) -> Config:
    """Read ``path`` (or the default location); no file means the defaults."""
    found = config_path(path)
    if found is None:
        return Config()
    try:
        data = tomllib.loads(found.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"config file {found} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{found}: not valid TOML: {exc}") from None
    except OSError as exc:
        raise ConfigError(f"{found}: cannot read: {exc.strerror}") from None
    return config_from_dict(data, source=str(found))


def with_overrides(
    config: Config,
    *,
    engines: Mapping[str, str] | None = None,
    tools: tuple[str, ...] | None = None,
    tool_engines: Mapping[str, str] | None = None,
    max_steps: int | None = None,
    base_url: str | None = None,
) -> Config:
    """Apply CLI flags on top of the file: flags win. ``engines`` maps role or 'default' to a model."""
    new_engines = config.engines
    origins = dict(config.origins)
    for role, model in (engines or {}).items():
        if role not in ("default", *MODULE_ROLES):
            raise ConfigError(f"unknown module {role!r} for an engine override")
        flag = "--engine" if role == "default" else f"--{role}-engine"
        new_engines = attrs.evolve(new_engines, **{role: _engine(model, base_url, flag)})
        origins[f"engines.{role}"] = flag
    if base_url:
        new_engines = _with_base_url(new_engines, base_url)
    new_tools = dict(config.tools)
    for name, model in (tool_engines or {}).items():
        old = new_tools.get(name, ToolConfig())
        new_tools[name] = attrs.evolve(old, engine=_engine(model, base_url, "--tool-engine"))
        origins[f"tools.{name}.engine"] = "--tool-engine"
    agent = config.agent
    if tools is not None:
        agent = attrs.evolve(agent, tools=tools)
        origins["agent.tools"] = "--tools"
    if max_steps is not None:
        try:
            agent = attrs.evolve(agent, max_steps=max_steps)
        except ValueError:
            raise ConfigError(f"--max-steps must be at least 1, got {max_steps}") from None
    return attrs.evolve(config, engines=new_engines, tools=new_tools, agent=agent, origins=origins)


def _engine(model: str, base_url: str | None, flag: str) -> EngineConfig:
    try:
        split_model(model)
    except ValueError as exc:
        raise ConfigError(f"{flag}: {exc}") from None
    return EngineConfig(model=model, base_url=base_url)


def _with_base_url(engines: EnginesConfig, base_url: str) -> EnginesConfig:
    """``--base-url`` points every OpenAI-compatible engine without its own URL at one server."""
    changes = {}
    for role in ("default", *MODULE_ROLES):
        engine: EngineConfig | None = getattr(engines, role)
        if engine is not None and engine.base_url is None and engine.provider in ("openai", "litellm"):
            changes[role] = attrs.evolve(engine, base_url=base_url)
    return attrs.evolve(engines, **changes)
