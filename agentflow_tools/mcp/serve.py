"""AgentFlow as an MCP server: a ``solve`` tool, and optionally each enabled tool on its own.

One solver serves every call, so calls run concurrently and share its engines and MCP sessions,
each solve with its own memory. A call is an ordinary task of the server: when the client cancels
it or goes away (its stdin closes, or its HTTP stream does), the SDK cancels the task and the
solve stops where it is, its tool calls cancelled with it.

``solve`` answers with the final answer as text, a one-line account of how it ended, and the whole
story as structured content: the answer, the stop reason, the turns, the tools used, and the
trajectory exactly as ``agentflow solve --json`` prints it.

Over HTTP every request passes ``agentflow_core.access`` first, on every address: the ``Host`` and
``Origin`` guard, then the bearer token (required beyond loopback).
"""

from __future__ import annotations

import socket
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any

from agentflow_core import Solver, ToolCall, ToolFailure, ToolSpec, Trajectory
from agentflow_core.access import Access, bearer
from agentflow_core.errors import AgentFlowError, UsageError
from agentflow_core.serde import to_dict
from agentflow_tools.mcp.connection import agentflow_version

if TYPE_CHECKING:
    import mcp.types
    from mcp.server.lowlevel import Server
    from starlette.types import ASGIApp, Receive, Scope, Send

SOLVE = "solve"
#: How often a call over HTTP looks whether its client is still there.
_DISCONNECT_POLL_S = 0.5

SOLVE_DESCRIPTION = (
    "Answers a question with an AgentFlow agent: it plans, calls its tools over several turns, checks "
    "its progress and writes a final answer. Returns the answer as text; the structured content adds "
    "the stop reason, the number of turns, the tools used and the whole trajectory."
)

SOLVE_INPUT = {
    "type": "object",
    "properties": {
        "query": {"type": "string", "minLength": 1, "description": "the question or task, with every fact it needs"}
    },
    "required": ["query"],
    "additionalProperties": False,
}

SOLVE_OUTPUT = {
    "type": "object",
    "properties": {
        "answer": {"type": ["string", "null"], "description": "the final answer; null when none was written"},
        "stop_reason": {"type": "string", "description": "what ended the loop: verifier_stop, max_steps, ..."},
        "turns": {"type": "integer", "description": "plan, execute, verify turns taken"},
        "tools_used": {"type": "array", "items": {"type": "string"}, "description": "each tool call in order"},
        "error": {"type": ["string", "null"], "description": "why the solve could not finish, if it did not"},
        "trajectory": {"type": "object", "description": "every prompt, response, tool call and result"},
    },
    "required": ["answer", "stop_reason", "turns", "tools_used", "error", "trajectory"],
}


def build_server(solver: Solver, *, expose_tools: bool) -> Server[Any]:
    """The MCP server of a started solver (its tool list is complete once it has started)."""
    import mcp.types as types
    from mcp import MCPError
    from mcp.server.lowlevel import Server

    exposed = {spec.name: spec for spec in solver.toolset.specs} if expose_tools else {}
    if SOLVE in exposed:
        raise UsageError(f"a tool named {SOLVE!r} cannot be exposed beside the solve tool; rename it (prefix)")
    solve = types.Tool(name=SOLVE, description=SOLVE_DESCRIPTION, input_schema=SOLVE_INPUT, output_schema=SOLVE_OUTPUT)
    tools = [solve, *(_mcp_tool(spec) for spec in exposed.values())]

    async def list_tools(ctx: Any, params: Any) -> mcp.types.ListToolsResult:
        return types.ListToolsResult(tools=tools)

    async def call_tool(ctx: Any, params: mcp.types.CallToolRequestParams) -> mcp.types.CallToolResult:
        arguments = params.arguments or {}
        if params.name == SOLVE:
            return await _unless_disconnected(ctx, lambda: _solve(solver, arguments))
        if params.name in exposed:
            return await _unless_disconnected(ctx, lambda: _run_tool(solver, params.name, arguments))
        raise MCPError(code=types.INVALID_PARAMS, message=f"Unknown tool: {params.name}")

    return Server(
        "agentflow",
        version=agentflow_version(),
        instructions="Call solve with a question to have an AgentFlow agent answer it with its tools.",
        on_list_tools=list_tools,
        on_call_tool=call_tool,
    )


