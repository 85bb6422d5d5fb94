"""The config reference: every field documented once, by its ``#:`` comment, and the pages in docs/
exactly what the generator writes from the code today."""

from __future__ import annotations

import enum
import os
import subprocess
import sys
import typing
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Literal

import attrs
import pytest

from agentflow_core import ToolSpec, hookimpl
from agentflow_core.cli import reference as toml_reference
from agentflow_core.config import Config
from agentflow_core.config_reference import NOT_A_KEY, Key, Reference, Table, render, undocumented_fields
from agentflow_core.errors import PluginError
from agentflow_core.field_docs import field_docs, undocumented
from agentflow_core.registry import ToolRegistrar, ToolSourceRegistrar
from agentflow_core.testing import registry_with
from agentflow_rl.flow_grpo import reference as training_reference
from agentflow_rl.flow_grpo.config import TrainConfig

ROOT = Path(__file__).resolve().parents[1]


# -- what the generator reads and writes -------------------------------------------------------------


class Colour(enum.Enum):
    #: Like the sky.
    BLUE = "blue"
    RED = "red"


@attrs.frozen
class Inner:
    """A table below another.

    This second paragraph is left out of the page.
    """

    # a note for readers of the code, not part of the documentation
    #: Seconds to wait,
    #: over two lines.
    wait_s: float = attrs.field(default=1.5, validator=[attrs.validators.gt(0), attrs.validators.le(60)])
    # an ordinary comment documents nothing
    bare: int = 3


@attrs.frozen
class Base:
    #: Said by the base class.
    name: str = "x"
    #: Replaced below.
    size: int = 1


@attrs.frozen
class Sample(Base):
    #: Said by the subclass.
    size: int = attrs.field(default=2, validator=attrs.validators.optional(attrs.validators.ge(1)))
    #: The colour, ``blue`` or ``red``.
    colour: Colour = Colour.BLUE
    #: A choice in a ``Literal``.
    mode: Literal["fast", "slow"] = "slow"
    #: Words.
    words: tuple[str, ...] = ("a", "b")
    #: A pair.
    pair: tuple[float, float] = (0.5, 1.0)
    #: Numbers by name.
    scores: dict[str, float] = attrs.field(factory=dict)
    #: An optional inner table.
    inner: Inner | None = None
    #: The same class once more, by name.
    named: Mapping[str, Inner] = attrs.field(factory=dict)
    #: Must be given.
    required: str = attrs.field(kw_only=True)
    #: Where it was read from; not a key of the file.
    source: str = attrs.field(default="", metadata={NOT_A_KEY: True})


def test_each_field_has_the_comment_above_it_and_a_subclass_overrides_its_base() -> None:
    docs = field_docs(Sample)

    assert docs["name"] == "Said by the base class."
    assert docs["size"] == "Said by the subclass."
    assert field_docs(Inner) == {"wait_s": "Seconds to wait, over two lines."}
    assert field_docs(Colour) == {"BLUE": "Like the sky."}


@attrs.frozen
class Interrupted:
    #: Meant for ``value``, but a plain comment stands between.
    # a plain comment
    value: int = 0


def test_a_field_without_a_comment_right_above_it_is_undocumented() -> None:
    assert undocumented(Interrupted) == ["value"]
    assert undocumented(Inner) == ["bare"]
    assert undocumented(Sample) == []


def test_a_table_lists_type_bounds_default_and_meaning_of_each_key() -> None:
    reference = Reference()
    reference.add(Sample, "sample")
    sample, inner = reference.tables

    assert [key.name for key in sample.keys] == [
        "name", "size", "colour", "mode", "words", "pair", "scores", "inner", "named", "required"
    ]  # fmt: skip
    keys = {key.name: key for key in sample.keys}
    assert keys["size"] == Key("size", "integer, >= 1", "`2`", "Said by the subclass.")
    assert keys["colour"] == Key(
        "colour", '`"blue"` or `"red"`', '`"blue"`', 'The colour, `blue` or `red`.<br>`"blue"`: Like the sky.'
    )
    assert keys["mode"].type == '`"fast"` or `"slow"`'
    assert (keys["words"].type, keys["words"].default) == ("array of strings", '`["a", "b"]`')
    assert (keys["pair"].type, keys["pair"].default) == ("array of 2 numbers", "`[0.5, 1.0]`")
    assert (keys["scores"].type, keys["scores"].default) == ("table of numbers", "`{}`")
    assert keys["inner"] == Key("inner", "table: [`[sample.inner]`](#sampleinner)", "unset", "An optional inner table.")
    assert keys["named"].type == "tables: [`[sample.inner]`](#sampleinner)"
    assert keys["required"].default == "required"
    assert inner.path == "sample.inner" and inner.used_at == ("sample.inner", "sample.named.NAME")
    assert inner.doc == "A table below another."
    assert [(k.name, k.type, k.default) for k in inner.keys] == [
        ("wait_s", "number, > 0, <= 60", "`1.5`"),
        ("bare", "integer", "`3`"),
    ]
    assert undocumented_fields(reference.tables) == ["sample.inner.bare"]


