"""The default tools: the configured ones win; else every default tool that can run on this machine.

python_coder is a default tool where a Docker daemon answers (its local image is built the first
time), and ``agentflow solve`` says in one line why it is off where it is not (issue 34).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from agentflow_core import Solver, ToolSpec, hookimpl
from agentflow_core.config import config_from_dict
from agentflow_core.default_tools import choose_tools
from agentflow_core.plugins import PluginLoadWarning
from agentflow_core.testing import RecordedRequest, Reply, ScriptedOpenAIServer, registry_with, scripted_json
from tests.test_cli import agentflow


def _spec(name: str) -> ToolSpec:
    schema = {"type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]}
    return ToolSpec(name=name, description=f"tool {name}", input_schema=schema, output="text")


class _Tool:
    def __init__(self, name: str) -> None:
        self.spec = _spec(name)

    async def run(self, arguments: Mapping[str, Any]) -> str:
        return "ok"

    async def aclose(self) -> None:
        pass


def _broken_check(settings: Mapping[str, Any]) -> str | None:
    raise RuntimeError("probe crashed")


class DefaultsPlugin:
    """Tools registered every way ``default`` can be given."""

    @hookimpl
    def register_tools(self, register: Any) -> None:
        register(_spec("always"), lambda ctx: _Tool("always"), default=True)
        register(_spec("never"), lambda ctx: _Tool("never"))
        register(_spec("ready"), lambda ctx: _Tool("ready"), default=lambda settings: None)
        register(_spec("keyed"), lambda ctx: _Tool("keyed"), default=lambda s: None if s.get("key") else "no key set")
        register(_spec("broken"), lambda ctx: _Tool("broken"), default=_broken_check)


def test_unset_tools_are_the_defaults_that_can_run_and_the_others_say_why() -> None:
    registry = registry_with(DefaultsPlugin(), builtin_tools=False)
    chosen = choose_tools(config_from_dict({}), registry)
    assert chosen.names == ("always", "ready")
    assert chosen.left_out["keyed"] == "no key set"
    assert (
        chosen.left_out["broken"].startswith("its readiness check (")
        and "RuntimeError: probe crashed" in (chosen.left_out["broken"])
    )
    assert "never" not in chosen.left_out  # not a default tool: nothing to explain
    # A readiness check reads the tool's own settings.
    keyed = choose_tools(config_from_dict({"tools": {"keyed": {"key": "k"}}}), registry)
    assert keyed.names == ("always", "ready", "keyed")


def test_configured_tools_are_exactly_those() -> None:
    registry = registry_with(DefaultsPlugin(), builtin_tools=False)
    chosen = choose_tools(config_from_dict({"agent": {"tools": ["never", "keyed"]}}), registry)
    assert chosen.names == ("never", "keyed") and chosen.left_out == {}


def test_default_must_be_a_flag_or_a_check() -> None:
    class Bad:
        @hookimpl
        def register_tools(self, register: Any) -> None:
            register(_spec("odd"), lambda ctx: _Tool("odd"), default="yes")

    with pytest.warns(PluginLoadWarning, match="tool 'odd': default must be true, false or a readiness check"):
        registry = registry_with(Bad(), builtin_tools=False)
    assert "odd" not in registry.tools


def test_python_coder_is_off_without_docker(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_HOST", "tcp://127.0.0.1:9")
    solver = Solver(config_from_dict({}), registry=registry_with())
    assert solver.tools.names == ("base_generator",)
    assert "exact arithmetic needs its Docker sandbox" in solver.tools.left_out["python_coder"]


def test_python_coder_is_a_default_tool_where_its_sandbox_is_ready(sandbox_image: str) -> None:
    solver = Solver(config_from_dict({}), registry=registry_with())
    assert solver.tools.names == ("base_generator", "python_coder") and solver.tools.left_out == {}
    assert [spec.name for spec in solver.toolset.specs] == ["base_generator", "python_coder"]


def test_solve_notes_in_one_line_that_exact_arithmetic_needs_the_sandbox(tmp_path: Path) -> None:
    with ScriptedOpenAIServer() as server:
        server.enqueue("m", Reply("One call."), scripted_json({"tool": "base_generator", "question": "17 * 23"}))
        server.enqueue("m", Reply("391"), scripted_json({"analysis": "done", "decision": "STOP"}))
        server.enqueue("m", scripted_json({"reasoning": "The tool said so.", "answer": "391"}))
        config = tmp_path / "agentflow.toml"
        config.write_text(f'[engines]\ndefault = {{ model = "openai:m", base_url = "{server.base_url}" }}\n')
        result = agentflow(
            "solve", "What is 17 * 23?", "--config", str(config), cwd=tmp_path, env={"DOCKER_HOST": "tcp://127.0.0.1:9"}
        )
    assert result.returncode == 0, result.stderr
    [note] = [line for line in result.stderr.splitlines() if line.startswith("note:")]
    assert note.startswith("note: python_coder is off: exact arithmetic needs its Docker sandbox")
    assert "agentflow sandbox build" in note
    assert result.stdout.strip().endswith("Answer: 391")


def _answer_from_the_sandbox(request: RecordedRequest) -> Reply:
    """A generator that can only repeat what a program printed in its prompt."""
    printed = re.findall(r"Output:\s*(\d+)", request.messages[-1]["content"])
    return scripted_json({"reasoning": "python_coder printed it.", "answer": printed[-1] if printed else "unknown"})


def test_a_fresh_clone_builds_the_missing_sandbox_image_and_answers_exactly(
    throwaway_local_tag: str, tmp_path: Path
) -> None:
    """Issue 34's first command: Docker runs, no image was ever built, nothing is configured."""
    import docker.errors

    from agentflow_tools.sandbox.container import connect

    client = connect()
    with pytest.raises(docker.errors.ImageNotFound):
        client.images.get(throwaway_local_tag)
    with ScriptedOpenAIServer() as server:
        server.enqueue("m", Reply("Exact arithmetic."), scripted_json({"tool": "python_coder", "question": "17 * 23"}))
        server.enqueue("m", scripted_json({"analysis": "done", "decision": "STOP"}))
        server.set_responder("g", _answer_from_the_sandbox)
        config = tmp_path / "agentflow.toml"
        config.write_text(
            f'[engines]\ndefault = {{ model = "openai:m", base_url = "{server.base_url}" }}\n'
            f'generator = {{ model = "openai:g", base_url = "{server.base_url}" }}\n'
        )
        result = agentflow(
            "solve",
            "What is 17 * 23?",
            "--config",
            str(config),
            cwd=tmp_path,
            env={"AGENTFLOW_SANDBOX_TAG": throwaway_local_tag},
            timeout=300,
        )
    assert result.returncode == 0, result.stderr
    [building] = [line for line in result.stderr.splitlines() if "building the sandbox image" in line]
    assert building.startswith(f"building the sandbox image {throwaway_local_tag} from this machine's Python")
    assert "note:" not in result.stderr  # python_coder is on
    assert result.stdout.strip().endswith("Answer: 391")
    assert client.images.get(throwaway_local_tag).attrs["Size"] > 0
    client.close()
