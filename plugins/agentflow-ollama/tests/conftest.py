from __future__ import annotations

from collections.abc import Iterator

import pytest
from ollama_server import ScriptedOllamaServer  # beside this file; pytest puts this folder on sys.path


@pytest.fixture
def ollama() -> Iterator[ScriptedOllamaServer]:
    with ScriptedOllamaServer() as server:
        yield server
