"""``agentflow mcp serve``: AgentFlow for any MCP client (a desktop assistant, an IDE, another agent)."""

from __future__ import annotations

import asyncio
import importlib.util
import socket

import click

from agentflow_core import Config, Solver, load_config
from agentflow_core.errors import UsageError


@click.group()
def mcp() -> None:
    """AgentFlow over the Model Context Protocol (MCP servers as tools: [mcp.NAME] in agentflow.toml)."""


@mcp.command()
@click.option("--config", "config_path", type=click.Path(dir_okay=False), help="agentflow.toml to read.")
@click.option("--http", "address", metavar="HOST:PORT", help="Serve streamable HTTP at http://HOST:PORT/mcp.")
@click.option("--expose-tools", is_flag=True, help="Also offer each enabled tool on its own, beside solve.")
def serve(config_path: str | None, address: str | None, expose_tools: bool) -> None:
    """Serve a solve tool over stdio (the default) or streamable HTTP.

    Over stdio, stdout carries the protocol; messages go to stderr.
    """
    if importlib.util.find_spec("mcp") is None:
        raise UsageError("agentflow mcp needs the MCP SDK: pip install 'agentflow[mcp]'")
    config = load_config(config_path)
    listener = _listen(address) if address else None
    try:
        asyncio.run(_serve(config, listener, expose_tools=expose_tools))
    finally:
        if listener is not None:
            listener.close()


async def _serve(config: Config, listener: socket.socket | None, *, expose_tools: bool) -> None:
    from agentflow_tools.mcp.serve import build_server, serve_http, serve_stdio

    async with Solver(config) as solver:
        await solver.start()
        server = build_server(solver, expose_tools=expose_tools)
        if listener is None:
            await serve_stdio(server)
            return
        host, port = listener.getsockname()[:2]
        shown = f"[{host}]" if ":" in host else host
        click.echo(f"serving MCP over streamable HTTP at http://{shown}:{port}/mcp", err=True)
        await serve_http(server, listener)


def _listen(address: str) -> socket.socket:
    """A bound, listening socket for ``HOST:PORT`` (port 0 picks a free one), or a one-line error."""
    host, sep, port_text = address.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port_text.isdigit() or int(port_text) > 65535:
        raise UsageError(f"--http expects HOST:PORT, such as 127.0.0.1:8811; got {address!r}")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, int(port_text)))
        # Listening now, not when uvicorn starts: a client that reads the printed URL and connects
        # at once waits in the backlog instead of being refused.
        sock.listen(128)
    except OSError as exc:
        sock.close()
        raise UsageError(f"--http {address}: cannot listen there: {exc.strerror or exc}") from None
    return sock
