"""One contract for both HTTP engines (``openai:`` and ``litellm:``), checked over real HTTP.

Every test runs against each engine built through the plugin registry, talking to a scripted
OpenAI-compatible server on 127.0.0.1: what the server receives and what the engine returns or
raises must be the same whichever SDK sits in between.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest

from agentflow_core.engine import Engine, EngineConfig, GenerationRequest, JsonSchema, Message
from agentflow_core.engines.retry import CallFailure, RetryPolicy, parse_retry_after
from agentflow_core.errors import ConfigError, EngineError, EngineUnavailable
from agentflow_core.registry import Registry
from agentflow_core.testing import RecordedRequest, Reply, ScriptedOpenAIServer, scripted_json
from tests.helpers import closed_port

MakeEngine = Callable[..., Engine]

MODEL = "m1"
ENGINE_MODELS = {"openai": f"openai:{MODEL}", "litellm": f"litellm:openai/{MODEL}"}
SCHEMA = JsonSchema(
    name="answer",
    schema={"type": "object", "properties": {"answer": {"type": "string"}}, "required": ["answer"]},
)


def ask(text: str = "What is 2+2?", **kwargs: Any) -> GenerationRequest:
    return GenerationRequest(messages=(Message("system", "Be brief."), Message("user", text)), **kwargs)


@pytest.fixture
def server() -> Iterator[ScriptedOpenAIServer]:
    with ScriptedOpenAIServer() as scripted:
        yield scripted


@pytest.fixture(params=sorted(ENGINE_MODELS))
def engine_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def make_engine(engine_kind: str, server: ScriptedOpenAIServer, registry: Registry) -> AsyncIterator[MakeEngine]:
    """Builds engines the way the app does (registry factory), pointed at ``server``; closes them after."""
    made: list[Engine] = []

    def make(**overrides: Any) -> Engine:
        settings: dict[str, Any] = {
            "model": ENGINE_MODELS[engine_kind],
            "base_url": server.base_url,
            "timeout_s": 5.0,
            "max_attempts": 3,
            "options": {"retry_base_s": 0.01},
            **overrides,
        }
        config = EngineConfig(**settings)
        engine = registry.engine(config.provider).factory(config)
        made.append(engine)
        return engine

    yield make
    for engine in made:
        await engine.aclose()


@pytest.fixture(autouse=True)
def _no_ambient_openai_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """A developer's real key or base URL must neither leak into nor change these tests."""
    for variable in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "AGENTFLOW_TEST_KEY"):
        monkeypatch.delenv(variable, raising=False)


# -- happy paths ------------------------------------------------------------------------------


async def test_plain_text_reply_and_usage(make_engine: MakeEngine, server: ScriptedOpenAIServer) -> None:
    server.enqueue(MODEL, Reply(content="four", prompt_tokens=11, completion_tokens=1))
    engine = make_engine()

    completion = await engine.generate(ask())

    assert completion.text == "four"
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (11, 1)
    assert completion.finish_reason == "stop"
    assert completion.latency_s > 0
    assert engine.name in ENGINE_MODELS.values()


async def test_server_sees_bare_model_messages_and_sampling(
    make_engine: MakeEngine, server: ScriptedOpenAIServer
) -> None:
    server.enqueue(MODEL, Reply(content="ok"))
    engine = make_engine(temperature=0.7, max_tokens=99)

    await engine.generate(ask("hello there", temperature=0.2))

    [seen] = server.requests
    assert seen.model == MODEL  # litellm's "openai/" routing prefix is not sent
    assert seen.path == "/v1/chat/completions"
    assert seen.messages == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "hello there"},
    ]
    assert seen.body["temperature"] == 0.2  # the request wins over the config
    assert seen.body["max_tokens"] == 99  # the config fills what the request leaves open
    assert seen.response_format is None


async def test_unset_sampling_knobs_are_not_sent(make_engine: MakeEngine, server: ScriptedOpenAIServer) -> None:
    server.enqueue(MODEL, Reply(content="ok"))

    await make_engine().generate(ask())

    assert "temperature" not in server.requests[0].body
    assert "max_tokens" not in server.requests[0].body


