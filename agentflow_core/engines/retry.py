"""One retry policy for every engine that talks HTTP, built-in or third-party.

Each engine translates its own failures (SDK exceptions, HTTP statuses) into a :class:`CallFailure`,
and this module alone decides what is worth another attempt, how long to wait, and how the final
failure reads. That keeps every engine behaving (and erroring) the same way, and keeps the retry
rules testable in one place. Public (exported by ``agentflow_core``): an engine plugin needs only
``RetryPolicy.from_config(config).run(attempt, engine=..., where=...)`` and ``CallFailure``.

What is retried: 408/409/425/429 and every 5xx, timeouts, dropped or refused connections, and a
malformed success body (at most once more: a server that answers garbage rarely recovers).
Everything else, notably 400/401/403/404/422, fails at once: retrying cannot fix a bad request
or a bad key, and a fast clear error is worth more than a slow one.
"""

from __future__ import annotations

import asyncio
import email.utils
import math
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import attrs

from agentflow_core.engine import EngineConfig
from agentflow_core.errors import ConfigError, EngineError

if TYPE_CHECKING:
    import tenacity

__all__ = [
    "Advice",
    "CallFailure",
    "FailureKind",
    "RetryPolicy",
    "describe_failure",
    "is_retryable_status",
    "one_line",
    "parse_retry_after",
    "seconds_option",
]

T = TypeVar("T")

#: Extra advice for the final error line, by failure: ``"pull it first: ollama pull llama3.2"``, or ``None``.
Advice = Callable[["CallFailure"], "str | None"]

#: http: the server answered with an error status; timeout: no answer in time; connection: no
#: connection at all; malformed: a success status with a body we cannot read; error: anything else.
FailureKind = Literal["http", "timeout", "connection", "malformed", "error"]

_RETRYABLE_4XX = frozenset({408, 409, 425, 429})
_MAX_DETAIL_CHARS = 300
_BASE_S = 0.5
_MAX_S = 20.0
_RETRY_AFTER_CAP_S = 30.0


def is_retryable_status(status: int) -> bool:
    return status in _RETRYABLE_4XX or status >= 500


class CallFailure(Exception):
    """One failed attempt, described without reference to the SDK that made it."""

    def __init__(
        self,
        kind: FailureKind,
        detail: str,
        *,
        status: int | None = None,
        retry_after_s: float | None = None,
    ) -> None:
        super().__init__(detail)
        self.kind: FailureKind = kind
        self.detail = one_line(detail)
        self.status = status
        #: What the server asked us to wait (``Retry-After``), already parsed to seconds.
        self.retry_after_s = retry_after_s

    @property
    def retryable(self) -> bool:
        if self.kind == "http":
            return self.status is not None and is_retryable_status(self.status)
        return self.kind in ("timeout", "connection", "malformed")


def one_line(text: str) -> str:
    """Collapse whitespace and cap the length: error messages end up on one line of stderr."""
    flat = re.sub(r"\s+", " ", text).strip()
    if len(flat) > _MAX_DETAIL_CHARS:
        flat = flat[: _MAX_DETAIL_CHARS - 1].rstrip() + "…"
    return flat


def parse_retry_after(headers: Mapping[str, str] | None, now: float | None = None) -> float | None:
    """Seconds the server asks us to wait, from ``retry-after-ms`` or ``Retry-After`` (seconds or an HTTP date)."""
    if not headers:
        return None
    lowered = {k.lower(): v for k, v in headers.items()}
    millis = _as_float(lowered.get("retry-after-ms"))
    if millis is not None:
        return max(0.0, millis / 1000)
    value = lowered.get("retry-after")
    if value is None:
        return None
    seconds = _as_float(value)
    if seconds is not None:
        return max(0.0, seconds)
    return _seconds_until_http_date(value, time.time() if now is None else now)


def _as_float(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        number = float(value.strip())
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def _seconds_until_http_date(value: str, now: float) -> float | None:
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, when.timestamp() - now)


