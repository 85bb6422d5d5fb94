from __future__ import annotations

import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pluggy
import pytest

import agentflow_tools.plugin
from agentflow_core import ToolSpec, hookimpl
from agentflow_core.errors import PluginError
from agentflow_core.plugins import PluginLoadWarning, load_registry, make_plugin_manager

ECHO = ToolSpec(name="echo", description="d", input_schema={"type": "object"}, output="o")


def fake_distribution(root: Path, dist: str, module: str, source: str) -> None:
    """An installed distribution on sys.path: dist-info with an ``agentflow`` entry point."""
    (root / f"{module}.py").write_text(textwrap.dedent(source))
    info = root / f"{dist.replace('-', '_')}-1.2.dist-info"  # the file-name form of the project name
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.2\n")
    (info / "entry_points.txt").write_text(f"[agentflow]\n{module} = {module}\n")


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Path]:
    sys.path.insert(0, str(tmp_path))
    yield tmp_path
    sys.path.remove(str(tmp_path))
    for name in [m for m in sys.modules if m.startswith("af_test_")]:
        del sys.modules[name]


GOOD = """
from agentflow_core import ToolSpec, hookimpl

@hookimpl
def register_tools(register):
    register(ToolSpec(name="shout", description="d", input_schema={"type": "object"}, output="o"), object)
"""


def test_entry_point_plugin_is_loaded_with_its_distribution(site: Path) -> None:
    fake_distribution(site, "af-good", "af_test_good", GOOD)
    registry = load_registry()
    assert registry.tool("shout").source == "af-good 1.2 (af_test_good)"


def test_broken_plugin_is_a_warning_and_the_others_load(site: Path) -> None:
    fake_distribution(site, "af-good", "af_test_good", GOOD)
    fake_distribution(site, "af-broken", "af_test_broken", "raise RuntimeError('boom at import')\n")
    with pytest.warns(PluginLoadWarning, match=r'Error loading plugin "af_test_broken" from af-broken: RuntimeError'):
        registry = load_registry()
    assert "shout" in registry.tools


def test_strict_mode_makes_a_broken_plugin_an_error(site: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_distribution(site, "af-broken", "af_test_broken", "import no_such_module_here\n")
    monkeypatch.setenv("AGENTFLOW_STRICT_PLUGINS", "1")
    with pytest.raises(PluginError, match="af-broken"):
        load_registry()


@pytest.mark.parametrize("disable", ["af-good", "af_test_good", "*"])
def test_plugins_can_be_disabled(site: Path, monkeypatch: pytest.MonkeyPatch, disable: str) -> None:
    fake_distribution(site, "af-good", "af_test_good", GOOD)
    monkeypatch.setenv("AGENTFLOW_DISABLE_PLUGINS", f"something-else,{disable}")
    assert "shout" not in load_registry().tools


def test_duplicate_tool_names_both_plugins() -> None:
    class First:
        @hookimpl
        def register_tools(self, register):  # type: ignore[no-untyped-def]
            register(ECHO, object)

    class Second(First):
        pass

    with pytest.raises(PluginError, match=r"tool 'echo' is registered twice: by .*First.* and by .*Second"):
        load_registry(entry_points=False, extra=[First(), Second()])


def test_misspelt_hook_is_caught() -> None:
    class Typo:
        @hookimpl
        def register_tool(self, register):  # type: ignore[no-untyped-def]
            pass

    with pytest.raises(pluggy.PluginValidationError, match="register_tool"):
        make_plugin_manager(entry_points=False, extra=[Typo()])


def test_tool_spec_is_validated_at_registration() -> None:
    class Bad:
        @hookimpl
        def register_tools(self, register):  # type: ignore[no-untyped-def]
            register(ToolSpec(name="x", description="d", input_schema={"type": "string"}, output="o"), object)

    with pytest.raises(PluginError, match="input_schema must be a JSON schema of type 'object'"):
        load_registry(entry_points=False, extra=[Bad()])


def test_builtins_register_through_the_public_hooks() -> None:
    registry = load_registry(entry_points=False, extra=[agentflow_tools.plugin])
    assert set(registry.engines) >= {"openai", "litellm", "vllm", "hf", "llamacpp"}
    assert {m.role for m in registry.modules.values()} == {"planner", "executor", "verifier", "generator"}
    assert "base_generator" in registry.tools
    with pytest.raises(PluginError, match="unknown tool 'nope'; installed tools: base_generator"):
        registry.tool("nope")
    with pytest.raises(PluginError, match="unknown engine provider 'bogus'"):
        registry.engine("bogus")