async def _unless_disconnected(
    ctx: Any, work: Callable[[], Awaitable[mcp.types.CallToolResult]]
) -> mcp.types.CallToolResult:
    """``work()``, cancelled if the HTTP client that asked for it goes away.

    The SDK cancels a call when a 2026-07-28 client closes its response stream, and on
    ``notifications/cancelled``; a 2025-era HTTP client that just drops its connection leaves the
    call running unless someone watches the request, which is what this does. Over stdio there is
    no request to watch: the end of stdin stops everything.
    """
    import anyio

    request: Any = getattr(ctx, "request", None)  # the SDK's HTTP request object; absent over stdio
    if not callable(getattr(request, "is_disconnected", None)):
        return await work()
    done: list[mcp.types.CallToolResult] = []

    async def watch(scope: anyio.CancelScope) -> None:
        while not await request.is_disconnected():  # noqa: ASYNC110 -- the ASGI server offers no event to await
            await anyio.sleep(_DISCONNECT_POLL_S)
        scope.cancel()

    async with anyio.create_task_group() as group:
        group.start_soon(watch, group.cancel_scope)
        done.append(await work())
        group.cancel_scope.cancel()
    return done[0] if done else _error("the client went away before the call finished")


def _mcp_tool(spec: ToolSpec) -> mcp.types.Tool:
    import mcp.types as types

    return types.Tool(name=spec.name, description=_described(spec), input_schema=dict(spec.input_schema))


def _described(spec: ToolSpec) -> str:
    parts = [spec.description, f"Returns {spec.output}.", *spec.limitations, *spec.best_practices]
    return " ".join(part for part in parts if part)


async def _solve(solver: Solver, arguments: Mapping[str, Any]) -> mcp.types.CallToolResult:
    query = arguments.get("query")
    if not isinstance(query, str) or not query.strip() or set(arguments) - {"query"}:
        return _error("solve takes one argument, 'query': a non-empty string")
    try:
        trajectory = await solver.asolve(query)
    except AgentFlowError as exc:  # an MCP server of the solver that does not start, say
        return _error(f"the solve could not start: {exc}")
    return _solved(trajectory)


def _solved(trajectory: Trajectory) -> mcp.types.CallToolResult:
    import mcp.types as types

    tools_used = [step.tool_call.tool for step in trajectory.steps]
    summary = {
        "answer": trajectory.answer,
        "stop_reason": trajectory.stop_reason.value,
        "turns": len(trajectory.steps),
        "tools_used": tools_used,
        "error": trajectory.error,
        "trajectory": to_dict(trajectory),
    }
    account = f"stopped by {trajectory.stop_reason.value} after {len(trajectory.steps)} turn(s)"
    account += f"; tools used: {', '.join(tools_used)}" if tools_used else "; no tools used"
    if trajectory.error:
        account += f"; error: {trajectory.error}"
    blocks = [types.TextContent(text=trajectory.answer or "(no answer was written)"), types.TextContent(text=account)]
    failed = trajectory.answer is None and trajectory.error is not None
    return types.CallToolResult(content=blocks, structured_content=summary, is_error=failed)


async def _run_tool(solver: Solver, name: str, arguments: Mapping[str, Any]) -> mcp.types.CallToolResult:
    import mcp.types as types

    result = await solver.toolset.run(ToolCall(name, dict(arguments)))
    if isinstance(result, ToolFailure):
        return _error(f"{result.kind.value}: {result.error}")
    return types.CallToolResult(content=[types.TextContent(text=result.output)])


def _error(text: str) -> mcp.types.CallToolResult:
    import mcp.types as types

    return types.CallToolResult(content=[types.TextContent(text=text)], is_error=True)


async def serve_stdio(server: Server[Any]) -> None:
    from mcp.server.stdio import stdio_server

    async with stdio_server() as (read_stream, write_stream):
        await server.run(read_stream, write_stream, server.create_initialization_options())


async def serve_http(server: Server[Any], listener: socket.socket, access: Access) -> None:
    """Streamable HTTP at ``/mcp`` on a bound socket, behind ``access``, until interrupted."""
    import uvicorn
    from mcp.server.transport_security import TransportSecuritySettings

    # The SDK guards Host and Origin on 127.0.0.1 only, and would refuse the names the user
    # allowed; ours covers every address.
    unguarded = TransportSecuritySettings(enable_dns_rebinding_protection=False)
    app = guarded(server.streamable_http_app(transport_security=unguarded), access)
    # log_config=None: uvicorn's records go to Python's last-resort handler, which the CLI makes inert.
    config = uvicorn.Config(app, log_config=None, log_level="warning", lifespan="on")
    await uvicorn.Server(config).serve(sockets=[listener])


def guarded(app: ASGIApp, access: Access) -> ASGIApp:
    """``app`` behind ``access``: a refused request gets its status and one line of text."""
    from starlette.datastructures import Headers
    from starlette.responses import PlainTextResponse

    async def guard(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            headers = Headers(scope=scope)
            refusal = access.check(
                host=headers.get("host"), origin=headers.get("origin"), token=bearer(headers.get("authorization"))
            )
            if refusal is not None:
                challenge = {"WWW-Authenticate": "Bearer"} if refusal.status == 401 else {}
                response = PlainTextResponse(refusal.reason + "\n", status_code=refusal.status, headers=challenge)
                await response(scope, receive, send)
                return
        await app(scope, receive, send)

    return guard
