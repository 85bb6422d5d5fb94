"""The tool sources of one solver: made from the config's sections, opened once, closed with it."""

from __future__ import annotations

import asyncio
from collections.abc import Collection

import attrs

from agentflow_core.config import CORE_SECTIONS, Config
from agentflow_core.errors import ConfigError, PluginError
from agentflow_core.registry import Registry, ToolRegistrar
from agentflow_core.tool_source import ToolAnnouncer, ToolSource, ToolSourceContext


class ToolSources:
    """Cheap to make: each source parses its section; nothing is started before ``open``."""

    def __init__(self, config: Config, registry: Registry) -> None:
        self._sources: dict[str, ToolSource] = {}
        self._labels: dict[str, str] = {}
        for name, section in config.tool_source_sections.items():
            registered = registry.tool_sources.get(name)
            if registered is None:
                known = ", ".join([*CORE_SECTIONS, *sorted(registry.tool_sources)])
                raise ConfigError(f"{config.source}: unknown section [{name}]; the sections are {known}")
            try:
                self._sources[name] = registered.factory(ToolSourceContext(section, where=f"{config.source}: {name}"))
            except ConfigError:
                raise
            except Exception as exc:  # plugin code: name the plugin rather than show a traceback
                raise PluginError(f"tool source {name!r} of {registered.source} failed: {exc}") from exc
            self._labels[name] = registered.source

    def __bool__(self) -> bool:
        return bool(self._sources)

    def may_provide(self, name: str) -> bool:
        return any(source.may_provide(name) for source in self._sources.values())

    async def open(self, registry: Registry, *, wanted: Collection[str] | None) -> Registry:
        """``registry`` plus the tools the sources announce (those that may be ``wanted``, or all)."""
        registrar = ToolRegistrar()
        for name, source in self._sources.items():
            mine = None if wanted is None else [w for w in wanted if source.may_provide(w)]
            if mine is None or mine:
                await source.open(ToolAnnouncer(registrar, self._labels[name]), wanted=mine)
        announced = registrar.resolve()
        for name, tool in announced.items():
            if name in registry.tools:
                raise PluginError(
                    f"tool {name!r} is registered twice: by {registry.tools[name].source} and by {tool.source}"
                )
        return attrs.evolve(registry, tools={**registry.tools, **announced})

    async def aclose(self) -> None:
        await asyncio.gather(*(source.aclose() for source in self._sources.values()), return_exceptions=True)
