"""``agentflow`` with MCP servers, as a user runs it: a subprocess, a config file, the scripted engines on
127.0.0.1 and real MCP servers (mcp-server-time from PyPI, and tests/mcp_server.py)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from agentflow_core import Trajectory
from agentflow_core.serde import from_json
from agentflow_core.testing import RecordedRequest, Reply, ScriptedOpenAIServer, scripted_json
from tests.mcp_support import alive, read_pid, scripted_server, time_server, wait_until
from tests.test_cli import agentflow


@pytest.fixture
def server():
    with ScriptedOpenAIServer() as server:
        yield server


def write_config(path: Path, server: ScriptedOpenAIServer, tools: list[str], mcp: dict[str, dict[str, Any]]) -> Path:
    lines = ["[agent]", f"tools = {json.dumps(tools)}", "", "[engines]"]
    for role, model in [("planner", "p"), ("executor", "e"), ("verifier", "v"), ("generator", "g")]:
        lines.append(f'{role} = {{ model = "openai:{model}", base_url = "{server.base_url}", max_attempts = 1 }}')
    for name, table in mcp.items():
        lines += ["", f"[mcp.{name}]"] + [f"{key} = {json.dumps(value)}" for key, value in table.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


def script_one_call(server: ScriptedOpenAIServer, tool: str, arguments: dict[str, Any]) -> None:
    server.enqueue("p", Reply("One tool call will do."), scripted_json({"question": "ask", "tool": tool}))
    server.enqueue("e", scripted_json({"explanation": "ask the server", "arguments": arguments}))
    server.enqueue("v", scripted_json({"analysis": "answered", "decision": "STOP"}))


def answer_with_the_datetime(request: RecordedRequest) -> Reply:
    """The generator's reply: the datetime it finds in the memory it was shown."""
    found = re.search(r'"datetime": "([^"]+)"', request.messages[-1]["content"])
    return Reply(f"It is {found.group(1)} in Tokyo." if found else "I could not find the time.")


def test_solve_calls_an_mcp_tool_and_answers_with_what_it_returned(
    tmp_path: Path, server: ScriptedOpenAIServer
) -> None:
    from mcp import Client, StdioServerParameters

    script_one_call(server, "time.get_current_time", {"timezone": "Asia/Tokyo"})
    server.set_responder("g", answer_with_the_datetime)
    config = write_config(tmp_path / "agentflow.toml", server, ["time.get_current_time"], {"time": time_server()})
    result = agentflow("solve", "What time is it in Tokyo?", "--config", str(config), "--json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr

    trajectory = from_json(result.stdout, Trajectory)
    [step] = trajectory.steps
    returned = json.loads(step.result.output)  # type: ignore[union-attr]
    assert returned["timezone"] == "Asia/Tokyo"
    assert trajectory.answer == f"It is {returned['datetime']} in Tokyo."
    # The planner read the server's own description; the executor was asked for the server's own schema.
    settings = time_server()

    async def listed() -> Any:
        async with Client(StdioServerParameters(command=settings["command"], args=settings["args"])) as client:
            return {t.name: t for t in (await client.list_tools()).tools}["get_current_time"]

    import asyncio

    original = asyncio.run(listed())
    assert original.description in server.requests_for("p")[0].messages[-1]["content"]
    [command] = server.requests_for("e")
    assert command.response_format is not None
    reply_schema = command.response_format["json_schema"]["schema"]
    assert reply_schema["properties"]["arguments"] == original.input_schema
    assert command.response_format["json_schema"]["name"] == "time_get_current_time_call"


def test_tools_lists_mcp_tools_with_their_server(tmp_path: Path, server: ScriptedOpenAIServer) -> None:
    config = write_config(tmp_path / "agentflow.toml", server, ["base_generator"], {"time": time_server()})
    result = agentflow("tools", "--config", str(config), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    [line] = [line for line in result.stdout.splitlines() if line.startswith("time.get_current_time")]
    assert "Get current time in a specific timezone" in line
    assert "[mcp server 'time' via agentflow" in line
    assert "base_generator" in result.stdout


def test_a_server_that_cannot_start_is_one_line(tmp_path: Path, server: ScriptedOpenAIServer) -> None:
    config = write_config(tmp_path / "agentflow.toml", server, ["x.tool"], {"x": {"command": "no-such-mcp-server"}})
    result = agentflow("solve", "anything", "--config", str(config), cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr == (
        "Error: mcp server 'x': command 'no-such-mcp-server' not found (is it installed and on PATH?)\n"
    )


def _ctrl_c_as_in_a_terminal() -> None:
    """A test run started in the background (``cmd &``, nohup) ignores SIGINT, and Python keeps an
    inherited SIG_IGN; the solve under test gets SIGINT's default, as in a terminal."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_ctrl_c_during_a_tool_call_leaves_no_server_behind(tmp_path: Path, server: ScriptedOpenAIServer) -> None:
    markers = tmp_path / "markers"
    markers.mkdir()
    pid_file = tmp_path / "server.pid"
    mcp = {"t": scripted_server("--pid-file", str(pid_file), "--marker-dir", str(markers), "--linger")}
    config = write_config(tmp_path / "agentflow.toml", server, ["t.block"], mcp)
    script_one_call(server, "t.block", {})
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "AGENTFLOW_"))}
    command = [sys.executable, "-m", "agentflow_core", "solve", "Wait for ever.", "--config", str(config)]
    process = subprocess.Popen(
        command,
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=_ctrl_c_as_in_a_terminal,
    )
    try:
        wait_until(lambda: (markers / "started").exists() or process.poll() is not None, what="the tool call")
        assert process.poll() is None, process.communicate()
        pid = read_pid(pid_file)
        assert alive(pid)
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 130, stderr
    assert stderr.rstrip().endswith("interrupted")
    assert "Traceback" not in stderr
    wait_until(lambda: not alive(pid), what="the MCP server to be gone")
