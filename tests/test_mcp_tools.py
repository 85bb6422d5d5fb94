"""MCP servers as tool sources, against real servers: mcp-server-time and mcp-server-fetch from PyPI,
and the tests' own server (tests/mcp_server.py, written with the SDK's MCPServer) over stdio and HTTP."""

from __future__ import annotations

import asyncio
import json
import re
import sys
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from agentflow_core import ConfigError, PluginError, Solver, ToolFailure, ToolSuccess
from agentflow_core.config import config_from_dict
from agentflow_core.errors import ToolSourceError
from agentflow_core.records import ToolCall, ToolErrorKind, ToolResult
from agentflow_core.registry import Registry
from tests.helpers import closed_port
from tests.mcp_support import (
    TEST_SERVER,
    alive,
    fetch_server,
    http_test_server,
    read_pid,
    scripted_server,
    silent_listener,
    time_server,
    wait_until,
    web_pages,
)

#: Engines that are never called: these tests drive the toolset directly.
UNUSED_ENGINES = {"default": {"model": "openai:unused", "base_url": "http://127.0.0.1:9/v1"}}


def mcp_config(servers: Mapping[str, Any], tools: list[str], **agent: Any) -> Any:
    return config_from_dict({"agent": {"tools": tools, **agent}, "engines": UNUSED_ENGINES, "mcp": dict(servers)})


async def started(registry: Registry, servers: Mapping[str, Any], tools: list[str], **agent: Any) -> Solver:
    solver = Solver(mcp_config(servers, tools, **agent), registry=registry)
    try:
        await solver.start()
    except BaseException:
        await solver.aclose()
        raise
    return solver


@pytest.fixture
async def solver_for(registry: Registry) -> AsyncIterator[Any]:
    """``await solver_for(servers, tools)``: a started solver, closed after the test."""
    made: list[Solver] = []

    async def make(servers: Mapping[str, Any], tools: list[str], **agent: Any) -> Solver:
        solver = await started(registry, servers, tools, **agent)
        made.append(solver)
        return solver

    yield make
    for solver in made:
        await solver.aclose()


async def call(solver: Solver, tool: str, **arguments: Any) -> ToolResult:
    return await solver.toolset.run(ToolCall(tool, arguments))


def output(result: ToolResult) -> str:
    assert isinstance(result, ToolSuccess), result
    return result.output


def failure(result: ToolResult, kind: ToolErrorKind = ToolErrorKind.FAILED) -> str:
    assert isinstance(result, ToolFailure), result
    assert result.kind is kind, result
    return result.error


async def start_error(registry: Registry, servers: Mapping[str, Any], tools: list[str]) -> str:
    with pytest.raises(ToolSourceError) as info:
        await started(registry, servers, tools)
    message = str(info.value)
    assert "\n" not in message
    return message


# -- mcp-server-time -------------------------------------------------------------------------


async def test_time_server_tools_keep_their_description_and_schema(solver_for: Any) -> None:
    from mcp import Client, StdioServerParameters

    solver = await solver_for({"time": time_server()}, ["time.get_current_time", "time.convert_time"])
    settings = time_server()
    async with Client(StdioServerParameters(command=settings["command"], args=settings["args"])) as client:
        listed = {tool.name: tool for tool in (await client.list_tools()).tools}

    specs = {spec.name: spec for spec in solver.toolset.specs}
    assert list(specs) == ["time.get_current_time", "time.convert_time"]
    for name, spec in specs.items():
        original = listed[name.removeprefix("time.")]
        assert spec.description == original.description
        assert spec.input_schema == original.input_schema
    assert "datetime" in specs["time.get_current_time"].output  # its output schema's fields
    assert "time.get_current_time" not in solver.registry.tools  # the shared registry is left as it was


async def test_time_server_answers_with_its_text(solver_for: Any) -> None:
    solver = await solver_for({"time": time_server()}, ["time.get_current_time"])
    result = json.loads(output(await call(solver, "time.get_current_time", timezone="Asia/Tokyo")))
    assert result["timezone"] == "Asia/Tokyo"
    assert result["datetime"].endswith("+09:00")


