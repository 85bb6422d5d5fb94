"""Ollama's ``/api/chat`` format: the request body we send and the response we read.

Pure functions over plain data, so the wire format is tested without a server. The shape is
Ollama's native one, not OpenAI's: sampling knobs live under ``options`` (``max_tokens`` is
``num_predict``), structured output is ``format`` (a JSON schema, or ``"json"`` for servers
before 0.5), and token counts are ``prompt_eval_count`` / ``eval_count``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from agentflow_core import Completion, EngineConfig, GenerationRequest, Usage

#: Keys of ``EngineConfig.options`` this engine (or the core's retry policy) uses itself; every other key
#: goes to Ollama's ``options``.
ENGINE_OPTIONS = frozenset({"keep_alive", "retry_base_s", "retry_max_s", "retry_after_cap_s"})


class MalformedResponse(ValueError):
    """A success status with a body that is not a chat response."""


def chat_body(config: EngineConfig, request: GenerationRequest, *, form: str | None = "schema") -> dict[str, Any]:
    """The JSON body of one non-streaming chat call; unset knobs are left out so the model's defaults apply.

    ``form`` is how a request's schema goes as ``format``: ``"schema"`` (the schema itself), ``"json"``
    (servers before 0.5), or ``None`` (not at all).
    """
    body: dict[str, Any] = {
        "model": config.model_name,
        "messages": [{"role": m.role, "content": m.content} for m in request.messages],
        "stream": False,
    }
    if request.json_schema is not None and form is not None:
        body["format"] = dict(request.json_schema.schema) if form == "schema" else "json"
    options = {k: v for k, v in config.options.items() if k not in ENGINE_OPTIONS}
    temperature, max_tokens = request.sampling(config)
    if temperature is not None:
        options["temperature"] = temperature
    if max_tokens is not None:
        options["num_predict"] = max_tokens
    if options:
        body["options"] = options
    if "keep_alive" in config.options:
        body["keep_alive"] = config.options["keep_alive"]
    return body


def parse_chat_response(payload: Any) -> Completion:
    """Read ``{"message": {"content"}, "done_reason", "prompt_eval_count", "eval_count", ...}``."""
    if not isinstance(payload, Mapping):
        raise MalformedResponse(f"the body is not a JSON object: {excerpt(payload)}")
    message = payload.get("message")
    if not isinstance(message, Mapping) or not isinstance(message.get("content"), str):
        raise MalformedResponse(f"no message content in the body: {excerpt(payload)}")
    finish = payload.get("done_reason") or ("stop" if payload.get("done") is True else None)
    return Completion(
        text=message["content"],  # a thinking model's "thinking" is not part of the answer
        usage=Usage(_count(payload.get("prompt_eval_count")), _count(payload.get("eval_count"))),
        finish_reason=str(finish) if finish is not None else None,
    )


def error_message(body: str) -> str:
    """Ollama's own words from an error body ``{"error": "..."}``, else the body itself."""
    try:
        payload = json.loads(body)
    except ValueError:
        return body.strip() or "no message"
    if isinstance(payload, Mapping) and payload.get("error"):
        return str(payload["error"])
    return body.strip() or "no message"


def excerpt(value: Any, limit: int = 120) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0
