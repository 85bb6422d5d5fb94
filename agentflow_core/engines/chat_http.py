"""The wire under the ``openai:`` engine: POST a chat-completions body, get the body back.

An agent run is many short LLM calls in flight at once, so the client's own CPU per request
decides how many an evaluation can keep going. Measured on this project's loopback benchmark,
the openai SDK spends about 1.5 ms of CPU per call (a typed transform of every argument, then
httpx), aiohttp about 0.15 ms. The engine already builds plain JSON and parses the reply by hand
(imitation servers bend the schema), so the SDK's models bought nothing here; this module keeps
the parts of it that matter on the wire: the base URL and key conventions, OpenAI's optional
organisation and project headers, proxies from the environment, and failures sorted into the
shared retry policy's kinds.

One :class:`ChatHTTP` belongs to one engine. Its connection pool is bound to the event loop that
first used it; a call from another loop (``asyncio.run`` twice in a script) gets a fresh pool.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Mapping
from typing import Any

import aiohttp

from agentflow_core.engines.retry import CallFailure, parse_retry_after

__all__ = ["DEFAULT_BASE_URL", "ChatHTTP", "server_message"]

DEFAULT_BASE_URL = "https://api.openai.com/v1"

#: A chat completion is kilobytes; a body past this is a broken or hostile server, not an answer.
MAX_BODY_BYTES = 32 * 1024 * 1024

#: OpenAI's optional account headers, read from the same variables its SDK reads.
_ACCOUNT_HEADERS = {"OpenAI-Organization": "OPENAI_ORG_ID", "OpenAI-Project": "OPENAI_PROJECT_ID"}


class ChatHTTP:
    """POSTs to ``{base_url}/chat/completions`` over one keep-alive pool; raises :class:`CallFailure`."""

    def __init__(
        self,
        *,
        base_url: str | None,
        api_key: str,
        timeout_s: float,
        extra_headers: Mapping[str, str] | None = None,
    ) -> None:
        self.base_url = (base_url or os.environ.get("OPENAI_BASE_URL") or DEFAULT_BASE_URL).rstrip("/")
        self.url = f"{self.base_url}/chat/completions"
        self.timeout_s = timeout_s
        headers = {
            "Authorization": f"Bearer {api_key}",
            "Content-Type": "application/json",
            "Accept": "application/json",
            "User-Agent": "agentflow",
        }
        for header, variable in _ACCOUNT_HEADERS.items():
            if os.environ.get(variable):
                headers[header] = os.environ[variable]
        headers.update(extra_headers or {})
        self._headers = headers
        #: HTTP(S)_PROXY / NO_PROXY, read once: aiohttp's ``trust_env`` would read them on a thread per request.
        self._proxy = _env_proxy(self.url)
        self._session: aiohttp.ClientSession | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def post(self, body: Mapping[str, Any], *, path: str | None = None) -> str:
        """The response body of a 2xx reply; any other outcome is a :class:`CallFailure`.

        ``path`` posts elsewhere under ``base_url`` than ``chat/completions`` (vLLM's ``completions``
        or ``load_lora_adapter``, for the rollout fleet).
        """
        data = json.dumps(body, ensure_ascii=False).encode("utf-8")
        url = self.url if path is None else f"{self.base_url}/{path}"
        return await self._request("POST", url, data)

    async def get(self, path: str) -> str:
        """``GET {base_url}/{path}`` (``models``), answered and failed as :meth:`post` is."""
        return await self._request("GET", f"{self.base_url}/{path}", None)

    async def _request(self, method: str, url: str, data: bytes | None) -> str:
        session = self._session_for_this_loop()
        try:
            async with session.request(method, url, data=data, headers=self._headers, proxy=self._proxy) as response:
                text = (await _read_capped(response)).decode("utf-8", errors="replace")
                if response.status >= 400:
                    raise CallFailure(
                        "http",
                        server_message(text, response.reason),
                        status=response.status,
                        retry_after_s=parse_retry_after(response.headers),
                    )
                return text
        except CallFailure:
            raise
        except TimeoutError:
            raise CallFailure("timeout", f"no answer within {self.timeout_s:g} s") from None
        except aiohttp.InvalidURL:
            raise CallFailure("error", f"base_url {self.base_url!r} is not a valid URL") from None
        except aiohttp.ClientConnectorError as exc:
            raise CallFailure("connection", _connector_detail(exc)) from exc
        except (aiohttp.ClientError, OSError) as exc:
            # Dropped mid-reply, server hung up, payload cut short: the connection failed, not the request.
            raise CallFailure("connection", str(exc) or type(exc).__name__) from exc

    async def aclose(self) -> None:
        session, self._session = self._session, None
        if session is not None and not session.closed and self._loop is asyncio.get_running_loop():
            await session.close()

    def _session_for_this_loop(self) -> aiohttp.ClientSession:
        loop = asyncio.get_running_loop()
        if self._session is None or self._session.closed or self._loop is not loop:
            # A pool from a finished loop cannot be closed from this one; its sockets died with it.
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.timeout_s),
                connector=aiohttp.TCPConnector(limit=0),
            )
            self._loop = loop
        return self._session


async def _read_capped(response: aiohttp.ClientResponse) -> bytes:
    declared = response.content_length
    if declared is not None and declared > MAX_BODY_BYTES:
        raise CallFailure("malformed", f"the server announced a {declared}-byte body; the limit is {MAX_BODY_BYTES}")
    chunks, size = [], 0
    async for chunk in response.content.iter_chunked(1 << 16):
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise CallFailure("malformed", f"the body passed {MAX_BODY_BYTES} bytes; stopped reading")
        chunks.append(chunk)
    return b"".join(chunks)


def server_message(body: str, reason: str | None = None) -> str:
    """The server's own words from an error body: ``error.message``, ``message`` or ``detail``, else the text."""
    try:
        payload = json.loads(body)
    except ValueError:
        payload = None
    if isinstance(payload, Mapping):
        error = payload.get("error", payload)
        # OpenAI nests {"error": {"message"}}; vLLM puts "message" at the top; FastAPI apps use "detail".
        message = (error.get("message") or error.get("detail")) if isinstance(error, Mapping) else error
        if message:
            return str(message)
    return body.strip() or reason or "no message"


def _env_proxy(url: str) -> str | None:
    """The proxy the environment names for ``url`` (as the SDK's httpx would use), or ``None``."""
    import urllib.request
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    if not parts.hostname or urllib.request.proxy_bypass(parts.hostname):
        return None
    return urllib.request.getproxies().get(parts.scheme)


def _connector_detail(exc: aiohttp.ClientConnectorError) -> str:
    os_error = exc.os_error
    if isinstance(os_error, ConnectionRefusedError):
        return "connection refused"
    if os_error is not None and os_error.strerror:
        return os_error.strerror.lower()
    return str(exc)
