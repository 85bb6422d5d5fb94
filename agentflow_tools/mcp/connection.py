"""One MCP session with one server: opened once, shared by every call, restarted after it breaks.

The SDK's client is a stack of anyio task groups, which must be entered and left by the same
task; a solver's calls come from many tasks. So each session lives in a task of its own that
holds the client open until it is told to stop, and calls from any task go through it. That task
is stopped through an anyio cancel scope, never ``Task.cancel()``: the SDK shields its shutdown
(close the server's stdin, wait, then kill its process group) only from anyio cancellation.

Every way a server can fail says so in one line naming the server: a missing command, a server
that exits or stays silent during start-up (with the last line it wrote to stderr), an address
that does not answer, a call that breaks the connection or runs out of time.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import tempfile
from collections.abc import Mapping
from typing import IO, TYPE_CHECKING, Any

import attrs

from agentflow_core import ToolError
from agentflow_core.errors import ToolSourceError
from agentflow_tools.mcp.cutter import NOT_FOUND, NOT_RUNNABLE, read_limits, relay_command
from agentflow_tools.mcp.settings import Server

if TYPE_CHECKING:
    import anyio
    import mcp
    import mcp.types

#: A paginating server that never stops is cut off after this many pages of ``tools/list``.
_MAX_TOOL_PAGES = 100
#: How much of the end of a server's stderr is read to quote its last line.
_STDERR_TAIL_BYTES = 4096
_RESTART = "; it will be restarted for the next call"
#: The message of the SDK's own "connection closed" error.
_SDK_CLOSED = "Connection closed"


@attrs.define
class _Live:
    """A running session and the task that holds it open."""

    scope: anyio.CancelScope
    task: asyncio.Task[None] | None = None
    client: mcp.Client | None = None
    tools: list[mcp.types.Tool] = attrs.field(factory=list)
    stderr: IO[bytes] | None = None
    #: Set when a call found the connection gone; the next call starts a new session.
    broken: bool = False

    @property
    def usable(self) -> bool:
        return self.client is not None and not self.broken and self.task is not None and not self.task.done()

    async def stop(self, *, keep_stderr: bool = False) -> None:
        self.scope.cancel()
        if self.task is not None:
            await asyncio.wait([self.task])
        if self.stderr is not None and not keep_stderr:
            self.stderr.close()


class McpConnection:
    def __init__(self, server: Server) -> None:
        self.server = server
        self._live: _Live | None = None
        self._lock = asyncio.Lock()

    async def open(self) -> list[mcp.types.Tool]:
        """Start the server (if it is not running) and return the tools it lists."""
        async with self._lock:
            if self._live is None or not self._live.usable:
                await self._restart()
            assert self._live is not None
            return list(self._live.tools)

    async def call(self, tool: str, arguments: Mapping[str, Any]) -> mcp.types.CallToolResult:
        """Call one tool; a failure of any kind is a ``ToolError`` naming the server."""
        from mcp import MCPError

        live = await self._usable()
        assert live.client is not None
        since = _size(live.stderr)
        timeout_s = self.server.settings.timeout_s
        try:
            return await live.client.call_tool(tool, dict(arguments), read_timeout_seconds=timeout_s)
        except MCPError as exc:
            raise ToolError(self._call_error(exc, live, tool, since)) from None
        except Exception as exc:  # a transport failure, or a result that breaks the protocol or its schema
            if not _is_transport_failure(exc):
                raise ToolError(f"{self._who}: {tool} returned an invalid result: {_cause(exc)}") from None
            live.broken = True
            note = _stderr_note(live, since)
            raise ToolError(
                f"{self._who}: the connection failed during {tool}: {_cause(exc)}{note}{_RESTART}"
            ) from None

    async def aclose(self) -> None:
        async with self._lock:
            if self._live is not None:
                await self._live.stop()
                self._live = None

    @property
    def _who(self) -> str:
        return f"mcp server '{self.server.name}'"

    async def _usable(self) -> _Live:
        async with self._lock:
            if self._live is None or not self._live.usable:
                try:
                    await self._restart()
                except ToolSourceError as exc:
                    raise ToolError(str(exc)) from None
            assert self._live is not None
            return self._live

    def _call_error(self, exc: Any, live: _Live, tool: str, since: int) -> str:
        from mcp.types import REQUEST_TIMEOUT

        if exc.code == REQUEST_TIMEOUT:
            return f"{self._who}: {tool} did not answer within {self.server.settings.timeout_s:g} s"
        if _is_connection_closed(exc) or exc.error.message == "Session terminated":
            live.broken = True
            return f"{self._who} closed the connection during {tool}{_stderr_note(live, since)}{_RESTART}"
        return f"{self._who} refused {tool}: {exc.error.message} (MCP error {exc.code})"

    async def _restart(self) -> None:
        if self._live is not None:
            await self._live.stop()
            self._live = None
        self._live = await self._start()

    async def _start(self) -> _Live:
        import anyio

        settings = self.server.settings
        live = _Live(scope=anyio.CancelScope(deadline=anyio.current_time() + settings.startup_timeout_s))
        if settings.command is not None:
            live.stderr = tempfile.TemporaryFile()  # noqa: SIM115 -- closed by _Live.stop
        ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        live.task = asyncio.create_task(self._hold(live, ready), name=f"mcp server {self.server.name}")
        try:
            await ready
        except BaseException as exc:
            await live.stop(keep_stderr=True)  # the server has said all it will: quote it, then let go
            if ready.done() and not ready.cancelled():
                ready.exception()  # retrieved: it is reported here, or the caller was cancelled
            message = self._start_error(exc, live) if isinstance(exc, Exception) else ""
            if live.stderr is not None:
                live.stderr.close()
            if message:
                raise ToolSourceError(message) from None
            raise
        return live

    async def _hold(self, live: _Live, ready: asyncio.Future[None]) -> None:
        """The session's own task: open the client, list the tools, then wait to be stopped."""
        try:
            with live.scope:
                async with contextlib.AsyncExitStack() as stack:
                    live.client = await stack.enter_async_context(await self._new_client(stack, live.stderr))
                    live.tools = await _list_tools(live.client)
                    live.scope.deadline = math.inf
                    ready.set_result(None)
                    await _sleep_forever()
        except Exception as exc:  # reported through `ready` during start-up, then by the calls that fail
            if not ready.done():
                ready.set_exception(exc)
        finally:
            live.broken = True
            if not ready.done():
                ready.set_exception(TimeoutError())

    async def _new_client(self, stack: contextlib.AsyncExitStack, stderr: IO[bytes] | None) -> mcp.Client:
        from mcp import Client, StdioServerParameters, stdio_client
        from mcp.client.streamable_http import streamable_http_client
        from mcp.types import Implementation

        settings = self.server.settings
        info = Implementation(name="agentflow", version=agentflow_version())
        if settings.command is not None:
            # The server's output passes through the relay, which cuts it while reading (see cutter.py);
            # a character broken by a server (or a cut) reads as U+FFFD rather than ending the session.
            relayed = relay_command(settings.command, list(settings.args), **read_limits(settings.max_result_chars))
            params = StdioServerParameters(
                command=relayed[0],
                args=relayed[1:],
                env=dict(settings.env) or None,
                cwd=settings.cwd,
                encoding_error_handler="replace",
            )
            return Client(stdio_client(params, errlog=stderr), client_info=info, cache=None)
        import httpx2

        from agentflow_tools.mcp.cut_transport import CuttingTransport

        # The SDK's own timeouts, but connecting may take no longer than start-up does; bodies are cut
        # while read, as a stdio server's output is (and an event may be as long as a cut message).
        timeout = httpx2.Timeout(30.0, connect=min(30.0, settings.startup_timeout_s), read=300.0)
        limits = read_limits(settings.max_result_chars)
        transport = CuttingTransport(**limits)
        client = httpx2.AsyncClient(headers=dict(settings.headers), timeout=timeout, transport=transport)
        http = await stack.enter_async_context(client)
        assert settings.url is not None
        stream = streamable_http_client(
            settings.url, http_client=http, max_sse_event_size=limits["max_message_bytes"] + 1024
        )
        return Client(stream, client_info=info, cache=None)

    def _start_error(self, exc: Exception, live: _Live) -> str:
        settings = self.server.settings
        cause = _root(exc)
        note = _stderr_note(live, 0)
        if isinstance(cause, TimeoutError):
            return (
                f"{self._who} ({self.server.address}) did not finish starting within "
                f"{settings.startup_timeout_s:g} s{note}"
            )
        last = _last_line(live.stderr, 0) if live.stderr is not None else ""
        if last.startswith(NOT_FOUND):
            return f"{self._who}: command {settings.command!r} not found (is it installed and on PATH?)"
        if last.startswith(NOT_RUNNABLE):
            return f"{self._who}: command {settings.command!r} cannot be run: {last.removeprefix(NOT_RUNNABLE)}"
        if _is_connection_closed(cause):
            return f"{self._who} ({self.server.address}) exited during start-up{note}"
        if settings.url is not None and _is_transport_failure(cause):
            return f"{self._who}: cannot reach {settings.url}: {_cause(cause)}"
        return f"{self._who} ({self.server.address}) failed to start: {_cause(cause)}{note}"


