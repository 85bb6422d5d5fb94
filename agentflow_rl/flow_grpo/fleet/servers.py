"""The servers of a run as the trainer sees them: which are live, how to reach each, what each holds.

One :class:`Fleet` is shared by the publisher and the client. Live or not is an
:class:`~agentflow_core.engines.endpoints.EndpointPool` that drops a failing server for good
(``revive_after_s = None``): a server that was gone may have missed an adapter load, so it does
not come back within the run; ``min_servers`` is how few may remain before a step fails.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from agentflow_core.engines.token_runtime import CallFailure, ChatHTTP, EndpointPool
from agentflow_core.errors import EngineError
from agentflow_rl.flow_grpo.fleet.versions import AdapterVersions

#: vLLM servers started without ``--api-key`` take any bearer token.
_NO_KEY = "EMPTY"


class Fleet:
    """``urls`` are the servers' ``/v1`` base URLs; ``timeout_s`` is each request's deadline."""

    def __init__(
        self, urls: Sequence[str], *, min_servers: int = 1, timeout_s: float = 300.0, name: str = "rollout fleet"
    ) -> None:
        if not 1 <= min_servers <= len(urls):
            raise ValueError(f"{name}: min_servers = {min_servers}, but there are {len(urls)} servers")
        urls = [url.rstrip("/") for url in urls]
        self.pool = EndpointPool(urls, name=name, revive_after_s=None, min_live=min_servers)
        self.versions = AdapterVersions()
        self.timeout_s = timeout_s
        self._http = {url: ChatHTTP(base_url=url, api_key=_NO_KEY, timeout_s=timeout_s) for url in self.pool.urls}
        self._root_http: dict[str, ChatHTTP] = {}

    @property
    def name(self) -> str:
        return self.pool.name

    def live(self) -> tuple[str, ...]:
        return self.pool.live()

    def http(self, url: str) -> ChatHTTP:
        return self._http[url]

    def root_http(self, url: str) -> ChatHTTP:
        """The server's own routes, beside ``/v1`` (``/collective_rpc``, ``/weight_info``...)."""
        if url not in self._root_http:
            root = url.removesuffix("/v1")
            self._root_http[url] = ChatHTTP(base_url=root, api_key=_NO_KEY, timeout_s=self.timeout_s)
        return self._root_http[url]

    async def served_base(self) -> str:
        """The name the live servers serve the base model under (the ``/v1/models`` card with no parent)."""
        url = self.live()[0]
        try:
            cards = json.loads(await self.http(url).get("models"))["data"]
            return next(str(card["id"]) for card in cards if not card.get("parent"))
        except CallFailure as failure:
            raise EngineError(f"{self.name}: {url}/models did not answer: {failure.detail}") from None
        except (ValueError, KeyError, TypeError, StopIteration):
            raise EngineError(f"{self.name}: {url}/models lists no base model") from None

    def drop(self, url: str, reason: str) -> None:
        """Stop using ``url`` for the rest of the run (one warning line), then insist on ``min_servers``."""
        if url in self.live():
            self.pool.set_aside(url, reason)
        self.pool.require_live()

    async def aclose(self) -> None:
        for client in [*self._http.values(), *self._root_http.values()]:
            await client.aclose()
