"""Running a SymPy computation off the event loop, with a deadline.

Each computation runs in its own daemon thread, so the agent's event loop stays responsive
and the caller stops waiting after ``timeout_s``. Python cannot stop a thread: a computation
that overruns goes on in the background until it finishes, and only then frees its slot.
Daemon threads do not hold up interpreter exit, and at most ``MAX_RUNNING`` computations
exist at once per process, so overruns cannot pile up CPU work; past that, calls are refused.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from agentflow_core import ToolError

T = TypeVar("T")

#: Computations running at once in this process, overrunning ones included.
MAX_RUNNING = 4
_slots = threading.BoundedSemaphore(MAX_RUNNING)


async def run_with_deadline(work: Callable[[], T], *, timeout_s: float, what: str) -> T:
    """``work()`` in a daemon thread; its result, its exception, or a ``ToolError`` after ``timeout_s``."""
    if not _slots.acquire(blocking=False):
        raise ToolError(
            f"{what}: {MAX_RUNNING} earlier computations are still running past their time limit; "
            "try a simpler expression later"
        )
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def target() -> None:
        result: Any = None
        error: BaseException | None = None
        try:
            result = work()
        except Exception as exc:  # handed to the waiting caller, which decides what it means
            error = exc
        finally:
            _slots.release()
        with contextlib.suppress(RuntimeError):  # the loop has closed: nobody is waiting any more
            loop.call_soon_threadsafe(_settle, future, result, error)

    threading.Thread(target=target, name=f"{what}-worker", daemon=True).start()
    deadline = asyncio.timeout(timeout_s)
    try:
        async with deadline:
            return await future
    except TimeoutError:
        if not deadline.expired():
            raise
        raise ToolError(f"{what} gave up after {timeout_s:g} s; simplify the expression or split the problem") from None


def _settle(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if future.done():  # the caller timed out or was cancelled
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)
