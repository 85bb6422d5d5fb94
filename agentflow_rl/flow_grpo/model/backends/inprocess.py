"""``hf``: generate in the training process, with the very parameters being trained.

Nothing needs copying: the engines share the modules' parameters, so a step's update is visible to
the next rollout as it is. Under FSDP the engines generate from unsharded twins, which ``sync``
refreshes from the shards (all processes together).
"""

from __future__ import annotations

from contextlib import nullcontext
from typing import Any

from agentflow_core import ConfigError, Engine, EngineConfig
from agentflow_core.engines.token_runtime import SerialWorker, engine_for_model
from agentflow_rl.flow_grpo.model.backends.base import BackendContext


class InProcessBackend:
    def __init__(self, context: BackendContext) -> None:
        self._context = context
        self._worker = SerialWorker()  # one model may serve several adapters: one decode at a time

    def engine(self, config: EngineConfig) -> Engine:
        model, scope = self.generator(config.model_name)
        return engine_for_model(model, self._context.tokenizer, config, worker=self._worker, scope=scope)

    def generator(self, name: str) -> tuple[Any, Any]:
        copies = self._context.copies
        if name in copies:
            return copies[name].model, nullcontext
        try:
            return self._context.modules.generator(name)
        except (KeyError, ValueError):
            raise ConfigError(
                f"engine policy:{name}: no such policy; a trained module's engine is policy:<its role>, "
                "the untrained base is policy:base"
            ) from None

    def sync(self, step: int) -> None:
        for role, copy in self._context.copies.items():
            copy.refresh(self._context.modules.prepared(role))  # collective: every process is here

    def expected_version(self) -> int | None:
        return None  # the trainer's own weights, as they are: nothing to tag

    def check(self) -> None:
        pass

    def close(self) -> None:
        pass