async def test_json_schema_is_sent_as_response_format(make_engine: MakeEngine, server: ScriptedOpenAIServer) -> None:
    server.enqueue(MODEL, scripted_json({"answer": "4"}))

    completion = await make_engine().generate(ask(json_schema=SCHEMA))

    assert completion.text == '{"answer": "4"}'
    response_format = server.requests[0].response_format
    assert response_format == {
        "type": "json_schema",
        "json_schema": {"name": "answer", "schema": dict(SCHEMA.schema), "strict": False},
    }


async def test_server_rejecting_response_format_gets_plain_requests(
    make_engine: MakeEngine, server: ScriptedOpenAIServer
) -> None:
    def picky(request: RecordedRequest) -> Reply:
        if request.response_format is not None:
            return Reply(status=400, error_message="response_format of type json_schema is not supported")
        return Reply(content='{"answer": "4"}')

    server.set_responder(MODEL, picky)
    engine = make_engine()

    first = await engine.generate(ask(json_schema=SCHEMA))
    second = await engine.generate(ask(json_schema=SCHEMA))

    assert first.text == second.text == '{"answer": "4"}'
    sent_format = [(r.response_format or {}).get("type") for r in server.requests]
    assert sent_format == ["json_schema", "json_object", None, None]  # each rung tried once, then remembered


async def test_server_taking_only_json_object_gets_the_schema_there(
    make_engine: MakeEngine, server: ScriptedOpenAIServer
) -> None:
    """llama-cpp-python's server: json_schema fails validation with a 500, json_object takes a schema."""

    def llama_cpp_like(request: RecordedRequest) -> Reply:
        if (request.response_format or {}).get("type") == "json_schema":
            message = (
                "1 validation error: {'type': 'literal_error', 'loc': ('body', 'response_format', 'type'), "
                "'msg': \"Input should be 'text' or 'json_object'\"}"
            )
            return Reply(status=500, error_message=message)
        return Reply(content='{"answer": "4"}')

    server.set_responder(MODEL, llama_cpp_like)
    engine = make_engine()

    for _ in range(2):
        assert (await engine.generate(ask(json_schema=SCHEMA))).text == '{"answer": "4"}'

    formats = [r.response_format for r in server.requests]
    assert [f["type"] for f in formats] == ["json_schema", "json_object", "json_object"]  # no retries of the 500
    assert formats[1] == {"type": "json_object", "schema": dict(SCHEMA.schema)}


async def test_a_plain_server_error_is_not_taken_for_a_format_rejection(
    make_engine: MakeEngine, server: ScriptedOpenAIServer
) -> None:
    server.enqueue(MODEL, Reply(status=500, error_message="worker crashed"), Reply(content='{"answer": "4"}'))

    assert (await make_engine().generate(ask(json_schema=SCHEMA))).text == '{"answer": "4"}'
    assert [r.response_format["type"] for r in server.requests] == ["json_schema", "json_schema"]


async def test_null_content_is_empty_text(make_engine: MakeEngine, server: ScriptedOpenAIServer) -> None:
    body = (
        '{"id": "x", "object": "chat.completion", "created": 0, "model": "m1", "choices": [{"index": 0, '
        '"message": {"role": "assistant", "content": null}, "finish_reason": "length"}]}'
    )
    server.enqueue(MODEL, Reply(raw_body=body))

    completion = await make_engine().generate(ask())

    assert completion.text == ""
    assert completion.finish_reason == "length"


async def test_many_concurrent_calls(make_engine: MakeEngine, server: ScriptedOpenAIServer) -> None:
    server.set_responder(MODEL, lambda request: Reply(content=f"echo {request.messages[-1]['content']}"))
    engine = make_engine()

    completions = await asyncio.gather(*(engine.generate(ask(f"q{i}")) for i in range(20)))

    assert [c.text for c in completions] == [f"echo q{i}" for i in range(20)]
    assert len(server.requests) == 20


# -- retries ----------------------------------------------------------------------------------


