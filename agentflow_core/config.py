"""``agentflow.toml``: read once, structured by the converter into frozen attrs classes.

Every error names the key and the file, e.g.
``agentflow.toml: engines.planner: engine 'gpt4' is not of the form provider:model``.
"""

from __future__ import annotations

import math
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

import attrs
import cattrs
import cattrs.gen
from cattrs.v import format_exception

from agentflow_core.config_reference import NOT_A_KEY
from agentflow_core.engine import EngineConfig, split_model
from agentflow_core.errors import ConfigError, one_line
from agentflow_core.records import MODULE_ROLES, ModuleRole

T = TypeVar("T")

#: The config's own sections; every other top-level table belongs to a tool source (``[mcp]``).
CORE_SECTIONS = ("agent", "engines", "modules", "tools")

#: What every module runs on when nothing is configured: SmolLM2-135M-Instruct, shipped in a wheel.
EMBEDDED_ENGINE = "llamacpp:smollm2"


@attrs.frozen
class AgentConfig:
    #: Tools the planner may choose from, by name; unset: the default tools that can run here
    #: (``base_generator``, and ``python_coder`` where Docker runs; its image is built the first time).
    tools: tuple[str, ...] | None = None
    #: Turns of plan, execute, verify before the generator must answer.
    max_steps: int = attrs.field(default=5, validator=attrs.validators.ge(1))
    #: Wall-clock budget of a whole solve, the final answer included (see ``answer_reserve_s``).
    max_time_s: float = attrs.field(default=300.0, validator=attrs.validators.gt(0))
    #: Seconds of ``max_time_s`` kept for the generator: the loop stops this long before the budget ends.
    #: Less than ``max_time_s``; unset: a fifth of ``max_time_s``, at most 60 s.
    answer_reserve_s: float | None = attrs.field(
        default=None, validator=attrs.validators.optional(attrs.validators.ge(0))
    )
    #: Token budget over all module calls of one solve (prompts and completions); unset: no budget.
    max_tokens: int | None = attrs.field(default=None, validator=attrs.validators.optional(attrs.validators.ge(1)))
    #: Wall-clock limit of one tool call, in seconds.
    tool_timeout_s: float = attrs.field(default=120.0, validator=attrs.validators.gt(0))
    #: Each text a module writes (an analysis, a sub-goal, an argument, a verdict, an answer, its raw
    #: response) is cut to this many characters, with a marker, before memory, prompts or the trajectory see it.
    max_module_output_chars: int = attrs.field(default=20_000, validator=attrs.validators.ge(100))
    #: Also ask the generator for a direct answer without tools (the reference's "direct output").
    direct_answer: bool = False

    def __attrs_post_init__(self) -> None:
        if self.answer_reserve_s is not None and self.answer_reserve_s >= self.max_time_s:
            raise ValueError(
                f"answer_reserve_s ({self.answer_reserve_s:g}) must be less than max_time_s ({self.max_time_s:g}): "
                "the loop needs some of the budget"
            )

    @property
    def reserve_s(self) -> float:
        """The seconds kept for the answer: ``answer_reserve_s``, else a fifth of the budget, at most 60 s."""
        if self.answer_reserve_s is not None:
            return self.answer_reserve_s
        return min(self.max_time_s / 5, 60.0)


@attrs.frozen
class EnginesConfig:
    """Per-module engines; a module without its own falls back to ``default``."""

    #: The engine of every module (and tool) without one of its own; unset: the embedded SmolLM2-135M-Instruct.
    default: EngineConfig | None = None
    #: The Planner's engine; unset: ``default``.
    planner: EngineConfig | None = None
    #: The Executor's engine; unset: ``default``.
    executor: EngineConfig | None = None
    #: The Verifier's engine; unset: ``default``.
    verifier: EngineConfig | None = None
    #: The Generator's engine, also that of tools that call a model and have none of their own; unset: ``default``.
    generator: EngineConfig | None = None
    #: Serve each module with its own LoRA adapter where its engine has one (the embedded model's
    #: shipped adapters, or a ``llamacpp`` engine's ``adapters`` folder); false runs the bare models.
    adapters: bool = True

    def for_module(self, role: ModuleRole) -> EngineConfig:
        chosen: EngineConfig | None = getattr(self, role) or self.default
        return chosen or EngineConfig(model=EMBEDDED_ENGINE)

    def replacing(
        self, engines: Mapping[str, EngineConfig | None] | Mapping[ModuleRole, EngineConfig | None]
    ) -> EnginesConfig:
        """These engines, keyed ``default`` or by module role, in place of the ones set here."""
        unknown = set(engines) - {"default", *MODULE_ROLES}
        if unknown:
            raise ValueError(f"no module {sorted(unknown)} has an engine")
        changes: dict[str, Any] = {str(role): engine for role, engine in engines.items()}  # evolve types each keyword
        return attrs.evolve(self, **changes)


