"""Who may talk to a server AgentFlow runs: ``agentflow mcp serve --http`` and ``agentflow view``.

Two guards, whatever the address:

- **Host and Origin.** Both must name this server: an address it is bound to, the name it was
  told to bind, a loopback address, ``localhost``, or a name the user allowed. A web page
  elsewhere can point a name it controls at this machine (DNS rebinding), but the browser then
  sends that name, so the page is refused. Bound to every interface (``0.0.0.0``, ``::``), any IP
  literal is accepted too, since only a name can be rebound. An absent ``Origin`` (a client that is
  not a browser) is fine; ``Origin: null`` is not.
- **A bearer token.** Bound beyond loopback, one is required: the value of the server's
  environment variable, or else one made for the run and printed once at start. On loopback it
  is used when the variable is set. It is compared in constant time.

The servers translate a ``Refusal`` into their own response; this module does no I/O.
"""

from __future__ import annotations

import hmac
import ipaddress
import os
import re
import secrets
from collections.abc import Iterable, Mapping
from urllib.parse import urlsplit

import attrs

from agentflow_core.errors import UsageError

#: Characters of a token that fits an ``Authorization: Bearer`` header and a URL unchanged.
_TOKEN = re.compile(r"^[A-Za-z0-9._~+/=-]+$")
_ANY = (ipaddress.ip_address("0.0.0.0"), ipaddress.ip_address("::"))


@attrs.frozen
class Refusal:
    """Why a request is turned away, as an HTTP status and one line of text."""

    status: int
    reason: str


@attrs.frozen
class Access:
    #: The addresses the server listens on (IP literals).
    bound: frozenset[str]
    #: What a client must present, or None for no token (loopback only).
    token: str | None
    #: Further names a client may use: the one the server was told to bind, a reverse proxy's ...
    allowed_hosts: frozenset[str] = frozenset()

    @property
    def beyond_loopback(self) -> bool:
        return beyond_loopback(self.bound)

    def name_allowed(self, name: str) -> bool:
        """Whether ``name`` (a host name or IP literal, no port) names this server."""
        name = name.lower()
        if name == "localhost" or name in self.allowed_hosts or name in self.bound:
            return True
        address = _ip(name)
        if address is None:
            return False
        return address.is_loopback or any(address == _ip(b) for b in self.bound) or self._any_interface

    def host_allowed(self, host: str | None) -> bool:
        """``Host: 127.0.0.1:8811``, ``[::1]:8811`` or ``localhost``."""
        if not host:
            return False
        name = host[1:].partition("]")[0] if host.startswith("[") else host.rpartition(":")[0] or host
        return self.name_allowed(name)

    def origin_allowed(self, origin: str | None) -> bool:
        if origin is None:
            return True
        try:
            parts = urlsplit(origin)
            name = parts.hostname
        except ValueError:
            return False
        return parts.scheme in ("http", "https") and name is not None and self.name_allowed(name)

    def token_matches(self, presented: str | None) -> bool:
        """Whether ``presented`` is the token (always true when there is none)."""
        if self.token is None:
            return True
        return presented is not None and hmac.compare_digest(presented.encode(), self.token.encode())

    def check(self, *, host: str | None, origin: str | None, token: str | None) -> Refusal | None:
        """The refusal for a request with these headers (``token``: what it presented), if any."""
        if not self.host_allowed(host):
            return Refusal(421, f"this server does not answer to the host {host!r}")
        if not self.origin_allowed(origin):
            return Refusal(403, f"requests from {origin!r} are not accepted")
        if not self.token_matches(token):
            return Refusal(401, "a valid token is required (Authorization: Bearer <token>)")
        return None

    @property
    def _any_interface(self) -> bool:
        return any(_ip(b) in _ANY for b in self.bound)


def bearer(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header."""
    scheme, _, value = (authorization or "").partition(" ")
    if scheme.lower() != "bearer":
        return None
    return value.strip() or None


def beyond_loopback(addresses: Iterable[str]) -> bool:
    """Whether any of ``addresses`` (IP literals) can be reached from another machine."""
    return not all((ip := _ip(a)) is not None and ip.is_loopback for a in addresses)


def server_access(
    bound: Iterable[str],
    *,
    variable: str,
    allowed_hosts: Iterable[str] = (),
    environ: Mapping[str, str] | None = None,
) -> tuple[Access, bool]:
    """The ``Access`` of a server listening on ``bound`` (IP literals), and whether its token was
    made here (then the server prints it).

    The token comes from ``variable`` when it is set (a bad one is a one-line error); bound beyond
    loopback without it, one is made.
    """
    environ = os.environ if environ is None else environ
    addresses = frozenset(a.lower() for a in bound)
    hosts = frozenset(h.strip().strip("[]").lower() for h in allowed_hosts if h.strip())
    token = environ.get(variable) or None
    if token is not None and not _TOKEN.match(token):
        raise UsageError(f"{variable} may use only letters, digits and . _ ~ + / = -")
    made = token is None and beyond_loopback(addresses)
    if made:
        token = secrets.token_urlsafe(32)
    return Access(bound=addresses, token=token, allowed_hosts=hosts), made


def _ip(name: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(name.partition("%")[0])
    except ValueError:
        return None
