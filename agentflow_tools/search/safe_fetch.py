"""Download one public web page for a model, without letting the model's URL reach inside.

The URL comes from a model, which may have read it on a hostile page, so this is the place
where a request to the cloud metadata service or a database on the local network is stopped:

- only ``http`` and ``https``;
- the host is resolved here and *every* address it resolves to must be public (not private,
  loopback, link-local, multicast, reserved or unspecified; IPv4-mapped IPv6 is unwrapped);
- the connection then goes to one of those checked addresses (the host name still travels in
  the ``Host`` header and TLS SNI), so a second DNS answer cannot swap in a private address;
- redirects are followed by hand, at most ``max_redirects``, each hop checked like the first;
- the body is read up to ``max_bytes`` and the whole fetch, redirects included, has one deadline;
- proxy variables are ignored (``trust_env=False``): a proxy would connect wherever it likes.

It is not a sandbox for what the page says: the text still goes to a model.
``allow_private_addresses`` turns the address check off, for intranets and tests.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from typing import TYPE_CHECKING

import attrs

from agentflow_core import ToolError

if TYPE_CHECKING:
    import httpx

_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_HTML_TYPES = frozenset({"text/html", "application/xhtml+xml"})
_TEXT_TYPES = frozenset({"application/json", "application/xml", "application/ld+json"})
_ACCEPT = "text/html,application/xhtml+xml,text/plain;q=0.9,text/*;q=0.8"
#: ``ipaddress`` flags, in the order we name them when refusing an address.
_BLOCKED_KINDS = ("loopback", "link_local", "unspecified", "multicast", "reserved", "private")


@attrs.frozen
class FetchLimits:
    timeout_s: float
    max_bytes: int
    max_redirects: int
    allow_private_addresses: bool = False
    user_agent: str = "AgentFlow-web_search/0.1"


@attrs.frozen
class Page:
    #: Where the page was finally found, after redirects.
    url: str
    #: ``"html"`` or ``"text"``.
    kind: str
    text: str
    #: Whether the body was cut at ``max_bytes``.
    truncated: bool


async def fetch_page(url: str, limits: FetchLimits) -> Page:
    """The page at ``url``; a ToolError in one line for a refused URL or any failure."""
    import httpx

    target = checked_url(url)
    try:
        async with (
            asyncio.timeout(limits.timeout_s),
            httpx.AsyncClient(timeout=limits.timeout_s, trust_env=False, follow_redirects=False) as client,
        ):
            return await _follow(client, target, limits)
    except (TimeoutError, httpx.TimeoutException):
        raise ToolError(f"{target.host} did not deliver the page within {limits.timeout_s:g} s") from None
    except httpx.HTTPError as exc:
        raise ToolError(f"fetching {target} failed: {type(exc).__name__}: {exc}") from None


def checked_url(raw: str) -> httpx.URL:
    """``raw`` as an absolute http(s) URL with a host, or a ToolError saying what is wrong."""
    import httpx

    try:
        url = httpx.URL(raw.strip())
    except httpx.InvalidURL as exc:
        raise ToolError(f"not a valid URL: {raw!r} ({exc})") from None
    if url.scheme not in ("http", "https"):
        scheme = f"the scheme {url.scheme}:" if url.scheme else "a URL without a scheme"
        raise ToolError(f"refused {raw!r}: {scheme} is not allowed; give a full http:// or https:// URL")
    if not url.host:
        raise ToolError(f"refused {raw!r}: the URL has no host")
    return url


def blocked_kind(address: str) -> str | None:
    """Why ``address`` may not be fetched (``"loopback"``, ``"private"``, ...), or ``None`` if public."""
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = ip.ipv4_mapped or ip.sixtofour
        if embedded is not None:
            ip = embedded
    for kind in _BLOCKED_KINDS:
        if getattr(ip, f"is_{kind}"):
            return kind.replace("_", "-")
    return None if ip.is_global else "non-public"


async def resolve(url: httpx.URL, *, allow_private: bool) -> list[str]:
    """Every address ``url``'s host resolves to; a ToolError if any of them is not public."""
    port = url.port or (443 if url.scheme == "https" else 80)
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(url.host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise ToolError(f"cannot resolve the host {url.host}: {exc.strerror}") from None
    addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
    if not allow_private:
        for address in addresses:
            kind = blocked_kind(address)
            if kind:
                raise ToolError(
                    f"refused to fetch {url}: {url.host} resolves to {address}, a {kind} address; "
                    "only public addresses may be fetched ([tools.web_search] allow_private_addresses = true "
                    "allows others)"
                )
    return addresses


async def _follow(client: httpx.AsyncClient, url: httpx.URL, limits: FetchLimits) -> Page:
    for _ in range(limits.max_redirects + 1):
        addresses = await resolve(url, allow_private=limits.allow_private_addresses)
        response = await _send(client, url, addresses, limits)
        try:
            location = _redirect_target(response, url)
            if location is None:
                return await _read(response, url, limits)
        finally:
            await response.aclose()
        url = checked_url(str(url.join(location)))
    raise ToolError(f"gave up on {url}: more than {limits.max_redirects} redirects")


async def _send(client: httpx.AsyncClient, url: httpx.URL, addresses: list[str], limits: FetchLimits) -> httpx.Response:
    """GET ``url`` from the first checked address that accepts a connection."""
    import httpx

    headers = {"Host": url.netloc.decode("ascii"), "User-Agent": limits.user_agent, "Accept": _ACCEPT}
    extensions = {"sni_hostname": url.host} if url.scheme == "https" else {}
    failure: Exception | None = None
    for address in addresses:
        request = client.build_request("GET", url.copy_with(host=address), headers=headers, extensions=extensions)
        try:
            return await client.send(request, stream=True)
        except httpx.ConnectError as exc:
            failure = exc
    raise ToolError(f"cannot connect to {url.host}: {failure or 'no address'}")


def _redirect_target(response: httpx.Response, url: httpx.URL) -> str | None:
    if response.status_code not in _REDIRECTS:
        return None
    location = response.headers.get("location")
    if not location:
        raise ToolError(f"{url} answered HTTP {response.status_code} without saying where to go")
    return location


async def _read(response: httpx.Response, url: httpx.URL, limits: FetchLimits) -> Page:
    if response.status_code >= 400:
        raise ToolError(f"{url} answered HTTP {response.status_code} ({response.reason_phrase or 'error'})")
    media_type = response.headers.get("content-type", "").split(";")[0].strip().lower()
    kind = _kind(media_type)
    if kind is None:
        raise ToolError(f"{url} is {media_type}, which web_search cannot read; it reads HTML and plain text")
    body, truncated = await _read_capped(response, limits.max_bytes)
    text = _decode(body, response.charset_encoding)
    if kind == "unknown":
        kind = "html" if text.lstrip().startswith("<") else "text"
    return Page(url=str(url), kind=kind, text=text, truncated=truncated)


def _kind(media_type: str) -> str | None:
    if media_type in _HTML_TYPES:
        return "html"
    if media_type.startswith("text/") or media_type in _TEXT_TYPES:
        return "text"
    return "unknown" if not media_type else None


async def _read_capped(response: httpx.Response, max_bytes: int) -> tuple[bytes, bool]:
    """At most ``max_bytes`` of the (decompressed) body, and whether there was more."""
    body = bytearray()
    async for chunk in response.aiter_bytes():
        body += chunk
        if len(body) > max_bytes:
            return bytes(body[:max_bytes]), True
    return bytes(body), False


def _decode(body: bytes, charset: str | None) -> str:
    try:
        return body.decode(charset or "utf-8", errors="replace")
    except LookupError:  # a charset Python does not know
        return body.decode("utf-8", errors="replace")
