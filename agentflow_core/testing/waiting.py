"""Waiting for something to become true, the way tests should: a condition polled until a deadline.

A fixed sleep either wastes time or, on a loaded machine, is not long enough; polling the thing
the test actually needs (a file on disk, a request received, a process gone) is both faster and
dependable. This is the one place the suite's polling interval lives.
"""

from __future__ import annotations

import time
from collections.abc import Callable


def wait_until(
    condition: Callable[[], object], *, timeout_s: float = 20.0, what: str = "the condition", interval_s: float = 0.02
) -> None:
    """Return as soon as ``condition()`` is truthy; fail the test after ``timeout_s``.

    ``condition`` may raise to give up early (a server process that died, say).

    >>> wait_until(lambda: True, what="nothing")
    """
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout_s:g} s waiting for {what}")
        time.sleep(interval_s)
