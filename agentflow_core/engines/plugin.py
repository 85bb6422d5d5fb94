"""The built-in engine providers, registered through the public ``register_engines`` hook.

Each factory imports its SDK only when an engine is actually made, so listing providers (or
importing ``agentflow_core``) never pulls in openai, litellm, torch, vllm or llama.cpp.
"""

from __future__ import annotations

import importlib

from agentflow_core.engine import Engine, EngineConfig, EngineFactory
from agentflow_core.errors import EngineUnavailable
from agentflow_core.hookspecs import hookimpl
from agentflow_core.registry import EngineRegistrar


def _lazy(module: str, cls: str, extra: str | None = None) -> EngineFactory:
    def factory(config: EngineConfig) -> Engine:
        try:
            engine_cls = getattr(importlib.import_module(f"agentflow_core.engines.{module}"), cls)
        except ImportError as exc:
            fix = f"; install it with: pip install 'agentflow[{extra}]'" if extra else ""
            raise EngineUnavailable(f"engine {config.model}: cannot import {exc.name or exc}{fix}") from None
        engine: Engine = engine_cls(config)
        return engine

    factory.__qualname__ = f"{cls}.factory"
    return factory


@hookimpl
def register_engines(register: EngineRegistrar) -> None:
    register(
        "openai",
        _lazy("openai_engine", "OpenAIEngine"),
        description="any OpenAI-compatible server: OpenAI, vLLM serve, DashScope, Together, Ollama",
    )
    register("litellm", _lazy("litellm_engine", "LiteLLMEngine", "litellm"), description="any LiteLLM provider string")
    register("vllm", _lazy("vllm_engine", "VLLMEngine", "vllm"), description="in-process vllm.LLM (GPU; extra 'vllm')")
    register(
        "hf",
        _lazy("hf_engine", "HFEngine", "hf"),
        description="in-process transformers model from a folder, hub id or GGUF file (extra 'hf')",
    )
    register(
        "llamacpp",
        _lazy("llamacpp_engine", "LlamaCppEngine", "local"),
        description="in-process llama.cpp for GGUF on CPU (extra 'local'); llamacpp:smollm2 is the embedded default",
    )
