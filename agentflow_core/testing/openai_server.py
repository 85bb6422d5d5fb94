"""A scripted OpenAI-compatible HTTP server for tests.

Engines are tested over real HTTP rather than with mocked SDK calls, because the bugs worth
catching live in the wire format: headers, status codes, retries, timeouts and bodies that are
not what the SDK expects. Each test scripts the replies it wants per model and then inspects
what actually arrived.

The server runs ``http.server.ThreadingHTTPServer`` in a daemon thread on ``127.0.0.1`` with an
ephemeral port, speaks HTTP/1.1 with ``Content-Length`` on every reply (so keep-alive clients
never wait for a close), and drops every open connection on ``stop()``.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

import attrs

__all__ = ["RecordedRequest", "Reply", "Responder", "ScriptedOpenAIServer", "scripted_json"]

#: A client hanging up early (after its own timeout, say) or stop() dropping the connection
#: shows up as an OSError in the handler thread; neither is a failure worth reporting.
_HANGUP_ERRORS = (OSError,)

_ERROR_TYPES: Mapping[int, tuple[str, str]] = {
    400: ("invalid_request_error", "invalid_request"),
    401: ("authentication_error", "invalid_api_key"),
    403: ("permission_error", "permission_denied"),
    404: ("not_found_error", "model_not_found"),
    408: ("timeout_error", "timeout"),
    422: ("invalid_request_error", "unprocessable_entity"),
    429: ("rate_limit_error", "rate_limit_exceeded"),
}


@attrs.frozen
class Reply:
    """One scripted answer to one chat-completion request."""

    content: str = ""
    status: int = 200
    headers: Mapping[str, str] = attrs.field(factory=dict)
    #: Seconds to wait before answering, to make clients hit their timeout.
    delay_s: float = 0.0
    #: Sent verbatim instead of a JSON completion, to test malformed or non-JSON payloads.
    raw_body: str | bytes | None = None
    #: Reported usage; ``None`` counts words, which is close enough for bookkeeping tests.
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    finish_reason: str = "stop"
    #: The ``error.message`` of a status >= 400 reply; a generic message when ``None``.
    error_message: str | None = None


@attrs.frozen
class RecordedRequest:
    """A chat-completion request as the server received it."""

    model: str
    messages: list[dict[str, Any]]
    response_format: dict[str, Any] | None
    #: The whole parsed JSON body (empty when the body was not a JSON object).
    body: dict[str, Any]
    #: Request headers, names lower-cased so that lookups do not depend on the client's spelling.
    headers: dict[str, str]
    path: str


Responder = Callable[[RecordedRequest], Reply]


def scripted_json(obj: Any) -> Reply:
    """A reply whose content is ``obj`` serialized as JSON, as a structured-output model would answer."""
    return Reply(content=json.dumps(obj))


class ScriptedOpenAIServer:
    """An OpenAI-compatible server that answers from per-model scripts.

    For each request the server takes, in order: the next reply queued for the model with
    ``enqueue``, else the model's responder from ``set_responder``, else the default responder.
    With none of them it answers HTTP 400 (not 5xx, so that clients do not retry) saying that
    nothing is scripted for the model.
    """

    def __init__(self, port: int = 0) -> None:
        #: 0 until the first start picks a free port; a restart after ``stop()`` listens on the same one,
        #: so a client configured with the old URL finds the server again (a restarted replica).
        self._port = port
        self._lock = threading.Lock()
        self._queues: dict[str, deque[Reply]] = {}
        self._responders: dict[str, Responder] = {}
        self._default: Responder | None = None
        self._requests: list[RecordedRequest] = []
        self._stopping = threading.Event()
        self._httpd: _Httpd | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -----------------------------------------------------------------------

    def start(self) -> ScriptedOpenAIServer:
        if self._httpd is not None:
            return self
        self._stopping.clear()
        httpd = _Httpd(("127.0.0.1", self._port), _Handler)
        self._port = int(httpd.server_address[1])
        httpd.scripted = self
        self._httpd = httpd
        self._thread = threading.Thread(
            target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="scripted-openai-server", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and drop open connections, so that no client or thread is left waiting."""
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        self._stopping.set()  # wakes replies sleeping for delay_s
        httpd.shutdown()
        httpd.close_connections()
        httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> ScriptedOpenAIServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        """The port it listens on, or listened on before ``stop()`` (and will again after ``start()``)."""
        if not self._port:
            raise RuntimeError("ScriptedOpenAIServer was never started; call start() or use it as a context manager")
        return self._port

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    # -- scripting -----------------------------------------------------------------------

    def enqueue(self, model: str, *replies: Reply) -> None:
        """Queue replies for ``model``; each request for it takes the oldest one."""
        with self._lock:
            self._queues.setdefault(model, deque()).extend(replies)

    def set_responder(self, model: str, responder: Responder) -> None:
        """Answer ``model`` with ``responder`` whenever its queue is empty."""
        with self._lock:
            self._responders[model] = responder

    def set_default_responder(self, responder: Responder | None) -> None:
        """Answer any model that has neither queued replies nor its own responder."""
        with self._lock:
            self._default = responder

    @property
    def requests(self) -> list[RecordedRequest]:
        """A snapshot of every chat-completion request received, in arrival order."""
        with self._lock:
            return list(self._requests)

    def requests_for(self, model: str) -> list[RecordedRequest]:
        return [r for r in self.requests if r.model == model]

    @property
    def models(self) -> list[str]:
        """Models named in any script, as ``GET /v1/models`` lists them."""
        with self._lock:
            return sorted(set(self._queues) | set(self._responders))

    # -- used by the handler -------------------------------------------------------------

    def _record(self, request: RecordedRequest) -> None:
        with self._lock:
            self._requests.append(request)

    def _next_reply(self, request: RecordedRequest) -> Reply:
        with self._lock:
            queue = self._queues.get(request.model)
            if queue:
                return queue.popleft()
            responder = self._responders.get(request.model) or self._default
        if responder is None:
            return Reply(status=400, error_message=f"no reply is scripted for model {request.model!r}")
        try:
            return responder(request)
        except Exception as exc:  # a broken responder is a test bug: make it loud but answerable
            return Reply(status=500, error_message=f"responder for {request.model!r} raised {exc!r}")

    def _sleep(self, seconds: float) -> bool:
        """Wait, but give up as soon as the server stops, so stop() is never slow; ``False`` if it stopped."""
        if seconds > 0:
            return not self._stopping.wait(seconds)
        return not self._stopping.is_set()


