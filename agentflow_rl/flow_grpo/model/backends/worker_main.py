"""The rollout worker process of the ``hf_worker`` backend.

It builds the policy from the run's ``[policy]`` settings exactly as the trainer does, then serves messages
from its pipe: ``weights`` (load the trained tensors, answer with their checksum), ``generate``
(one request for ``policy:<name>``, answered with the completion) and ``close``. Generations run
concurrently on one event loop, so the in-process engines batch them; weights are only loaded once
the generations in flight have finished.
"""

from __future__ import annotations

import asyncio
import io
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from agentflow_core import EngineConfig, GenerationRequest
from agentflow_core.serde import from_json, to_json

if TYPE_CHECKING:
    from agentflow_core.records import ModuleRole
    from agentflow_rl.flow_grpo.config import PolicyConfig, RolloutConfig


def main(
    conn: Any,
    policy: PolicyConfig,
    rollout: RolloutConfig,
    roles: Sequence[ModuleRole],
    vocabulary: tuple[str, ...] | None,
) -> None:
    try:
        backend, modules = _build(policy, rollout, roles, vocabulary)
    except Exception as exc:  # the parent reports it in one line
        conn.send(("failed", f"{type(exc).__name__}: {exc}"))
        return
    conn.send(("ready",))
    asyncio.run(_Server(conn, backend, modules).serve())


def _build(
    policy: PolicyConfig, rollout: RolloutConfig, roles: Sequence[ModuleRole], vocabulary: tuple[str, ...] | None
) -> tuple[Any, Any]:
    from agentflow_rl.flow_grpo.model.backends.base import BackendContext
    from agentflow_rl.flow_grpo.model.backends.inprocess import InProcessBackend
    from agentflow_rl.flow_grpo.model.policy import load_policy
    from agentflow_rl.flow_grpo.model.trained import TrainedModules

    base, tokenizer = load_policy(policy, vocabulary)
    modules = TrainedModules(base, roles, lora_settings=policy.lora, keep_base=True)
    modules.train_mode(False)
    return InProcessBackend(BackendContext(policy, rollout, modules, tokenizer, vocabulary)), modules


class _Server:
    def __init__(self, conn: Any, backend: Any, modules: Any) -> None:
        self._conn, self._backend, self._modules = conn, backend, modules
        self._engines: dict[str, Any] = {}
        self._lock = threading.Lock()
        self._tasks: set[asyncio.Task[None]] = set()

    async def serve(self) -> None:
        loop = asyncio.get_running_loop()
        inbox: asyncio.Queue[tuple[Any, ...]] = asyncio.Queue()

        def read() -> None:
            while True:
                try:
                    message = self._conn.recv()
                except (EOFError, OSError):
                    message = ("close",)
                loop.call_soon_threadsafe(inbox.put_nowait, message)
                if message[0] == "close":
                    return

        threading.Thread(target=read, daemon=True).start()
        while True:
            kind, *rest = await inbox.get()
            if kind == "close":
                break
            if kind == "weights":
                await asyncio.gather(*self._tasks)
                self._load_weights(*rest)
            elif kind == "generate":
                task = asyncio.create_task(self._generate(*rest))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
        for engine in self._engines.values():
            await engine.aclose()

    def _send(self, message: tuple[Any, ...]) -> None:
        with self._lock:
            self._conn.send(message)

    def _load_weights(self, key: int, payload: dict[str, bytes]) -> None:
        import torch

        from agentflow_rl.flow_grpo.model import lora

        try:
            total = 0.0
            for name, blob in payload.items():
                state = torch.load(io.BytesIO(blob), weights_only=True)
                if name == "adapters":
                    model = self._modules.unwrapped(self._modules.roles[0])
                    missing = set(lora.adapter_tensors(model)) ^ set(state)
                    if missing:
                        raise ValueError(f"adapter tensors differ from this worker's: {sorted(missing)[:2]}")
                    model.load_state_dict(state, strict=False)
                    held = lora.adapter_tensors(model)
                else:
                    model = self._modules.unwrapped(name)
                    model.load_state_dict(state)
                    held = model.state_dict()
                total += float(sum(t.double().sum() for t in held.values()))
            self._send(("synced", key, total))
        except Exception as exc:
            self._send(("failed", key, f"loading the weights failed: {type(exc).__name__}: {exc}"))

    async def _generate(self, key: int, config_json: str, request_json: str) -> None:
        try:
            engine = self._engines.get(config_json)
            if engine is None:
                engine = self._engines[config_json] = self._backend.engine(from_json(config_json, EngineConfig))
            completion = await engine.generate(from_json(request_json, GenerationRequest))
            self._send(("completion", key, to_json(completion)))
        except Exception as exc:
            self._send(("failed", key, f"{type(exc).__name__}: {exc}"))
