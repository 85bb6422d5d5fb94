"""One engine per distinct engine config, shared by every module and tool of a solver.

So a solver whose four modules all use the embedded model loads it once; two solvers in one
process each have their own pool and share nothing. A module may get a view of that engine with
its own adapter (:class:`~agentflow_core.engine.ModuleAwareEngine`), still on the one model.
"""

from __future__ import annotations

import asyncio

from agentflow_core.engine import Engine, EngineConfig, ModuleAwareEngine
from agentflow_core.registry import Registry, made
from agentflow_core.serde import to_json


class EnginePool:
    def __init__(self, registry: Registry) -> None:
        self._registry = registry
        self._engines: dict[str, Engine] = {}

    def get(self, config: EngineConfig, *, module: str | None = None) -> Engine:
        """The engine for ``config``; with ``module``, that module's view of it if the engine has views."""
        engine = self._shared(config)
        if module is None or not isinstance(engine, ModuleAwareEngine):
            return engine
        return made(lambda: engine.for_module(module), f"engine {config.model} for the {module}")

    def _shared(self, config: EngineConfig) -> Engine:
        key = to_json(config)
        engine = self._engines.get(key)
        if engine is None:
            registered = self._registry.engine(config.provider)
            what = f"engine {config.model} ({registered.source})"
            engine = made(lambda: registered.factory(config), what)
            self._engines[key] = engine
        return engine

    async def aclose(self) -> None:
        engines, self._engines = list(self._engines.values()), {}
        await asyncio.gather(*(engine.aclose() for engine in engines), return_exceptions=True)
