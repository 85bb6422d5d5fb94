"""The server address: base_url, else OLLAMA_HOST in the forms the ollama command accepts, else the default."""

from __future__ import annotations

import pytest
from agentflow_ollama.host import resolve_base_url

from agentflow_core import ConfigError


@pytest.mark.parametrize(
    ("configured", "env", "expected"),
    [
        (None, {}, "http://127.0.0.1:11434"),
        (None, {"OLLAMA_HOST": "  "}, "http://127.0.0.1:11434"),
        (None, {"OLLAMA_HOST": "0.0.0.0"}, "http://127.0.0.1:11434"),  # a listen address means this machine
        (None, {"OLLAMA_HOST": "gpu-box:8080"}, "http://gpu-box:8080"),
        (None, {"OLLAMA_HOST": "https://ollama.example.com"}, "https://ollama.example.com:443"),
        (None, {"OLLAMA_HOST": "[::1]:11434"}, "http://[::1]:11434"),
        ("http://127.0.0.1:9999/", {"OLLAMA_HOST": "elsewhere"}, "http://127.0.0.1:9999"),  # config wins
        ("http://127.0.0.1:9999/v1", {}, "http://127.0.0.1:9999"),  # copied from an OpenAI-style setup
        ("http://proxy/ollama/api", {}, "http://proxy:80/ollama"),
    ],
)
def test_where_the_server_is(configured: str | None, env: dict[str, str], expected: str) -> None:
    assert resolve_base_url(configured, env, engine="ollama:m") == expected


@pytest.mark.parametrize("bad", ["http://host:port", "ftp://host"])
def test_a_bad_address_names_where_it_came_from(bad: str) -> None:
    with pytest.raises(ConfigError, match=r"engine ollama:m: OLLAMA_HOST: "):
        resolve_base_url(None, {"OLLAMA_HOST": bad}, engine="ollama:m")
