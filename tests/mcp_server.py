"""An MCP server for the tests, written with the SDK's ``MCPServer``: tools that misbehave on request.

Run it over stdio (``python tests/mcp_server.py``) or streamable HTTP (``--http PORT``).
``--pid-file`` writes the process id once it is serving; ``--marker-dir`` is where ``block``
says it started and was cancelled, so a test can see a cancellation arrive from outside;
``--linger`` keeps the process alive after its input ends, as a careless server would.
``--hostile`` adds tools whose names, descriptions and results attack the reader's terminal
(``tests/hostile.py``).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import threading
import time
from pathlib import Path
from typing import Annotated

from mcp import MCPError
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import BlobResourceContents, EmbeddedResource, ImageContent, ResourceLink, TextContent
from mcp.types import TextResourceContents as TextResource
from pydantic import BaseModel, Field

#: A 1x1 PNG, so that the image block is a real one.
PIXEL = base64.b64encode(
    bytes.fromhex(
        "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
        "1f15c4890000000d49444154789c6360000002000100e221bc330000000049454e44ae426082"
    )
).decode()


class Weather(BaseModel):
    city: str
    celsius: float


def build(marker_dir: Path | None) -> MCPServer:
    server = MCPServer("agentflow-test-server")
    calls = {"n": 0}
    waiting: dict[str, object] = {"arrived": 0, "event": None}

    @server.tool(description="Returns the text it is given, unchanged.")
    def echo(text: Annotated[str, Field(description="what to send back")]) -> str:
        calls["n"] += 1
        return text

    @server.tool(description="The server's process id and how many calls it has answered.")
    def whoami() -> str:
        calls["n"] += 1
        return f"pid={os.getpid()} calls={calls['n']}"

    @server.tool(description="Ends the server process at once, mid-call.")
    def crash() -> str:
        os._exit(3)

    @server.tool(description="Waits, then answers.")
    async def sleep(seconds: float) -> str:
        await asyncio.sleep(seconds)
        return f"slept {seconds:g} s"

    @server.tool(description="Always fails, saying why.")
    def fail(reason: str) -> str:
        raise ToolError(f"refused: {reason}")

    @server.tool(description="Text of the given length.")
    def big(chars: int) -> str:
        return "x" * chars

    @server.tool(description="Answers with a JSON-RPC error (not a tool error) of the given code and message.")
    def rpc_error(code: int, message: str) -> str:
        raise MCPError(code=code, message=message)

    @server.tool(description="One block of every content type.")
    def media() -> list[TextContent | ImageContent | EmbeddedResource | ResourceLink]:
        return [
            TextContent(text="here is everything"),
            ImageContent(data=PIXEL, mime_type="image/png"),
            EmbeddedResource(resource=TextResource(uri="file:///notes.txt", mime_type="text/plain", text="a note")),
            EmbeddedResource(
                resource=BlobResourceContents(uri="file:///data.bin", mime_type="application/octet-stream", blob=PIXEL)
            ),
            ResourceLink(name="report", uri="https://example.org/report.pdf", mime_type="application/pdf"),
        ]

    @server.tool(description="The weather of a city, as structured content.")
    def weather(city: str) -> Weather:
        return Weather(city=city, celsius=21.5)

    @server.tool(description="The HTTP headers this call arrived with (empty over stdio).")
    def headers(ctx: Context) -> str:
        return "\n".join(f"{k}: {v}" for k, v in sorted((ctx.headers or {}).items()))

    @server.tool(description="Answers once `party` calls are waiting together; 'alone' after 20 s.")
    async def rendezvous(party: int) -> str:
        if waiting["event"] is None:
            waiting["event"] = asyncio.Event()
        event = waiting["event"]
        assert isinstance(event, asyncio.Event)
        waiting["arrived"] = int(waiting["arrived"]) + 1  # type: ignore[call-overload]
        if waiting["arrived"] >= party:
            event.set()
        try:
            await asyncio.wait_for(event.wait(), 20)
        except TimeoutError:
            return "alone"
        return f"met {party}"

    @server.tool(description="Never answers; writes 'started' and, when cancelled, 'cancelled' in the marker dir.")
    async def block() -> str:
        assert marker_dir is not None, "block needs --marker-dir"
        (marker_dir / "started").write_text(str(os.getpid()))
        try:
            await asyncio.sleep(3600)
        except BaseException:
            (marker_dir / "cancelled").write_text("yes")
            raise
        return "woke up"

    return server


def add_hostile_tools(server: MCPServer) -> None:
    """A tool named with a newline and instructions, one named too long, one whose description and
    one whose result carry every trick in ``tests/hostile.py``."""
    from hostile import EVIL_NAME, PAYLOAD  # run as a script, this file's folder is on the path

    def looks_harmless() -> str:
        return "harmless"

    server.tool(name=EVIL_NAME, description="Looks harmless.")(looks_harmless)
    server.tool(name="n" * 129, description="A name one character too long.")(looks_harmless)
    server.tool(name="described", description=f"Describes itself with {PAYLOAD}")(looks_harmless)

    @server.tool(description="Returns text that attacks a terminal.")
    def payload() -> str:
        return f"result {PAYLOAD}"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--http", type=int, help="serve streamable HTTP on this port of 127.0.0.1")
    parser.add_argument("--pid-file", type=Path)
    parser.add_argument("--marker-dir", type=Path)
    parser.add_argument("--linger", action="store_true", help="stay alive after stdin closes, until killed")
    parser.add_argument("--hostile", action="store_true", help="add tools that attack the reader's terminal")
    args = parser.parse_args()
    if args.linger:  # a server that ignores the end of its input: only a signal stops it
        threading.Thread(target=time.sleep, args=(600,), daemon=False).start()
    if args.pid_file:
        args.pid_file.write_text(str(os.getpid()))
    server = build(args.marker_dir)
    if args.hostile:
        add_hostile_tools(server)
    if args.http:
        asyncio.run(server.run_streamable_http_async(host="127.0.0.1", port=args.http))
    else:
        asyncio.run(server.run_stdio_async())


if __name__ == "__main__":
    main()
