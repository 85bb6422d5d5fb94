"""``[mcp.NAME]``: how to reach one MCP server, and which of its tools to take.

A server is either a command run with stdio pipes (``command``, ``args``, ``env``, ``cwd``) or a
streamable-HTTP endpoint (``url``, ``headers``). Values of ``env`` and ``headers`` may name
environment variables as ``${NAME}``, so a token never has to be written into the file.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import attrs

from agentflow_core import ConfigError, structure_settings

_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
#: Characters a server name may have: it becomes the default prefix of tool names.
_SERVER_NAME = re.compile(r"^[A-Za-z0-9_-]+$")


@attrs.frozen
class ServerSettings:
    #: Program to run; it speaks MCP on its stdin and stdout.
    command: str | None = None
    #: Arguments of ``command``.
    args: tuple[str, ...] = ()
    #: Set on top of the few variables the SDK passes on (HOME, PATH, USER, ...); nothing else is inherited.
    env: Mapping[str, str] = attrs.field(factory=dict)
    #: Working directory of the command; default: the current one.
    cwd: str | None = None
    #: Streamable-HTTP endpoint, e.g. ``http://127.0.0.1:8811/mcp``.
    url: str | None = None
    #: Sent with every HTTP request (an ``Authorization`` token, say).
    headers: Mapping[str, str] = attrs.field(factory=dict)
    #: The server's tools to take, by their MCP names; default: every tool it lists.
    tools: tuple[str, ...] | None = None
    #: AgentFlow names its tools ``PREFIX.TOOL``; default: the server's name. ``""`` keeps the bare names.
    prefix: str | None = None
    #: Seconds to start the server, finish the MCP handshake and list its tools.
    startup_timeout_s: float = attrs.field(default=30.0, validator=attrs.validators.gt(0))
    #: Seconds one tool call may take (the solver's ``tool_timeout_s`` applies as well).
    timeout_s: float = attrs.field(default=60.0, validator=attrs.validators.gt(0))
    #: A longer result is cut to this many characters, with a note saying how much was left out.
    max_result_chars: int = attrs.field(default=20_000, validator=attrs.validators.ge(100))


@attrs.frozen
class Server:
    """A configured server, its settings checked and its ``${VARIABLES}`` filled in."""

    name: str
    settings: ServerSettings

    @property
    def prefix(self) -> str:
        return self.name if self.settings.prefix is None else self.settings.prefix

    def tool_name(self, mcp_name: str) -> str:
        return f"{self.prefix}.{mcp_name}" if self.prefix else mcp_name

    def may_name(self, tool_name: str) -> bool:
        """Whether ``tool_name`` could be one of this server's tools, judged from the config alone."""
        if self.prefix and not tool_name.startswith(f"{self.prefix}."):
            return False
        mcp_name = tool_name.removeprefix(f"{self.prefix}.") if self.prefix else tool_name
        return self.settings.tools is None or mcp_name in self.settings.tools

    @property
    def address(self) -> str:
        """The command or the URL, for messages."""
        return self.settings.url or " ".join((self.settings.command or "", *self.settings.args))


def parse_servers(
    section: Mapping[str, Any], *, where: str, environ: Mapping[str, str] | None = None
) -> tuple[Server, ...]:
    """Every ``[mcp.NAME]`` table of the ``[mcp]`` section; errors name the table and the key."""
    environ = os.environ if environ is None else environ
    servers = []
    for name, table in section.items():
        here = f"{where}.{name}"
        if not _SERVER_NAME.match(name):
            raise ConfigError(f"{here}: a server name may use only letters, digits, '_' and '-'")
        if not isinstance(table, Mapping):
            raise ConfigError(f"{here}: expected a table with 'command' or 'url'")
        settings = structure_settings(ServerSettings, table, where=here)
        _check(settings, here)
        settings = attrs.evolve(
            settings,
            env=_expand(settings.env, environ, f"{here}.env"),
            headers=_expand(settings.headers, environ, f"{here}.headers"),
        )
        servers.append(Server(name, settings))
    return tuple(servers)


def _check(settings: ServerSettings, where: str) -> None:
    if (settings.command is None) == (settings.url is None):
        raise ConfigError(f"{where}: set exactly one of 'command' (a stdio server) or 'url' (streamable HTTP)")
    if settings.command is not None:
        if not settings.command.strip():
            raise ConfigError(f"{where}: command is empty")
        if settings.headers:
            raise ConfigError(f"{where}: headers are for a 'url' server; a command gets 'env'")
    if settings.url is not None:
        parts = urlsplit(settings.url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ConfigError(f"{where}: url {settings.url!r} is not an http:// or https:// address")
        stray = [key for key in ("args", "env", "cwd") if getattr(settings, key)]
        if stray:
            raise ConfigError(f"{where}: {', '.join(stray)} are for a 'command' server, not a 'url' one")
    if settings.prefix and not _SERVER_NAME.match(settings.prefix.replace(".", "_")):
        raise ConfigError(f"{where}: prefix may use only letters, digits, '_', '-' and '.'")
    if settings.tools is not None and not settings.tools:
        raise ConfigError(f"{where}: tools is empty; leave it out to take every tool the server lists")


def _expand(values: Mapping[str, str], environ: Mapping[str, str], where: str) -> dict[str, str]:
    def expanded(key: str, value: str) -> str:
        def substitute(match: re.Match[str]) -> str:
            if match.group(1) not in environ:
                raise ConfigError(f"{where}.{key}: environment variable {match.group(1)} is not set")
            return environ[match.group(1)]

        return _VARIABLE.sub(substitute, value)

    return {key: expanded(key, value) for key, value in values.items()}
