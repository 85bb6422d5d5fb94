from __future__ import annotations

import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import attrs
import pluggy
import pytest

from agentflow_core import ToolSpec, hookimpl
from agentflow_core.errors import PluginError
from agentflow_core.plugins import PluginLoadWarning, load_registry, make_plugin_manager
from agentflow_core.testing import registry_with

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


RAISING_HOOK = """
from agentflow_core import ToolSpec, hookimpl

@hookimpl
def register_tools(register):
    register(ToolSpec(name="half", description="d", input_schema={"type": "object"}, output="o"), object)
    raise KeyError("no config for the tools")
"""


def test_a_hook_that_raises_is_a_warning_naming_the_distribution(site: Path) -> None:
    fake_distribution(site, "af-good", "af_test_good", GOOD)
    fake_distribution(site, "af-raising", "af_test_raising", RAISING_HOOK)
    with pytest.warns(PluginLoadWarning) as caught:
        registry = load_registry()
    (warning,) = [str(w.message) for w in caught]
    assert warning == (
        "plugin af-raising 1.2 (af_test_raising): register_tools failed: KeyError: 'no config for the tools'"
    )
    assert "shout" in registry.tools and "base_generator" in registry.tools
    assert "half" not in registry.tools  # what it registered before failing is dropped with it


def test_a_broken_rule_of_the_contract_is_a_warning_too(site: Path) -> None:
    fake_distribution(site, "af-good", "af_test_good", GOOD)
    fake_distribution(site, "af-badspec", "af_test_badspec", GOOD.replace('"object"', '"string"'))
    with pytest.warns(PluginLoadWarning, match=r"^plugin af-badspec 1.2 \(af_test_badspec\): register_tools failed: "
                      r"tool 'shout': input_schema must be a JSON schema of type 'object'$"):  # fmt: skip
        registry = load_registry()
    assert "shout" in registry.tools and registry.tool("shout").source.startswith("af-good")


