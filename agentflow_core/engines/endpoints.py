"""Several servers of one model: each request goes to the least busy, a failing one is set aside.

An engine table may name several ``base_urls`` (a few ``vllm serve`` replicas, say); the
``openai`` and ``litellm`` engines then send each request through an :class:`EndpointPool`. The
Flow-GRPO fleet uses the same pool for its rollout servers. The rules:

* **Least busy first**: the endpoint with the fewest requests in flight from this pool; ties go to
  the one used least recently, so a sequential caller still takes turns.
* **Failing over**: a failure that says the *server* is in trouble (no connection, no answer in
  time, a 5xx) sends the request to another endpoint at once, without the retry policy's backoff;
  only when no endpoint is left to try for this request does the failure reach the caller's retry
  policy.
  A 4xx is the request's own fault and is raised untouched: another server would refuse it too.
* **Setting aside**: a refused or dropped connection or a timeout sets the endpoint aside at once;
  5xx answers do so after two in a row (one 500 may be one request's bad luck, and a poisoned
  request would otherwise set every server aside in turn). Each is one warning line naming it.
* **Trying again** (``revive_after_s``): an endpoint set aside is given one probe request after
  that many seconds, doubling with each failed probe up to :data:`MAX_REVIVE_S`; the probe's
  success brings it back (an info line). A real request is the probe, not a health route that
  not every OpenAI-compatible server has. ``None`` drops a failed endpoint for good: the fleet's
  choice, where a server that died does not come back and ``min_live`` says how few may remain.
* **Nothing left**: with ``min_live = 0`` (the engines) a request still goes to the endpoint whose
  retry is due soonest rather than failing untried; with ``min_live > 0``, fewer live endpoints
  than that is :class:`NoLiveEndpoint`, one line naming each endpoint and why it went.

Not thread-safe: one pool belongs to one event loop, as the engine that owns it does.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

import attrs

from agentflow_core.engine import EngineConfig
from agentflow_core.engines.retry import CallFailure, seconds_option
from agentflow_core.errors import ConfigError, EngineError

__all__ = [
    "MAX_REVIVE_S",
    "REVIVE_AFTER_S",
    "EndpointPool",
    "NoLiveEndpoint",
    "one_server",
    "pool_for",
    "server_trouble",
]

T = TypeVar("T")

logger = logging.getLogger(__name__)

#: Seconds an endpoint stays aside before its first probe.
REVIVE_AFTER_S = 15.0
#: The longest wait between probes of an endpoint that keeps failing them.
MAX_REVIVE_S = 300.0
#: Consecutive 5xx answers that set an endpoint aside (connection failures and timeouts: one).
SERVER_ERRORS_TO_SET_ASIDE = 2


class NoLiveEndpoint(EngineError):
    """Fewer endpoints answer than the pool's ``min_live``."""


def pool_for(config: EngineConfig) -> EndpointPool | None:
    """The pool of an engine whose table names several ``base_urls``; ``None`` for one server.

    One server needs no pool, and gets none: its failures go through the retry policy as they
    always have, with no setting aside. ``options.revive_after_s`` sets the wait before a probe.
    """
    if len(config.base_urls) < 2:
        return None
    revive_after_s = seconds_option(config, "revive_after_s", REVIVE_AFTER_S)
    try:
        return EndpointPool(config.base_urls, name=f"engine {config.model}", revive_after_s=revive_after_s)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def one_server(config: EngineConfig) -> str | None:
    """The URL of an engine without a pool: ``base_url``, else a lone entry of ``base_urls``."""
    return config.base_url or next(iter(config.base_urls), None)


def server_trouble(failure: CallFailure) -> bool:
    """Whether ``failure`` says the server, not the request, is in trouble: try another endpoint."""
    if failure.kind in ("connection", "timeout"):
        return True
    return failure.kind == "http" and failure.status is not None and failure.status >= 500


@attrs.define
class _Endpoint:
    url: str
    in_flight: int = 0
    #: ``time.monotonic`` of the last lease; ties between equally busy endpoints go to the oldest.
    last_used: float = float("-inf")
    #: Consecutive 5xx answers since the last success.
    server_errors: int = 0
    #: Why it is set aside (``None``: it is live).
    down_reason: str | None = None
    #: When a set-aside endpoint may be probed (``None`` while live, or when dropped for good).
    retry_at: float | None = None
    #: Consecutive times it has been set aside, for the doubling wait.
    downs: int = 0
    probing: bool = False


