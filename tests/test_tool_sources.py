"""The tool-source hook as a third party uses it: a plugin whose tools are learnt when a solver starts."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

import pytest

from agentflow_core import (
    ConfigError,
    PluginError,
    Solver,
    ToolAnnouncer,
    ToolSourceContext,
    ToolSourceRegistrar,
    ToolSpec,
    ToolSuccess,
    hookimpl,
)
from agentflow_core.config import config_from_dict
from agentflow_core.records import ToolCall
from agentflow_core.testing import registry_with

UNUSED_ENGINES = {"default": {"model": "openai:unused", "base_url": "http://127.0.0.1:9/v1"}}


class Shouter:
    """``[shout] words = [...]``: a tool ``PREFIX + word`` per word, known only when the source is opened."""

    def __init__(self, context: ToolSourceContext) -> None:
        self.words = list(context.settings.get("words", []))
        self.prefix = context.settings.get("prefix", "shout.")
        self.opened = 0
        self.closed = 0
        OPENED.append(self)

    def may_provide(self, name: str) -> bool:
        return name.startswith(self.prefix)

    async def open(self, register: ToolAnnouncer, *, wanted: Collection[str] | None) -> None:
        self.opened += 1
        for word in self.words:
            spec = ToolSpec(f"{self.prefix}{word}", f"shouts {word}", {"type": "object", "properties": {}}, "text")
            register(spec, lambda context, spec=spec, word=word: _Shout(spec, word), origin=f"word {word!r}")

    async def aclose(self) -> None:
        self.closed += 1


class _Shout:
    def __init__(self, spec: ToolSpec, word: str) -> None:
        self.spec, self._word = spec, word

    async def run(self, arguments: Mapping[str, Any]) -> str:
        return self._word.upper()

    async def aclose(self) -> None:
        pass


OPENED: list[Shouter] = []


class ShoutPlugin:
    @hookimpl
    def register_tool_sources(self, register: ToolSourceRegistrar) -> None:
        register("shout", Shouter, description="one tool per configured word")


def solver(tools: list[str], words: list[str], prefix: str = "shout.") -> Solver:
    data = {"agent": {"tools": tools}, "engines": UNUSED_ENGINES, "shout": {"words": words, "prefix": prefix}}
    return Solver(config_from_dict(data, source="t.toml"), registry=registry_with(ShoutPlugin()))


async def test_a_third_party_source_provides_tools_when_the_solver_starts() -> None:
    OPENED.clear()
    made = solver(["base_generator", "shout.hey"], ["hey", "ho"])
    assert [s.name for s in made.toolset.specs] == ["base_generator"]  # before start: the registered tools
    await made.start()
    await made.start()  # once is enough
    assert [s.name for s in made.toolset.specs] == ["base_generator", "shout.hey"]
    result = await made.toolset.run(ToolCall("shout.hey", {}))
    assert isinstance(result, ToolSuccess) and result.output == "HEY"
    [source] = OPENED
    assert source.opened == 1
    await made.aclose()
    assert source.closed == 1


async def test_an_announced_tool_clashing_with_a_registered_one() -> None:
    made = solver(["base_generator", "other"], ["base_generator", "other"], prefix="")
    with pytest.raises(PluginError) as info:
        await made.start()
    await made.aclose()
    message = str(info.value)
    assert message.startswith("tool 'base_generator' is registered twice: by agentflow (built-in ")
    assert message.endswith("and by word 'base_generator' via test_tool_sources.ShoutPlugin")


def test_an_unknown_tool_outside_every_source_fails_at_once() -> None:
    with pytest.raises(ConfigError, match=r"^t\.toml: agent\.tools: unknown tool 'shuot\.hey'"):
        solver(["shuot.hey"], ["hey"])


def test_a_section_of_a_source_that_is_not_installed() -> None:
    data = {"agent": {"tools": ["base_generator"]}, "engines": UNUSED_ENGINES, "shout": {}}
    with pytest.raises(ConfigError, match=r"^t\.toml: unknown section \[shout\]; the sections are agent, "):
        Solver(config_from_dict(data, source="t.toml"), registry=registry_with())


def test_a_source_named_like_a_core_section_is_refused() -> None:
    class Bad:
        @hookimpl
        def register_tool_sources(self, register: ToolSourceRegistrar) -> None:
            register("agent", Shouter)

    with pytest.warns(UserWarning, match="tool source 'agent' is not a valid name"):
        registry = registry_with(Bad())
    assert "agent" not in registry.tool_sources
