"""Starting N vLLM OpenAI servers on this machine for a run, and making sure they stop with it.

Each server is ``PYTHON -m vllm.entrypoints.openai.api_server --model BASE --enable-lora ...`` on a
free loopback port, with ``VLLM_ALLOW_RUNTIME_LORA_UPDATING=True`` so that adapters can be
(re)loaded while it runs. ``PYTHON`` is any interpreter with vLLM: vLLM pins its own libraries, so
it usually lives in a venv of its own (that module is what ``vllm serve`` runs; the CPU build's
``vllm`` command does not start). Each server runs under :mod:`~agentflow_rl.flow_grpo.fleet.watchdog`,
which ends the server's whole process group when the launcher's pipe closes, whether the run
ended, failed, was interrupted or was killed outright.

Servers started elsewhere (a cluster's own services) need none of this: give their URLs instead.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType

import attrs

from agentflow_core import EngineUnavailable

#: How the watchdog's own lines in a server's log start.
WATCHDOG_SAYS = "watchdog:"
#: The module ``vllm serve`` runs.
API_SERVER = "vllm.entrypoints.openai.api_server"
#: vLLM refuses ``/v1/load_lora_adapter`` without it.
RUNTIME_LORA = {"VLLM_ALLOW_RUNTIME_LORA_UPDATING": "True"}
#: Before ``extra_args`` (which may override them): log-probabilities of the distribution each token
#: was drawn from (tempered, constrained), and xgrammar for the grammars the client sends. Without
#: ``disable_any_whitespace``, a JSON schema sent as ``response_format`` (the ``openai:`` engine of an
#: eval does) lets a small model pad its JSON with newlines until it runs out of tokens.
FLEET_ARGS = (
    "--logprobs-mode",
    "processed_logprobs",
    "--structured-outputs-config",
    '{"backend": "xgrammar", "disable_any_whitespace": true}',
)


@attrs.frozen
class ServerSpec:
    """What every server of a fleet runs."""

    #: An interpreter that imports vLLM.
    python: str
    #: The base model: a folder or a hub id, as ``vllm serve`` takes it.
    model: str
    #: How many servers.
    count: int = 1
    #: More ``vllm serve`` arguments (``--max-lora-rank 16``, ``--tensor-parallel-size 2``...).
    extra_args: tuple[str, ...] = ()
    #: More environment for the servers (``CUDA_VISIBLE_DEVICES``, ``VLLM_CPU_KVCACHE_SPACE``...).
    env: Mapping[str, str] = attrs.field(factory=dict)
    #: Seconds each server may take to answer ``/health``.
    startup_s: float = 900.0
    #: The name requests use for the base model (``--served-model-name``).
    served_name: str = "base"


@attrs.frozen
class RunningServer:
    url: str
    #: The watchdog's process, leader of the process group the server and its engine processes run in.
    process: subprocess.Popen[bytes] = attrs.field(eq=False, repr=False)
    log: Path
    started_s: float


class ServerFleet:
    """``with ServerFleet(spec, log_dir) as fleet:`` starts the servers, waits until all answer, stops them after.

    ``fleet.urls`` are the servers' ``/v1`` base URLs. Servers start together (a 7B model's
    load dominates, and it overlaps); a server that exits or does not answer within
    ``spec.startup_s`` stops all of them and raises :class:`EngineUnavailable` with its log's last line.
    """

    def __init__(self, spec: ServerSpec, log_dir: str | os.PathLike[str]) -> None:
        self.spec = spec
        self.log_dir = Path(log_dir)
        self.servers: list[RunningServer] = []
        self._pipe_write_ends: list[int] = []

    @property
    def urls(self) -> tuple[str, ...]:
        return tuple(server.url for server in self.servers)

    def __enter__(self) -> ServerFleet:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def start(self) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        started = time.monotonic()
        for index in range(self.spec.count):
            self.servers.append(self._launch(index, started))
        for server in self.servers:  # one deadline for all: they start side by side
            _wait_healthy(server, started + self.spec.startup_s)
        for server in self.servers:  # one that lost its port to another answered through that one's /health
            if server.process.poll() is not None:
                raise EngineUnavailable(
                    f"vLLM server {server.url} exited with {server.process.returncode} while starting: "
                    f"{last_line(server.log)} (whole log: {server.log})"
                )

    def stop(self) -> None:
        """Close every watchdog's pipe (each stops its server's group), then wait for the watchdogs."""
        ends, self._pipe_write_ends = self._pipe_write_ends, []
        for end in ends:
            with contextlib.suppress(OSError):
                os.close(end)
        for server in self.servers:
            try:
                server.process.wait(timeout=60)
            except subprocess.TimeoutExpired:  # a watchdog that hangs: take its whole group down from here
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(server.process.pid, signal.SIGKILL)
                server.process.wait()

    def kill(self, index: int) -> None:
        """End server ``index`` at once with SIGKILL to its group, as a crash would (its URL then refuses)."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.servers[index].process.pid, signal.SIGKILL)
        self.servers[index].process.wait()

    def _launch(self, index: int, started: float) -> RunningServer:
        # Not a port given to an earlier server that may not have bound it yet: the kernel can
        # hand the same free port out twice in a row.
        port = free_port(avoid={urllib.parse.urlsplit(server.url).port or 0 for server in self.servers})
        read_end, write_end = os.pipe()
        self._pipe_write_ends.append(write_end)
        log = self.log_dir / f"vllm-{index}.log"
        watchdog = [sys.executable, "-m", "agentflow_rl.flow_grpo.fleet.watchdog", str(read_end), "--"]
        env = {**os.environ, **RUNTIME_LORA, **self.spec.env}
        try:
            with log.open("wb") as out:
                process = subprocess.Popen(
                    [*watchdog, *server_command(self.spec, port)],
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    env=env,
                    pass_fds=(read_end,),
                    # A group of its own: one killpg ends it all, and a terminal's Ctrl-C reaches only
                    # the trainer, whose exit closes the pipe.
                    start_new_session=True,
                )
        finally:
            os.close(read_end)
        return RunningServer(f"http://127.0.0.1:{port}/v1", process, log, started)