async def test_rate_limit_honours_retry_after(make_engine: MakeEngine, server: ScriptedOpenAIServer) -> None:
    server.enqueue(MODEL, Reply(status=429, headers={"Retry-After": "1"}), Reply(content="ok"))
    engine = make_engine()

    started = time.perf_counter()
    completion = await engine.generate(ask())
    elapsed = time.perf_counter() - started

    assert completion.text == "ok"
    assert len(server.requests) == 2
    assert elapsed >= 0.95  # the backoff base is 10 ms: only Retry-After explains a one-second pause


async def test_server_errors_are_retried(make_engine: MakeEngine, server: ScriptedOpenAIServer) -> None:
    server.enqueue(MODEL, Reply(status=500), Reply(status=503), Reply(content="finally"))

    completion = await make_engine().generate(ask())

    assert completion.text == "finally"
    assert len(server.requests) == 3


async def test_persistent_server_error_gives_up_after_max_attempts(
    make_engine: MakeEngine, server: ScriptedOpenAIServer
) -> None:
    server.set_responder(MODEL, lambda request: Reply(status=500, error_message="the GPU is on fire"))
    engine = make_engine(max_attempts=4)

    with pytest.raises(EngineError) as caught:
        await engine.generate(ask())

    message = str(caught.value)
    assert len(server.requests) == 4
    assert message.startswith(f"engine {engine.name}: HTTP 500 from {server.base_url}")
    assert "the GPU is on fire" in message
    assert "4 attempts" in message
    assert "\n" not in message


async def test_bad_key_fails_at_once_on_one_line(make_engine: MakeEngine, server: ScriptedOpenAIServer) -> None:
    server.set_responder(MODEL, lambda request: Reply(status=401, error_message="Incorrect API key provided"))
    engine = make_engine()

    with pytest.raises(EngineError) as caught:
        await engine.generate(ask())

    message = str(caught.value)
    assert len(server.requests) == 1
    assert message.startswith(f"engine {engine.name}: HTTP 401 from {server.base_url}: Incorrect API key provided")
    assert "api_key_env" in message
    assert "\n" not in message


@pytest.mark.parametrize("status", [400, 403, 404, 422])
async def test_client_errors_are_not_retried(
    make_engine: MakeEngine, server: ScriptedOpenAIServer, status: int
) -> None:
    server.set_responder(MODEL, lambda request: Reply(status=status, error_message="nope"))

    with pytest.raises(EngineError, match=f"HTTP {status} .*nope"):
        await make_engine().generate(ask())

    assert len(server.requests) == 1


async def test_timeout_is_retried_then_reported(make_engine: MakeEngine, server: ScriptedOpenAIServer) -> None:
    server.set_responder(MODEL, lambda request: Reply(content="too late", delay_s=2.0))
    engine = make_engine(timeout_s=0.3, max_attempts=2)

    with pytest.raises(EngineError, match="timed out") as caught:
        await engine.generate(ask())

    assert len(server.requests) == 2
    assert engine.name in str(caught.value)
    assert "0.3 s" in str(caught.value)


async def test_connection_refused_names_the_url(make_engine: MakeEngine) -> None:
    url = f"http://127.0.0.1:{closed_port()}/v1"
    engine = make_engine(base_url=url, max_attempts=2)

    with pytest.raises(EngineError) as caught:
        await engine.generate(ask())

    message = str(caught.value)
    assert message.startswith(f"engine {engine.name}: cannot reach {url} (connection refused")
    assert "is the server running?" in message
    assert "\n" not in message


@pytest.mark.parametrize(
    "body",
    ["<html>502 Bad Gateway</html>", '{"unexpected": true}', '{"choices": []}'],
    ids=["not-json", "no-choices", "empty-choices"],
)
async def test_malformed_body_is_an_engine_error(
    make_engine: MakeEngine, server: ScriptedOpenAIServer, body: str
) -> None:
    server.set_responder(MODEL, lambda request: Reply(raw_body=body))

    with pytest.raises(EngineError, match="malformed response") as caught:
        await make_engine(max_attempts=4).generate(ask())

    assert len(server.requests) == 2  # retried once, not max_attempts times
    assert "\n" not in str(caught.value)


