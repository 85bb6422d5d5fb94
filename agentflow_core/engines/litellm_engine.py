"""The ``litellm:`` engine: any provider LiteLLM knows, e.g. ``litellm:dashscope/qwen2.5-7b-instruct``.

LiteLLM's own retries are switched off so that the shared policy in
:mod:`agentflow_core.engines.retry` governs both HTTP engines alike. LiteLLM wraps every provider
error in its own exception classes and reports some client-side problems (an unreadable body, a
refused connection, a missing key) as HTTP 500; translating them back by their cause chain is
what keeps a bad key from being retried four times.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Mapping
from typing import Any

# LiteLLM fetches a model price list from GitHub at import unless told not to; AgentFlow must
# work offline, and a user's explicit setting still wins.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("LITELLM_OFFLINE_MODE", "true")

import attrs
import litellm
import openai

from agentflow_core.engine import Completion, EngineConfig, GenerationRequest
from agentflow_core.engines.chat_http import server_message
from agentflow_core.engines.endpoints import one_server, pool_for
from agentflow_core.engines.openai_engine import (
    PLACEHOLDER_KEY,
    ResponseFormat,
    ResponseFormatLadder,
    chat_arguments,
    parse_chat_completion,
    resolve_env_key,
)
from agentflow_core.engines.retry import CallFailure, RetryPolicy, parse_retry_after

__all__ = ["LiteLLMEngine", "failure_from_litellm"]

litellm.suppress_debug_info = True

#: Providers that speak OpenAI's API against ``api_base`` and need some key even when the server ignores it.
_OPENAI_STYLE_PROVIDERS = frozenset({"openai", "hosted_vllm", "custom_openai", "text-completion-openai"})

#: How LiteLLM words a 200 response it could not read (it reports them as HTTP 500).
_MALFORMED_MARKERS = ("no 'choices'", "empty or invalid response", "expecting value", "jsondecodeerror", "invalid json")

#: LiteLLM's prefixes, e.g. ``litellm.AuthenticationError: AuthenticationError: OpenAIException - ``.
_LITELLM_PREFIX = re.compile(r"^(?:litellm\.\w+:\s*)?(?:\w+Error:\s*)?(?:\w+Exception\s*-\s*)?")


class LiteLLMEngine:
    """An :class:`~agentflow_core.engine.Engine` over ``litellm.acompletion``.

    ``config.model_name`` is LiteLLM's model string (``openai/m1``, ``dashscope/qwen-max``), so the
    provider prefix chooses LiteLLM's route while ``base_url`` and ``api_key_env`` still apply.
    """

    def __init__(self, config: EngineConfig) -> None:
        self.config = config
        self.name = config.model
        self._policy = RetryPolicy.from_config(config)
        self._formats = ResponseFormatLadder()
        self._endpoints = pool_for(config)

    async def generate(self, request: GenerationRequest) -> Completion:
        connection = self._connection_arguments()
        started = time.perf_counter()
        completion = await self._policy.run(
            lambda: self._attempt(request, connection),
            engine=self.name,
            where=self._where(),
            auth_hint=self._auth_hint(),
        )
        return attrs.evolve(completion, latency_s=time.perf_counter() - started)

    async def aclose(self) -> None:
        """Nothing to close: LiteLLM owns and caches its HTTP clients process-wide, shared by all engines."""

    # -- one attempt -----------------------------------------------------------------------

    async def _attempt(self, request: GenerationRequest, connection: Mapping[str, Any]) -> Completion:
        if self._endpoints is None:
            return await self._on(request, connection)
        return await self._endpoints.call(lambda url: self._on(request, {**connection, "api_base": url}))

    async def _on(self, request: GenerationRequest, connection: Mapping[str, Any]) -> Completion:
        return await self._formats.send(request, lambda fmt: self._send(request, connection, fmt))

    async def _send(
        self, request: GenerationRequest, connection: Mapping[str, Any], fmt: ResponseFormat | None
    ) -> Completion:
        arguments = {**chat_arguments(self.config, request, response_format=fmt), **connection}
        try:
            response = await litellm.acompletion(**arguments)
        except openai.OpenAIError as exc:  # LiteLLM's exception classes all derive from openai's
            raise failure_from_litellm(exc, self.config.timeout_s) from exc
        return parse_chat_completion(_as_mapping(response))

    # -- configuration -----------------------------------------------------------------------

    def _connection_arguments(self) -> dict[str, Any]:
        arguments: dict[str, Any] = {
            "timeout": self.config.timeout_s,
            "num_retries": 0,  # the shared retry policy decides, not LiteLLM
            "max_retries": 0,  # ... nor the openai SDK underneath it
            "drop_params": True,  # providers without temperature/max_tokens get the rest of the request
        }
        url = one_server(self.config)
        if url:
            arguments["api_base"] = url
        api_key = self._api_key()
        if api_key is not None:
            arguments["api_key"] = api_key
        return arguments

    def _api_key(self) -> str | None:
        """The ``api_key_env`` key; else ``None`` so LiteLLM reads its provider's own variable."""
        if self.config.api_key_env:
            return resolve_env_key(self.config)
        # A local OpenAI-compatible server needs no key, but the SDK under LiteLLM insists on one.
        openai_style = self._provider() in _OPENAI_STYLE_PROVIDERS
        if (self.config.base_url or self.config.base_urls) and openai_style and not os.environ.get("OPENAI_API_KEY"):
            return PLACEHOLDER_KEY
        return None

    def _provider(self) -> str:
        prefix, sep, _ = self.config.model_name.partition("/")
        return prefix if sep else ""

    def _where(self) -> str:
        if self._endpoints is not None:
            return f"any of {', '.join(self._endpoints.urls)}"
        url = one_server(self.config)
        if url:
            return url.rstrip("/")
        return f"the {self._provider() or 'provider'} API"

    def _auth_hint(self) -> str:
        if self.config.api_key_env:
            return f"(check the key in {self.config.api_key_env})"
        return "(set the provider's API key variable, or [engines] api_key_env)"


