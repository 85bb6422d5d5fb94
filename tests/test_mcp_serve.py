"""``agentflow mcp serve`` driven by the SDK's own client, over stdio and streamable HTTP; the agent's
modules run on the scripted engines, its tools are real MCP servers (mcp-server-time, tests/mcp_server.py)."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agentflow_core import StopReason, Trajectory
from agentflow_core.serde import from_dict
from agentflow_core.testing import RecordedRequest, Reply, ScriptedOpenAIServer, scripted_json
from tests.mcp_support import scripted_server, time_server, wait_until
from tests.test_mcp_cli import answer_with_the_datetime, script_one_call, write_config


@pytest.fixture
def server():
    with ScriptedOpenAIServer() as server:
        yield server


def serve_command(config: Path, *flags: str) -> list[str]:
    return [sys.executable, "-m", "agentflow_core", "mcp", "serve", "--config", str(config), *flags]


def stdio_params(config: Path, *flags: str) -> Any:
    from mcp import StdioServerParameters

    command = serve_command(config, *flags)
    return StdioServerParameters(command=command[0], args=command[1:], cwd=str(config.parent))


@pytest.fixture
def http_agentflow(tmp_path: Path) -> Iterator[Any]:
    """``start(config, *flags)``: ``agentflow mcp serve --http 127.0.0.1:0`` running; returns its URL."""
    processes: list[subprocess.Popen[str]] = []

    def start(config: Path, *flags: str) -> str:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "AGENTFLOW_"))}
        process = subprocess.Popen(
            serve_command(config, "--http", "127.0.0.1:0", *flags),
            cwd=tmp_path,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        processes.append(process)
        assert process.stderr is not None
        line = process.stderr.readline()
        found = re.search(r"at (http://\S+/mcp)", line)
        assert found, line + process.stderr.read()
        return found.group(1)

    yield start
    for process in processes:
        process.terminate()
        process.communicate(timeout=30)


@pytest.mark.parametrize("mode", ["auto", "legacy"])  # the 2026-07-28 protocol, and the initialize handshake
async def test_solve_over_stdio(tmp_path: Path, server: ScriptedOpenAIServer, mode: str) -> None:
    from mcp import Client

    script_one_call(server, "time.get_current_time", {"timezone": "Asia/Tokyo"})
    server.set_responder("g", answer_with_the_datetime)
    config = write_config(tmp_path / "agentflow.toml", server, ["time.get_current_time"], {"time": time_server()})
    async with Client(stdio_params(config), mode=mode) as client:
        tools = (await client.list_tools()).tools
        result = await client.call_tool("solve", {"query": "What time is it in Tokyo?"})

    assert [t.name for t in tools] == ["solve"]
    assert tools[0].input_schema["required"] == ["query"]
    assert not result.is_error
    answer, account = (block.text for block in result.content)  # type: ignore[union-attr]
    structured = result.structured_content
    assert structured is not None
    trajectory = from_dict(structured["trajectory"], Trajectory)
    returned = json.loads(trajectory.steps[0].result.output)  # type: ignore[union-attr]
    assert answer == f"It is {returned['datetime']} in Tokyo." == structured["answer"] == trajectory.answer
    assert account == "stopped by verifier_stop after 1 turn(s); tools used: time.get_current_time"
    assert structured["stop_reason"] == "verifier_stop" and trajectory.stop_reason is StopReason.VERIFIER_STOP
    assert structured["turns"] == 1
    assert structured["tools_used"] == ["time.get_current_time"]
    assert structured["error"] is None


async def test_bad_calls_over_stdio(tmp_path: Path, server: ScriptedOpenAIServer) -> None:
    from mcp import Client, MCPError

    config = write_config(tmp_path / "agentflow.toml", server, ["t.echo"], {"t": scripted_server()})
    async with Client(stdio_params(config)) as client:
        for arguments in ({}, {"query": ""}, {"query": 3}, {"query": "q", "extra": 1}):
            result = await client.call_tool("solve", arguments)
            assert result.is_error
            assert result.content[0].text == "solve takes one argument, 'query': a non-empty string"  # type: ignore[union-attr]
        with pytest.raises(MCPError, match=r"Unknown tool: t\.echo"):  # not exposed without --expose-tools
            await client.call_tool("t.echo", {"text": "hi"})


async def test_exposed_tools_and_concurrent_solves_over_http(
    tmp_path: Path, server: ScriptedOpenAIServer, http_agentflow: Any
) -> None:
    from mcp import Client

    config = write_config(tmp_path / "agentflow.toml", server, ["t.echo", "t.rendezvous"], {"t": scripted_server()})
    url = http_agentflow(config, "--expose-tools")
    # Two solves at once take replies in no set order, so each module answers by what it is asked.
    step = {"question": "meet", "tool": "t.rendezvous"}
    server.set_responder("p", lambda r: scripted_json(step) if r.response_format else Reply("Meet."))
    server.set_responder("e", lambda r: scripted_json({"explanation": "meet", "arguments": {"party": 2}}))
    server.set_responder("v", lambda r: scripted_json({"analysis": "met", "decision": "STOP"}))

    def answer_with_the_observation(request: RecordedRequest) -> Reply:
        found = re.search(r"result: (met \d|alone)", request.messages[-1]["content"])
        return Reply(found.group(1) if found else "no result")

    server.set_responder("g", answer_with_the_observation)
    async with Client(url) as client:
        listed = {t.name: t for t in (await client.list_tools()).tools}
        echoed = await client.call_tool("t.echo", {"text": "over http"})
        bad = await client.call_tool("t.echo", {"text": 7})
        solves = await asyncio.gather(*(client.call_tool("solve", {"query": f"Meet #{i}"}) for i in range(2)))

    assert list(listed) == ["solve", "t.echo", "t.rendezvous"]
    assert listed["t.echo"].input_schema["properties"]["text"]["description"] == "what to send back"
    assert echoed.content[0].text == "over http"  # type: ignore[union-attr]
    assert bad.is_error and "bad_arguments" in bad.content[0].text  # type: ignore[union-attr]
    # Both solves were inside the test server's rendezvous at once, so both met there.
    assert [s.structured_content["answer"] for s in solves] == ["met 2", "met 2"], [
        s.structured_content["error"] for s in solves
    ]  # type: ignore[index]


ABANDONING_CLIENT = """
import asyncio, sys
from mcp import Client

