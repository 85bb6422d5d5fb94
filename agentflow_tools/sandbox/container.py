"""One pooled container and the runner inside it, reached over one ``docker exec`` stream kept open.

Every method blocks (the Docker SDK does) and is called from the pool's worker threads. A run is
one request written to the stream and one report read back: no exec, no container start, no
interpreter start on the way. What the host cannot trust (no report in time, garbage, a runner
that ended) is an ``Outcome`` that is not healthy, and the pool throws the container away.
"""

from __future__ import annotations

import contextlib
import math
import os
import threading
import time
from typing import Any

import attrs

from agentflow_tools.sandbox.base import ExecutionResult, SandboxError
from agentflow_tools.sandbox.protocol import (
    CANCEL,
    HELLO,
    MAX_HEADER,
    READY,
    ProtocolError,
    parse_header,
    result_from,
    runner_command,
)
from agentflow_tools.sandbox.settings import LABEL, RUN_USER, DockerSettings, container_options
from agentflow_tools.sandbox.stream import RunnerStream, StreamClosed

#: How long a new container's runner may take to say it is ready (a loaded machine is slow).
START_TIMEOUT_S = 60.0


@attrs.frozen
class Outcome:
    #: None only for a run cancelled before it was sent.
    result: ExecutionResult | None
    #: The container may take the next run: the runner reported, and reported itself clean.
    healthy: bool


class RunTicket:
    """One run's state, shared by the thread that runs it and a task that may cancel it."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.cancelled = self.sent = False


class NotSent(Exception):
    """The request could not be written: the code never ran, so another container may run it."""


class Removed(Exception):
    """The container was removed (the sandbox is closing) while the code ran."""


class RunnerContainer:
    def __init__(self, client: Any, container_id: str, exec_id: str, stream: RunnerStream) -> None:
        self.id, self._client, self._exec_id, self.stream = container_id, client, exec_id, stream
        self.removed = False
        self._running = False
        self._state = threading.Lock()

    @classmethod
    def start(cls, client: Any, settings: DockerSettings, image: str, live: dict[str, RunnerContainer]) -> Any:
        """Create and start a container, start its runner and wait for it; registers it in ``live``."""
        container = None
        try:
            container = client.containers.create(**container_options(settings, image))
            container.start()
            api = client.api
            exec_id = api.exec_create(container.id, runner_command(), stdin=True, user=RUN_USER, workdir="/")["Id"]
            box = cls(client, container.id, exec_id, RunnerStream(api.exec_start(exec_id, socket=True)))
            live[box.id] = box
            deadline = time.monotonic() + START_TIMEOUT_S
            box.stream.send(HELLO, deadline)  # we speak first: the SDK's HTTP reader must not swallow the reply
            ready = box.stream.read_line(MAX_HEADER, deadline)
            if ready != READY:
                raise ProtocolError(f"the runner did not start: {ready[:80]!r} {box.stream.stderr[-300:]!r}")
            return box
        except Exception as exc:
            if container is not None:
                live.pop(container.id, None)
                with contextlib.suppress(Exception):
                    client.api.remove_container(container.id, force=True)
            raise SandboxError(f"cannot start a sandbox container from {image!r}: {reason(exc)}") from None

    def run(self, ticket: RunTicket, request: bytes, max_chars: int, watchdog_s: float) -> Outcome:
        with self._state:
            self._running = True
        try:
            return self._run(ticket, request, max_chars, watchdog_s)
        finally:
            with self._state:
                self._running = False
                if self.removed:
                    self.stream.close()

    def _run(self, ticket: RunTicket, request: bytes, max_chars: int, watchdog_s: float) -> Outcome:
        started = time.perf_counter()
        deadline = time.monotonic() + watchdog_s
        with ticket.lock:
            if ticket.cancelled:
                return Outcome(None, True)
            try:
                self.stream.send(request, deadline)  # the idle check left the socket non-blocking
            except StreamClosed as exc:
                raise NotSent(str(exc)) from None
            ticket.sent = True
        try:
            header = parse_header(self.stream.read_line(MAX_HEADER, deadline), max_chars)
            body = self.stream.read_exact(header.body_size, deadline)
        except TimeoutError:
            self.remove()  # ends everything in it, a stopped runner included
            note = "killed by the host watchdog: the sandbox runner did not report in time"
            elapsed = time.perf_counter() - started
            return Outcome(ExecutionResult("", note, -9, timed_out=True, elapsed_s=elapsed), False)
        except ProtocolError as exc:
            note = f"the sandbox runner sent something that is not a report ({exc}); its container was dropped"
            return Outcome(ExecutionResult("", note, -1), False)
        except StreamClosed:
            if self.removed:
                raise Removed() from None
            return Outcome(self._unreported(time.perf_counter() - started), False)
        return Outcome(result_from(header, body, max_chars), header.healthy)

    def cancel(self, ticket: RunTicket) -> None:
        """Ask the runner to stop the run now; its report then comes as usual."""
        with ticket.lock:
            ticket.cancelled = True
            sent = ticket.sent
        if sent:
            with contextlib.suppress(StreamClosed):
                self.stream.send(CANCEL)

    def remove(self) -> None:
        """Remove the container; a run in flight ends with ``Removed`` (or its watchdog result)."""
        with self._state:
            self.removed = True
            if self._running:
                self.stream.shutdown()  # the run's thread closes the stream when it is done with it
            else:
                self.stream.close()
        with contextlib.suppress(Exception):  # already gone, or the daemon went away: nothing left to do
            self._client.api.remove_container(self.id, force=True)

    def _unreported(self, elapsed: float) -> ExecutionResult:
        """The runner ended before its report: most often the code killed it (``os.kill(-1, 9)``)."""
        try:
            status = self._client.api.exec_inspect(self._exec_id).get("ExitCode")
        except Exception as exc:
            raise SandboxError(f"lost the Docker daemon during the run: {reason(exc)}") from None
        code = status if isinstance(status, int) else -1
        tail = self.stream.stderr.decode("utf-8", "replace").strip()[-500:]
        why = f"the sandbox runner ended (status {code}) without reporting; did the code kill other processes?"
        return ExecutionResult("", f"{why} {tail}".strip(), -9 if code == 137 else code, elapsed_s=elapsed)


def connect(max_pool_size: int = 10, timeout_s: float = 60) -> Any:
    """A docker client, or one ``SandboxError`` line saying how to get a daemon."""
    import docker  # imported here: only code that runs a sandbox needs the SDK

    where = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    try:
        client = docker.from_env(timeout=math.ceil(timeout_s), max_pool_size=max_pool_size)  # whole seconds in the SDK
        client.ping()
    except Exception as exc:
        raise SandboxError(
            f"cannot reach the Docker daemon at {where}: start dockerd, or set DOCKER_HOST to a running daemon "
            f"({reason(exc)})"
        ) from None
    return client


def sandbox_containers(client: Any) -> list[Any]:
    """Every container a ``DockerSandbox`` started on this daemon, from any process."""
    return list(client.containers.list(all=True, filters={"label": LABEL}))


def reason(exc: BaseException) -> str:
    explanation = getattr(exc, "explanation", None) or str(exc) or type(exc).__name__
    return " ".join(str(explanation).split())[:300]