@attrs.frozen
class RetryPolicy:
    """How many attempts, and how long to wait between them.

    The defaults suit real APIs; tests shrink them through ``EngineConfig.options``
    (``retry_base_s``, ``retry_max_s``, ``retry_after_cap_s``) so that a retry costs milliseconds.
    """

    max_attempts: int = 4
    #: First backoff; each further retry doubles it, plus up to ``base_s`` of random jitter.
    base_s: float = _BASE_S
    max_s: float = _MAX_S
    #: A server's ``Retry-After`` is honoured up to this many seconds, so one header cannot stall a run.
    retry_after_cap_s: float = _RETRY_AFTER_CAP_S
    #: Attempts allowed when the server keeps answering 200 with an unreadable body.
    malformed_attempts: int = 2
    sleep: Callable[[float], Awaitable[None]] | None = None

    @classmethod
    def from_config(cls, config: EngineConfig) -> RetryPolicy:
        return cls(
            max_attempts=max(1, config.max_attempts),
            base_s=seconds_option(config, "retry_base_s", _BASE_S),
            max_s=seconds_option(config, "retry_max_s", _MAX_S),
            retry_after_cap_s=seconds_option(config, "retry_after_cap_s", _RETRY_AFTER_CAP_S),
        )

    def attempts_for(self, failure: CallFailure) -> int:
        if not failure.retryable:
            return 1
        if failure.kind == "malformed":
            return min(self.max_attempts, self.malformed_attempts)
        return self.max_attempts

    async def run(
        self,
        call: Callable[[], Awaitable[T]],
        *,
        engine: str,
        where: str,
        auth_hint: str = "",
        advice: Advice | None = None,
    ) -> T:
        """Run ``call`` until it succeeds or the policy gives up; then raise one-line :class:`EngineError`.

        ``call`` must raise :class:`CallFailure` for failures it understands; anything else is a
        bug and propagates untouched. ``engine`` and ``where`` (the server, as a person knows it)
        name the failure; ``advice`` may add what to do about it (see :func:`describe_failure`).
        """
        # The first attempt runs bare: almost every call succeeds, and building tenacity's machinery
        # for it cost about a fifth of an HTTP call's CPU. Only a retryable failure enters the loop,
        # which replays that failure as its attempt 1 so that waits and limits stay exactly the same.
        try:
            return await call()
        except CallFailure as failure:
            if self.attempts_for(failure) <= 1:
                message = describe_failure(
                    failure, engine=engine, where=where, attempts=1, auth_hint=auth_hint, advice=advice
                )
                raise EngineError(message) from failure
            replay: list[CallFailure] = [failure]
        import tenacity  # imported by the first retry, not with agentflow_core

        attempts = 1

        async def counted() -> T:
            nonlocal attempts
            if replay:
                raise replay.pop()
            attempts += 1
            return await call()

        retrying = tenacity.AsyncRetrying(
            stop=self._should_stop,
            wait=self._wait,
            retry=tenacity.retry_if_exception(lambda exc: isinstance(exc, CallFailure) and exc.retryable),
            reraise=True,
            # tenacity's own default sleeps with asyncio.sleep too, unless trio is running.
            sleep=self.sleep if self.sleep is not None else asyncio.sleep,
        )
        try:
            return await retrying(counted)
        except CallFailure as failure:
            message = describe_failure(
                failure, engine=engine, where=where, attempts=attempts, auth_hint=auth_hint, advice=advice
            )
            raise EngineError(message) from failure

    def _should_stop(self, state: tenacity.RetryCallState) -> bool:
        failure = _failure_of(state)
        return failure is None or state.attempt_number >= self.attempts_for(failure)

    def _wait(self, state: tenacity.RetryCallState) -> float:
        """The server's ``Retry-After`` when it sent one, else exponential backoff with jitter."""
        import tenacity

        failure = _failure_of(state)
        if failure is not None and failure.retry_after_s is not None:
            return min(failure.retry_after_s, self.retry_after_cap_s)
        backoff = tenacity.wait_exponential(multiplier=self.base_s, max=self.max_s) + tenacity.wait_random(
            0, self.base_s
        )
        return float(backoff(state))


def _failure_of(state: tenacity.RetryCallState) -> CallFailure | None:
    outcome = state.outcome
    exc = outcome.exception() if outcome is not None and outcome.failed else None
    return exc if isinstance(exc, CallFailure) else None


def seconds_option(config: EngineConfig, key: str, default: float) -> float:
    """``options[key]`` as seconds, else ``default``; anything but a non-negative number is a ConfigError."""
    value: Any = config.options.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise ConfigError(
            f"engine {config.model}: option {key} must be a non-negative number of seconds, got {value!r}"
        )
    return float(value)


def describe_failure(
    failure: CallFailure,
    *,
    engine: str,
    where: str,
    attempts: int,
    auth_hint: str = "",
    advice: Advice | None = None,
) -> str:
    """The one line the user sees: which engine, what went wrong, what the server said.

    ``auth_hint`` is added to a 401 / 403; ``advice(failure)``, when it returns text, is added to any
    failure, and replaces the generic "is the server running?" of a connection failure.
    """
    tries = f" (gave up after {attempts} attempts)" if attempts > 1 else ""
    detail = failure.detail
    extra = advice(failure) if advice is not None else None
    tail = f"; {extra}" if extra else ""
    if failure.kind == "http":
        hint = f" {auth_hint}" if auth_hint and failure.status in (401, 403) else ""
        return f"engine {engine}: HTTP {failure.status} from {where}: {detail}{hint}{tail}{tries}"
    if failure.kind == "timeout":
        return f"engine {engine}: timed out waiting for {where}: {detail}{tail}{tries}"
    if failure.kind == "connection":
        counted = f", {attempts} attempts" if attempts > 1 else ""
        return f"engine {engine}: cannot reach {where} ({detail}{counted}); {extra or 'is the server running?'}"
    if failure.kind == "malformed":
        return f"engine {engine}: the server at {where} returned a malformed response: {detail}{tail}{tries}"
    return f"engine {engine}: {detail}{tail}{tries}"