async def main():
    async with Client(sys.argv[1], mode=sys.argv[2]) as client:
        await client.call_tool("solve", {"query": "Wait for ever."})

asyncio.run(main())
"""


@pytest.mark.parametrize("mode", ["auto", "legacy"])  # the 2026-07-28 wire, and the 2025-11-25 one
def test_a_client_that_disconnects_cancels_its_solve(
    tmp_path: Path, server: ScriptedOpenAIServer, http_agentflow: Any, mode: str
) -> None:
    markers = tmp_path / "markers"
    markers.mkdir()
    mcp = {"t": scripted_server("--marker-dir", str(markers))}
    config = write_config(tmp_path / "agentflow.toml", server, ["t.block"], mcp)
    url = http_agentflow(config)
    script_one_call(server, "t.block", {})
    client = subprocess.Popen([sys.executable, "-c", ABANDONING_CLIENT, url, mode], stderr=subprocess.DEVNULL)
    try:
        wait_until(lambda: (markers / "started").exists(), timeout_s=60, what="the solve to reach its tool")
        client.kill()  # no goodbye: the connection just drops
        client.wait(timeout=10)
        wait_until(lambda: (markers / "cancelled").exists(), timeout_s=30, what="the solve to be cancelled")
    finally:
        if client.poll() is None:
            client.kill()
            client.wait()
    assert not [r for r in server.requests if r.model == "v"]  # the solve stopped where it was


async def test_a_client_that_cancels_over_stdio_cancels_the_solve(tmp_path: Path, server: ScriptedOpenAIServer) -> None:
    from mcp import Client

    markers = tmp_path / "markers"
    markers.mkdir()
    mcp = {"t": scripted_server("--marker-dir", str(markers))}
    config = write_config(tmp_path / "agentflow.toml", server, ["t.block"], mcp)
    script_one_call(server, "t.block", {})
    async with Client(stdio_params(config)) as client:
        call = asyncio.create_task(client.call_tool("solve", {"query": "Wait for ever."}))
        await asyncio.to_thread(wait_until, lambda: (markers / "started").exists(), timeout_s=60, what="the tool")
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call
        await asyncio.to_thread(wait_until, lambda: (markers / "cancelled").exists(), what="the solve to be cancelled")


def test_a_bad_listen_address_is_one_line(tmp_path: Path) -> None:
    from tests.test_cli import agentflow

    result = agentflow("mcp", "serve", "--http", "localhost", cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr == "Error: --http expects HOST:PORT, such as 127.0.0.1:8811; got 'localhost'\n"
