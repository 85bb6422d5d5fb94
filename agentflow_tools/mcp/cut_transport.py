"""The HTTP side of cutting an MCP server's messages while they are read (see ``cutter.py``).

A streamable-HTTP server answers a call with one JSON body or a stream of server-sent events; the
SDK reads a JSON body whole. :class:`CuttingTransport` sits under the SDK's HTTP client and passes
every response body through a :class:`~agentflow_tools.mcp.cutter.MessageCutter` as it arrives. An
SSE stream is lines too (``event:``, ``data: {...}``), and the cutter ends its state at every
newline, so the same cutter serves both. Bodies are asked for uncompressed: the cutter reads JSON,
not gzip. Imported only when an HTTP server is started (it imports the SDK's ``httpx2``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx2

from agentflow_tools.mcp.cutter import MessageCutter


class CuttingTransport(httpx2.AsyncBaseTransport):
    def __init__(self, *, max_string_bytes: int, max_message_bytes: int) -> None:
        self._inner = httpx2.AsyncHTTPTransport()
        self._limits = {"max_string_bytes": max_string_bytes, "max_message_bytes": max_message_bytes}

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        request.headers["Accept-Encoding"] = "identity"
        response = await self._inner.handle_async_request(request)
        assert isinstance(response.stream, httpx2.AsyncByteStream)
        return httpx2.Response(
            status_code=response.status_code,
            headers=response.headers,
            stream=_CutStream(response.stream, MessageCutter(**self._limits)),
            extensions=response.extensions,
        )

    async def aclose(self) -> None:
        await self._inner.aclose()


class _CutStream(httpx2.AsyncByteStream):
    def __init__(self, inner: httpx2.AsyncByteStream, cutter: MessageCutter) -> None:
        self._inner, self._cutter = inner, cutter

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._inner:
            cut = self._cutter.feed(chunk)
            if cut:
                yield cut
        rest = self._cutter.flush()
        if rest:
            yield rest

    async def aclose(self) -> None:
        await self._inner.aclose()
