"""``hf_worker``: generate in a separate process, synced with the trainer's weights before each batch.

This is the shape of a GPU setup where generation runs apart from training (a vLLM server, say),
checked on a CPU: the worker builds the same model from ``[policy]``, receives the trained tensors
(the LoRA adapters, or every module's full weights) whenever the optimizer has stepped since the
last sync, confirms them with a checksum, and serves ``policy:<role>`` engines over a pipe, many
requests at a time (its engines batch them as in-process ones do).

A worker that dies, or does not answer within ``rollout.worker_timeout_s``, fails every call in
flight with an engine error naming it, and ``check`` then fails the training step with the same
line: a rollout never waits on a dead process.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import itertools
import threading
from collections.abc import Callable
from typing import Any

from agentflow_core import Completion, EngineConfig, EngineError, GenerationRequest
from agentflow_core.serde import from_json, to_json
from agentflow_rl.flow_grpo.model.backends.base import BackendContext, ForwardingEngine, RolloutBackendError

#: How long a worker may take to build its model and say it is ready.
START_TIMEOUT_S = 600.0
#: (ok, payload) -> None; called on the pipe's reader thread.
_Reply = Callable[[bool, Any], None]


class WorkerBackend:
    def __init__(self, context: BackendContext) -> None:
        self._context = context
        self._timeout = context.rollout.worker_timeout_s or None
        self._process: Any = None
        self._conn: Any = None
        self._send_lock = threading.Lock()
        # The reader thread and the trainer's thread may both stop the worker; one at a time, so the
        # one that reaps it also records its exit code before the other looks.
        self._stop_lock = threading.RLock()
        self._pending: dict[int, _Reply] = {}
        self._ids = itertools.count()
        self._broken: str | None = None
        self._synced_step: int | None = None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    # -- the trainer's side ------------------------------------------------------------------------

    def engine(self, config: EngineConfig) -> ForwardingEngine:
        return ForwardingEngine(self.generate, config)

    def sync(self, step: int) -> None:
        if self._process is None:
            self._start()
        if self._synced_step == step:
            return
        tensors = _trained_tensors(self._context)
        payload = {name: _pack(state) for name, state in tensors.items()}
        done = threading.Event()
        answer: list[Any] = []

        def reply(ok: bool, value: Any) -> None:
            answer.append((ok, value))
            done.set()

        self._send(("weights", self._register(reply), payload))
        if not done.wait(self._timeout):
            self._fail(f"rollout worker (pid {self.pid}) did not take the new weights within {self._timeout:g} s")
        self.check()
        ok, checksum = answer[0]
        expected = _checksum(tensors)
        if not ok or abs(checksum - expected) > 1e-6 * max(1.0, abs(expected)):
            self._fail(f"rollout worker (pid {self.pid}) holds other weights than the trainer after a sync")
            self.check()
        self._synced_step = step

    def expected_version(self) -> int | None:
        return None  # synced and checked by checksum before every batch

    def check(self) -> None:
        if self._broken is not None:
            raise RolloutBackendError(self._broken)

    def close(self) -> None:
        if self._process is None:
            return
        with contextlib.suppress(EngineError):  # already gone: nothing to say goodbye to
            self._send(("close",))
        self._reap(kill=False, timeout=10)
        self._reap(kill=True, timeout=10)
        self._broken = self._broken or "the rollout worker was closed"

    # -- calls ---------------------------------------------------------------------------------------

    async def generate(self, config: EngineConfig, request: GenerationRequest) -> Completion:
        self.check_engine()
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Completion] = loop.create_future()

        def reply(ok: bool, value: Any) -> None:
            loop.call_soon_threadsafe(_settle, future, ok, value)

        self._send(("generate", self._register(reply), to_json(config), to_json(request)))
        try:
            return await asyncio.wait_for(future, self._timeout)
        except TimeoutError:
            self._fail(f"rollout worker (pid {self.pid}) did not answer within {self._timeout:g} s; it was stopped")
            raise EngineError(self._broken or "rollout worker stopped") from None

    def check_engine(self) -> None:
        if self._broken is not None:
            raise EngineError(self._broken)
        if self._process is None:
            raise EngineError("the rollout worker has not been synced yet (the trainer syncs before each batch)")

    # -- plumbing ------------------------------------------------------------------------------------

    def _start(self) -> None:
        import multiprocessing

        from agentflow_rl.flow_grpo.model.backends import worker_main

        spawn = multiprocessing.get_context("spawn")  # no inherited threads, locks or CUDA state
        context = self._context
        here, there = spawn.Pipe()
        self._process = spawn.Process(
            target=worker_main.main,
            args=(there, context.policy, context.rollout, context.modules.roles, context.vocabulary),
            daemon=True,
        )
        self._process.start()
        there.close()
        self._conn = here
        message = self._first_message()
        if message != ("ready",):
            self._fail(f"rollout worker (pid {self.pid}) did not start: {message}")
            self.check()
        threading.Thread(target=self._read, name="rollout-worker-reader", daemon=True).start()

    def _first_message(self) -> Any:
        """The worker's ``ready`` (or why not): it loads a model first, so it gets longer than a call."""
        import time

        deadline = time.monotonic() + max(self._timeout or 0.0, START_TIMEOUT_S)
        while time.monotonic() < deadline:
            if self._conn.poll(1.0):
                message = self._conn.recv()
                return message if message == ("ready",) else message[-1]
            if not self._process.is_alive():
                return f"it exited with code {self._process.exitcode}"
        return f"no answer within {START_TIMEOUT_S:g} s"

    def _register(self, reply: _Reply) -> int:
        key = next(self._ids)
        self._pending[key] = reply
        return key

    def _send(self, message: tuple[Any, ...]) -> None:
        try:
            with self._send_lock:
                self._conn.send(message)
        except (OSError, ValueError, BrokenPipeError) as exc:
            self._fail(f"rollout worker (pid {self.pid}) cannot be reached: {exc}")
            raise EngineError(self._broken or str(exc)) from None

    def _read(self) -> None:
        while True:
            try:
                kind, key, *rest = self._conn.recv()
            except (EOFError, OSError):
                self._reap(kill=False, timeout=5)
                code = self._process.exitcode
                self._fail(f"rollout worker (pid {self.pid}) exited with code {code}")
                return
            reply = self._pending.pop(key, None)
            if reply is not None:
                reply(kind in ("completion", "synced"), rest[0] if rest else None)

    def _fail(self, message: str) -> None:
        """Mark the worker broken (the first reason wins), stop it, and fail every call in flight."""
        with self._stop_lock:
            if self._broken is None:
                self._broken = message
            self._reap(kill=True, timeout=10)
            pending, self._pending = self._pending, {}
        for reply in pending.values():
            reply(False, self._broken)

    def _reap(self, *, kill: bool, timeout: float) -> None:
        with self._stop_lock:
            if self._process is None:
                return
            if kill and self._process.is_alive():
                self._process.kill()  # works on a stopped process too
            self._process.join(timeout=timeout)


def _settle(future: asyncio.Future[Completion], ok: bool, value: Any) -> None:
    if future.done():
        return
    if ok:
        future.set_result(from_json(value, Completion))
    else:
        future.set_exception(EngineError(str(value)))


def _trained_tensors(context: BackendContext) -> dict[str, dict[str, Any]]:
    """What changes with training: every adapter (one model), or each trained module's weights."""
    from agentflow_rl.flow_grpo.model import lora

    modules = context.modules
    if modules.adapters:
        return {"adapters": lora.adapter_tensors(modules.unwrapped(modules.roles[0]))}
    return {role: modules.unwrapped(role).state_dict() for role in modules.roles}


def _pack(state: dict[str, Any]) -> bytes:
    import torch

    buffer = io.BytesIO()
    torch.save({name: tensor.detach().cpu() for name, tensor in state.items()}, buffer)
    return buffer.getvalue()


def _checksum(tensors: dict[str, dict[str, Any]]) -> float:
    return float(sum(t.detach().double().sum() for state in tensors.values() for t in state.values()))
