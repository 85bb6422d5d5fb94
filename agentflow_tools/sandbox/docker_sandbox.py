"""The Docker backend of ``Sandbox``: a warm pool of locked-down containers, one ``docker exec`` per run.

What it isolates: each container has no network, a read-only root filesystem, no capabilities,
``no-new-privileges``, its own PID and IPC namespaces, memory (without swap), CPU, PID, file-size
and open-file limits, and an environment that holds nothing of ours. Code runs as uid 65534;
the container's idle process runs as 65533, so the run's ``kill(-1)`` cannot touch it.

What it does not: it shares the host kernel (a kernel exploit escapes it, as it escapes any
container), and it trusts the image. It is no defence against a hostile Docker daemon or
image; it is a defence against code an LLM wrote.

Between runs the in-container runner (``runner.py``) kills every process of the sandbox uid
and empties every place it can write; after a timeout, an OOM kill or anything unexpected the
container is thrown away and a new one started in the background.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from types import TracebackType
from typing import Any, TypeVar

import attrs

from agentflow_tools.sandbox.base import ExecutionResult, SandboxError
from agentflow_tools.sandbox.image import DEFAULT_TAG
from agentflow_tools.sandbox.protocol import (
    BYTES_PER_CHAR,
    encode_code,
    parse_report,
    read_bounded,
    report_limit,
    runner_source,
)

T = TypeVar("T")

WORKDIR = "/sandbox"
RUN_USER = "65534:65534"
IDLE_USER = "65533:65533"
#: Every container we start carries these labels, so ``agentflow sandbox prune`` can find leftovers.
LABEL, OWNER_LABEL = "agentflow.sandbox", "agentflow.sandbox.owner"
#: The host watchdog fires this long after the in-container deadline (exec setup, runner start-up).
WATCHDOG_GRACE_S = 3.0


@attrs.frozen
class DockerSettings:
    #: Any image with ``python3`` on PATH; ``agentflow sandbox build`` makes one with no download.
    image: str = "python:3.11-slim"
    memory_mb: int = attrs.field(default=256, validator=attrs.validators.ge(32))
    cpus: float = attrs.field(default=1.0, validator=attrs.validators.gt(0))
    #: Processes and threads in one container, the idle ones included.
    pids: int = attrs.field(default=64, validator=attrs.validators.ge(8))
    #: Containers kept warm; also the most runs at once.
    pool_size: int = attrs.field(default=2, validator=attrs.validators.ge(1))
    #: Kept of stdout (its start) and of stderr (its end); the rest is dropped and flagged.
    max_output_chars: int = attrs.field(default=8000, validator=attrs.validators.ge(100))
    tmp_mb: int = attrs.field(default=16, validator=attrs.validators.ge(1))
    workdir_mb: int = attrs.field(default=32, validator=attrs.validators.ge(1))
    #: Largest file the code may write (RLIMIT_FSIZE), and most open files (RLIMIT_NOFILE).
    max_file_mb: int = attrs.field(default=16, validator=attrs.validators.ge(1))
    max_open_files: int = attrs.field(default=256, validator=attrs.validators.ge(16))


class DockerSandbox:
    """Cheap to construct; ``start()`` (or ``async with``) connects and starts the pool."""

    def __init__(self, settings: DockerSettings | None = None) -> None:
        self.settings = settings or DockerSettings()
        self._client: Any = None
        self._executor: ThreadPoolExecutor | None = None
        #: Warm containers by id; ``None`` stands for a slot whose container could not be replaced.
        self._idle: asyncio.Queue[str | None] = asyncio.Queue()
        self._live: set[str] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._started = self._closed = False

    async def __aenter__(self) -> DockerSandbox:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def start(self) -> None:
        if self._started:
            return
        if self._closed:
            raise SandboxError("this sandbox was closed; make a new one")
        # Threads for: a blocked exec per container, a replacement per container, and a watchdog kill.
        self._executor = ThreadPoolExecutor(2 * self.settings.pool_size + 2, thread_name_prefix="agentflow-sandbox")
        try:
            self._client = await self._call(connect, 2 * self.settings.pool_size + 4)
            await self._call(require_image, self._client, self.settings.image)
            made = await asyncio.gather(*(self._call(self._create) for _ in range(self.settings.pool_size)))
        except BaseException:
            await self._teardown()  # a later start() may try again (after `agentflow sandbox build`, say)
            raise
        for container in made:
            self._idle.put_nowait(container)
        self._started = True

    async def run(self, code: str, *, timeout_s: float) -> ExecutionResult:
        """Run ``code`` on a warm container; waits for one when all are busy."""
        if not self._started or self._closed:
            raise SandboxError("the sandbox is not running; call start() or use `async with`")
        if timeout_s <= 0:
            raise ValueError("timeout_s must be positive")
        args = encode_code(code)
        try:
            return await self._run_once(args, timeout_s)
        except _ExecNotStarted:  # the code never ran (its container was gone): one more try on a fresh one
            try:
                return await self._run_once(args, timeout_s)
            except _ExecNotStarted as exc:
                raise SandboxError(f"the sandbox container failed: {exc}") from None

    async def aclose(self) -> None:
        if not self._closed:
            self._closed = True
            await self._teardown()

    async def _teardown(self) -> None:
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._client is not None:
            await asyncio.gather(*(self._call(self._remove, c) for c in list(self._live)), return_exceptions=True)
            await self._call(self._client.close)
            self._client = None
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None
        waiting, self._idle = self._idle, asyncio.Queue()
        for _ in range(self.settings.pool_size):  # wake runs still waiting for a container; they raise
            waiting.put_nowait(None)

    # -- the pool ----------------------------------------------------------------------------

    async def _run_once(self, args: list[str], timeout_s: float) -> ExecutionResult:
        container = await self._checkout()
        healthy = False
        try:
            result, healthy = await self._watched(container, args, timeout_s)
            return result
        finally:
            self._checkin(container, healthy)

    async def _checkout(self) -> str:
        slot = await self._idle.get()
        if self._closed:
            raise SandboxError("the sandbox was closed while this run waited for a container")
        if slot is not None:
            return slot
        try:
            return await self._call(self._create)
        except BaseException:
            self._idle.put_nowait(None)
            raise

    def _checkin(self, container: str, healthy: bool) -> None:
        if healthy and not self._closed:
            self._idle.put_nowait(container)
            return
        task = asyncio.get_running_loop().create_task(self._replace(container))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _replace(self, old: str) -> None:
        """Throw ``old`` away and put a fresh container (or an empty slot) into the pool."""
        await self._call(self._remove, old)
        if self._closed:
            return
        try:
            new: str | None = await self._call(self._create)
        except Exception:  # daemon trouble: the next run on this slot tries again and says why
            new = None
        if self._closed and new is not None:
            await self._call(self._remove, new)
        elif not self._closed:
            self._idle.put_nowait(new)

    def _create(self) -> str:
        container = None
        try:
            container = self._client.containers.create(**container_options(self.settings))
            self._live.add(container.id)
            container.start()
            return str(container.id)
        except Exception as exc:
            if container is not None:
                self._remove(container.id)
            image = self.settings.image
            raise SandboxError(f"cannot start a sandbox container from {image!r}: {_reason(exc)}") from None

    def _remove(self, container: str) -> None:
        with contextlib.suppress(Exception):  # already gone, or the daemon went away: nothing left to do
            self._client.api.remove_container(container, force=True)
        self._live.discard(container)

    # -- one run -----------------------------------------------------------------------------

    async def _watched(self, container: str, args: list[str], timeout_s: float) -> tuple[ExecutionResult, bool]:
        """The exec, with the host watchdog: a runner that does not report in time loses its container."""
        started = time.perf_counter()
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(self._executor, self._exec, container, args, timeout_s)
        try:
            return await asyncio.wait_for(asyncio.shield(future), timeout_s + WATCHDOG_GRACE_S)
        except TimeoutError:
            future.add_done_callback(_forget)  # whatever the thread ends with, the run is over
            await self._call(self._remove, container)  # ends the exec stream the thread is reading
            elapsed = time.perf_counter() - started
            return ExecutionResult("", "killed by the host watchdog", -9, timed_out=True, elapsed_s=elapsed), False

    def _exec(self, container: str, args: list[str], timeout_s: float) -> tuple[ExecutionResult, bool]:
        api = self._client.api
        command = ["python3", "-I", "-S", "-c", runner_source(), f"{timeout_s:g}"]
        command += [str(self.settings.max_output_chars * BYTES_PER_CHAR), WORKDIR, *args]
        try:
            exec_id = api.exec_create(container, command, user=RUN_USER, workdir=WORKDIR)["Id"]
            stream = api.exec_start(exec_id, stream=True, demux=True)
        except Exception as exc:
            raise _ExecNotStarted(_reason(exc)) from None
        try:
            out, err, overflow = read_bounded(stream, report_limit(self.settings.max_output_chars))
        except Exception as exc:
            raise SandboxError(f"lost the sandbox container during the run: {_reason(exc)}") from None
        if overflow:
            note = "the sandbox sent more than a report can hold; the run was stopped and its container dropped"
            return ExecutionResult("", note, -1, truncated=True), False
        report = parse_report(out, self.settings.max_output_chars)
        if report is None:
            return self._unreported(exec_id, err), False
        result, clean = report
        return result, clean and not (result.timed_out or result.oom)

    def _unreported(self, exec_id: str, err: bytes) -> ExecutionResult:
        """The runner died before its report: most often the code killed it (``os.kill(-1, 9)``)."""
        code: Any = None
        with contextlib.suppress(Exception):
            code = self._client.api.exec_inspect(exec_id).get("ExitCode")
        code = code if isinstance(code, int) else -1
        tail = err.decode("utf-8", "replace").strip()[-500:]
        why = f"the sandbox runner ended (status {code}) without reporting; did the code kill other processes?"
        return ExecutionResult("", f"{why} {tail}".strip(), -9 if code == 137 else code or -1)

    async def _call(self, fn: Callable[..., T], *args: Any) -> T:
        """Blocking docker SDK calls run on our own threads, so the event loop stays free."""
        return await asyncio.get_running_loop().run_in_executor(self._executor, functools.partial(fn, *args))


def _forget(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()


class _ExecNotStarted(Exception):
    """``docker exec`` failed before the code ran (the container is gone, say)."""


def connect(max_pool_size: int = 10) -> Any:
    """A docker client, or one ``SandboxError`` line saying how to get a daemon."""
    import docker  # imported here: only code that runs a sandbox needs the SDK

    where = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    try:
        client = docker.from_env(timeout=60, max_pool_size=max_pool_size)
        client.ping()
    except Exception as exc:
        raise SandboxError(
            f"cannot reach the Docker daemon at {where}: start dockerd, or set DOCKER_HOST to a running daemon "
            f"({_reason(exc)})"
        ) from None
    return client


def require_image(client: Any, image: str) -> None:
    import docker.errors

    try:
        client.images.get(image)
    except docker.errors.ImageNotFound:
        build = f'run `agentflow sandbox build` and set [tools.python_coder] image = "{DEFAULT_TAG}"'
        if image == DEFAULT_TAG:
            raise SandboxError(f"Docker image {image!r} is missing: run `agentflow sandbox build`") from None
        raise SandboxError(f"Docker image {image!r} is missing: {build}, or `docker pull {image}`") from None


def container_options(settings: DockerSettings) -> dict[str, Any]:
    """Everything ``containers.create`` gets; the container only idles until a run's exec."""
    from docker.types import Ulimit

    memory = f"{settings.memory_mb}m"
    file_size = settings.max_file_mb * 1024 * 1024
    tmpfs_flags = "nosuid,nodev,noexec"
    return {
        "image": settings.image,
        "command": ["sleep", "infinity"],
        "init": True,  # an init as PID 1 reaps the orphans a run leaves behind
        "user": IDLE_USER,
        "working_dir": WORKDIR,
        "hostname": "sandbox",
        "environment": {},
        "network_mode": "none",
        "read_only": True,
        "cap_drop": ["ALL"],
        "security_opt": ["no-new-privileges"],
        "mem_limit": memory,
        "memswap_limit": memory,  # equal: no swap
        "nano_cpus": int(settings.cpus * 1e9),
        "pids_limit": settings.pids,
        "shm_size": f"{settings.tmp_mb}m",
        "tmpfs": {
            "/tmp": f"size={settings.tmp_mb}m,mode=1777,{tmpfs_flags}",
            WORKDIR: f"size={settings.workdir_mb}m,uid=65534,gid=65534,mode=0700,{tmpfs_flags}",
        },
        "ulimits": [
            Ulimit(name="fsize", soft=file_size, hard=file_size),
            Ulimit(name="nofile", soft=settings.max_open_files, hard=settings.max_open_files),
            Ulimit(name="core", soft=0, hard=0),
        ],
        "labels": {LABEL: "1", OWNER_LABEL: str(os.getpid())},
    }


def _reason(exc: BaseException) -> str:
    explanation = getattr(exc, "explanation", None) or str(exc) or type(exc).__name__
    return " ".join(str(explanation).split())[:300]


def sandbox_containers(client: Any) -> list[Any]:
    """Every container a ``DockerSandbox`` started on this daemon, from any process."""
    return list(client.containers.list(all=True, filters={"label": LABEL}))
