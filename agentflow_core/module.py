"""The four roles, as protocols a plugin can implement, and the state they read.

A module is made by a factory registered with ``register_modules``; the factory receives a
``ModuleContext`` and must be cheap. Module methods are async and return records that carry
their own ``ModuleCall``, so the trajectory holds every prompt and response.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

import attrs

from agentflow_core.engine import Engine
from agentflow_core.records import Answer, PlannerDecision, Query, QueryAnalysis, Step, ToolCall, ToolFit, Verdict
from agentflow_core.tool import ToolSpec


@attrs.frozen
class ModuleContext:
    #: The engine configured for this role (``[engines] ROLE``, else ``default``).
    engine: Engine


@attrs.frozen
class FlowState:
    """What a module may read: the query, the analysis, the tools, and the turns so far."""

    query: Query
    tools: tuple[ToolSpec, ...]
    analysis: QueryAnalysis | None = None
    steps: tuple[Step, ...] = ()
    memory_text: str = "(no actions taken yet)"
    max_steps: int = 5
    #: What each tool says of the question now, given what the turns so far found (``Tool.fit``), in
    #: the order ``tools`` has them; empty where no tool said anything.
    tool_fits: Mapping[str, ToolFit] = attrs.field(factory=dict)

    def tool(self, name: str) -> ToolSpec | None:
        return next((t for t in self.tools if t.name == name), None)


class Planner(Protocol):
    async def analyze(self, state: FlowState) -> QueryAnalysis: ...

    async def next_step(self, state: FlowState) -> PlannerDecision: ...


class Executor(Protocol):
    async def command(self, state: FlowState, decision: PlannerDecision) -> ToolCall: ...


class Verifier(Protocol):
    async def check(self, state: FlowState) -> Verdict: ...


class Generator(Protocol):
    async def final_answer(self, state: FlowState) -> Answer: ...

    async def direct_answer(self, state: FlowState) -> Answer: ...


class ModuleFactory(Protocol):
    def __call__(self, context: ModuleContext) -> Planner | Executor | Verifier | Generator: ...