class _Httpd(ThreadingHTTPServer):
    """Tracks live connections so that ``stop()`` can close idle keep-alive ones."""

    daemon_threads = True
    #: Joining handler threads on close would wait for clients that keep connections open.
    block_on_close = False
    #: socketserver's default backlog of 5 makes a burst of concurrent clients wait a second for SYN retries.
    request_queue_size = 128
    scripted: ScriptedOpenAIServer

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler]) -> None:
        super().__init__(address, handler)
        self._live: set[socket.socket] = set()
        self._live_lock = threading.Lock()

    def track(self, conn: socket.socket, live: bool) -> None:
        with self._live_lock:
            if live:
                self._live.add(conn)
            else:
                self._live.discard(conn)

    def close_connections(self) -> None:
        with self._live_lock:
            conns, self._live = list(self._live), set()
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "ScriptedOpenAI/1.0"
    #: Idle keep-alive connections are dropped after this long, so threads do not pile up.
    timeout = 30
    server: _Httpd

    def setup(self) -> None:
        super().setup()
        self.server.track(self.connection, live=True)

    def finish(self) -> None:
        with contextlib.suppress(*_HANGUP_ERRORS):
            super().finish()
        self.server.track(self.connection, live=False)

    def handle(self) -> None:
        with contextlib.suppress(*_HANGUP_ERRORS):
            super().handle()

    def log_message(self, format: str, *args: Any) -> None:
        """Silent: test output should show test failures, not access logs."""

    # -- routing -------------------------------------------------------------------------

    def do_GET(self) -> None:
        if self._route() == "/v1/models":
            self._send_json(200, _model_list(self.server.scripted.models))
        else:
            self._send_not_found()

    def do_POST(self) -> None:
        body = self._read_body()
        if self._route() != "/v1/chat/completions":
            self._send_not_found()
            return
        scripted = self.server.scripted
        request = self._record_request(body)
        scripted._record(request)
        reply = scripted._next_reply(request)
        if not scripted._sleep(reply.delay_s):
            self.close_connection = True  # stopped meanwhile: hang up unanswered, as a killed server would
            return
        self._answer(request, reply)

    def _route(self) -> str:
        # Absolute-form targets ("POST http://host/v1/...") are what a client sends to a plain-HTTP
        # proxy; accepting them (as RFC 9112 asks of servers) lets a test stand in for a proxy too.
        return urlsplit(self.path).path.rstrip("/")

    def _read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _record_request(self, raw: bytes) -> RecordedRequest:
        try:
            parsed = json.loads(raw) if raw else {}
        except ValueError:
            parsed = {}
        body: dict[str, Any] = parsed if isinstance(parsed, dict) else {}
        messages = body.get("messages")
        response_format = body.get("response_format")
        return RecordedRequest(
            model=str(body.get("model", "")),
            messages=list(messages) if isinstance(messages, list) else [],
            response_format=response_format if isinstance(response_format, dict) else None,
            body=body,
            headers={k.lower(): v for k, v in self.headers.items()},
            path=self.path,
        )

    # -- answering -----------------------------------------------------------------------

    def _answer(self, request: RecordedRequest, reply: Reply) -> None:
        if reply.raw_body is not None:
            raw = reply.raw_body.encode() if isinstance(reply.raw_body, str) else reply.raw_body
            self._send(reply.status, raw, "application/json", reply.headers)
        elif reply.status >= 400:
            self._send_json(reply.status, _error_body(reply), reply.headers)
        elif request.body.get("stream") is True:
            self._send(reply.status, _sse_body(request, reply), "text/event-stream", reply.headers)
        else:
            self._send_json(reply.status, _completion(request, reply), reply.headers)

    def _send_not_found(self) -> None:
        message = f"no route for {self.command} {self.path} on the scripted OpenAI server"
        self._send_json(404, {"error": {"message": message, "type": "not_found_error", "code": "not_found"}})

    def _send_json(self, status: int, payload: Any, headers: Mapping[str, str] | None = None) -> None:
        self._send(status, json.dumps(payload).encode(), "application/json", headers or {})

    def _send(self, status: int, body: bytes, content_type: str, headers: Mapping[str, str]) -> None:
        self.send_response(status)
        for key, value in _merge_headers(content_type, headers, len(body)).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(body)
        self.wfile.flush()


