"""Many concurrent ``generate`` calls, one batched forward pass.

An agent fires requests together (a GRPO group's G trajectories, an eval's concurrent queries),
and an in-process model answers a batch of them in about the time of one on a CPU or GPU that is
starved by batch size 1. :class:`RequestBatcher` collects the calls that arrive while the loop is
busy getting to them, hands up to ``max_batch`` of them at once to a batch function on the
engine's :class:`~agentflow_core.engines.embedded.SerialWorker`, and gives each caller its own
result or its own exception.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

from agentflow_core.engines.embedded import SerialWorker

__all__ = ["RequestBatcher"]

Item = TypeVar("Item")
Result = TypeVar("Result")

#: Loop turns to wait for more callers before a batch starts; the wait ends early once none come.
_GATHER_TURNS = 8


class RequestBatcher(Generic[Item, Result]):
    def __init__(
        self,
        worker: SerialWorker,
        run_batch: Callable[[list[Item]], Sequence[Result | BaseException]],
        max_batch: int,
    ) -> None:
        self._worker = worker
        self._run_batch = run_batch
        self.max_batch = max(1, max_batch)
        self._pending: list[tuple[Item, asyncio.Future[Result]]] = []
        self._drainer: asyncio.Task[None] | None = None

    async def submit(self, item: Item) -> Result:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Result] = loop.create_future()
        self._pending.append((item, future))
        if self._drainer is None or self._drainer.done() or self._drainer.get_loop() is not loop:
            self._drainer = loop.create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        for _ in range(_GATHER_TURNS):  # callers started in the same breath are still on their way
            waiting = len(self._pending)
            await asyncio.sleep(0)
            if len(self._pending) == waiting or len(self._pending) >= self.max_batch:
                break
        while self._pending:
            batch, self._pending = self._pending[: self.max_batch], self._pending[self.max_batch :]
            live = [(item, future) for item, future in batch if not future.done()]  # cancelled callers drop out
            if not live:
                continue
            try:
                results = await self._worker.run(self._run_batch, [item for item, _ in live])
            except asyncio.CancelledError:
                for _, future in live:
                    future.cancel()
                raise
            except Exception as exc:  # the batch as a whole failed: every caller in it hears why
                for _, future in live:
                    if not future.done():
                        future.set_exception(exc)
                continue
            for (_, future), result in zip(live, results, strict=True):
                if future.done():
                    continue
                if isinstance(result, BaseException):
                    future.set_exception(result)
                else:
                    future.set_result(result)