def _as_mapping(response: Any) -> Mapping[str, Any]:
    if isinstance(response, Mapping):
        return response
    dump = getattr(response, "model_dump", None)
    if callable(dump):
        return dict(dump())
    raise CallFailure("malformed", f"LiteLLM returned a {type(response).__name__}, not a chat completion")


def failure_from_litellm(exc: openai.OpenAIError, timeout_s: float) -> CallFailure:
    """Translate a LiteLLM exception, preferring the openai SDK exception it wraps when there is one."""
    original = _sdk_exception(exc)
    if original is not None:
        return failure_from_openai(original, timeout_s)
    if isinstance(exc, litellm.Timeout):
        return CallFailure("timeout", f"no answer within {timeout_s:g} s")
    message = _litellm_message(exc)
    if find_cause(exc, json.JSONDecodeError) is not None or any(m in message.lower() for m in _MALFORMED_MARKERS):
        return CallFailure("malformed", message)
    if isinstance(exc, litellm.APIConnectionError):
        return CallFailure("connection", message)
    status = getattr(exc, "status_code", None)
    if isinstance(status, int):
        return CallFailure("http", message, status=status, retry_after_s=_retry_after(exc))
    return CallFailure("error", f"{type(exc).__name__}: {message}")


def _sdk_exception(exc: BaseException) -> openai.OpenAIError | None:
    """The openai SDK's own exception in the chain (not LiteLLM's subclasses of it), if any."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, openai.OpenAIError) and type(current).__module__.split(".")[0] == "openai":
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


def _litellm_message(exc: BaseException) -> str:
    """The provider's words: the JSON error body when there is one, else LiteLLM's message without its prefixes."""
    response: Any = getattr(exc, "response", None)  # LiteLLM's httpx response, when it has one
    try:
        body = json.loads(str(response.text))
    except Exception:  # no response, an unread stream or a non-JSON body: all mean "use the message"
        body = None
    if isinstance(body, Mapping) and isinstance(body.get("error"), Mapping) and body["error"].get("message"):
        return str(body["error"]["message"])
    message = str(getattr(exc, "message", "") or exc)
    return _LITELLM_PREFIX.sub("", message, count=1) or type(exc).__name__


def _retry_after(exc: BaseException) -> float | None:
    headers = getattr(exc, "litellm_response_headers", None)
    if headers is None:
        response = getattr(exc, "response", None)
        headers = getattr(response, "headers", None)
    return parse_retry_after(headers) if headers is not None else None


def failure_from_openai(exc: openai.OpenAIError, timeout_s: float) -> CallFailure:
    """Translate an openai SDK exception into the shared retry policy's terms."""
    if isinstance(exc, openai.APITimeoutError):
        return CallFailure("timeout", f"no answer within {timeout_s:g} s")
    if isinstance(exc, openai.APIConnectionError):
        return CallFailure("connection", _connection_detail(exc))
    if isinstance(exc, openai.APIStatusError):
        return CallFailure(
            "http",
            server_message(exc.response.text, exc.response.reason_phrase),
            status=exc.status_code,
            retry_after_s=parse_retry_after(exc.response.headers),
        )
    if isinstance(exc, openai.APIResponseValidationError):
        return CallFailure("malformed", exc.message)
    return CallFailure("error", f"{type(exc).__name__}: {exc}")


def _connection_detail(exc: BaseException) -> str:
    """'connection refused' and friends, from the lowest-level cause the SDK chained."""
    if find_cause(exc, ConnectionRefusedError) is not None:
        return "connection refused"
    os_error = find_cause(exc, OSError)
    if os_error is not None and os_error.strerror:
        return os_error.strerror.lower()
    root = _root_cause(exc)
    return str(root) or type(root).__name__


def find_cause(exc: BaseException, kind: type[BaseException]) -> Any:
    """The first exception of type ``kind`` in ``exc``'s cause/context chain, or ``None``."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, kind):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


def _root_cause(exc: BaseException) -> BaseException:
    seen: set[int] = set()
    parent = exc.__cause__ or exc.__context__
    while id(exc) not in seen and parent is not None:
        seen.add(id(exc))
        exc, parent = parent, parent.__cause__ or parent.__context__
    return exc
