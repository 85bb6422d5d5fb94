"""The viewer's HTTP server: one page, its static files, and the JSON under ``/api/``.

Binds 127.0.0.1 unless told otherwise. The page shows model and tool output, which may hold
anything (a tool result can carry ``<script>``): the front end only ever sets text, and every
response carries a Content-Security-Policy that allows no inline script, no other origin and
no plugin, so a slip there still runs nothing.

Every request passes ``agentflow_core.access`` first, on every address: requests whose ``Host`` or
``Origin`` names another site are refused, so a web page elsewhere cannot reach the data through
DNS rebinding; and when the viewer has a token (always beyond loopback), a request must carry it.
A browser gets it once, from the link ``agentflow view`` prints (``/?token=...``): the answer sets
an HttpOnly, SameSite=Strict cookie and redirects to the same page without the token, so it stays
out of the address bar, the history and the page's scripts. Other clients may send
``Authorization: Bearer <token>``.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Awaitable, Callable
from importlib import resources
from pathlib import Path

from aiohttp import web

from agentflow_core.access import Access, bearer
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


#: What a browser without the token is told.
NEEDS_TOKEN = (
    "this viewer needs its token: open the link that `agentflow view` printed (it ends in ?token=...), "
    "or send Authorization: Bearer <token>"
)
#: The query parameter of the link that hands a browser its token.
TOKEN_PARAMETER = "token"

LOOPBACK = Access(bound=frozenset({"127.0.0.1"}), token=None)


def make_app(data: ViewData, access: Access = LOOPBACK) -> web.Application:
    """The viewer's app; ``access`` says who may see it (default: loopback, no token)."""

    @web.middleware
    async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            response = _refusal(request, access) or await handler(request)
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


def _refusal(request: web.Request, access: Access) -> web.StreamResponse | None:
    """The answer to a request that may not go on: refused, or handed its cookie and sent back."""
    headers = request.headers
    link = access.token is not None and TOKEN_PARAMETER in request.query
    presented: str | None
    if link:
        presented = request.query[TOKEN_PARAMETER]
    else:
        presented = bearer(headers.get("Authorization")) or request.cookies.get(cookie_name(access))
    refusal = access.check(host=headers.get("Host"), origin=headers.get("Origin"), token=presented)
    if refusal is not None:
        text = NEEDS_TOKEN if refusal.status == 401 else refusal.reason
        challenge = {"WWW-Authenticate": "Bearer"} if refusal.status == 401 else {}
        return web.Response(status=refusal.status, text=text + "\n", headers=challenge)
    if not link:
        return None
    # The link with the token: trade it for a cookie, and go to the same page without it.
    rest = {k: v for k, v in request.query.items() if k != TOKEN_PARAMETER}
    response = web.HTTPSeeOther(str(request.rel_url.with_query(rest)), headers={"Cache-Control": "no-store"})
    response.set_cookie(cookie_name(access), access.token or "", httponly=True, samesite="Strict", path="/")
    return response


def cookie_name(access: Access) -> str:
    """Named after the token, so two viewers on one host (cookies ignore ports) keep theirs apart."""
    digest = hashlib.sha256((access.token or "").encode()).hexdigest()[:12]
    return f"agentflow_view_{digest}"