def test_a_shared_class_is_written_once_where_it_is_told_to_be() -> None:
    reference = Reference({Inner: "things.NAME"})
    reference.add(Sample, "")
    tables = reference.tables

    assert [t.path for t in tables] == ["", "things.NAME"]
    assert tables[1].used_at == ("inner", "named.NAME")
    page = render(tables)
    assert "## Top level\n" in page and "## `[things.NAME]`\n\nUsed as `[inner]`, `[named.NAME]`.\n" in page
    assert "| `inner` | table: [`[things.NAME]`](#thingsname) | unset | An optional inner table. |" in page
    assert "source" not in page  # not a key of the file


def test_a_pipe_in_a_cell_does_not_end_the_cell() -> None:
    table = Table("s", "", (Key("k", "string", '`"a|b"`', "a | b"),))
    assert render([table]).endswith('| `k` | string | `"a\\|b"` | a \\| b |\n')


# -- every config class, documented -----------------------------------------------------------------


def attrs_classes(root: type) -> Iterator[type]:
    """``root`` and every attrs class its fields reach, through ``X | None``, mappings and sequences."""
    seen: set[type] = set()
    pending = [root]
    while pending:
        cls = pending.pop()
        if cls in seen:
            continue
        seen.add(cls)
        yield cls
        for hint in typing.get_type_hints(cls).values():
            pending.extend(arg for arg in _types_in(hint) if attrs.has(arg))


def _types_in(hint: Any) -> Iterator[Any]:
    yield hint
    for arg in typing.get_args(hint):
        yield from _types_in(arg)


def documented_roots() -> list[type]:
    """Every class a config file is read into: the core's, each built-in tool's and tool source's, training's."""
    registry = registry_with()
    tools = [tool.settings for tool in registry.tools.values() if tool.settings is not None]
    sources = [source.settings for source in registry.tool_sources.values() if source.settings is not None]
    return [Config, *tools, *sources, TrainConfig]


def test_the_walk_reaches_the_classes_below_the_roots() -> None:
    from agentflow_core.engine import EngineConfig
    from agentflow_rl.flow_grpo.config import LoraConfig
    from agentflow_tools.mcp.settings import ServerSettings
    from agentflow_tools.sandbox import DockerSettings

    reached = {cls for root in documented_roots() for cls in attrs_classes(root)}
    assert {EngineConfig, LoraConfig, ServerSettings} <= reached
    assert any(issubclass(cls, DockerSettings) for cls in reached)  # python_coder's, the sandbox's keys


@pytest.mark.parametrize("root", documented_roots(), ids=lambda cls: f"{cls.__module__}.{cls.__qualname__}")
def test_every_field_of_every_config_class_says_what_it_is_for(root: type) -> None:
    missing = {f"{cls.__module__}.{cls.__qualname__}": undocumented(cls) for cls in attrs_classes(root)}
    missing = {name: fields for name, fields in missing.items() if fields}
    assert not missing, f"fields without a #: comment above them (what the field is for, its unit, bounds): {missing}"


def test_every_built_in_tool_registers_its_settings() -> None:
    registry = registry_with()
    assert [name for name, tool in registry.tools.items() if tool.settings is None] == []
    assert registry.tool_sources["mcp"].settings_key == "NAME"


# -- the committed pages ----------------------------------------------------------------------------

PAGES = {
    "docs/config-reference.md": toml_reference.REGENERATE,
    "docs/training-config-reference.md": training_reference.REGENERATE,
}


@pytest.mark.parametrize("page", sorted(PAGES))
def test_the_committed_page_is_what_its_command_prints_today(page: str) -> None:
    """The page's own command, run as a user runs it, prints the page; a new field fails here until regenerated."""
    words, target = PAGES[page].split(" > ")
    program, *arguments = words.split()
    assert target == page and program in ("agentflow", "python")
    command = [sys.executable, *(["-m", "agentflow_core"] if program == "agentflow" else []), *arguments]
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGENTFLOW_")}
    printed = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=True)
    committed = (ROOT / page).read_text(encoding="utf-8")
    assert printed.stdout == committed, f"{page} is out of date with the code; regenerate it: {PAGES[page]}"


def test_the_agentflow_toml_page_documents_a_third_party_tool_like_a_built_in() -> None:
    @attrs.frozen
    class Settings:
        #: Words per answer, at most.
        max_words: int = attrs.field(default=50, validator=attrs.validators.ge(1))

    class Plugin:
        @hookimpl
        def register_tools(self, register: ToolRegistrar) -> None:
            spec = ToolSpec("echo", "Says it back.", {"type": "object"}, "the text")
            register(spec, lambda context: context, settings=Settings)

    page = toml_reference.agentflow_toml_reference(registry_with(Plugin()))

    assert "### `[tools.echo]`\n\nFrom " in page
    assert "| `max_words` | integer, >= 1 | `50` | Words per answer, at most. |" in page
    assert "### `[tools.python_coder]`" in page  # the built-ins stay


@pytest.mark.parametrize("settings", [dict, "Settings", Inner()])
def test_settings_that_are_no_attrs_class_are_refused_naming_the_tool(settings: Any) -> None:
    register = ToolRegistrar()
    spec = ToolSpec("echo", "Says it back.", {"type": "object"}, "the text")
    with pytest.raises(PluginError, match=r"^tool 'echo': settings must be an attrs class"):
        register(spec, lambda context: context, settings=settings)


def test_a_settings_key_needs_a_settings_class() -> None:
    register = ToolSourceRegistrar()
    with pytest.raises(PluginError, match=r"^tool source 'things': settings_key names the tables"):
        register("things", lambda context: context, settings_key="NAME")