async def test_an_is_error_result_is_a_tool_error(solver_for: Any) -> None:
    solver = await solver_for({"time": time_server()}, ["time.get_current_time"])
    error = failure(await call(solver, "time.get_current_time", timezone="Nowhere/City"))
    assert error.startswith("time.get_current_time reported an error:")
    assert "Nowhere/City" in error


async def test_arguments_that_break_the_schema_never_reach_the_server(solver_for: Any) -> None:
    solver = await solver_for({"t": scripted_server()}, ["t.echo", "t.whoami"])
    error = failure(await call(solver, "t.echo", text=5), ToolErrorKind.BAD_ARGUMENTS)
    assert error == "arguments for t.echo are invalid: text: 5 is not of type 'string'"
    failure(await call(solver, "t.echo"), ToolErrorKind.BAD_ARGUMENTS)
    assert output(await call(solver, "t.whoami")).endswith("calls=1")  # echo was never called


# -- mcp-server-fetch ------------------------------------------------------------------------

PAGE = (
    "<html><head><title>Notes</title></head><body><h1>Field notes</h1><p>The token is kestrel-4711.</p></body></html>"
)
NO_ROBOTS = "User-agent: *\nDisallow: /\n"


async def test_fetch_server_honours_robots_txt(solver_for: Any) -> None:
    with web_pages({"/notes": ("text/html", PAGE), "/robots.txt": ("text/plain", NO_ROBOTS)}) as site:
        solver = await solver_for({"fetch": fetch_server("--allow-private-ips")}, ["fetch.fetch"])
        error = failure(await call(solver, "fetch.fetch", url=f"{site}/notes"))
    assert "robots.txt" in error
    assert "kestrel-4711" not in error


async def test_fetch_server_reads_a_page_when_told_to_ignore_robots_txt(solver_for: Any) -> None:
    with web_pages({"/notes": ("text/html", PAGE), "/robots.txt": ("text/plain", NO_ROBOTS)}) as site:
        flags = ("--allow-private-ips", "--ignore-robots-txt")
        solver = await solver_for({"fetch": fetch_server(*flags)}, ["fetch.fetch"])
        text = output(await call(solver, "fetch.fetch", url=f"{site}/notes"))
    assert f"Contents of {site}/notes" in text
    assert "kestrel-4711" in text
    assert "<p>" not in text  # turned into markdown by the server


async def test_fetch_servers_own_guard_against_loopback_is_a_tool_error(solver_for: Any) -> None:
    with web_pages({"/notes": ("text/html", PAGE)}) as site:
        solver = await solver_for({"fetch": fetch_server("--ignore-robots-txt")}, ["fetch.fetch"])
        error = failure(await call(solver, "fetch.fetch", url=f"{site}/notes"))
    assert "--allow-private-ips" in error


# -- what comes back -------------------------------------------------------------------------


async def test_every_content_block_is_described_in_text(solver_for: Any) -> None:
    solver = await solver_for({"t": scripted_server()}, ["t.media"])
    lines = output(await call(solver, "t.media")).splitlines()
    assert lines == [
        "here is everything",
        "[image image/png, 67 bytes, not shown]",
        "[resource file:///notes.txt (text/plain)]",
        "a note",
        "[resource file:///data.bin (application/octet-stream), 67 bytes of binary data, not shown]",
        "[resource link report: https://example.org/report.pdf, application/pdf]",
    ]


async def test_structured_content_is_part_of_the_result(solver_for: Any) -> None:
    solver = await solver_for({"t": scripted_server()}, ["t.weather", "t.echo"])
    assert json.loads(output(await call(solver, "t.weather", city="Oslo"))) == {"city": "Oslo", "celsius": 21.5}
    assert output(await call(solver, "t.echo", text="plain")) == "plain"  # {"result": ...} is not repeated


