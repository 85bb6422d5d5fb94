"""Shared pieces of the MCP tests: real servers to start, and ways to watch processes come and go."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from agentflow_core.testing import wait_until
from tests.helpers import closed_port, silent_port

TEST_SERVER = str(Path(__file__).with_name("mcp_server.py"))


def scripted_server(*args: str, **settings: Any) -> dict[str, Any]:
    """``[mcp.NAME]`` settings of the tests' own stdio server (``tests/mcp_server.py``)."""
    return {"command": sys.executable, "args": [TEST_SERVER, *args], **settings}


def time_server(**settings: Any) -> dict[str, Any]:
    """The reference ``mcp-server-time`` from PyPI, pinned to UTC."""
    return {"command": sys.executable, "args": ["-m", "mcp_server_time", "--local-timezone", "UTC"], **settings}


def fetch_server(*flags: str, **settings: Any) -> dict[str, Any]:
    """The reference ``mcp-server-fetch`` from PyPI."""
    return {"command": sys.executable, "args": ["-m", "mcp_server_fetch", *flags], **settings}


def alive(pid: int) -> bool:
    """Whether process ``pid`` exists and is not a zombie waiting for its parent."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state != "Z"


def read_pid(path: Path) -> int:
    wait_until(lambda: path.is_file() and path.read_text().strip().isdigit(), what=f"a pid in {path}")
    return int(path.read_text())


@contextlib.contextmanager
def http_test_server(*args: str) -> Iterator[str]:
    """``tests/mcp_server.py`` serving streamable HTTP on a free loopback port; yields its URL."""
    port = closed_port()
    process = subprocess.Popen(
        [sys.executable, TEST_SERVER, "--http", str(port), *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_until(lambda: _accepts(port) or process.poll() is not None, what="the HTTP MCP server to listen")
        assert process.poll() is None, "the HTTP MCP server exited"
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        process.terminate()
        process.wait(timeout=10)


def _accepts(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


@contextlib.contextmanager
def silent_listener() -> Iterator[str]:
    """A loopback port that accepts connections and never answers; yields an MCP URL on it."""
    with silent_port() as port:
        yield f"http://127.0.0.1:{port}/mcp"


@contextlib.contextmanager
def web_pages(pages: Mapping[str, tuple[str, str]]) -> Iterator[str]:
    """A loopback web server answering ``pages`` (path -> (content type, body)), 404 otherwise."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            content_type, body = pages.get(self.path.split("?")[0], ("text/plain", ""))
            data = body.encode()
            self.send_response(200 if self.path.split("?")[0] in pages else 404)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)
