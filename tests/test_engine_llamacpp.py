"""LlamaCppEngine on the real embedded SmolLM2-135M model: the default engine must just work."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Iterator
from typing import Any

import jsonschema
import pytest

from agentflow_core.engine import EngineConfig, GenerationRequest, JsonSchema, Message
from agentflow_core.engines.embedded import ENV_OVERRIDE
from agentflow_core.engines.llamacpp_engine import LlamaCppEngine
from agentflow_core.errors import EngineUnavailable

pytest.importorskip("llama_cpp")

VERDICT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "verdict": {"type": "string", "enum": ["yes", "no", "unsure"]},
        "reason": {"type": "string"},
        "evidence": {"type": "string"},
    },
    "required": ["verdict", "reason", "evidence"],
    "additionalProperties": False,
}
JSON_PROMPTS = [
    "Is Paris the capital of France?",
    "Is 7 a prime number?",
    "Explain quantum physics in great detail, in at least 2000 words, then decide if it is easy.",
    "Write a poem about the sea on several lines and say whether it rhymes.",
]


@pytest.fixture(scope="module")
def engine() -> Iterator[LlamaCppEngine]:
    """One model for the module, shared by tests that each run on their own event loop."""
    llamacpp = LlamaCppEngine(EngineConfig(model="llamacpp:smollm2"))
    try:
        llamacpp.model_path  # noqa: B018 - raises EngineUnavailable without the 'local' extra
    except EngineUnavailable as exc:
        pytest.skip(str(exc))
    yield llamacpp
    asyncio.run(llamacpp.aclose())


def _ask(text: str, **kwargs: Any) -> GenerationRequest:
    return GenerationRequest((Message("system", "You are a concise assistant."), Message("user", text)), **kwargs)


async def test_free_text_has_content_and_usage(engine: LlamaCppEngine) -> None:
    completion = await engine.generate(_ask("What is the capital of France?", max_tokens=32))
    assert completion.text.strip()
    assert completion.usage.prompt_tokens > 0
    assert 0 < completion.usage.completion_tokens <= 32
    assert completion.finish_reason in {"stop", "length"}
    assert completion.latency_s > 0


@pytest.mark.parametrize("prompt", JSON_PROMPTS)
@pytest.mark.parametrize("max_tokens", [48, 160])
async def test_json_schema_output_validates(engine: LlamaCppEngine, prompt: str, max_tokens: int) -> None:
    request = _ask(prompt, json_schema=JsonSchema("verdict", VERDICT_SCHEMA), max_tokens=max_tokens)
    completion = await engine.generate(request)
    jsonschema.validate(json.loads(completion.text), VERDICT_SCHEMA)
    assert completion.usage.completion_tokens <= max_tokens


LAYOUT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "tool": {"enum": ["python_coder", "local_search"]},
        "numbers": {"type": "array", "items": {"type": "integer"}, "minItems": 2, "maxItems": 3},
        "detail": {"type": "object", "properties": {"sure": {"type": "boolean"}}, "required": ["sure"]},
    },
    "required": ["tool", "numbers", "detail"],
    "additionalProperties": False,
}


@pytest.mark.parametrize("prompt", JSON_PROMPTS[:2])
async def test_json_comes_in_the_layout_the_trainer_s_engines_write(engine: LlamaCppEngine, prompt: str) -> None:
    """``json.dumps``'s spacing and no other: an adapter trained after ``{"tool": "`` is served after it."""
    completion = await engine.generate(_ask(prompt, json_schema=JsonSchema("layout", LAYOUT_SCHEMA), max_tokens=64))
    assert completion.text == json.dumps(json.loads(completion.text), ensure_ascii=False)


async def test_concurrent_first_calls_load_once_and_all_succeed(
    engine: LlamaCppEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    fresh = LlamaCppEngine(engine.config)
    loads = []
    real_load = fresh._load

    def counting_load() -> Any:
        loads.append(1)
        return real_load()

    monkeypatch.setattr(fresh, "_load", counting_load)
    questions = ["Name a colour.", "Name a fruit.", "Name an animal."]
    results = await asyncio.gather(*(fresh.generate(_ask(q, max_tokens=16)) for q in questions))
    assert all(result.text.strip() for result in results)
    assert len(loads) == 1
    await fresh.aclose()


async def test_greedy_is_deterministic(engine: LlamaCppEngine) -> None:
    request = _ask("Give one tip for writing clear code.", max_tokens=24)
    first, second = await engine.generate(request), await engine.generate(request)
    assert first.text == second.text


async def test_missing_model_file_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_OVERRIDE, "/nonexistent/smollm2.gguf")
    missing = LlamaCppEngine(EngineConfig(model="llamacpp:smollm2"))
    with pytest.raises(EngineUnavailable) as info:
        await missing.generate(_ask("hello"))
    message = str(info.value)
    assert "\n" not in message
    assert ENV_OVERRIDE in message and "agentflow[local]" in message


async def test_missing_llama_cpp_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "llama_cpp", None)  # makes ``import llama_cpp`` fail
    with pytest.raises(EngineUnavailable, match=r"agentflow\[local\]"):
        await LlamaCppEngine(EngineConfig(model="llamacpp:smollm2")).generate(_ask("hello"))