class EndpointPool:
    """The endpoints of one model and what this process knows about each (see the module docstring).

    ``name`` starts every log line and error (``engine openai:m``, ``rollout fleet``).
    """

    def __init__(
        self,
        urls: Sequence[str],
        *,
        name: str,
        revive_after_s: float | None = REVIVE_AFTER_S,
        min_live: int = 0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not urls:
            raise ValueError(f"{name}: an endpoint pool needs at least one URL")
        twice = sorted({url for url in urls if list(urls).count(url) > 1})
        if twice:
            raise ValueError(f"{name}: base_urls names {', '.join(twice)} more than once")
        self.name = name
        self.revive_after_s = revive_after_s
        self.min_live = min_live
        self._clock = clock
        self._endpoints = {url: _Endpoint(url) for url in urls}

    @property
    def urls(self) -> tuple[str, ...]:
        return tuple(self._endpoints)

    def live(self) -> tuple[str, ...]:
        """Endpoints not set aside (a probe in flight counts as set aside until it answers)."""
        return tuple(e.url for e in self._endpoints.values() if e.down_reason is None)

    def in_flight(self, url: str) -> int:
        return self._endpoints[url].in_flight

    def down_reason(self, url: str) -> str | None:
        return self._endpoints[url].down_reason

    async def call(
        self, send: Callable[[str], Awaitable[T]], *, trouble: Callable[[CallFailure], bool] = server_trouble
    ) -> T:
        """``send(url)`` on the least busy endpoint, moving on to the next while the server is the problem.

        ``trouble`` says which failures are the server's (:func:`server_trouble` by default). Raises
        the last :class:`CallFailure` once no endpoint is left to try for this request (the
        caller's retry policy decides what next), any other failure at once, and
        :class:`NoLiveEndpoint` when fewer than ``min_live`` endpoints remain.
        """
        tried: set[str] = set()
        while True:
            url, probe = self._acquire(avoid=tried)
            try:
                result = await send(url)
            except CallFailure as failure:
                self._release(url, failure if trouble(failure) else None, probe=probe)
                tried.add(url)
                if not trouble(failure):
                    raise
                self.require_live(cause=failure)
                if not self._any_usable(avoid=tried):
                    raise
                continue
            except BaseException:  # cancelled, or a bug in send: the endpoint is not to blame
                self._release(url, None, probe=probe, judged=False)
                raise
            self._release(url, None, probe=probe)
            return result

    # -- choosing ------------------------------------------------------------------------------

    def _acquire(self, *, avoid: set[str]) -> tuple[str, bool]:
        """The chosen endpoint, and whether this request is its probe."""
        self.require_live()
        now = self._clock()
        candidates = [e for e in self._endpoints.values() if e.url not in avoid and self._usable(e, now)]
        if not candidates:
            candidates = self._last_resort()
        chosen = min(candidates, key=lambda e: (e.in_flight, e.last_used))
        probe = chosen.down_reason is not None
        chosen.probing = chosen.probing or probe
        chosen.in_flight += 1
        chosen.last_used = now
        return chosen.url, probe

    def _any_usable(self, *, avoid: set[str]) -> bool:
        now = self._clock()
        return any(e.url not in avoid and self._usable(e, now) for e in self._endpoints.values())

    def _usable(self, endpoint: _Endpoint, now: float) -> bool:
        if endpoint.down_reason is None:
            return True
        due = endpoint.retry_at is not None and endpoint.retry_at <= now
        return due and not endpoint.probing

    def _last_resort(self) -> list[_Endpoint]:
        """Every endpoint is aside and none is due: with ``min_live = 0``, the one due soonest."""
        waiting = [e for e in self._endpoints.values() if e.retry_at is not None and not e.probing]
        if self.min_live > 0 or not waiting:
            raise NoLiveEndpoint(f"{self.name}: no endpoint to send to: {self._reasons()}")
        return [min(waiting, key=lambda e: e.retry_at or 0.0)]

    def require_live(self, cause: BaseException | None = None) -> None:
        """Raise :class:`NoLiveEndpoint` when fewer than ``min_live`` endpoints are left."""
        if self.min_live and len(self.live()) + self._probing() < self.min_live:
            raise NoLiveEndpoint(
                f"{self.name}: {len(self.live())} of {len(self._endpoints)} endpoints answer, "
                f"fewer than the {self.min_live} required: {self._reasons()}"
            ) from cause

    def _probing(self) -> int:
        return sum(1 for e in self._endpoints.values() if e.probing)

    def _reasons(self) -> str:
        return "; ".join(f"{e.url}: {e.down_reason or 'live'}" for e in self._endpoints.values())

    # -- judging -------------------------------------------------------------------------------

    def _release(self, url: str, failure: CallFailure | None, *, probe: bool, judged: bool = True) -> None:
        """Count the request out; ``failure`` is the server's trouble, ``None`` any answer."""
        endpoint = self._endpoints[url]
        endpoint.in_flight -= 1
        if probe:
            endpoint.probing = False
        if not judged:
            return
        if failure is None:  # an answer, even a refusal, shows the server is up
            self._succeeded(endpoint)
        else:
            self._failed(endpoint, failure, was_probe=probe)

    def _succeeded(self, endpoint: _Endpoint) -> None:
        endpoint.server_errors = 0
        # Dropped for good stays dropped: a fleet server that was gone may have missed an adapter.
        if endpoint.down_reason is not None and self.revive_after_s is not None:
            logger.info("%s: %s answers again (it was set aside: %s)", self.name, endpoint.url, endpoint.down_reason)
            endpoint.down_reason, endpoint.retry_at, endpoint.downs = None, None, 0

    def _failed(self, endpoint: _Endpoint, failure: CallFailure, *, was_probe: bool) -> None:
        reason = _reason(failure)
        if endpoint.down_reason is not None and not was_probe:
            return  # a request that was in flight when it was set aside: nothing new
        if failure.kind == "http" and not was_probe:
            endpoint.server_errors += 1
            if endpoint.server_errors < SERVER_ERRORS_TO_SET_ASIDE:
                return
        self.set_aside(endpoint.url, reason)

    def set_aside(self, url: str, reason: str) -> None:
        """Stop sending to ``url`` (until its probe is due, or for good); one warning line says so."""
        endpoint = self._endpoints[url]
        endpoint.down_reason = reason
        endpoint.downs += 1
        endpoint.server_errors = 0
        if self.revive_after_s is None:
            endpoint.retry_at = None
            logger.warning("%s: dropped %s: %s", self.name, url, reason)
            return
        wait = min(self.revive_after_s * 2 ** (endpoint.downs - 1), MAX_REVIVE_S)
        endpoint.retry_at = self._clock() + wait
        logger.warning("%s: setting %s aside (%s); trying it again in %g s", self.name, url, reason, wait)


def _reason(failure: CallFailure) -> str:
    if failure.kind == "http":
        return f"HTTP {failure.status}: {failure.detail}"
    return failure.detail
