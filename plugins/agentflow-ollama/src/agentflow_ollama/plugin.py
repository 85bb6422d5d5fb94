"""The plugin module named by the ``agentflow`` entry point: one provider, ``ollama``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from agentflow_core import Engine, EngineConfig, hookimpl


class RegisterEngine(Protocol):
    """The shape of the ``register`` callback, written with public types only."""

    def __call__(self, provider: str, factory: Callable[[EngineConfig], Engine], *, description: str = "") -> None: ...


def make_engine(config: EngineConfig) -> Engine:
    # Imported here so that `agentflow engines` lists the provider without importing httpx.
    from agentflow_ollama.engine import OllamaEngine

    return OllamaEngine(config)


@hookimpl
def register_engines(register: RegisterEngine) -> None:
    register(
        "ollama",
        make_engine,
        description="a local Ollama server over its native /api/chat (base_url, else OLLAMA_HOST, else :11434)",
    )