# -- payloads ----------------------------------------------------------------------------


def _merge_headers(content_type: str, extra: Mapping[str, str], length: int) -> dict[str, str]:
    """Scripted headers override ours case-insensitively, except Content-Length, which must be true."""
    merged = {"content-type": ("Content-Type", content_type)}
    for key, value in extra.items():
        merged[key.lower()] = (key, value)
    merged["content-length"] = ("Content-Length", str(length))
    return dict(merged.values())


def _word_count(text: Any) -> int:
    return len(text.split()) if isinstance(text, str) else 0


def _usage(request: RecordedRequest, reply: Reply) -> dict[str, int]:
    prompt = reply.prompt_tokens
    if prompt is None:
        prompt = sum(_word_count(m.get("content")) for m in request.messages if isinstance(m, dict))
    completion = reply.completion_tokens if reply.completion_tokens is not None else _word_count(reply.content)
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def _completion(request: RecordedRequest, reply: Reply) -> dict[str, Any]:
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": request.model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": reply.content},
                "finish_reason": reply.finish_reason,
                "logprobs": None,
            }
        ],
        "usage": _usage(request, reply),
    }


def _sse_body(request: RecordedRequest, reply: Reply) -> bytes:
    """The whole event stream at once: clients parse it the same, and it fits Content-Length."""
    events = [f"data: {json.dumps(chunk)}\n\n".encode() for chunk in _chunks(request, reply)]
    return b"".join(events) + b"data: [DONE]\n\n"


def _chunks(request: RecordedRequest, reply: Reply) -> Iterator[dict[str, Any]]:
    head = {
        "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": request.model,
    }

    def chunk(delta: dict[str, Any], finish_reason: str | None) -> dict[str, Any]:
        return {**head, "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason, "logprobs": None}]}

    yield chunk({"role": "assistant", "content": ""}, None)
    for piece in _pieces(reply.content):
        yield chunk({"content": piece}, None)
    yield chunk({}, reply.finish_reason)
    options = request.body.get("stream_options")
    if isinstance(options, dict) and options.get("include_usage"):
        yield {**head, "choices": [], "usage": _usage(request, reply)}


def _pieces(text: str) -> list[str]:
    """Split on spaces but keep them, so the pieces join back to exactly ``text``."""
    words = text.split(" ")
    return [w + " " for w in words[:-1]] + ([words[-1]] if words[-1] else [])


def _error_body(reply: Reply) -> dict[str, Any]:
    default_type = "server_error" if reply.status >= 500 else "invalid_request_error"
    error_type, code = _ERROR_TYPES.get(reply.status, (default_type, str(reply.status)))
    message = reply.error_message
    if message is None:
        message = f"scripted HTTP {reply.status} ({_reason(reply.status)})"
    return {"error": {"message": message, "type": error_type, "param": None, "code": code}}


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "unknown status"


def _model_list(models: list[str]) -> dict[str, Any]:
    created = int(time.time())
    return {
        "object": "list",
        "data": [{"id": m, "object": "model", "created": created, "owned_by": "scripted"} for m in models],
    }
