"""The ``ollama:`` engine: one ``POST /api/chat`` per generation, on the core's retry policy and ladder.

What is retried, how long to wait and how the final error reads are ``agentflow_core.RetryPolicy``'s,
as for the built-in HTTP engines: refused or dropped connections (the server is starting, or
reloading a model), timeouts, 408 / 429 and every 5xx, up to ``max_attempts`` with exponential
backoff (a malformed body once more); any other 4xx (an unknown model, a bad request) fails at
once. This module only says how Ollama fails (:class:`~agentflow_core.CallFailure`) and what to do
about it. Structured output climbs down ``agentflow_core.StructuredOutputLadder``: a JSON schema as
``format``, then ``"json"`` for servers before 0.5 that turn a schema down.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Mapping
from typing import Any

import attrs
import httpx

from agentflow_core import (
    CallFailure,
    Completion,
    EngineConfig,
    GenerationRequest,
    RetryPolicy,
    StructuredOutputLadder,
)
from agentflow_ollama.host import resolve_base_url
from agentflow_ollama.wire import MalformedResponse, chat_body, error_message, excerpt, parse_chat_response

#: The ladder's rungs: how a request's schema is sent as ``format``.
SCHEMA, JSON = "schema", "json"


def refuses_schema_format(failure: CallFailure) -> bool:
    """Ollama before 0.5 answers a schema as ``format`` with a 400 naming the format."""
    return failure.kind == "http" and failure.status == 400 and "format" in failure.detail.lower()


class OllamaEngine:
    """An :class:`~agentflow_core.Engine` for one model on one Ollama server.

    Construction checks the URL and the retry options but does not connect: listing or
    configuring engines never needs a running server. The first ``generate`` opens the pool.
    """

    def __init__(self, config: EngineConfig, env: Mapping[str, str] | None = None) -> None:
        self.config = config
        self.name = config.model
        self.base_url = resolve_base_url(config.base_url, os.environ if env is None else env, engine=config.model)
        self._policy = RetryPolicy.from_config(config)
        self._formats = StructuredOutputLadder((SCHEMA, JSON), rejects=refuses_schema_format)
        self._client: httpx.AsyncClient | None = None

    async def generate(self, request: GenerationRequest) -> Completion:
        started = time.perf_counter()
        completion = await self._policy.run(
            lambda: self._formats.send(request, lambda form: self._post(chat_body(self.config, request, form=form))),
            engine=self.name,
            where=f"Ollama at {self.base_url}",
            advice=self._advice,
        )
        # What the caller waited, retries included: that is what a trajectory costs.
        return attrs.evolve(completion, latency_s=time.perf_counter() - started)

    async def aclose(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()

    async def _post(self, body: Mapping[str, Any]) -> Completion:
        try:
            response = await self._ensure_client().post("/api/chat", json=body)
        except httpx.TimeoutException:
            raise CallFailure("timeout", f"no answer within {self.config.timeout_s:g} s") from None
        except httpx.TransportError as exc:
            raise CallFailure("connection", _connection_detail(exc)) from None
        if response.status_code >= 400:
            raise CallFailure("http", error_message(response.text), status=response.status_code)
        try:
            return parse_chat_response(response.json())
        except ValueError as exc:  # not JSON at all, or MalformedResponse
            malformed = isinstance(exc, MalformedResponse)
            detail = str(exc) if malformed else f"the body is not JSON: {excerpt(response.text)}"
            raise CallFailure("malformed", detail) from None

    def _ensure_client(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(base_url=self.base_url, timeout=self.config.timeout_s)
        return self._client

    def _advice(self, failure: CallFailure) -> str | None:
        """What to do, in Ollama's terms, for the failures a user can fix."""
        if failure.kind == "connection":
            return "is `ollama serve` running? Set OLLAMA_HOST or base_url if it listens elsewhere"
        if failure.status == 404 and "not found" in failure.detail.lower():
            return f"pull it first: ollama pull {self.config.model_name}"
        return None


def _connection_detail(exc: httpx.TransportError) -> str:
    """'connection refused' rather than httpx's '[Errno 111] Connect call failed ...'."""
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, ConnectionRefusedError):
            return "connection refused"
        cause = cause.__cause__ or cause.__context__
    text = re.sub(r"^\[Errno -?\d+\]\s*", "", str(exc)).strip()
    return text or type(exc).__name__
