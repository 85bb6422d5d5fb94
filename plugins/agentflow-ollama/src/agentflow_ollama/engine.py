"""The ``ollama:`` engine: one ``POST /api/chat`` per generation, retried when the failure is transient.

Retried: refused or dropped connections (the server is starting, or reloading a model),
timeouts, 408, 429 and every 5xx, up to ``max_attempts`` with exponential backoff. Not retried:
any other 4xx (an unknown model, a bad request), since asking again cannot fix it. Every final
failure is one ``EngineError`` line naming the engine, the server and what went wrong.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Mapping
from typing import Any

import attrs
import httpx
import tenacity

from agentflow_core import Completion, ConfigError, EngineConfig, EngineError, GenerationRequest
from agentflow_ollama.host import resolve_base_url
from agentflow_ollama.wire import MalformedResponse, chat_body, error_message, excerpt, parse_chat_response

_RETRIED_STATUSES = frozenset({408, 429})
_MAX_WAIT_S = 10.0


class _Failure(Exception):
    """One failed attempt, before the retry policy decides what it means."""

    def __init__(self, kind: str, detail: str, status: int | None = None) -> None:
        super().__init__(detail)
        self.kind, self.detail, self.status = kind, " ".join(detail.split()), status

    @property
    def transient(self) -> bool:
        if self.kind == "http":
            return self.status is not None and (self.status in _RETRIED_STATUSES or self.status >= 500)
        return self.kind in ("connection", "timeout")


class OllamaEngine:
    """An :class:`~agentflow_core.Engine` for one model on one Ollama server.

    Construction checks the URL but does not connect: listing or configuring engines never
    needs a running server. The first ``generate`` opens the connection pool.
    """

    def __init__(self, config: EngineConfig, env: Mapping[str, str] | None = None) -> None:
        self.config = config
        self.name = config.model
        self.base_url = resolve_base_url(config.base_url, os.environ if env is None else env, engine=config.model)
        self._wait_s = _retry_wait(config)
        self._client: httpx.AsyncClient | None = None
        #: Turned off for good once the server turns down a JSON schema as ``format`` (Ollama < 0.5).
        self._schema_format = True

    async def generate(self, request: GenerationRequest) -> Completion:
        started = time.perf_counter()
        attempts = 0

        async def attempt() -> Completion:
            nonlocal attempts
            attempts += 1
            return await self._attempt(request)

        retrying = tenacity.AsyncRetrying(
            stop=tenacity.stop_after_attempt(max(1, self.config.max_attempts)),
            wait=tenacity.wait_exponential(multiplier=self._wait_s, max=_MAX_WAIT_S),
            retry=tenacity.retry_if_exception(lambda exc: isinstance(exc, _Failure) and exc.transient),
            reraise=True,
        )
        try:
            completion = await retrying(attempt)
        except _Failure as failure:
            raise EngineError(self._describe(failure, attempts)) from None
        # What the caller waited, retries included: that is what a trajectory costs.
        return attrs.evolve(completion, latency_s=time.perf_counter() - started)

    async def aclose(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()

    async def _attempt(self, request: GenerationRequest) -> Completion:
        """One call; if the server refuses a schema as ``format``, the same call once more with ``"json"``."""
        with_schema = request.json_schema is not None and self._schema_format
        try:
            return await self._post(chat_body(self.config, request, schema_format=with_schema))
        except _Failure as failure:
            if not (with_schema and failure.status == 400 and "format" in failure.detail.lower()):
                raise
        self._schema_format = False
        return await self._post(chat_body(self.config, request, schema_format=False))

    async def _post(self, body: Mapping[str, Any]) -> Completion:
        try:
            response = await self._ensure_client().post("/api/chat", json=body)
        except httpx.TimeoutException:
            raise _Failure("timeout", f"no answer within {self.config.timeout_s:g} s") from None
        except httpx.TransportError as exc:
            raise _Failure("connection", _connection_detail(exc)) from None
        if response.status_code >= 400:
            raise _Failure("http", error_message(response.text), status=response.status_code)
        try:
            return parse_chat_response(response.json())
        except ValueError as exc:  # not JSON at all, or MalformedResponse
            malformed = isinstance(exc, MalformedResponse)
            detail = str(exc) if malformed else f"the body is not JSON: {excerpt(response.text)}"
            raise _Failure("malformed", detail) from None

    def _ensure_client(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(base_url=self.base_url, timeout=self.config.timeout_s)
        return self._client

    def _describe(self, failure: _Failure, attempts: int) -> str:
        tries = f" (gave up after {attempts} attempts)" if attempts > 1 else ""
        detail = failure.detail[:300]
        if failure.kind == "connection":
            return (
                f"engine {self.name}: cannot reach Ollama at {self.base_url} ({detail}{tries}); is `ollama serve` "
                "running? Set OLLAMA_HOST or base_url if it listens elsewhere"
            )
        if failure.kind == "timeout":
            return f"engine {self.name}: no answer from Ollama at {self.base_url}: {detail}{tries}"
        if failure.kind == "malformed":
            return f"engine {self.name}: Ollama at {self.base_url} sent a malformed response: {detail}"
        hint = ""
        if failure.status == 404 and "not found" in detail.lower():
            hint = f"; pull it first: ollama pull {self.config.model_name}"
        return f"engine {self.name}: HTTP {failure.status} from Ollama at {self.base_url}: {detail}{hint}{tries}"


def _retry_wait(config: EngineConfig) -> float:
    value = config.options.get("retry_wait_s", 0.5)
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise ConfigError(f"engine {config.model}: options.retry_wait_s must be a non-negative number, got {value!r}")
    return float(value)


def _connection_detail(exc: httpx.TransportError) -> str:
    """'connection refused' rather than httpx's '[Errno 111] Connect call failed ...'."""
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, ConnectionRefusedError):
            return "connection refused"
        cause = cause.__cause__ or cause.__context__
    text = re.sub(r"^\[Errno -?\d+\]\s*", "", str(exc)).strip()
    return text or type(exc).__name__
