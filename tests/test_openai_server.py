"""The scripted OpenAI-compatible server that the engine tests (and plugin authors) rely on."""

from __future__ import annotations

import http.client
import json
import threading
import time
from collections.abc import Iterator

import openai
import pytest

from agentflow_core.testing import Reply, ScriptedOpenAIServer, scripted_json, wait_until


@pytest.fixture
def server() -> Iterator[ScriptedOpenAIServer]:
    with ScriptedOpenAIServer() as scripted:
        yield scripted


@pytest.fixture
def client(server: ScriptedOpenAIServer) -> Iterator[openai.OpenAI]:
    sdk = openai.OpenAI(base_url=server.base_url, api_key="test", max_retries=0, timeout=5)
    yield sdk
    sdk.close()


def raw_request(server: ScriptedOpenAIServer, method: str, path: str, body: object = None) -> tuple[int, dict]:
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    try:
        payload = json.dumps(body) if body is not None else None
        connection.request(method, path, body=payload, headers={"Content-Type": "application/json"})
        response = connection.getresponse()
        return response.status, json.loads(response.read())
    finally:
        connection.close()


def test_base_url_and_completion_shape(server: ScriptedOpenAIServer, client: openai.OpenAI) -> None:
    assert server.base_url == f"http://127.0.0.1:{server.port}/v1"
    server.enqueue("m", Reply(content="two words"))

    completion = client.chat.completions.create(model="m", messages=[{"role": "user", "content": "say two words"}])

    assert completion.object == "chat.completion"
    assert completion.model == "m"
    assert completion.choices[0].message.content == "two words"
    assert completion.choices[0].finish_reason == "stop"
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (3, 2)


def test_queue_is_fifo_per_model_then_responder_then_default(
    server: ScriptedOpenAIServer, client: openai.OpenAI
) -> None:
    server.enqueue("a", Reply(content="a1"), Reply(content="a2"))
    server.set_responder("a", lambda request: Reply(content="a-responder"))
    server.set_default_responder(lambda request: Reply(content=f"default for {request.model}"))

    def ask(model: str) -> str | None:
        completion = client.chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}])
        return completion.choices[0].message.content

    assert [ask("a"), ask("b"), ask("a"), ask("a")] == ["a1", "default for b", "a2", "a-responder"]
    assert [r.model for r in server.requests] == ["a", "b", "a", "a"]
    assert len(server.requests_for("a")) == 3


def test_request_is_recorded(server: ScriptedOpenAIServer, client: openai.OpenAI) -> None:
    server.enqueue("m", scripted_json({"x": 1}))
    response_format = {"type": "json_schema", "json_schema": {"name": "n", "schema": {"type": "object"}}}

    completion = client.chat.completions.create(
        model="m",
        messages=[{"role": "user", "content": "json please"}],
        response_format=response_format,  # type: ignore[arg-type]
        temperature=0.5,
    )

    assert json.loads(completion.choices[0].message.content or "") == {"x": 1}
    [seen] = server.requests
    assert seen.messages == [{"role": "user", "content": "json please"}]
    assert seen.response_format == response_format
    assert seen.body["temperature"] == 0.5
    assert seen.headers["authorization"] == "Bearer test"
    assert seen.path == "/v1/chat/completions"


def test_streaming_parses_with_the_sdk(server: ScriptedOpenAIServer, client: openai.OpenAI) -> None:
    server.enqueue("m", Reply(content="one two three", completion_tokens=3, prompt_tokens=7))

    stream = client.chat.completions.create(
        model="m",
        messages=[{"role": "user", "content": "count"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)

    assert {c.object for c in chunks} == {"chat.completion.chunk"}
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "one two three"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].usage is not None
    assert (chunks[-1].usage.prompt_tokens, chunks[-1].usage.completion_tokens) == (7, 3)


def test_streaming_without_usage_has_no_usage_chunk(server: ScriptedOpenAIServer, client: openai.OpenAI) -> None:
    server.enqueue("m", Reply(content="hi"))

    chunks = list(client.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}], stream=True))

    assert all(c.choices and c.usage is None for c in chunks)


def test_unscripted_model_is_a_400_naming_it(server: ScriptedOpenAIServer, client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="nobody", messages=[{"role": "user", "content": "hi"}])

    assert caught.value.status_code == 400
    assert "no reply is scripted for model 'nobody'" in str(caught.value.message)


def test_error_replies_are_openai_shaped(server: ScriptedOpenAIServer) -> None:
    server.enqueue("m", Reply(status=429, headers={"Retry-After": "3"}, error_message="slow down"))

    status, body = raw_request(server, "POST", "/v1/chat/completions", {"model": "m", "messages": []})

    assert status == 429
    assert body == {
        "error": {"message": "slow down", "type": "rate_limit_error", "param": None, "code": "rate_limit_exceeded"}
    }


def test_models_lists_scripted_models(server: ScriptedOpenAIServer, client: openai.OpenAI) -> None:
    server.enqueue("zeta", Reply())
    server.set_responder("alpha", lambda request: Reply())

    assert [m.id for m in client.models.list()] == ["alpha", "zeta"]


def test_unknown_path_is_404(server: ScriptedOpenAIServer) -> None:
    assert raw_request(server, "GET", "/v1/nothing")[0] == 404
    assert raw_request(server, "POST", "/v1/completions", {"model": "m"})[0] == 404
    assert server.requests == []


def test_raw_body_is_sent_verbatim(server: ScriptedOpenAIServer) -> None:
    server.enqueue("m", Reply(raw_body=b"\x00not json"))
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    connection.request("POST", "/v1/chat/completions", body=json.dumps({"model": "m"}))
    response = connection.getresponse()

    assert response.getheader("Content-Length") == "9"
    assert response.read() == b"\x00not json"
    connection.close()


def test_keep_alive_connection_serves_several_requests(server: ScriptedOpenAIServer) -> None:
    server.set_default_responder(lambda request: Reply(content="again"))
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    for _ in range(3):
        connection.request("POST", "/v1/chat/completions", body=json.dumps({"model": "m", "messages": []}))
        response = connection.getresponse()
        assert json.loads(response.read())["choices"][0]["message"]["content"] == "again"
    connection.close()
    assert len(server.requests) == 3


def test_stop_is_quick_with_idle_connections_and_delayed_replies() -> None:
    server = ScriptedOpenAIServer().start()
    server.enqueue("m", Reply(content="late", delay_s=30))
    idle = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    idle.connect()
    waiting = threading.Thread(target=_post_ignoring_errors, args=(server.port,), daemon=True)
    waiting.start()
    wait_until(lambda: len(server.requests) == 1, what="the delayed request to arrive")

    started = time.perf_counter()
    server.stop()

    assert time.perf_counter() - started < 2
    waiting.join(timeout=2)
    assert not waiting.is_alive()
    idle.close()


def _post_ignoring_errors(port: int) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("POST", "/v1/chat/completions", body=json.dumps({"model": "m", "messages": []}))
        connection.getresponse().read()
    except (OSError, http.client.HTTPException):
        pass
    finally:
        connection.close()