async def test_a_very_large_result_is_cut_and_says_so(solver_for: Any) -> None:
    solver = await solver_for({"t": scripted_server(max_result_chars=1000)}, ["t.big"])
    assert output(await call(solver, "t.big", chars=1_500)).endswith("\n[result cut: 500 of 1500 characters not shown]")
    # Past 4 bytes a character (UTF-8's most) for max_result_chars, the relay cut the text while reading it.
    text = output(await call(solver, "t.big", chars=5_000))
    assert text.startswith("x" * 1000 + "\n")
    last = text.splitlines()[-1]
    assert re.fullmatch(r"\[result cut: \d+ of \d+ characters not shown, and 936 more bytes not read\]", last), last


async def test_a_huge_result_is_cut_while_it_is_read_not_after(tmp_path: Path) -> None:
    """50 MB from the server must not be held whole (it held 718 MB, #33): the relay keeps a few kB of it."""
    worker = Path(__file__).with_name("workers") / "mcp_big_result.py"
    done = await asyncio.create_subprocess_exec(
        sys.executable, str(worker), TEST_SERVER, str(50_000_000), stdout=asyncio.subprocess.PIPE
    )
    stdout, _ = await asyncio.wait_for(done.communicate(), timeout=120)
    assert done.returncode == 0
    report = json.loads(stdout)
    assert report["growth_mb"] < 40, report  # the cut text, its copies and the SDK's models: a few MB
    assert report["tail"].endswith(f"not shown, and {50_000_000 - (4 * 20_000 + 64)} more bytes not read]")


async def test_a_huge_result_over_http_is_cut_while_it_is_read_too(solver_for: Any) -> None:
    with http_test_server() as url:
        solver = await solver_for({"web": {"url": url, "max_result_chars": 1000}}, ["web.big", "web.rpc_error"])
        text = output(await call(solver, "web.big", chars=5_000_000))
        message = failure(await call(solver, "web.rpc_error", code=-32000, message="database is read-only"))
    assert text.startswith("x" * 1000 + "\n")
    assert text.endswith(f", and {5_000_000 - (4 * 1000 + 64)} more bytes not read]"), text[-200:]
    assert message == "mcp server 'web' refused rpc_error: database is read-only (MCP error -32000)"


async def test_a_json_rpc_error_of_the_server_is_reported_with_its_code_and_message(solver_for: Any) -> None:
    solver = await solver_for({"t": scripted_server()}, ["t.rpc_error", "t.whoami"])
    pid = output(await call(solver, "t.whoami"))
    for code in (-32000, -32099, 42):
        message = failure(await call(solver, "t.rpc_error", code=code, message="database is read-only"))
        assert message == f"mcp server 't' refused rpc_error: database is read-only (MCP error {code})"
    # The connection was never closed, so the same server process answers on.
    assert output(await call(solver, "t.whoami")).split()[0] == pid.split()[0]


