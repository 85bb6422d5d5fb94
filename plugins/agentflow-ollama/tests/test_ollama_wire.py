"""The request we send and the response we read, in Ollama's native shape."""

from __future__ import annotations

import pytest
from agentflow_ollama.wire import MalformedResponse, chat_body, error_message, parse_chat_response

from agentflow_core import EngineConfig, GenerationRequest, JsonSchema, Message, Usage

HELLO = GenerationRequest(messages=(Message("system", "Be brief."), Message("user", "Hi")))


def test_a_plain_request_leaves_the_model_defaults_alone() -> None:
    assert chat_body(EngineConfig("ollama:llama3.2"), HELLO) == {
        "model": "llama3.2",
        "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}],
        "stream": False,
    }


def test_knobs_go_under_options_with_ollamas_names() -> None:
    config = EngineConfig(
        "ollama:qwen2.5:7b",  # the model part keeps its own colon (a tag)
        temperature=0.2,
        max_tokens=100,
        options={"num_ctx": 8192, "keep_alive": "10m", "retry_base_s": 0},
    )
    body = chat_body(config, GenerationRequest(messages=HELLO.messages, max_tokens=50))
    assert body["model"] == "qwen2.5:7b"
    assert body["options"] == {"num_ctx": 8192, "temperature": 0.2, "num_predict": 50}  # the request's cap wins
    assert body["keep_alive"] == "10m"


def test_a_schema_is_the_format_or_plain_json_for_old_servers() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "string"}}}
    request = GenerationRequest(messages=HELLO.messages, json_schema=JsonSchema("answer", schema))
    assert chat_body(EngineConfig("ollama:m"), request)["format"] == schema
    assert chat_body(EngineConfig("ollama:m"), request, form="json")["format"] == "json"


def test_a_response_becomes_a_completion() -> None:
    completion = parse_chat_response(
        {
            "model": "m",
            "message": {"role": "assistant", "content": "Hello!", "thinking": "greet back"},
            "done": True,
            "done_reason": "length",
            "prompt_eval_count": 12,
            "eval_count": 4,
        }
    )
    assert (completion.text, completion.usage, completion.finish_reason) == ("Hello!", Usage(12, 4), "length")


def test_missing_counts_are_zero_not_an_error() -> None:
    completion = parse_chat_response({"message": {"role": "assistant", "content": "x"}, "done": True})
    assert completion.usage == Usage() and completion.finish_reason == "stop"


@pytest.mark.parametrize("body", [[], {"done": True}, {"message": {"role": "assistant"}}, {"message": "hi"}])
def test_a_body_without_a_message_is_malformed(body: object) -> None:
    with pytest.raises(MalformedResponse):
        parse_chat_response(body)


def test_error_bodies_give_ollamas_own_words() -> None:
    assert error_message('{"error": "model \\"x\\" not found, try pulling it first"}').startswith('model "x" not found')
    assert error_message("upstream timed out\n") == "upstream timed out"
