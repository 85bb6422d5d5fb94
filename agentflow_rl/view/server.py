"""The viewer's HTTP server: one page, its static files, and the JSON under ``/api/``.

Binds 127.0.0.1 unless told otherwise. The page shows model and tool output, which may hold
anything (a tool result can carry ``<script>``): the front end only ever sets text, and every
response carries a Content-Security-Policy that allows no inline script, no other origin and
no plugin, so a slip there still runs nothing. On a loopback address, requests whose ``Host``
names another site are refused, so a web page elsewhere cannot reach the data through DNS
rebinding.
"""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import Awaitable, Callable
from importlib import resources
from pathlib import Path

from aiohttp import web

from agentflow_rl.view.api import NotFound, ViewData, dumps

STATIC = Path(str(resources.files("agentflow_rl.view") / "static"))

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Resource-Policy": "same-origin",
}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def make_app(data: ViewData, *, loopback_only: bool = True) -> web.Application:
    """``loopback_only``: accept only ``Host`` headers naming a loopback address or ``localhost``."""

    @web.middleware
    async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        if loopback_only and not _loopback_host(request.host):
            return web.Response(status=421, text=f"this viewer answers to 127.0.0.1 or localhost, not {request.host}")
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            response = exc
        response.headers.update(HEADERS)
        return response

    async def index(request: web.Request) -> web.StreamResponse:
        return web.FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-store"})

    async def api(request: web.Request) -> web.StreamResponse:
        path = request.match_info["path"]
        try:
            payload = await asyncio.to_thread(data.get, path)
        except NotFound as exc:
            return _json({"error": str(exc)}, status=404)
        return _json(payload)

    app = web.Application(middlewares=[guard])
    app.router.add_get("/", index)
    app.router.add_get("/api/{path:.+}", api)
    app.router.add_static("/static/", STATIC)
    return app


def _json(payload: object, status: int = 200) -> web.Response:
    return web.Response(
        text=dumps(payload), status=status, content_type="application/json", headers={"Cache-Control": "no-store"}
    )


def _loopback_host(host: str) -> bool:
    """Whether a ``Host`` header (``127.0.0.1:8765``, ``[::1]:8765``, ``localhost``) names this machine."""
    name = host[1:].split("]", 1)[0] if host.startswith("[") else host.rsplit(":", 1)[0]
    return is_loopback(name)


def is_loopback(name: str) -> bool:
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False