async def test_streamable_http_server_gets_headers_from_the_environment(
    solver_for: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AF_MCP_TEST_TOKEN", "s3cret")
    with http_test_server() as url:
        server = {"url": url, "headers": {"Authorization": "Bearer ${AF_MCP_TEST_TOKEN}"}}
        solver = await solver_for({"web": server}, ["web.headers", "web.media"])
        headers = output(await call(solver, "web.headers")).splitlines()
        media = output(await call(solver, "web.media"))
    assert "authorization: Bearer s3cret" in headers
    assert "[image image/png, 67 bytes, not shown]" in media


# -- naming ----------------------------------------------------------------------------------


async def test_a_tools_subset_and_a_prefix(registry: Registry, solver_for: Any) -> None:
    servers = {"t": scripted_server(tools=["echo", "whoami"], prefix="demo")}
    solver = await solver_for(servers, ["demo.echo"])
    assert [s.name for s in solver.toolset.specs] == ["demo.echo"]
    with pytest.raises(ConfigError, match=r"agent\.tools: unknown tool 'demo\.crash'"):
        Solver(mcp_config(servers, ["demo.crash"]), registry=registry)  # not in the subset: known at once


async def test_an_empty_prefix_keeps_the_bare_names(solver_for: Any) -> None:
    solver = await solver_for({"t": scripted_server(prefix="")}, ["echo"])
    assert output(await call(solver, "echo", text="bare")) == "bare"


async def test_a_misspelt_tool_of_a_server_is_named_with_what_the_server_has(registry: Registry) -> None:
    with pytest.raises(PluginError) as info:
        await started(registry, {"time": time_server()}, ["time.get_curent_time"])
    assert "unknown tool 'time.get_curent_time'" in str(info.value)
    assert "time.get_current_time" in str(info.value)


async def test_a_subset_naming_a_tool_the_server_lacks(registry: Registry) -> None:
    message = await start_error(registry, {"time": time_server(tools=["now"])}, ["time.now"])
    assert message == "mcp server 'time' has no tool now; it lists: convert_time, get_current_time"


async def test_two_servers_with_the_same_tool_name(registry: Registry) -> None:
    servers = {"a": scripted_server(prefix="same"), "b": scripted_server(prefix="same")}
    message = await start_error(registry, servers, ["same.echo"])
    assert message.startswith("mcp servers 'a' and 'b' both have a tool named 'same.echo'")


# -- bad input at start ----------------------------------------------------------------------


async def test_a_command_that_does_not_exist(registry: Registry) -> None:
    message = await start_error(registry, {"x": {"command": "no-such-mcp-server-here"}}, ["x.tool"])
    assert message == "mcp server 'x': command 'no-such-mcp-server-here' not found (is it installed and on PATH?)"


async def test_a_server_that_exits_at_start(registry: Registry) -> None:
    server = {"command": sys.executable, "args": ["-c", "import sys; sys.exit('error: unknown flag --colour')"]}
    message = await start_error(registry, {"x": server}, ["x.tool"])
    assert message.startswith("mcp server 'x' (")
    assert message.endswith("exited during start-up; its last words on stderr: error: unknown flag --colour")


async def test_a_server_that_never_finishes_initialising_is_stopped(registry: Registry, tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    script = "import os, sys, time; open(sys.argv[1], 'w').write(str(os.getpid())); time.sleep(120)"
    server = {"command": sys.executable, "args": ["-c", script, str(pid_file)], "startup_timeout_s": 1}
    message = await start_error(registry, {"x": server}, ["x.tool"])
    assert message.endswith("did not finish starting within 1 s")
    pid = read_pid(pid_file)
    wait_until(lambda: not alive(pid), what="the silent server to be killed")


async def test_a_url_nobody_listens_on(registry: Registry) -> None:
    url = f"http://127.0.0.1:{closed_port()}/mcp"
    message = await start_error(registry, {"x": {"url": url}}, ["x.tool"])
    assert message.startswith(f"mcp server 'x': cannot reach {url}: ")


async def test_a_url_that_never_answers(registry: Registry) -> None:
    with silent_listener() as url:
        message = await start_error(registry, {"x": {"url": url, "startup_timeout_s": 1}}, ["x.tool"])
    assert message == f"mcp server 'x' ({url}) did not finish starting within 1 s"


@pytest.mark.parametrize(
    ("table", "expected"),
    [
        ({}, "mcp.x: set exactly one of 'command' (a stdio server) or 'url' (streamable HTTP)"),
        ({"command": "a", "url": "http://h/mcp"}, "mcp.x: set exactly one of"),
        ({"url": "ftp://h/mcp"}, "mcp.x: url 'ftp://h/mcp' is not an http:// or https:// address"),
        ({"url": "http://h/mcp", "args": ["-v"]}, "mcp.x: args are for a 'command' server"),
        ({"command": "a", "headers": {"A": "b"}}, "mcp.x: headers are for a 'url' server"),
        ({"command": "a", "timeout_s": 0}, "mcp.x: 'timeout_s' must be > 0"),
        ({"command": "a", "tools": []}, "mcp.x: tools is empty"),
        ({"command": "a", "color": "red"}, "mcp.x: extra fields found (color)"),
        (
            {"url": "http://h/mcp", "headers": {"A": "${AF_SURELY_UNSET_VARIABLE}"}},
            "mcp.x.headers.A: environment variable AF_SURELY_UNSET_VARIABLE is not set",
        ),
    ],
)
def test_bad_server_settings_name_the_table(registry: Registry, table: dict[str, Any], expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        Solver(mcp_config({"x": table}, ["x.tool"]), registry=registry)
    assert str(info.value).startswith("config: mcp.x")
    assert expected in str(info.value)


def test_a_section_no_tool_source_claims(registry: Registry) -> None:
    config = config_from_dict({"mcpp": {"x": {"command": "a"}}, "engines": UNUSED_ENGINES}, source="my.toml")
    with pytest.raises(ConfigError, match=r"^my\.toml: unknown section \[mcpp\]; the sections are .*mcp"):
        Solver(config, registry=registry)


# -- lifecycle -------------------------------------------------------------------------------


async def test_a_server_that_exits_mid_run_is_restarted_on_the_next_call(solver_for: Any) -> None:
    solver = await solver_for({"t": scripted_server()}, ["t.crash", "t.whoami"])
    first = output(await call(solver, "t.whoami"))
    error = failure(await call(solver, "t.crash"))
    assert error == "mcp server 't' closed the connection during crash; it will be restarted for the next call"
    second = output(await call(solver, "t.whoami"))
    assert second.endswith("calls=1")
    assert second.split()[0] != first.split()[0]  # a new process


async def test_a_call_that_outlasts_its_timeout(solver_for: Any) -> None:
    solver = await solver_for({"t": scripted_server(timeout_s=0.5)}, ["t.sleep", "t.echo"])
    assert failure(await call(solver, "t.sleep", seconds=30)) == "mcp server 't': sleep did not answer within 0.5 s"
    assert output(await call(solver, "t.echo", text="still here")) == "still here"


async def test_the_solvers_own_tool_timeout_applies_too(solver_for: Any) -> None:
    solver = await solver_for({"t": scripted_server()}, ["t.sleep"], tool_timeout_s=0.5)
    assert failure(await call(solver, "t.sleep", seconds=30), ToolErrorKind.TIMEOUT) == (
        "t.sleep did not finish within 0.5 s"
    )


async def test_concurrent_calls_share_one_session(solver_for: Any) -> None:
    solver = await solver_for({"t": scripted_server()}, ["t.rendezvous", "t.whoami"])
    results = await asyncio.gather(*(call(solver, "t.rendezvous", party=3) for _ in range(3)))
    assert [output(r) for r in results] == ["met 3"] * 3  # all three were in one server process at once
    assert output(await call(solver, "t.whoami")).endswith("calls=1")


async def test_closing_the_solver_stops_its_servers(registry: Registry, tmp_path: Path) -> None:
    servers = {"t": scripted_server("--pid-file", str(tmp_path / "t.pid"), "--linger")}  # deaf to end of input
    solver = await started(registry, servers, ["t.echo"])
    pid = read_pid(tmp_path / "t.pid")
    assert alive(pid)
    await solver.aclose()
    wait_until(lambda: not alive(pid), what="the server to stop")


async def test_only_servers_with_enabled_tools_are_started(solver_for: Any, tmp_path: Path) -> None:
    servers = {
        "used": scripted_server("--pid-file", str(tmp_path / "used.pid")),
        "idle": scripted_server("--pid-file", str(tmp_path / "idle.pid")),
    }
    await solver_for(servers, ["used.echo"])
    assert (tmp_path / "used.pid").exists()
    assert not (tmp_path / "idle.pid").exists()
