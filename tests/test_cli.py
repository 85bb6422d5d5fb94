"""``agentflow`` as a user runs it: a subprocess, a config file, a server on 127.0.0.1."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import pytest

from agentflow_core import Trajectory
from agentflow_core.serde import from_json
from agentflow_core.testing import Reply, ScriptedOpenAIServer, scripted_json


def agentflow(
    *args: str, cwd: Path, timeout: float = 120, env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """The CLI in a child process, with no ``OPENAI_*`` or ``AGENTFLOW_*`` variable but those in ``env``."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "AGENTFLOW_"))}
    return subprocess.run(
        [sys.executable, "-m", "agentflow_core", *args],
        cwd=cwd,
        env={**clean, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.fixture
def server():
    with ScriptedOpenAIServer() as server:
        yield server


def write_config(path: Path, server: ScriptedOpenAIServer) -> Path:
    tables = "\n".join(
        f'{role} = {{ model = "openai:{model}", base_url = "{server.base_url}" }}'
        for role, model in [("planner", "p"), ("executor", "e"), ("verifier", "v"), ("generator", "g")]
    )
    path.write_text(
        f'[engines]\n{tables}\n\n[tools.base_generator]\nengine = {{ model = "openai:t", '
        f'base_url = "{server.base_url}" }}\n'
    )
    return path


def script_one_turn(server: ScriptedOpenAIServer) -> None:
    server.enqueue(
        "p",
        Reply("Look it up with the model."),
        scripted_json({"tool": "base_generator", "question": "Name the largest planet."}),
    )
    server.enqueue("t", Reply("Jupiter is the largest planet (tool observation #4711)."))
    server.enqueue("v", scripted_json({"analysis": "answered", "decision": "STOP"}))
    server.enqueue("g", Reply("Jupiter (per tool observation #4711)"))


def test_solve_routes_each_module_to_its_own_model(tmp_path: Path, server: ScriptedOpenAIServer) -> None:
    script_one_turn(server)
    config = write_config(tmp_path / "agentflow.toml", server)
    result = agentflow("solve", "Which planet is largest?", "--config", str(config), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "#4711" in result.stdout  # the answer carries what the tool returned
    assert "step 1: base_generator" in result.stderr  # the live view
    # base_generator takes the sub-goal as its query, so the executor's model is not asked.
    assert [r.model for r in server.requests] == ["p", "p", "t", "v", "g"]


def test_solve_json_prints_the_whole_trajectory(tmp_path: Path, server: ScriptedOpenAIServer) -> None:
    script_one_turn(server)
    write_config(tmp_path / "agentflow.toml", server)  # found in the working directory
    result = agentflow("solve", "Which planet is largest?", "--json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    trajectory = from_json(result.stdout, Trajectory)
    assert {c.role for c in trajectory.module_calls()} == {"planner", "verifier", "generator"}
    assert trajectory.steps[0].result.output.startswith("Jupiter")  # type: ignore[union-attr]


def test_flags_override_the_config(tmp_path: Path, server: ScriptedOpenAIServer) -> None:
    server.set_default_responder(lambda r: Reply("plain"))
    server.enqueue("flagged", Reply("analysis"))
    config = write_config(tmp_path / "agentflow.toml", server)
    result = agentflow(
        "solve",
        "q",
        "--config",
        str(config),
        "--planner-engine",
        "openai:flagged",
        "--base-url",
        server.base_url,
        "--max-steps",
        "1",
        "--json",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    planner_models = {c.engine for c in from_json(result.stdout, Trajectory).module_calls() if c.role == "planner"}
    assert planner_models == {"openai:flagged"}


@pytest.mark.parametrize(
    ("args", "config_text", "expected"),
    [
        (["solve", ""], None, "the query is empty"),
        (["solve", "   "], None, "the query is empty"),
        (["solve", "q", "--tools", "nope"], None, "unknown tool 'nope'; installed tools: base_generator"),
        (["solve", "q", "--engine", "bogus:x"], None, "unknown engine provider 'bogus'"),
        (["solve", "q", "--engine", "no-colon"], None, "--engine: engine 'no-colon' is not of the form"),
        (["solve", "q", "--tool-engine", "base_generator"], None, "--tool-engine expects TOOL=provider:model"),
        (["solve", "q", "--config", "missing.toml"], None, "missing.toml does not exist"),
        (["solve", "q"], "[agent\nmax_steps=", "agentflow.toml: not valid TOML"),
        (["solve", "q"], "[agent]\nmax_steps = 'many'\n", "agentflow.toml: agent.max_steps: expected an integer"),
        (["solve", "q"], "[engines]\nplanner = 'gpt-4'\n", "agentflow.toml: engines.planner: engine 'gpt-4'"),
        (
            ["solve", "q", "--engine", "openai:m", "--base-url", "http://127.0.0.1:9/v1"],
            None,
            "cannot reach http://127.0.0.1:9/v1",
        ),
    ],
)
def test_bad_input_is_one_clear_line(tmp_path: Path, args: list[str], config_text: str | None, expected: str) -> None:
    if config_text is not None:
        (tmp_path / "agentflow.toml").write_text(config_text)
    result = agentflow(*args, cwd=tmp_path)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("Error: ") and expected in lines[0], lines[0]


def test_listing_commands_name_their_source(tmp_path: Path) -> None:
    tools = agentflow("tools", cwd=tmp_path)
    assert tools.returncode == 0 and "base_generator" in tools.stdout and "agentflow" in tools.stdout
    specs = json.loads(agentflow("tools", "--json", cwd=tmp_path).stdout)
    assert any(s["name"] == "base_generator" and s["input_schema"]["required"] == ["query"] for s in specs)
    engines = agentflow("engines", cwd=tmp_path).stdout
    assert all(p in engines for p in ("openai", "litellm", "vllm", "hf", "llamacpp"))
    plugins = agentflow("plugins", cwd=tmp_path).stdout
    assert "register_tools" in plugins and "register_engines" in plugins


COMMAND_PLUGIN = """
import click
from agentflow_core import hookimpl

@hookimpl
def register_commands(cli):
    @cli.command()
    def hello():
        '''Say hello from a plugin.'''
        click.echo("hello from a plugin command")
"""


def test_plugins_add_commands_and_a_broken_one_is_a_warning(tmp_path: Path) -> None:
    from tests.test_plugins import fake_distribution

    site = tmp_path / "site"
    site.mkdir()
    fake_distribution(site, "af-cmd", "af_test_cmd", COMMAND_PLUGIN)
    fake_distribution(site, "af-broken", "af_test_broken", "raise ImportError('needs libfoo')\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGENTFLOW_")}
    env["PYTHONPATH"] = os.pathsep.join([str(site), env.get("PYTHONPATH", "")])
    result = subprocess.run(
        [sys.executable, "-m", "agentflow_core", "hello"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "hello from a plugin command"
    assert result.stderr.strip().splitlines() == [
        'warning: Error loading plugin "af_test_broken" from af-broken: ImportError: needs libfoo'
    ]


SOLVE_PLUGIN = """
import click
from agentflow_core import hookimpl

@hookimpl
def register_commands(cli):
    @click.command()
    @click.argument("query")
    def solve(query):
        click.echo("the plugin's solve: " + query)

    cli.add_command(solve, replace=REPLACE)
"""


def run_with_site(site: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGENTFLOW_")}
    env["PYTHONPATH"] = os.pathsep.join([str(site), env.get("PYTHONPATH", "")])
    command = [sys.executable, "-m", "agentflow_core", *args]
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=60, check=False)


def test_a_plugin_command_named_like_a_builtin_is_an_error_unless_it_says_replace(tmp_path: Path) -> None:
    from tests.test_plugins import fake_distribution

    accidental, meant = tmp_path / "accidental", tmp_path / "meant"
    accidental.mkdir()
    meant.mkdir()
    fake_distribution(accidental, "af-solve", "af_test_solve", SOLVE_PLUGIN.replace("REPLACE", "False"))
    fake_distribution(meant, "af-solve", "af_test_solve", SOLVE_PLUGIN.replace("REPLACE", "True"))

    clash = run_with_site(accidental, "solve", "hi", cwd=tmp_path)
    assert clash.returncode == 1 and clash.stdout == ""
    assert clash.stderr.splitlines() == [
        "Error: command 'solve' is registered twice: by agentflow (built-in agentflow_core.cli.plugin) and by "
        "af-solve 1.2 (af_test_solve); a plugin that means to replace it registers it with replace=True"
    ]
    replaced = run_with_site(meant, "solve", "hi", cwd=tmp_path)
    assert replaced.returncode == 0, replaced.stderr
    assert replaced.stdout == "the plugin's solve: hi\n"


BROKEN_VERIFIER_PLUGIN = """
import click
from agentflow_core import hookimpl

class Broken:
    async def check(self, state):
        raise ZeroDivisionError("division by zero")

@hookimpl
def register_modules(register):
    register("verifier", "broken", lambda context: Broken())

@hookimpl
def register_commands(cli):
    @cli.command()
    def crash():
        raise ValueError("a plugin bug")
"""


def test_a_crashing_module_or_command_is_one_line_never_a_traceback(
    tmp_path: Path, server: ScriptedOpenAIServer
) -> None:
    from tests.test_plugins import fake_distribution

    site = tmp_path / "site"
    site.mkdir()
    fake_distribution(site, "af-broken-verifier", "af_test_verifier", BROKEN_VERIFIER_PLUGIN)
    config = write_config(tmp_path / "agentflow.toml", server)
    config.write_text(config.read_text() + '\n[modules]\nverifier = "broken"\n')
    script_one_turn(server)

    solved = run_with_site(site, "solve", "Which planet is largest?", "--quiet", cwd=tmp_path)
    assert solved.returncode == 1
    assert solved.stdout == "Jupiter (per tool observation #4711)\n"  # the answer was still written
    assert solved.stderr.splitlines() == [
        "Error: verifier module 'broken' (af-broken-verifier 1.2 (af_test_verifier)) failed: "
        "ZeroDivisionError: division by zero"
    ]
    crashed = run_with_site(site, "crash", cwd=tmp_path)
    assert crashed.returncode == 1 and "Traceback" not in crashed.stderr
    assert crashed.stderr.splitlines() == [
        "Error: unexpected ValueError: a plugin bug (a bug; AGENTFLOW_DEBUG=1 shows the traceback)"
    ]


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"[agent]\nmax_steps = 2 # \xff\xfe\n", "agentflow.toml: not UTF-8 text (byte 0xff at offset 24)"),
        (bytes(range(256)) * 4, "agentflow.toml: not UTF-8 text (byte 0x80 at offset 128)"),
    ],
)
def test_an_undecodable_config_file_is_one_line_not_a_bug(tmp_path: Path, content: bytes, expected: str) -> None:
    (tmp_path / "agentflow.toml").write_bytes(content)
    result = agentflow("solve", "q", cwd=tmp_path)
    assert result.returncode == 1
    [line] = result.stderr.splitlines()
    assert line.startswith(f"Error: {expected}") and "a bug" not in line, line


def test_a_full_disk_under_the_output_is_one_line_naming_it(tmp_path: Path, server: ScriptedOpenAIServer) -> None:
    write_config(tmp_path / "agentflow.toml", server)
    script_one_turn(server)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "AGENTFLOW_"))}
    with open("/dev/full", "w") as full:  # every write fails with ENOSPC, as on a full disk
        result = subprocess.run(
            [sys.executable, "-m", "agentflow_core", "solve", "Which planet is largest?", "--json"],
            cwd=tmp_path,
            env=env,
            stdout=full,
            stderr=subprocess.PIPE,
            text=True,
            timeout=120,
            check=False,
        )
    assert result.returncode == 1
    assert result.stderr.splitlines() == ["Error: stdout: No space left on device"]
