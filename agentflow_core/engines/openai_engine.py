"""The ``openai:`` engine: any server that speaks OpenAI's chat-completions API.

That covers OpenAI itself and the many servers that imitate it (``vllm serve``, DashScope,
Together, Ollama, llama.cpp's server). Imitations differ in the details, so this engine is
tolerant where it can afford to be: it reads the response body itself rather than trusting a
schema, drops ``response_format`` for servers that reject it, and retries only what
:mod:`agentflow_core.engines.retry` says is transient. The bytes go over
:mod:`agentflow_core.engines.chat_http` (why not the openai SDK: see there).

The helpers at the bottom (request arguments, response parsing) are shared with the LiteLLM
engine, whose providers answer in the same shape.
"""

from __future__ import annotations

import enum
import json
import os
import time
from collections.abc import Mapping
from typing import Any

import attrs

from agentflow_core.engine import Completion, EngineConfig, GenerationRequest, Usage
from agentflow_core.engines.chat_http import ChatHTTP
from agentflow_core.engines.endpoints import one_server, pool_for
from agentflow_core.engines.ladder import StructuredOutputLadder
from agentflow_core.engines.retry import CallFailure, RetryPolicy
from agentflow_core.errors import ConfigError, EngineUnavailable

__all__ = [
    "OpenAIEngine",
    "ResponseFormat",
    "ResponseFormatLadder",
    "chat_arguments",
    "parse_chat_completion",
    "rejects_response_format",
    "resolve_env_key",
]

#: Sent as the API key to servers that need none; the SDK refuses to start without one.
PLACEHOLDER_KEY = "EMPTY"

#: Phrases with which servers turn down structured output (vLLM, Ollama, DashScope, proxies).
_RESPONSE_FORMAT_REJECTIONS = (
    "response_format",
    "response format",
    "json_schema",
    "json schema",
    "not supported",
    "unsupported",
    "structured output",
)


class OpenAIEngine:
    """An :class:`~agentflow_core.engine.Engine` over :class:`~agentflow_core.engines.chat_http.ChatHTTP`.

    Construction touches neither the network nor the API key, so listing or configuring
    engines never fails for want of credentials; the first ``generate`` does both.
    """

    def __init__(self, config: EngineConfig) -> None:
        self.config = config
        self.name = config.model
        self._policy = RetryPolicy.from_config(config)
        #: One client per server: ``base_url`` (or the environment's) alone, else each of ``base_urls``.
        self._clients: dict[str | None, ChatHTTP] = {}
        self._endpoints = pool_for(config)
        self._formats = ResponseFormatLadder()

    async def generate(self, request: GenerationRequest) -> Completion:
        where = self._where()  # also makes the first client: a missing key fails here, before any retry
        started = time.perf_counter()
        completion = await self._policy.run(
            lambda: self._on_a_server(request), engine=self.name, where=where, auth_hint=self._auth_hint()
        )
        # Latency is what the caller waited, retries included: that is what a trajectory costs.
        return attrs.evolve(completion, latency_s=time.perf_counter() - started)

    async def aclose(self) -> None:
        clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            await client.aclose()

    # -- one attempt -----------------------------------------------------------------------

    async def _on_a_server(self, request: GenerationRequest) -> Completion:
        if self._endpoints is None:
            return await self._attempt(self._client(one_server(self.config)), request)
        return await self._endpoints.call(lambda url: self._attempt(self._client(url), request))

    async def _attempt(self, client: ChatHTTP, request: GenerationRequest) -> Completion:
        return await self._formats.send(request, lambda fmt: self._send(client, request, fmt))

    async def _send(self, client: ChatHTTP, request: GenerationRequest, fmt: ResponseFormat | None) -> Completion:
        arguments = chat_arguments(self.config, request, response_format=fmt)
        return parse_chat_completion(await client.post(arguments))

    # -- client ----------------------------------------------------------------------------

    def _client(self, base_url: str | None) -> ChatHTTP:
        client = self._clients.get(base_url)
        if client is None:
            client = self._clients[base_url] = ChatHTTP(
                base_url=base_url,
                api_key=self._api_key(),
                timeout_s=self.config.timeout_s,
                extra_headers=_extra_headers(self.config),
            )
        return client

    def _where(self) -> str:
        if self._endpoints is None:
            return self._client(one_server(self.config)).base_url
        self._api_key()
        return f"any of {', '.join(self._endpoints.urls)}"

    def _api_key(self) -> str:
        """The key from ``api_key_env``, else ``OPENAI_API_KEY``, else a placeholder for local servers."""
        if self.config.api_key_env:
            return resolve_env_key(self.config)
        key = os.environ.get("OPENAI_API_KEY")
        if key:
            return key
        if self.config.base_url or self.config.base_urls or os.environ.get("OPENAI_BASE_URL"):
            return PLACEHOLDER_KEY
        raise EngineUnavailable(
            f"engine {self.name}: no API key: set OPENAI_API_KEY, name another variable with [engines] api_key_env, "
            "or set base_url to a local OpenAI-compatible server"
        )

    def _auth_hint(self) -> str:
        if self.config.api_key_env:
            return f"(check the key in {self.config.api_key_env})"
        return "(set OPENAI_API_KEY or [engines] api_key_env)"


