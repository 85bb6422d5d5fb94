"""A blocking face on any ``Sandbox``, for code without an event loop (scripts, notebooks, threads).

    with SyncSandbox(DockerSandbox(pool_size=2)) as box:
        print(box.run("print(6 * 7)").stdout)

The sandbox lives on an event loop in a thread of its own, so this works where a loop is already
running (Jupyter), and ``run`` may be called from several threads at once.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Coroutine
from types import TracebackType
from typing import Any, TypeVar

from agentflow_tools.sandbox.base import ExecutionResult, Sandbox, SandboxError

T = TypeVar("T")


class SyncSandbox:
    def __init__(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    def __enter__(self) -> SyncSandbox:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def start(self) -> None:
        if self._loop is not None:
            return
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="agentflow-sandbox-loop", daemon=True)
        self._thread.start()
        try:
            self._call(self.sandbox.start())
        except BaseException:
            self.close()
            raise

    def run(self, code: str, timeout_s: float | None = None) -> ExecutionResult:
        """As ``Sandbox.run``, blocking; an interrupt (Ctrl-C) cancels the run."""
        return self._call(self.sandbox.run(code, timeout_s=timeout_s))

    def close(self) -> None:
        """Close the sandbox and stop its loop; safe to call twice."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        try:
            self._call(self.sandbox.aclose())
        finally:
            self._loop = self._thread = None
            loop.call_soon_threadsafe(loop.stop)
            thread.join()
            loop.close()

    def _call(self, work: Coroutine[Any, Any, T]) -> T:
        if self._loop is None:
            work.close()
            raise SandboxError("the sandbox is not running; call start() or use `with`")
        future: concurrent.futures.Future[T] = asyncio.run_coroutine_threadsafe(work, self._loop)
        try:
            return future.result()
        except BaseException:
            future.cancel()
            raise
