"""One JSON request to a search API, with every way it can fail said in one line.

The model reads these lines as tool errors and the person reads them in the trajectory, so each
names the service, the host (never the full URL: Google's key travels in the query string) and,
where there is one, the fix: which environment variable holds the key, or that a rate limit
passes. There are no retries here: a failed search is cheap for the planner to try again or
route around, and a retry loop would eat the tool's time budget.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import attrs

from agentflow_core import ToolError

if TYPE_CHECKING:
    import httpx

#: Longest piece of a server's own error text quoted in a ToolError.
_QUOTE_CHARS = 200


@attrs.frozen
class Service:
    """Who we are talking to, for error messages, and how long we wait for it."""

    #: Human name, e.g. ``"Google Custom Search"``.
    name: str
    timeout_s: float
    #: Environment variable holding the key, named in the hint for 401 and 403 answers.
    key_env: str | None = None


def require_env(variable: str, what: str, setting: str) -> str:
    """The value of ``variable``, or a ToolError telling the person which variable to set."""
    value = os.environ.get(variable, "").strip()
    if not value:
        raise ToolError(f"no {what}: set the environment variable {variable} (the setting {setting} names it)")
    return value


async def request_json(
    service: Service,
    method: str,
    url: str,
    *,
    params: Mapping[str, str | int] | None = None,
    body: Mapping[str, Any] | None = None,
    headers: Mapping[str, str] | None = None,
) -> Any:
    """Send one request and return the parsed JSON body; raise ToolError for anything else."""
    import httpx

    host = httpx.URL(url).host or url
    try:
        async with httpx.AsyncClient(timeout=service.timeout_s, trust_env=False) as client:
            response = await client.request(method, url, params=params, json=body, headers=headers)
    except httpx.TimeoutException:
        raise ToolError(f"{service.name}: no answer from {host} within {service.timeout_s:g} s") from None
    except httpx.ConnectError as exc:
        raise ToolError(f"{service.name}: cannot connect to {host}: {_reason(exc)}") from None
    except httpx.HTTPError as exc:
        raise ToolError(f"{service.name}: request to {host} failed: {_reason(exc)}") from None
    if response.status_code >= 400:
        raise ToolError(_status_line(service, host, response))
    return _parse(service, host, response)


def _parse(service: Service, host: str, response: httpx.Response) -> Any:
    try:
        return json.loads(response.content)
    except ValueError:
        kind = response.headers.get("content-type", "no content type")
        start = _one_line(response.text, 60)
        raise ToolError(
            f"{service.name}: {host} answered HTTP {response.status_code} with a body that is not JSON "
            f"({kind}): {start!r}"
        ) from None


def _status_line(service: Service, host: str, response: httpx.Response) -> str:
    status = response.status_code
    message = server_message(response)
    line = f"{service.name}: HTTP {status} from {host}" + (f": {message}" if message else "")
    return line + _hint(service, status, message)


def _hint(service: Service, status: int, message: str) -> str:
    # Google answers a malformed key with 400 INVALID_ARGUMENT rather than 401/403.
    key_problem = status in (401, 403) or (status == 400 and "key" in message.lower())
    if key_problem and service.key_env:
        return f" (check the key in {service.key_env})"
    if status == 429:
        return " (rate limit or quota reached; wait before searching again)"
    if status >= 500:
        return " (the service failed; try again later)"
    return ""


def server_message(response: httpx.Response) -> str:
    """The service's own words about an error, from the shapes Google, Serper and MediaWiki use."""
    try:
        payload = json.loads(response.content)
    except ValueError:
        return _one_line(response.text, _QUOTE_CHARS) if "html" not in response.headers.get("content-type", "") else ""
    return error_text(payload)


def error_text(payload: Any) -> str:
    """``{"error": {"message"|"info": ...}}`` (Google, MediaWiki) or ``{"message": ...}`` (Serper)."""
    if not isinstance(payload, Mapping):
        return ""
    error = payload.get("error")
    if isinstance(error, Mapping):
        text = error.get("message") or error.get("info") or error.get("status") or error.get("code")
        return _one_line(str(text), _QUOTE_CHARS) if text else ""
    if isinstance(error, str):
        return _one_line(error, _QUOTE_CHARS)
    message = payload.get("message")
    return _one_line(str(message), _QUOTE_CHARS) if message else ""


def malformed(service: Service, what: str) -> ToolError:
    """A ToolError for a 200 answer whose JSON is not the documented shape."""
    return ToolError(f"{service.name}: unexpected answer: {what}")


def _reason(exc: Exception) -> str:
    return _one_line(str(exc), _QUOTE_CHARS) or type(exc).__name__


def _one_line(text: str, limit: int) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"