def test_strict_mode_makes_a_raising_hook_an_error(site: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_distribution(site, "af-raising", "af_test_raising", RAISING_HOOK)
    monkeypatch.setenv("AGENTFLOW_STRICT_PLUGINS", "1")
    with pytest.raises(PluginError, match=r"af-raising 1.2 \(af_test_raising\): register_tools failed: KeyError"):
        load_registry()


def test_strict_mode_makes_a_broken_plugin_an_error(site: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_distribution(site, "af-broken", "af_test_broken", "import no_such_module_here\n")
    monkeypatch.setenv("AGENTFLOW_STRICT_PLUGINS", "1")
    with pytest.raises(PluginError, match="af-broken"):
        load_registry()


@pytest.mark.parametrize("disable", ["af-good", "af_test_good", "*"])
def test_plugins_can_be_disabled(site: Path, monkeypatch: pytest.MonkeyPatch, disable: str) -> None:
    fake_distribution(site, "af-good", "af_test_good", GOOD)
    monkeypatch.setenv("AGENTFLOW_DISABLE_PLUGINS", f"something-else,{disable}")
    registry = load_registry()
    assert "shout" not in registry.tools
    # Only third-party plugins are switched off: the built-in tools and benchmarks stay.
    assert "base_generator" in registry.tools and "bamboogle" in registry.benchmarks


def test_duplicate_tool_names_both_plugins() -> None:
    class First:
        @hookimpl
        def register_tools(self, register):  # type: ignore[no-untyped-def]
            register(ECHO, object)

    class Second(First):
        pass

    with pytest.raises(
        PluginError, match=r"tool 'echo' is registered twice: by .*First.* and by .*Second.*replace=True"
    ):
        load_registry(entry_points=False, extra=[First(), Second()])


class GeneratorAgain:
    """Means to take ``base_generator`` over, and says so."""

    @hookimpl
    def register_tools(self, register):  # type: ignore[no-untyped-def]
        spec = ToolSpec(name="base_generator", description="mine", input_schema={"type": "object"}, output="o")
        register(spec, object, replace=True)


def test_a_builtin_is_replaced_only_when_asked_and_the_registry_says_whose() -> None:
    class Accidental:
        @hookimpl
        def register_tools(self, register):  # type: ignore[no-untyped-def]
            register(attrs.evolve(ECHO, name="base_generator"), object)

    with pytest.raises(
        PluginError,
        match=r"^tool 'base_generator' is registered twice: by agentflow \(built-in agentflow_tools.plugin\) "
        r"and by test_plugins\..*Accidental; ",
    ):
        registry_with(Accidental())
    tool = registry_with(GeneratorAgain()).tool("base_generator")
    assert tool.spec.description == "mine"
    assert tool.source == "test_plugins.GeneratorAgain"
    assert tool.replaces == "agentflow (built-in agentflow_tools.plugin)"


def test_two_replacements_of_one_name_are_an_error() -> None:
    class AndAgain(GeneratorAgain):
        pass

    with pytest.raises(PluginError, match=r"tool 'base_generator' is replaced \(replace=True\) by two plugins: "):
        registry_with(GeneratorAgain(), AndAgain())


def test_engines_modules_and_benchmarks_follow_the_same_rules() -> None:
    class Engines:
        @hookimpl
        def register_engines(self, register):  # type: ignore[no-untyped-def]
            register("openai", lambda config: None, description="mine", replace=True)

        @hookimpl
        def register_modules(self, register):  # type: ignore[no-untyped-def]
            register("verifier", "default", lambda context: None)

    with pytest.raises(PluginError, match=r"module 'verifier:default' is registered twice: by agentflow \(built-in "):
        registry_with(Engines())
    del Engines.register_modules
    registry = registry_with(Engines())
    assert registry.engine("openai").description == "mine"
    assert registry.engine("openai").replaces == "agentflow (built-in agentflow_core.engines.plugin)"


def test_hooks_are_called_through_pluggy_so_ordering_and_wrappers_hold() -> None:
    calls: list[str] = []

    class Early:
        @hookimpl(tryfirst=True)
        def register_tools(self, register):  # type: ignore[no-untyped-def]
            calls.append("early")

    class Late:
        @hookimpl(trylast=True)
        def register_tools(self, register):  # type: ignore[no-untyped-def]
            calls.append("late")

    class Around:
        @hookimpl(wrapper=True)
        def register_tools(self, register):  # type: ignore[no-untyped-def]
            calls.append("around:before")
            register(ECHO, object)  # attributed to this plugin, before and after the yield
            result = yield
            register(attrs.evolve(ECHO, name="echo_after"), object)
            calls.append("around:after")
            return result

    # pluggy calls the last registered first: only tryfirst / trylast can give this order.
    registry = registry_with(Early(), Around(), Late())
    assert calls == ["around:before", "early", "late", "around:after"]
    assert registry.tool("echo").source == registry.tool("echo_after").source
    assert registry.tool("echo").source.endswith(".Around")
    assert "base_generator" in registry.tools


def test_a_failing_wrapper_stands_aside() -> None:
    class Broken:
        @hookimpl(wrapper=True)
        def register_tools(self, register):  # type: ignore[no-untyped-def]
            register(ECHO, object)
            raise RuntimeError("wrapper bug")
            yield  # a generator, as pluggy requires

    with pytest.warns(PluginLoadWarning, match=r"Broken: register_tools failed: RuntimeError: wrapper bug"):
        registry = registry_with(Broken())
    assert "echo" not in registry.tools and "base_generator" in registry.tools


def test_misspelt_hook_is_caught() -> None:
    class Typo:
        @hookimpl
        def register_tool(self, register):  # type: ignore[no-untyped-def]
            pass

    with pytest.raises(pluggy.PluginValidationError, match="register_tool"):
        make_plugin_manager(entry_points=False, extra=[Typo()])


def test_a_plugin_declares_hooks_that_other_plugins_implement() -> None:
    """What agentflow_rl does for its training hooks: the core checks them like its own."""
    from agentflow_core import hookspec

    class WidgetSpecs:
        @hookspec
        def register_widgets(self, register):  # type: ignore[no-untyped-def]
            """Register widgets."""

    class Declares:
        @hookimpl
        def register_hookspecs(self, register):  # type: ignore[no-untyped-def]
            register(WidgetSpecs)

    class Implements:
        @hookimpl
        def register_widgets(self, register):  # type: ignore[no-untyped-def]
            register("gear")

    with pytest.raises(pluggy.PluginValidationError, match="register_widgets"):
        make_plugin_manager(entry_points=False, bundled=False, extra=[Implements()])
    pm = make_plugin_manager(entry_points=False, bundled=False, extra=[Implements(), Declares()])
    widgets: list[str] = []
    pm.hook.register_widgets(register=widgets.append)
    assert widgets == ["gear"]


def test_builtins_register_through_the_public_hooks() -> None:
    registry = load_registry(entry_points=False)
    assert set(registry.engines) >= {"openai", "litellm", "vllm", "hf", "llamacpp"}
    assert {m.role for m in registry.modules.values()} == {"planner", "executor", "verifier", "generator"}
    assert "base_generator" in registry.tools
    with pytest.raises(PluginError, match="unknown tool 'nope'; installed tools: base_generator"):
        registry.tool("nope")
    with pytest.raises(PluginError, match="unknown engine provider 'bogus'"):
        registry.engine("bogus")
