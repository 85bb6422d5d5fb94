"""VLLMEngine where vLLM is absent (every CPU box): constructing works, generating says what to install."""

from __future__ import annotations

import importlib.util

import pytest

from agentflow_core.engine import EngineConfig, GenerationRequest, Message
from agentflow_core.engines.vllm_engine import VLLMEngine
from agentflow_core.errors import EngineUnavailable

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("vllm") is not None,
    reason="vllm is installed here; these tests cover the machine without it",
)


def test_construction_does_not_import_vllm() -> None:
    engine = VLLMEngine(EngineConfig(model="vllm:Qwen/Qwen2.5-0.5B-Instruct", options={"max_model_len": 2048}))
    assert engine.name == "vllm:Qwen/Qwen2.5-0.5B-Instruct"


async def test_generate_names_the_extra() -> None:
    engine = VLLMEngine(EngineConfig(model="vllm:Qwen/Qwen2.5-0.5B-Instruct"))
    with pytest.raises(EngineUnavailable) as info:
        await engine.generate(GenerationRequest((Message("user", "hello"),)))
    message = str(info.value)
    assert "agentflow[vllm]" in message
    assert "\n" not in message
    await engine.aclose()