@attrs.frozen
class ModulesConfig:
    """Which registered implementation plays each role."""

    #: The Planner implementation, by the name a plugin registered it under (``register_modules``).
    planner: str = "default"
    #: The Executor implementation, by registered name.
    executor: str = "default"
    #: The Verifier implementation, by registered name.
    verifier: str = "default"
    #: The Generator implementation, by registered name.
    generator: str = "default"


@attrs.frozen
class ToolConfig:
    """One tool's table: ``engine``, and the tool's own settings (below, under Tools)."""

    #: Engine for a tool that calls an LLM; unset: the generator's engine, as in the paper.
    engine: EngineConfig | None = None
    #: Every other key of ``[tools.NAME]``, handed to the tool, which validates it.
    settings: Mapping[str, Any] = attrs.field(factory=dict, metadata={NOT_A_KEY: True})


@attrs.frozen
class Config:
    #: The loop: its limits and the tools it may use.
    agent: AgentConfig = AgentConfig()
    #: Which model each module runs on.
    engines: EnginesConfig = EnginesConfig()
    #: Which implementation plays each module's role.
    modules: ModulesConfig = ModulesConfig()
    #: Each tool's own table, by tool name.
    tools: Mapping[str, ToolConfig] = attrs.field(factory=dict)
    #: Every other top-level table (``[mcp]``), kept for the tool source of that name, which checks it.
    #: A solver rejects a section no installed tool source claims.
    tool_source_sections: Mapping[str, Mapping[str, Any]] = attrs.field(factory=dict, metadata={NOT_A_KEY: True})
    #: Where this config was read from, for error messages; not part of the file.
    source: str = attrs.field(default="config", eq=False, metadata={NOT_A_KEY: True})
    #: Keys set by command-line flags rather than the file, and the flag: ``{"engines.planner": "--planner-engine"}``.
    origins: Mapping[str, str] = attrs.field(factory=dict, eq=False, metadata={NOT_A_KEY: True})

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
    if type_ is float and not math.isfinite(value):
        # TOML spells inf and nan; no setting means "forever" or "undefined" by them (#33).
        raise ValueError(f"expected a finite number, got {value!r}")
    return value


def _string_list(value: Any, _: type) -> tuple[str, ...]:
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"expected a list of strings, got {value!r}")
    return tuple(value)


def _config_converter() -> cattrs.Converter:
    conv = cattrs.Converter(forbid_extra_keys=True)

    def structure_engine(value: Any, _: type) -> EngineConfig:
        if isinstance(value, str):
            value = {"model": value}
        if not isinstance(value, Mapping):
            raise ValueError("an engine is a 'provider:model' string or a table with a 'model' key")
        engine = engine_fields(value, EngineConfig)
        split_model(engine.model)
        if engine.base_url and engine.base_urls:
            raise ValueError("give base_url (one server) or base_urls (several), not both")
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
    # Made last: it bakes in the hooks above (so base_urls = "one URL" is an error, not 13 one-letter URLs).
    engine_fields = cattrs.gen.make_dict_structure_fn(EngineConfig, conv, _cattrs_forbid_extra_keys=True)
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
    if isinstance(exc, ValueError) and not isinstance(exc, cattrs.BaseValidationError) and str(exc):
        return str(exc)
    if type_ in _SCALARS:
        return f"expected {_SCALARS[type_]}"
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
    return config_from_dict(read_toml(found, what="config file"), source=str(found))


def read_toml(path: str | os.PathLike[str], *, what: str = "config file") -> dict[str, Any]:
    """A TOML file as a dict; whatever stops it (missing, unreadable, not UTF-8, not TOML) is one line naming it."""
    try:
        return tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{what} {path} does not exist") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{path}: not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at offset {exc.start}); is it the right file?"
        ) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {one_line(exc)}") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from None


def with_overrides(
    config: Config,
    *,
    engines: Mapping[str, str] | None = None,
    tools: tuple[str, ...] | None = None,
    tool_engines: Mapping[str, str] | None = None,
    max_steps: int | None = None,
    base_url: str | None = None,
    no_adapters: bool = False,
) -> Config:
    """Apply CLI flags on top of the file: flags win. ``engines`` maps role or 'default' to a model."""
    new_engines = config.engines
    origins = dict(config.origins)
    if no_adapters:
        new_engines = attrs.evolve(new_engines, adapters=False)
        origins["engines.adapters"] = "--no-adapters"
    for role, model in (engines or {}).items():
        if role not in ("default", *MODULE_ROLES):
            raise ConfigError(f"unknown module {role!r} for an engine override")
        flag = "--engine" if role == "default" else f"--{role}-engine"
        new_engines = new_engines.replacing({role: _engine(model, base_url, flag)})
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
        if engine is None or engine.base_url or engine.base_urls:
            continue
        if engine.provider in ("openai", "litellm"):
            changes[role] = attrs.evolve(engine, base_url=base_url)
    return engines.replacing(changes)
