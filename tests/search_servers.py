"""A loopback HTTP server that stands in for search APIs and web sites in the search-tool tests.

Each test gives it a handler (request in, ``Answer`` out) and afterwards reads what arrived.
It speaks HTTP/1.1 with ``Content-Length`` on 127.0.0.1 and an ephemeral port, like
``agentflow_core.testing.ScriptedOpenAIServer``, but knows nothing about any one API: the tests
write each API's documented reply shapes themselves.
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import attrs


@attrs.frozen
class Request:
    method: str
    path: str
    #: Query parameters, one value each (the last when repeated).
    query: dict[str, str]
    #: Header names lower-cased.
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@attrs.frozen
class Answer:
    status: int = 200
    body: bytes = b""
    content_type: str = "application/json"
    headers: Mapping[str, str] = attrs.field(factory=dict)
    #: Seconds to wait before answering, to run clients into their timeouts.
    delay_s: float = 0.0


def json_answer(payload: Any, status: int = 200, **kwargs: Any) -> Answer:
    return Answer(status, json.dumps(payload).encode(), "application/json; charset=UTF-8", **kwargs)


def html_answer(html: str, status: int = 200, **kwargs: Any) -> Answer:
    return Answer(status, html.encode(), "text/html; charset=utf-8", **kwargs)


Handler = Callable[[Request], Answer]


class LoopbackServer:
    """Serves ``handler`` on 127.0.0.1 until ``stop``; every request is kept in ``requests``."""

    def __init__(self, handler: Handler | None = None) -> None:
        self.handler: Handler = handler or (lambda request: Answer(404, b"not found", "text/plain"))
        self.requests: list[Request] = []
        self._stopping = threading.Event()
        self._httpd = _Httpd(("127.0.0.1", 0), _RequestHandler)
        self._httpd.owner = self
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def __enter__(self) -> LoopbackServer:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stopping.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    def url(self, path: str = "/") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def wait(self, seconds: float) -> None:
        """Sleep, but wake as soon as the server stops, so no test waits on a delayed answer."""
        self._stopping.wait(seconds)


class _Httpd(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    owner: LoopbackServer


class _RequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Httpd

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def log_message(self, format: str, *args: Any) -> None:
        """Silent: test output should show failures, not access logs."""

    def _serve(self) -> None:
        owner = self.server.owner
        length = int(self.headers.get("Content-Length") or 0)
        parts = urlsplit(self.path)
        request = Request(
            method=self.command,
            path=parts.path,
            query={k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()},
            headers={k.lower(): v for k, v in self.headers.items()},
            body=self.rfile.read(length) if length else b"",
        )
        owner.requests.append(request)
        answer = owner.handler(request)
        owner.wait(answer.delay_s)
        with contextlib.suppress(OSError):  # the client may have hung up (timeouts, size limits)
            self.send_response(answer.status)
            self.send_header("Content-Type", answer.content_type)
            for key, value in answer.headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(answer.body)))
            self.end_headers()
            self.wfile.write(answer.body)
