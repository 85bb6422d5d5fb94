"""Which version of each module's adapter each server holds, as far as this process has proved it.

A version enters the book only after its load was answered *and* the server's ``/v1/models`` named
that version's folder as the adapter's source (the publisher checks); a server that failed a load
is dropped from the fleet, and its entries are never read again. A completion is tagged with its
server's version for the module when it was sent, and only if that is still the version when the
reply came back: an adapter loaded while the request was in flight leaves the tag ``None``, which
no trainer expects. So a sample from a stale adapter shows up as a version other than the one the
trainer just published.
"""

from __future__ import annotations


class AdapterVersions:
    """``{server URL: {module: version}}``, written by the publisher, read by the client."""

    def __init__(self) -> None:
        self._book: dict[str, dict[str, int]] = {}

    def of(self, server: str, module: str) -> int | None:
        return self._book.get(server, {}).get(module)

    def record(self, server: str, module: str, version: int) -> None:
        self._book.setdefault(server, {})[module] = version