async def _list_tools(client: mcp.Client) -> list[mcp.types.Tool]:
    tools: list[mcp.types.Tool] = []
    cursor: str | None = None
    for _ in range(_MAX_TOOL_PAGES):
        page = await client.list_tools(cursor=cursor)
        tools.extend(page.tools)
        cursor = page.next_cursor
        if not cursor:
            return tools
    raise ToolSourceError(f"the server listed more than {_MAX_TOOL_PAGES} pages of tools")


async def _sleep_forever() -> None:
    import anyio

    await anyio.sleep_forever()


def _root(exc: BaseException) -> BaseException:
    """The first real cause inside anyio's nested exception groups."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc


def _cause(exc: BaseException) -> str:
    exc = _root(exc)
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _is_connection_closed(exc: BaseException) -> bool:
    from mcp import MCPError
    from mcp.types import CONNECTION_CLOSED

    # The SDK says "connection closed" with code -32000, which JSON-RPC leaves to servers for their own
    # errors: only the SDK's own words mean the connection is gone; a server's -32000 is the server speaking (#33).
    return isinstance(exc, MCPError) and exc.code == CONNECTION_CLOSED and exc.error.message == _SDK_CLOSED


def _is_transport_failure(exc: BaseException) -> bool:
    import anyio
    import httpx2

    exc = _root(exc)
    broken = (httpx2.TransportError, anyio.BrokenResourceError, anyio.ClosedResourceError, OSError, EOFError)
    return isinstance(exc, broken) or _is_connection_closed(exc)


def _stderr_note(live: _Live, since: int) -> str:
    """The last line the server wrote on stderr after offset ``since``, as the end of a message."""
    line = _last_line(live.stderr, since) if live.stderr is not None else ""
    return f"; its last words on stderr: {line}" if line else ""


def _size(stderr: IO[bytes] | None) -> int:
    try:
        return stderr.seek(0, 2) if stderr is not None else 0
    except (OSError, ValueError):
        return 0


def _last_line(stderr: IO[bytes], since: int) -> str:
    try:
        size = stderr.seek(0, 2)
        stderr.seek(max(since, size - _STDERR_TAIL_BYTES))
        lines = stderr.read().decode("utf-8", errors="replace").splitlines()
    except (OSError, ValueError):
        return ""
    last = next((line.strip() for line in reversed(lines) if line.strip()), "")
    return last if len(last) <= 300 else last[:299] + "…"


def agentflow_version() -> str:
    from importlib import metadata

    try:
        return metadata.version("agentflow")
    except metadata.PackageNotFoundError:
        return "0"