async def test_malformed_body_then_good_one_recovers(make_engine: MakeEngine, server: ScriptedOpenAIServer) -> None:
    server.enqueue(MODEL, Reply(raw_body="not json"), Reply(content="fine"))

    assert (await make_engine().generate(ask())).text == "fine"


# -- credentials ------------------------------------------------------------------------------


async def test_missing_api_key_variable_is_named(make_engine: MakeEngine, server: ScriptedOpenAIServer) -> None:
    engine = make_engine(api_key_env="AGENTFLOW_TEST_KEY")  # construction alone must not fail

    with pytest.raises(EngineUnavailable, match="AGENTFLOW_TEST_KEY"):
        await engine.generate(ask())

    assert server.requests == []


async def test_api_key_variable_is_sent_as_bearer(
    make_engine: MakeEngine, server: ScriptedOpenAIServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AGENTFLOW_TEST_KEY", "sk-test-123")
    server.enqueue(MODEL, Reply(content="ok"))

    await make_engine(api_key_env="AGENTFLOW_TEST_KEY").generate(ask())

    assert server.requests[0].headers["authorization"] == "Bearer sk-test-123"


async def test_openai_without_key_or_base_url_is_unavailable(registry: Registry) -> None:
    engine = registry.engine("openai").factory(EngineConfig(model="openai:gpt-4o-mini"))

    with pytest.raises(EngineUnavailable, match="OPENAI_API_KEY"):
        await engine.generate(ask())


# -- the openai: engine's own wire ------------------------------------------------------------


def openai_engine(registry: Registry, **settings: Any) -> Engine:
    config = EngineConfig(**{"model": f"openai:{MODEL}", "timeout_s": 5.0, **settings})
    return registry.engine("openai").factory(config)


async def test_openai_base_url_comes_from_the_environment(
    server: ScriptedOpenAIServer, registry: Registry, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-env")
    server.enqueue(MODEL, Reply(content="from env"))
    engine = openai_engine(registry)

    assert (await engine.generate(ask())).text == "from env"
    assert server.requests[0].headers["authorization"] == "Bearer sk-env"
    assert server.requests[0].path.endswith("/chat/completions")
    await engine.aclose()


async def test_openai_sends_account_and_configured_headers(
    server: ScriptedOpenAIServer, registry: Registry, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_ORG_ID", "org-1")
    monkeypatch.setenv("OPENAI_PROJECT_ID", "proj-2")
    server.enqueue(MODEL, Reply(content="ok"))
    engine = openai_engine(registry, base_url=server.base_url, options={"headers": {"X-Gateway-Route": "east"}})

    await engine.generate(ask())

    headers = server.requests[0].headers
    assert (headers["openai-organization"], headers["openai-project"]) == ("org-1", "proj-2")
    assert headers["x-gateway-route"] == "east"
    assert headers["content-type"] == "application/json"
    await engine.aclose()


async def test_openai_headers_option_must_be_strings(server: ScriptedOpenAIServer, registry: Registry) -> None:
    engine = openai_engine(registry, base_url=server.base_url, options={"headers": {"X-Retries": 3}})

    with pytest.raises(ConfigError, match="option headers must be a table of strings"):
        await engine.generate(ask())


async def test_openai_goes_through_the_environments_proxy(
    server: ScriptedOpenAIServer, registry: Registry, monkeypatch: pytest.MonkeyPatch
) -> None:
    """HTTP_PROXY is honoured as the SDK would: the request reaches the proxy in absolute form."""
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{server.port}")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    server.enqueue(MODEL, Reply(content="via proxy"))
    engine = openai_engine(registry, base_url="http://llm.example.test/v1")

    assert (await engine.generate(ask())).text == "via proxy"
    assert server.requests[0].path == "http://llm.example.test/v1/chat/completions"
    await engine.aclose()


async def test_openai_no_proxy_bypasses_the_proxy(
    server: ScriptedOpenAIServer, registry: Registry, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{closed_port()}")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    server.enqueue(MODEL, Reply(content="direct"))
    engine = openai_engine(registry, base_url=server.base_url)

    assert (await engine.generate(ask())).text == "direct"
    await engine.aclose()


async def test_openai_refuses_an_endless_body(
    server: ScriptedOpenAIServer, registry: Registry, monkeypatch: pytest.MonkeyPatch
) -> None:
    from agentflow_core.engines import chat_http

    monkeypatch.setattr(chat_http, "MAX_BODY_BYTES", 1000)
    server.enqueue(MODEL, Reply(content="x" * 5000), Reply(content="x" * 5000))
    engine = openai_engine(registry, base_url=server.base_url, options={"retry_base_s": 0.01})

    with pytest.raises(EngineError, match=r"malformed response: the server announced a \d+-byte body"):
        await engine.generate(ask())
    await engine.aclose()


def test_openai_engine_survives_separate_event_loops(server: ScriptedOpenAIServer, registry: Registry) -> None:
    """Scripts call ``asyncio.run`` more than once; a pool bound to the first loop must not break the second."""
    server.enqueue(MODEL, Reply(content="first"), Reply(content="second"))
    engine = openai_engine(registry, base_url=server.base_url)

    first = asyncio.run(engine.generate(ask()))
    second = asyncio.run(engine.generate(ask()))
    asyncio.run(engine.aclose())

    assert (first.text, second.text) == ("first", "second")


async def test_openai_non_utf8_error_body_still_reads(server: ScriptedOpenAIServer, registry: Registry) -> None:
    server.enqueue(MODEL, Reply(status=400, raw_body=b"bad \xff request"))
    engine = openai_engine(registry, base_url=server.base_url)

    with pytest.raises(EngineError, match=r"HTTP 400 .*bad .* request"):
        await engine.generate(ask())
    await engine.aclose()


# -- the retry policy's pieces ----------------------------------------------------------------


async def test_retry_after_is_capped(make_engine: MakeEngine, server: ScriptedOpenAIServer) -> None:
    server.enqueue(MODEL, Reply(status=503, headers={"Retry-After": "120"}), Reply(content="ok"))
    engine = make_engine(options={"retry_base_s": 0.01, "retry_after_cap_s": 0.05})

    started = time.perf_counter()
    assert (await engine.generate(ask())).text == "ok"
    assert time.perf_counter() - started < 5


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"Retry-After": "2"}, 2.0),
        ({"retry-after": "0.5"}, 0.5),
        ({"retry-after-ms": "250", "Retry-After": "9"}, 0.25),
        ({"Retry-After": "Wed, 21 Oct 2015 07:28:10 GMT"}, 10.0),
        ({"Retry-After": "Wed, 21 Oct 2015 07:27:00 GMT"}, 0.0),
        ({"Retry-After": "soon"}, None),
        ({}, None),
    ],
)
def test_parse_retry_after(headers: dict[str, str], expected: float | None) -> None:
    now = 1445412480.0  # Wed, 21 Oct 2015 07:28:00 GMT
    assert parse_retry_after(headers, now=now) == expected


@pytest.mark.parametrize(
    ("failure", "retryable"),
    [
        (CallFailure("http", "x", status=429), True),
        (CallFailure("http", "x", status=529), True),
        (CallFailure("http", "x", status=408), True),
        (CallFailure("http", "x", status=400), False),
        (CallFailure("http", "x", status=401), False),
        (CallFailure("http", "x", status=404), False),
        (CallFailure("timeout", "x"), True),
        (CallFailure("connection", "x"), True),
        (CallFailure("malformed", "x"), True),
        (CallFailure("error", "x"), False),
    ],
)
def test_what_is_retryable(failure: CallFailure, retryable: bool) -> None:
    assert failure.retryable is retryable


def test_failure_detail_is_one_short_line() -> None:
    detail = CallFailure("http", "line one\n\tline two " + "x" * 1000, status=500).detail
    assert detail.startswith("line one line two x")
    assert "\n" not in detail
    assert len(detail) <= 300


def test_bad_retry_option_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="retry_base_s"):
        RetryPolicy.from_config(EngineConfig(model="openai:m", options={"retry_base_s": "fast"}))
