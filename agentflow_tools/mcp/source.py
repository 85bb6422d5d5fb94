"""The ``mcp`` tool source: each tool of each ``[mcp.NAME]`` server becomes an AgentFlow tool.

A tool keeps the server's description and input schema as they are, so the planner reads what
the server wrote and the executor fills in exactly the arguments the server asked for; it is
named ``PREFIX.TOOL`` (the prefix is the server's name unless configured). Only the servers whose
tools a solver enables are started; they start together, and each keeps one session for the
solver's life (see ``connection``).

A tool whose name breaks the MCP specification's rule (1 to 128 ASCII letters, digits, ``_``,
``-`` and ``.``) is left out with a warning: a name reaches prompts, terminals and logs, and one
holding a newline and made-up instructions would read as something else there.
"""

from __future__ import annotations

import asyncio
import importlib.util
import logging
import re
import warnings
from collections.abc import Collection, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from agentflow_core import ConfigError, Tool, ToolContext, ToolError, ToolSpec
from agentflow_core.errors import ToolSourceError
from agentflow_core.inert import inert
from agentflow_core.tool_source import ToolAnnouncer, ToolSourceContext
from agentflow_tools.mcp.connection import McpConnection
from agentflow_tools.mcp.results import clip, result_text
from agentflow_tools.mcp.settings import Server, parse_servers

if TYPE_CHECKING:
    import mcp.types

#: A tool name as the MCP specification (2025-11-25, "Tool names") says it should be.
TOOL_NAME = re.compile(r"[A-Za-z0-9_.-]{1,128}")
#: How much of a refused name a warning quotes.
_QUOTED_NAME_CHARS = 80


class McpToolSource:
    def __init__(self, context: ToolSourceContext) -> None:
        if importlib.util.find_spec("mcp") is None:
            raise ConfigError(f"{context.where}: MCP servers need the MCP SDK: pip install 'agentflow[mcp]'")
        self._servers = parse_servers(context.settings, where=context.where)
        self._connections = {server.name: McpConnection(server) for server in self._servers}

    def may_provide(self, name: str) -> bool:
        return any(server.may_name(name) for server in self._servers)

    async def open(self, register: ToolAnnouncer, *, wanted: Collection[str] | None) -> None:
        _quiet_sdk_logs()
        servers = [s for s in self._servers if wanted is None or any(s.may_name(w) for w in wanted)]
        listed = await asyncio.gather(*(self._connections[s.name].open() for s in servers), return_exceptions=True)
        tool_lists = []
        for outcome in listed:
            if isinstance(outcome, BaseException):
                raise outcome
            tool_lists.append(outcome)
        chosen = {server.name: _chosen_tools(server, tools) for server, tools in zip(servers, tool_lists, strict=True)}
        _check_unique_names(servers, chosen)
        for server in servers:
            for tool in chosen[server.name]:
                spec = tool_spec(server, tool)
                register(spec, _factory(spec, self._connections[server.name], tool.name), origin=_origin(server))

    async def aclose(self) -> None:
        await asyncio.gather(*(c.aclose() for c in self._connections.values()), return_exceptions=True)


class McpTool:
    """One tool of one server; calls go through the server's shared session."""

    def __init__(self, spec: ToolSpec, connection: McpConnection, mcp_name: str) -> None:
        self.spec = spec
        self._connection = connection
        self._mcp_name = mcp_name

    async def run(self, arguments: Mapping[str, Any]) -> str:
        result = await self._connection.call(self._mcp_name, arguments)
        max_chars = self._connection.server.settings.max_result_chars
        text = result_text(result, max_chars=max_chars)
        if result.is_error:
            raise ToolError(f"{self.spec.name} reported an error: {clip(text, max_chars)}")
        return text

    async def aclose(self) -> None:
        """The session belongs to the tool source, which closes it with the solver."""


def tool_spec(server: Server, tool: mcp.types.Tool) -> ToolSpec:
    return ToolSpec(
        name=server.tool_name(tool.name),
        description=tool.description or tool.title or f"The {tool.name} tool of the MCP server {server.name}.",
        input_schema=tool.input_schema,
        output=_output(tool),
        limitations=_limitations(tool),
    )


def _output(tool: mcp.types.Tool) -> str:
    fields = (tool.output_schema or {}).get("properties")
    if isinstance(fields, Mapping) and fields:
        return f"text, and structured content as JSON with {', '.join(fields)}"
    return "the text the tool returns"


def _limitations(tool: mcp.types.Tool) -> tuple[str, ...]:
    hints = tool.annotations
    if hints is not None and hints.destructive_hint and not hints.read_only_hint:
        return ("It may change or delete things; its server marks it destructive.",)
    return ()


def _factory(spec: ToolSpec, connection: McpConnection, mcp_name: str) -> Any:
    def make(context: ToolContext) -> Tool:
        return McpTool(spec, connection, mcp_name)

    return make


def _origin(server: Server) -> str:
    return f"mcp server '{server.name}'"


def _chosen_tools(server: Server, tools: Sequence[mcp.types.Tool]) -> list[mcp.types.Tool]:
    """The tools to take: those named in ``tools`` (each must exist), or every usable one listed."""
    by_name = {tool.name: tool for tool in tools if _well_named(server, tool)}
    wanted = server.settings.tools
    if wanted is not None:
        missing = [name for name in wanted if name not in by_name]
        if missing:
            listed = ", ".join(sorted(by_name)) or "none"
            raise ToolSourceError(f"mcp server '{server.name}' has no tool {', '.join(missing)}; it lists: {listed}")
        return [_usable(server, by_name[name], required=True) for name in wanted]
    return [tool for tool in by_name.values() if _usable(server, tool, required=False)]


def _well_named(server: Server, tool: mcp.types.Tool) -> bool:
    if TOOL_NAME.fullmatch(tool.name):
        return True
    name = tool.name if len(tool.name) <= _QUOTED_NAME_CHARS else tool.name[: _QUOTED_NAME_CHARS - 1] + "…"
    warnings.warn(
        f"mcp server '{server.name}' lists a tool named '{inert(name)}', which is not an MCP tool name "
        "(1 to 128 of A-Z a-z 0-9 _ - .); it is left out",
        stacklevel=3,
    )
    return False


def _usable(server: Server, tool: mcp.types.Tool, *, required: bool) -> mcp.types.Tool | None:
    schema = tool.input_schema
    if isinstance(schema, Mapping) and schema.get("type") == "object":
        return tool
    problem = f"mcp server '{server.name}': tool {tool.name!r} has an inputSchema that is not of type 'object'"
    if required:
        raise ToolSourceError(problem)
    warnings.warn(f"{problem}; it is left out", stacklevel=2)
    return None


def _check_unique_names(servers: Sequence[Server], chosen: Mapping[str, Sequence[mcp.types.Tool]]) -> None:
    owners: dict[str, str] = {}
    for server in servers:
        for tool in chosen[server.name]:
            name = server.tool_name(tool.name)
            if name in owners and owners[name] != server.name:
                raise ToolSourceError(
                    f"mcp servers '{owners[name]}' and '{server.name}' both have a tool named {name!r}; "
                    f"give one of them another prefix ([mcp.{server.name}] prefix = ...)"
                )
            owners[name] = server.name


def _quiet_sdk_logs() -> None:
    # The SDK logs a server's malformed output with a traceback; with no logging configured Python
    # would print it on stderr. The failure reaches the person as a tool error instead.
    sdk = logging.getLogger("mcp")
    if not sdk.handlers:
        sdk.addHandler(logging.NullHandler())
