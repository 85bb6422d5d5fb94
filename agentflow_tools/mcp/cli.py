"""``agentflow mcp serve``: AgentFlow for any MCP client (a desktop assistant, an IDE, another agent)."""

from __future__ import annotations

import asyncio
import importlib.util
import socket

import click

from agentflow_core import Config, Solver, load_config
from agentflow_core.access import Access, server_access
from agentflow_core.errors import UsageError

#: The bearer token of ``serve --http``; without it, one is made when bound beyond loopback.
TOKEN_VARIABLE = "AGENTFLOW_MCP_TOKEN"


@click.group()
def mcp() -> None:
    """AgentFlow over the Model Context Protocol (MCP servers as tools: [mcp.NAME] in agentflow.toml)."""


@mcp.command()
@click.option("--config", "config_path", type=click.Path(dir_okay=False), help="agentflow.toml to read.")
@click.option("--http", "address", metavar="HOST:PORT", help="Serve streamable HTTP at http://HOST:PORT/mcp.")
@click.option("--expose-tools", is_flag=True, help="Also offer each enabled tool on its own, beside solve.")
@click.option(
    "--allow-host", "allowed_hosts", multiple=True, metavar="NAME", help="Also answer to this Host name (repeatable)."
)
def serve(config_path: str | None, address: str | None, expose_tools: bool, allowed_hosts: tuple[str, ...]) -> None:
    """Serve a solve tool over stdio (the default) or streamable HTTP.

    Over stdio, stdout carries the protocol; messages go to stderr. Over HTTP beyond loopback,
    clients need the bearer token: AGENTFLOW_MCP_TOKEN, or one made and printed at start.
    """
    if importlib.util.find_spec("mcp") is None:
        raise UsageError("agentflow mcp needs the MCP SDK: pip install 'agentflow[mcp]'")
    config = load_config(config_path)
    listener = _listen(address) if address else None
    try:
        gate = _gate(listener, address, allowed_hosts) if listener is not None and address is not None else None
        asyncio.run(_serve(config, listener, gate, expose_tools=expose_tools))
    finally:
        if listener is not None:
            listener.close()


async def _serve(
    config: Config, listener: socket.socket | None, gate: tuple[Access, list[str]] | None, *, expose_tools: bool
) -> None:
    from agentflow_tools.mcp.serve import build_server, serve_http, serve_stdio

    async with Solver(config) as solver:
        await solver.start()
        server = build_server(solver, expose_tools=expose_tools)
        if listener is None or gate is None:
            await serve_stdio(server)
            return
        host, port = listener.getsockname()[:2]
        shown = f"[{host}]" if ":" in host else host
        click.echo(f"serving MCP over streamable HTTP at http://{shown}:{port}/mcp", err=True)
        access, notes = gate
        for note in notes:
            click.echo(note, err=True)
        await serve_http(server, listener, access)


def _gate(listener: socket.socket, address: str, allowed_hosts: tuple[str, ...]) -> tuple[Access, list[str]]:
    """Who may call (the token, the names to answer to), and what to tell the person who started it."""
    named = address.rpartition(":")[0].strip("[]")
    access, made = server_access(
        [listener.getsockname()[0]], variable=TOKEN_VARIABLE, allowed_hosts=(named, *allowed_hosts)
    )
    notes = []
    if access.beyond_loopback:
        notes.append(
            f"warning: --http {address} is reachable beyond loopback; every request must carry "
            "'Authorization: Bearer <token>'"
        )
    if made:
        notes.append(f"token for this run: {access.token} (set {TOKEN_VARIABLE} to choose it)")
    elif access.token is not None:
        notes.append(f"token: the value of {TOKEN_VARIABLE}")
    return access, notes


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