def _extra_headers(config: EngineConfig) -> dict[str, str]:
    """``options.headers``: sent with every request (gateways that want their own auth or routing headers)."""
    headers: Any = config.options.get("headers", {})
    if not isinstance(headers, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in headers.items()
    ):
        raise ConfigError(f"engine {config.model}: option headers must be a table of strings, got {headers!r}")
    return dict(headers)


# -- shared with the LiteLLM engine -----------------------------------------------------------


def resolve_env_key(config: EngineConfig) -> str:
    """The API key in the variable that ``api_key_env`` names; missing is a setup error, said plainly."""
    variable = config.api_key_env or ""
    key = os.environ.get(variable)
    if not key:
        raise EngineUnavailable(
            f"engine {config.model}: environment variable {variable} is not set "
            f"(api_key_env names it as holding the API key); export {variable}=<your key>"
        )
    return key


def chat_arguments(
    config: EngineConfig, request: GenerationRequest, *, response_format: ResponseFormat | None
) -> dict[str, Any]:
    """Chat-completion arguments; unset sampling knobs are left out so the server's defaults apply.

    ``response_format`` is how a request's JSON schema is sent (``None``: not at all), as
    :class:`ResponseFormatLadder` settles it for the server.
    """
    arguments: dict[str, Any] = {
        "model": config.model_name,
        "messages": [{"role": m.role, "content": m.content} for m in request.messages],
    }
    temperature, max_tokens = request.sampling(config)
    if temperature is not None:
        arguments["temperature"] = temperature
    if max_tokens is not None:
        arguments["max_tokens"] = max_tokens
    schema = request.json_schema
    if schema is not None and response_format is ResponseFormat.JSON_SCHEMA:
        arguments["response_format"] = {
            "type": "json_schema",
            # Not strict: strict mode rejects common schemas (optional fields, open objects),
            # and the caller validates the parsed JSON itself anyway.
            "json_schema": {"name": schema.name, "schema": dict(schema.schema), "strict": False},
        }
    elif schema is not None and response_format is ResponseFormat.JSON_OBJECT:
        # llama.cpp's servers constrain to ``schema`` here; servers that only know json_object ignore it.
        arguments["response_format"] = {"type": "json_object", "schema": dict(schema.schema)}
    return arguments


class ResponseFormat(enum.Enum):
    """Ways to ask for JSON, best first: OpenAI's json_schema, then json_object carrying the schema."""

    JSON_SCHEMA = "json_schema"
    JSON_OBJECT = "json_object"


class ResponseFormatLadder(StructuredOutputLadder[ResponseFormat]):
    """The OpenAI-shaped ladder: ``json_schema``, then ``json_object`` carrying the schema, then no ``response_format``.

    OpenAI, vLLM and most gateways take ``json_schema``; llama-cpp-python's server refuses it (with a
    500) but constrains ``json_object`` to a schema; some servers take neither.
    """

    def __init__(self) -> None:
        super().__init__(
            (ResponseFormat.JSON_SCHEMA, ResponseFormat.JSON_OBJECT, None), rejects=rejects_response_format
        )


def rejects_response_format(failure: CallFailure) -> bool:
    """Whether a failure reads like the server turning down structured output (not a generic bad request).

    400 and 422 count when the message says so in any of the usual words; a 5xx only when it names
    the field itself (llama-cpp-python reports its validation error on ``response_format`` as a 500).
    """
    if failure.kind != "http" or failure.status is None:
        return False
    detail = failure.detail.lower()
    if failure.status in (400, 422):
        return any(phrase in detail for phrase in _RESPONSE_FORMAT_REJECTIONS)
    return failure.status >= 500 and "response_format" in detail


def parse_chat_completion(body: str | Mapping[str, Any]) -> Completion:
    """Read a chat.completion body by hand: imitation servers omit or mistype fields the SDK would trust."""
    payload = _json_object(body) if isinstance(body, str) else body
    choices = payload.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], Mapping):
        raise CallFailure("malformed", f"no choices in the body: {_excerpt(payload)}")
    choice = choices[0]
    message = choice.get("message")
    if not isinstance(message, Mapping):
        raise CallFailure("malformed", f"choice without a message: {_excerpt(choice)}")
    finish_reason = choice.get("finish_reason")
    return Completion(
        text=_content_text(message.get("content")),
        usage=_usage(payload.get("usage")),
        finish_reason=str(finish_reason) if finish_reason is not None else None,
    )


def _json_object(text: str) -> Mapping[str, Any]:
    try:
        payload = json.loads(text)
    except ValueError:
        raise CallFailure("malformed", f"body is not JSON: {text[:120]!r}") from None
    if not isinstance(payload, Mapping):
        raise CallFailure("malformed", f"body is not a JSON object: {text[:120]!r}")
    return payload


def _content_text(content: Any) -> str:
    """Text of a message; ``None`` (tool calls, refusals) is empty, and content parts are joined."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(part.get("text", "")) for part in content if isinstance(part, Mapping))
    raise CallFailure("malformed", f"message content is a {type(content).__name__}, not text")


def _usage(raw: Any) -> Usage:
    if not isinstance(raw, Mapping):
        return Usage()
    return Usage(prompt_tokens=_count(raw.get("prompt_tokens")), completion_tokens=_count(raw.get("completion_tokens")))


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


def _excerpt(value: Any) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= 120 else text[:119] + "…"
