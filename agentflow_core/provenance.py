"""Which plugin is registering right now.

pluggy calls every implementation of a hook with the same ``register`` callback, so the callback
cannot tell by itself who called it. The plugin manager runs each implementation inside
:func:`attributed`, and the registrars read :func:`current` to stamp each item with its source.
A context variable rather than a field on the registrar, so that concurrent registry builds (two
solvers made in two threads) never see each other's plugin.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator

import attrs

#: Reported for a ``register`` call made outside any hook (a plugin that kept the callback).
UNATTRIBUTED = "an unknown plugin (register was called outside a hook)"


@attrs.define(eq=False)
class Attribution:
    """One call of one plugin's hook implementation."""

    source: str
    #: Set when the implementation raised: what it registered before failing is dropped.
    failed: bool = False


_current: contextvars.ContextVar[Attribution | None] = contextvars.ContextVar("agentflow_attribution", default=None)


def current() -> Attribution:
    return _current.get() or Attribution(UNATTRIBUTED)


@contextlib.contextmanager
def attributed(attribution: Attribution) -> Iterator[Attribution]:
    token = _current.set(attribution)
    try:
        yield attribution
    finally:
        _current.reset(token)
