"""``DockerSandbox``: run untrusted Python in a warm pool of locked-down containers, a few ms a run.

    async with DockerSandbox(pool_size=4, timeout_s=10) as box:
        result = await box.run("print(6 * 7)")      # ExecutionResult(stdout='42\\n', exit_code=0, ...)

Each container runs one long-lived runner (``runner.py``) reached over a ``docker exec`` stream
that stays open; a run is one request and one report on that stream. The runner starts every run
as a fork of a process that never ran any code, and after it kills every process of the sandbox
uid, wipes every writable place and System V IPC, and checks itself; a container whose runner
does not report, reports garbage or cannot clean up is removed and replaced in the background.
What is isolated is in ``settings.py``; what is not: the host kernel is shared (a kernel exploit
escapes, as from any container), and the image and the Docker daemon are trusted.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from types import TracebackType
from typing import Any, TypeVar

import attrs

from agentflow_tools.sandbox.base import ExecutionResult, SandboxError
from agentflow_tools.sandbox.container import NotSent, Outcome, Removed, RunnerContainer, RunTicket, connect
from agentflow_tools.sandbox.image import resolve_image
from agentflow_tools.sandbox.protocol import encode_request
from agentflow_tools.sandbox.settings import DockerSettings

T = TypeVar("T")

#: The host watchdog fires this long after the in-container deadline: the runner's worst case after
#: it (killing, waiting for the zygote twice, draining) is 3.25 s.
WATCHDOG_GRACE_S = 5.0


class DockerSandbox:
    """A pool of sandbox containers. Cheap to construct; ``start()`` (or ``async with``) starts it.

    ``image`` and every keyword are the fields of ``DockerSettings`` (``timeout_s``, ``pool_size``,
    ``memory_mb``, ...); ``settings`` gives them all at once, keywords then override it. Use one
    sandbox from one event loop; runs may be concurrent (as many at once as ``pool_size``, the rest
    wait for a container).
    """

    def __init__(self, image: str | None = None, *, settings: DockerSettings | None = None, **options: Any) -> None:
        self.settings = _settings(settings or DockerSettings(), image, options)
        self._image: str | None = None
        self._client: Any = None
        self._threads: ThreadPoolExecutor | None = None
        #: Warm containers; ``None`` stands for a slot whose container could not be replaced.
        self._idle: asyncio.Queue[RunnerContainer | None] = asyncio.Queue()
        self._live: dict[str, RunnerContainer] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._started = self._closed = False
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def image(self) -> str | None:
        """The image the containers run: the configured one, or the one found by ``start()``."""
        return self._image or self.settings.image

    @property
    def container_ids(self) -> frozenset[str]:
        """The Docker ids of the pool's containers now (for ``docker inspect``); replacements change it."""
        return frozenset(self._live)

    async def __aenter__(self) -> DockerSandbox:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def start(self) -> None:
        """Connect, find the image and start ``pool_size`` containers; ``SandboxError`` says what is missing."""
        if self._started:
            return
        if self._closed:
            raise SandboxError("this sandbox was closed; make a new one")
        pool = self.settings.pool_size
        # Threads for: a blocked run and a replacement per container, cancels and removals.
        self._threads = ThreadPoolExecutor(3 * pool + 4, thread_name_prefix="agentflow-sandbox")
        try:
            self._client = await self._call(connect, 2 * pool + 4)
            self._image = await self._call(resolve_image, self._client, self.settings.image)
            made = await asyncio.gather(*(self._call(self._create) for _ in range(pool)))
        except BaseException:
            await self._teardown()  # a later start() may try again (after `agentflow sandbox build`, say)
            raise
        for box in made:
            self._idle.put_nowait(box)
        self._started, self._loop = True, asyncio.get_running_loop()

    async def run(self, code: str, timeout_s: float | None = None) -> ExecutionResult:
        """Run ``code`` as a fresh ``python3 main.py`` and say how it ended; waits for a free container.

        Every ending of the code is data in the result; ``SandboxError`` means the sandbox itself
        failed (closed, no daemon, no container could be started), ``ValueError`` a bad timeout.
        """
        timeout = self.settings.timeout_s if timeout_s is None else timeout_s
        if not timeout > 0:
            raise ValueError(f"timeout_s must be positive, not {timeout_s!r}")
        if not self._started or self._closed:
            raise SandboxError("the sandbox is not running; call start() or use `async with`")
        if asyncio.get_running_loop() is not self._loop:
            raise SandboxError("this sandbox was started on another event loop; run it there, or use SyncSandbox")
        request = encode_request(code, timeout, self.settings.max_output_chars)
        for _ in range(2):  # once more on another container if the request never reached a runner
            box = await self._checkout()
            try:
                outcome = await self._run_on(box, request, timeout + WATCHDOG_GRACE_S)
            except NotSent:
                self._retire(box)
                continue
            self._checkin(box, outcome.healthy)
            assert outcome.result is not None  # only a cancelled run has none
            return outcome.result
        raise SandboxError("the sandbox containers failed before the code could run; is the Docker daemon healthy?")

    async def aclose(self) -> None:
        """Stop runs in flight (they raise ``SandboxError``) and remove every container; safe to call twice."""
        if not self._closed:
            self._closed = True
            self._idle.put_nowait(None)  # wakes runs waiting for a container; each passes it on
            await self._teardown()

    # -- one run -----------------------------------------------------------------------------

    async def _run_on(self, box: RunnerContainer, request: bytes, watchdog_s: float) -> Outcome:
        ticket = RunTicket()
        try:
            future = asyncio.get_running_loop().run_in_executor(
                self._threads, box.run, ticket, request, self.settings.max_output_chars, watchdog_s
            )
        except RuntimeError:  # the executor is shut down: closing
            self._retire(box)
            raise SandboxError("the sandbox was closed while this run started") from None
        try:
            return await asyncio.shield(future)
        except asyncio.CancelledError:
            # The caller gave up: the runner stops the code, and the container serves again if clean.
            self._spawn(self._finish_cancelled(box, ticket, future))
            raise
        except NotSent:
            raise
        except Removed:
            raise SandboxError("the sandbox was closed while the code ran") from None
        except BaseException:
            self._retire(box)
            raise

    async def _finish_cancelled(self, box: RunnerContainer, ticket: RunTicket, future: asyncio.Future[Outcome]) -> None:
        healthy = False
        try:
            await self._call(box.cancel, ticket)
            healthy = (await future).healthy
        except BaseException:  # the container is suspect; replacing it is all there is to do
            pass
        self._checkin(box, healthy)

    # -- the pool ----------------------------------------------------------------------------

    async def _checkout(self) -> RunnerContainer:
        queue = self._idle
        while True:
            box = await queue.get()
            if self._closed:
                queue.put_nowait(None)
                raise SandboxError("the sandbox was closed while this run waited for a container")
            if box is None:
                return await self._create_for_slot(queue)
            if box.stream.idle_and_open():
                return box
            self._retire(box)  # its runner ended while idle (daemon restart, say); the replacement queues up

    async def _create_for_slot(self, queue: asyncio.Queue[RunnerContainer | None]) -> RunnerContainer:
        """A container for an empty slot; the slot stays empty (and says why next time) if that fails."""
        future = asyncio.get_running_loop().run_in_executor(self._threads, self._create)
        try:
            return await asyncio.shield(future)
        except asyncio.CancelledError:
            future.add_done_callback(lambda done: self._fill_slot(queue, done))
            raise
        except BaseException:
            queue.put_nowait(None)
            raise

    def _fill_slot(self, queue: asyncio.Queue[RunnerContainer | None], done: asyncio.Future[RunnerContainer]) -> None:
        box = None if done.cancelled() or done.exception() else done.result()
        if box is not None and self._closed:
            self._retire(box)
        else:
            queue.put_nowait(box)

    def _checkin(self, box: RunnerContainer, healthy: bool) -> None:
        if healthy and not self._closed and not box.removed:
            self._idle.put_nowait(box)
        else:
            self._retire(box)

    def _retire(self, box: RunnerContainer) -> None:
        self._spawn(self._replace(box))

    def _spawn(self, work: Any) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _replace(self, old: RunnerContainer) -> None:
        """Throw ``old`` away and put a fresh container (or an empty slot) into the pool."""
        try:
            await self._call(self._remove, old)
        except RuntimeError:  # closing: the teardown removes it
            return
        if self._closed:
            return
        try:
            new: RunnerContainer | None = await self._call(self._create)
        except Exception:  # daemon trouble: the next run on this slot tries again and says why
            new = None
        if self._closed and new is not None:
            await self._call(self._remove, new)
        elif not self._closed:
            self._idle.put_nowait(new)

    def _create(self) -> RunnerContainer:
        assert self._image is not None
        return RunnerContainer.start(self._client, self.settings, self._image, self._live)

    def _remove(self, box: RunnerContainer) -> None:
        box.remove()
        self._live.pop(box.id, None)

    def _remove_all(self) -> None:
        for box in list(self._live.values()):
            self._remove(box)

    async def _teardown(self) -> None:
        threads = self._threads
        if threads is not None:
            await asyncio.gather(*(self._call(self._remove, b) for b in list(self._live.values())))
            while self._tasks:  # replacements and cancels notice the close and finish
                await asyncio.gather(*self._tasks, return_exceptions=True)
            # Work still in the threads (a container being made) ends, and what it made is removed.
            await asyncio.to_thread(threads.shutdown, wait=True, cancel_futures=True)
            await asyncio.to_thread(self._remove_all)
        if self._client is not None:
            await asyncio.to_thread(self._client.close)
        self._client, self._threads = None, None
        if not self._closed:
            self._idle = asyncio.Queue()

    async def _call(self, fn: Callable[..., T], *args: Any) -> T:
        """Blocking docker SDK calls run on our own threads, so the event loop stays free."""
        return await asyncio.get_running_loop().run_in_executor(self._threads, functools.partial(fn, *args))


def _settings(base: DockerSettings, image: str | None, options: dict[str, Any]) -> DockerSettings:
    known = [field.name for field in attrs.fields(DockerSettings)]
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise TypeError(f"DockerSandbox got unknown option(s) {', '.join(unknown)}; it takes {', '.join(known)}")
    if image is not None:
        options = {**options, "image": image}
    return attrs.evolve(base, **options)
