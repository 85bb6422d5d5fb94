"""Where the Ollama server is: ``base_url``, else ``OLLAMA_HOST``, else ``http://127.0.0.1:11434``.

``OLLAMA_HOST`` is the variable the ``ollama`` command itself reads, in the same loose forms it
accepts (``0.0.0.0``, ``gpu-box:11434``, ``https://ollama.example.com``), so a machine set up for
Ollama needs no AgentFlow-specific setting.
"""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import urlsplit

from agentflow_core import ConfigError

DEFAULT_URL = "http://127.0.0.1:11434"
DEFAULT_PORT = 11434

#: Addresses a server listens on, not ones a client can connect to; the server is then local.
_LISTEN_ALL = frozenset({"0.0.0.0", "::"})


def resolve_base_url(configured: str | None, env: Mapping[str, str], *, engine: str) -> str:
    """The server's root URL, without a trailing slash; a malformed value is a ``ConfigError``."""
    if configured:
        return normalize(configured, source=f"engine {engine}: base_url")
    if env.get("OLLAMA_HOST", "").strip():
        return normalize(env["OLLAMA_HOST"], source=f"engine {engine}: OLLAMA_HOST")
    return DEFAULT_URL


def normalize(raw: str, *, source: str) -> str:
    """``host[:port][/path]`` with or without a scheme -> ``scheme://host:port[/path]``."""
    text = raw.strip()
    try:
        parts = urlsplit(text if "://" in text else f"http://{text}")
        port = parts.port
    except ValueError as exc:
        raise ConfigError(f"{source}: {raw!r} is not a URL ({exc})") from None
    if parts.scheme not in ("http", "https"):
        raise ConfigError(f"{source}: {raw!r} must be an http:// or https:// URL")
    host = parts.hostname or "127.0.0.1"
    host = "127.0.0.1" if host in _LISTEN_ALL else host
    if ":" in host:
        host = f"[{host}]"
    if port is None:  # as Ollama's own clients read it: a bare host means Ollama's port, a URL the scheme's
        port = {"http": 80, "https": 443}[parts.scheme] if "://" in text else DEFAULT_PORT
    return f"{parts.scheme}://{host}:{port}{_root_path(parts.path)}"


def _root_path(path: str) -> str:
    """A path that names an API rather than the server (``/api``, or ``/v1`` copied from OpenAI setups) is dropped."""
    path = path.rstrip("/")
    for suffix in ("/api", "/v1"):
        if path.endswith(suffix):
            return path[: -len(suffix)]
    return path
