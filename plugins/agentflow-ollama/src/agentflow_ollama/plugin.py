"""The plugin module named by the ``agentflow`` entry point: one provider, ``ollama``."""

from __future__ import annotations

from agentflow_core import Engine, EngineConfig, EngineRegistrar, hookimpl


def make_engine(config: EngineConfig) -> Engine:
    # Imported here so that `agentflow engines` lists the provider without importing httpx.
    from agentflow_ollama.engine import OllamaEngine

    return OllamaEngine(config)


@hookimpl
def register_engines(register: EngineRegistrar) -> None:
    register(
        "ollama",
        make_engine,
        description="a local Ollama server over its native /api/chat (base_url, else OLLAMA_HOST, else :11434)",
    )
