"""The engine over real HTTP against a scripted Ollama-shaped server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import pytest
from agentflow_ollama.engine import OllamaEngine
from ollama_server import OllamaReply, ScriptedOllamaServer

from agentflow_core import (
    Completion,
    ConfigError,
    Engine,
    EngineConfig,
    EngineError,
    GenerationRequest,
    JsonSchema,
    Message,
    Usage,
)

HI = GenerationRequest(messages=(Message("user", "Hi"),))
SCHEMA = JsonSchema("verdict", {"type": "object", "properties": {"decision": {"enum": ["STOP", "CONTINUE"]}}})


def generate(base_url: str, request: GenerationRequest = HI, **config: Any) -> Completion:
    config.setdefault("options", {"retry_base_s": 0})
    engine = OllamaEngine(EngineConfig("ollama:tiny", base_url=base_url, **config), env={})

    async def go() -> Completion:
        try:
            return await engine.generate(request)
        finally:
            await engine.aclose()

    return asyncio.run(go())


def test_a_chat_round_trip(ollama: ScriptedOllamaServer) -> None:
    ollama.enqueue(OllamaReply("Hello there", prompt_eval_count=11, eval_count=2))
    completion = generate(ollama.base_url, temperature=0.1, max_tokens=64)
    assert (completion.text, completion.usage, completion.finish_reason) == ("Hello there", Usage(11, 2), "stop")
    assert completion.latency_s > 0
    (request,) = ollama.requests
    assert request.body == {
        "model": "tiny",
        "messages": [{"role": "user", "content": "Hi"}],
        "stream": False,
        "options": {"temperature": 0.1, "num_predict": 64},
    }


def test_structured_output_sends_the_schema_as_format(ollama: ScriptedOllamaServer) -> None:
    ollama.enqueue(OllamaReply('{"decision": "STOP"}'))
    assert generate(ollama.base_url, GenerationRequest(HI.messages, json_schema=SCHEMA)).text == '{"decision": "STOP"}'
    assert ollama.requests[0].body["format"] == SCHEMA.schema


def test_an_old_server_that_refuses_a_schema_gets_plain_json(ollama: ScriptedOllamaServer) -> None:
    ollama.enqueue(
        OllamaReply(status=400, error='invalid format: expected "json"'), OllamaReply("{}"), OllamaReply("{}")
    )
    engine = OllamaEngine(EngineConfig("ollama:tiny", base_url=ollama.base_url), env={})
    request = GenerationRequest(HI.messages, json_schema=SCHEMA)

    async def twice() -> None:
        await engine.generate(request)
        await engine.generate(request)  # remembered: no second refusal
        await engine.aclose()

    asyncio.run(twice())
    assert [r.body["format"] for r in ollama.requests] == [SCHEMA.schema, "json", "json"]


def test_server_errors_are_retried(ollama: ScriptedOllamaServer) -> None:
    ollama.enqueue(OllamaReply(status=503, error="loading model"), OllamaReply(status=500), OllamaReply("ok"))
    assert generate(ollama.base_url, max_attempts=3).text == "ok"
    assert len(ollama.requests) == 3


def test_retries_are_bounded_and_the_error_is_one_line(ollama: ScriptedOllamaServer) -> None:
    ollama.enqueue(*[OllamaReply(status=500, error="CUDA error:\n out of memory")] * 5)
    with pytest.raises(EngineError) as info:
        generate(ollama.base_url, max_attempts=3)
    assert str(info.value) == (
        f"engine ollama:tiny: HTTP 500 from Ollama at {ollama.base_url}: CUDA error: out of memory "
        "(gave up after 3 attempts)"
    )
    assert len(ollama.requests) == 3


def test_an_unknown_model_fails_at_once_with_the_fix(ollama: ScriptedOllamaServer) -> None:
    ollama.enqueue(OllamaReply(status=404, error='model "tiny" not found, try pulling it first'))
    with pytest.raises(
        EngineError, match=r"HTTP 404 .*not found, try pulling it first; pull it first: ollama pull tiny$"
    ):
        generate(ollama.base_url)
    assert len(ollama.requests) == 1


def test_no_server_is_a_clear_error() -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(EngineError) as info:
        generate(f"http://127.0.0.1:{port}", max_attempts=2)
    message = str(info.value)
    assert "cannot reach Ollama at" in message and "connection refused" in message and "2 attempts" in message
    assert "ollama serve" in message and "\n" not in message


def test_a_slow_server_times_out(ollama: ScriptedOllamaServer) -> None:
    ollama.enqueue(OllamaReply("late", delay_s=1.0))
    with pytest.raises(EngineError, match=r"timed out waiting for Ollama at .*: no answer within 0.2 s$"):
        generate(ollama.base_url, timeout_s=0.2, max_attempts=1)


@pytest.mark.parametrize("body", ["<html>bad gateway</html>", '{"done": true}'])
def test_an_unreadable_success_is_tried_once_more_then_fails(ollama: ScriptedOllamaServer, body: str) -> None:
    ollama.enqueue(OllamaReply(raw_body=body), OllamaReply(raw_body=body), OllamaReply("never"))
    with pytest.raises(EngineError, match=r"returned a malformed response: .*gave up after 2 attempts"):
        generate(ollama.base_url, max_attempts=3)
    assert len(ollama.requests) == 2


def test_ollama_host_is_the_fallback(ollama: ScriptedOllamaServer) -> None:
    ollama.enqueue(OllamaReply("from env"))
    engine = OllamaEngine(EngineConfig("ollama:tiny"), env={"OLLAMA_HOST": ollama.base_url.removeprefix("http://")})
    assert engine.base_url == ollama.base_url
    assert isinstance(engine, Engine)

    async def go() -> str:
        try:
            return (await engine.generate(HI)).text
        finally:
            await engine.aclose()

    assert asyncio.run(go()) == "from env"


def test_bad_options_fail_at_startup() -> None:
    with pytest.raises(ConfigError, match=r"option retry_base_s must be a non-negative number of seconds, got 'soon'"):
        OllamaEngine(EngineConfig("ollama:tiny", options={"retry_base_s": "soon"}), env={})
