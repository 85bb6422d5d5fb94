"""A scripted server that answers like Ollama's ``POST /api/chat``, on 127.0.0.1, for tests.

Standard library only, so any suite can load it: this plugin's tests import it, and the core's
third-party test loads it by path. Replies are queued in order (one per request); what arrived
is kept in ``requests``. It answers with ``Connection: close``, so ``stop()`` never waits for a
keep-alive client.
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any


@dataclass(frozen=True)
class OllamaReply:
    content: str = ""
    #: A status >= 400 answers ``{"error": error}``, as Ollama does.
    status: int = 200
    error: str = "scripted failure"
    #: Sent verbatim instead of a chat response, to test bodies a client cannot read.
    raw_body: str | None = None
    delay_s: float = 0.0
    prompt_eval_count: int = 7
    eval_count: int = 3
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ChatRequest:
    path: str
    body: dict[str, Any]


class ScriptedOllamaServer:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._replies: deque[OllamaReply] = deque()
        self.requests: list[ChatRequest] = []
        self._httpd: ThreadingHTTPServer | None = None
        #: Set by ``stop()``: wakes replies held back for ``delay_s``, so stopping never waits on one.
        self.stopping = threading.Event()

    def enqueue(self, *replies: OllamaReply) -> None:
        with self._lock:
            self._replies.extend(replies)

    def start(self) -> ScriptedOllamaServer:
        httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        httpd.daemon_threads = True
        httpd.scripted = self  # type: ignore[attr-defined]
        threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        self._httpd = httpd
        return self

    def stop(self) -> None:
        httpd, self._httpd = self._httpd, None
        self.stopping.set()
        if httpd is not None:
            httpd.shutdown()
            httpd.server_close()

    def __enter__(self) -> ScriptedOllamaServer:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        assert self._httpd is not None, "start the server first"
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def _next(self, request: ChatRequest) -> OllamaReply:
        with self._lock:
            self.requests.append(request)
            if self._replies:
                return self._replies.popleft()
        return OllamaReply(status=400, error="no reply is scripted for this request")


class _Handler(BaseHTTPRequestHandler):
    def handle(self) -> None:
        with contextlib.suppress(OSError):  # the client gave up first (its own timeout): not a server failure
            super().handle()

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: test output should show failures, not access logs."""

    def do_POST(self) -> None:
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.path != "/api/chat":
            self._send(404, json.dumps({"error": f"no route {self.path}"}))
            return
        try:
            body = json.loads(raw)
        except ValueError:
            body = {}
        scripted = self.server.scripted  # type: ignore[attr-defined]
        reply = scripted._next(ChatRequest(self.path, body))
        scripted.stopping.wait(reply.delay_s)  # a slow model, cut short when the server stops
        if reply.raw_body is not None:
            self._send(reply.status, reply.raw_body)
        elif reply.status >= 400:
            self._send(reply.status, json.dumps({"error": reply.error}))
        else:
            self._send(200, json.dumps(_chat_response(body, reply)))

    def _send(self, status: int, text: str) -> None:
        data = text.encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(data)


def _chat_response(body: dict[str, Any], reply: OllamaReply) -> dict[str, Any]:
    return {
        "model": body.get("model", ""),
        "created_at": "2024-12-06T12:00:00.000000Z",
        "message": {"role": "assistant", "content": reply.content},
        "done": True,
        "done_reason": "stop",
        "total_duration": 5_000_000,
        "load_duration": 1_000_000,
        "prompt_eval_count": reply.prompt_eval_count,
        "prompt_eval_duration": 2_000_000,
        "eval_count": reply.eval_count,
        "eval_duration": 2_000_000,
        **reply.extra,
    }