def server_command(spec: ServerSpec, port: int) -> list[str]:
    return [
        spec.python, "-m", API_SERVER,
        "--model", spec.model, "--served-model-name", spec.served_name, "--enable-lora",
        "--host", "127.0.0.1", "--port", str(port),
        *FLEET_ARGS, *spec.extra_args,
    ]  # fmt: skip


def free_port(avoid: set[int] | frozenset[int] = frozenset()) -> int:
    """A port nothing listens on now and not in ``avoid``; the server binds it a moment later (a race
    with other programs a busy box can lose: the server then exits, and the start says so)."""
    while True:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = int(probe.getsockname()[1])
        if port not in avoid:
            return port


def _wait_healthy(server: RunningServer, deadline: float) -> None:
    health = server.url.removesuffix("/v1") + "/health"
    while time.monotonic() < deadline:
        with (
            contextlib.suppress(urllib.error.URLError, ConnectionError, TimeoutError),
            urllib.request.urlopen(health, timeout=5) as response,
        ):
            if response.status == 200:
                return
        try:  # a second's pause that also notices a server that gave up
            server.process.wait(timeout=1)
        except subprocess.TimeoutExpired:
            continue
        raise EngineUnavailable(
            f"vLLM server {server.url} exited with {server.process.returncode} while starting: "
            f"{last_line(server.log)} (whole log: {server.log})"
        )
    raise EngineUnavailable(
        f"vLLM server {server.url} did not answer /health within {deadline - server.started_s:.0f} s: "
        f"{last_line(server.log)} (whole log: {server.log})"
    )


def last_line(log: Path) -> str:
    """The log's last non-empty line but the watchdog's own: where vLLM says why it stopped."""
    with contextlib.suppress(OSError):
        text = log.read_text(errors="replace")
        lines = [line.strip() for line in text.splitlines() if line.strip() and not line.startswith(WATCHDOG_SAYS)]
        if lines:
            return lines[-1][-300:]
    return "no output"
