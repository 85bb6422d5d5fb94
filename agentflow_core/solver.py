"""The AgentFlow loop: analyse, then plan → execute → verify until STOP or a limit, then answer.

A ``Solver`` owns its engines, tools and modules; every ``solve`` starts from empty memory, so
one solver can answer many queries concurrently and two solvers never share state.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

import attrs

from agentflow_core.budget import TimeBudget
from agentflow_core.config import Config
from agentflow_core.default_tools import ToolChoice, choose_tools
from agentflow_core.engine import Engine, EngineConfig
from agentflow_core.engine_pool import EnginePool
from agentflow_core.errors import AgentFlowError, ConfigError, EngineError, ModuleError, PluginError, one_line
from agentflow_core.memory import Memory, answered_by, found_so_far
from agentflow_core.module import Executor, FlowState, Generator, ModuleContext, Planner, Verifier
from agentflow_core.plugins import load_registry
from agentflow_core.records import (
    MODULE_ROLES,
    Answer,
    Decision,
    ModuleRole,
    PlannerDecision,
    Query,
    QueryAnalysis,
    Step,
    StopReason,
    ToolCall,
    ToolFit,
    Trajectory,
    UnfinishedStep,
)
from agentflow_core.registry import Registry, made
from agentflow_core.sizes import capped
from agentflow_core.tool import Tool, ToolContext
from agentflow_core.tool_sources import ToolSources
from agentflow_core.toolset import Toolset

T = TypeVar("T")

#: Receives each record as it is made (analysis, each finished step, answers); for live views.
Observer = Callable[[Any], None]


class Solver:
    def __init__(self, config: Config | None = None, *, registry: Registry | None = None) -> None:
        self.config = config or Config()
        self.registry = registry if registry is not None else load_registry()
        self._pool = EnginePool(self.registry)
        self._runner: asyncio.Runner | None = None
        self._sources = ToolSources(self.config, self.registry)
        #: The engine each module runs on, by name: ``llamacpp:smollm2+planner`` when it has an adapter.
        self._engine_names: dict[str, str] = {}
        #: The tools this solver enables (the configured ones, else the defaults that can run here).
        self.tools: ToolChoice = choose_tools(self.config, self.registry)
        # Unknown names fail before any engine is made; a tool source may still announce a tool at start.
        check_names(self.config, self.registry, from_sources=self._sources.may_provide)
        self.planner: Planner = self._module("planner")
        self.executor: Executor = self._module("executor")
        self.verifier: Verifier = self._module("verifier")
        self.generator: Generator = self._module("generator")
        #: The registered tools now; those of tool sources join when the solver starts.
        self.toolset = Toolset(
            [self._tool(self.registry, name) for name in self.tools.names if name in self.registry.tools],
            timeout_s=self.config.agent.tool_timeout_s,
        )
        self._started = not self._sources
        self._start_lock = asyncio.Lock()

    def _module(self, role: ModuleRole) -> Any:
        registered = self.registry.module(role, getattr(self.config.modules, role))
        engines = self.config.engines
        engine = self._engine(
            engines.for_module(role), self.config.engine_key(role), module=role if engines.adapters else None
        )
        self._engine_names[role] = engine.name
        context = ModuleContext(engine=engine)
        return made(lambda: registered.factory(context), f"{role} module {registered.name!r} ({registered.source})")

    def _engine(self, engine: EngineConfig, key: str, *, module: str | None = None) -> Engine:
        """The pool's engine for ``engine`` (``module``'s own, where the engine serves modules apart, as with
        adapters); an option the engine turns down is named with the key that set it."""
        try:
            return self._pool.get(engine, module=module)
        except ConfigError as exc:
            raise ConfigError(f"{self.config.where(key)}: {exc}") from None

    def _tool(self, registry: Registry, name: str) -> Tool:
        registered = registry.tool(name)
        uses = registered.spec.uses_engine
        engine = (
            self._engine(
                self.config.tool_engine(name),
                f"tools.{name}.engine",
                module=registered.spec.engine_role if self.config.engines.adapters else None,
            )
            if uses
            else None
        )
        if engine is not None:
            self._engine_names[f"tool:{name}"] = engine.name  # a module's view (``+executor``) where it has one
        context = ToolContext(engine=engine, settings=self.config.tool_settings(name))
        try:
            tool: Tool = made(lambda: registered.factory(context), f"tool {name!r} ({registered.source})")
        except PluginError:
            raise
        except AgentFlowError as exc:  # the tool turned its settings down
            raise ConfigError(f"{self.config.where(f'tools.{name}')}: {exc}") from None
        return tool

    async def start(self) -> None:
        """Open the tool sources (MCP servers) and make their enabled tools; the first solve does it.

        Concurrent solves wait for one start. A failed start raises ``ToolSourceError`` and is tried
        again by the next solve.
        """
        async with self._start_lock:
            if self._started:
                return
            wanted = [name for name in self.tools.names if name not in self.registry.tools]
            registry = await self._sources.open(self.registry, wanted=wanted)
            made = {tool.spec.name: tool for tool in self.toolset.tools}
            tools = [made.get(name) or self._tool(registry, name) for name in self.tools.names]
            self.toolset = Toolset(tools, timeout_s=self.config.agent.tool_timeout_s)
            self._started = True

    @property
    def engines(self) -> dict[str, str]:
        return dict(self._engine_names)

    async def asolve(self, query: str | Query, *, observe: Observer | None = None) -> Trajectory:
        await self.start()
        flow = _Flow(query if isinstance(query, Query) else Query(query), self, observe or (lambda _: None))
        started = time.perf_counter()
        budget = TimeBudget.start(self.config.agent)
        stop, error = await self._loop(flow, budget)
        final, direct, answer_stop, answer_error = await self._answers(flow, budget, stop)
        if answer_stop is not None and error is None:  # an ending of the loop explains more than the answer's
            stop = answer_stop
        if answer_error and (error is None or answer_stop is StopReason.MAX_TIME):  # "no answer" is always said
            error = f"{error}; {answer_error}" if error else answer_error
        return Trajectory(
            query=flow.query,
            analysis=flow.analysis,
            steps=flow.memory.steps,
            final_answer=final,
            direct_answer=direct,
            stop_reason=stop,
            elapsed_s=time.perf_counter() - started,
            engines=self.engines,
            error=error,
            unfinished=flow.unfinished(),
        )

    async def _loop(self, flow: _Flow, budget: TimeBudget) -> tuple[StopReason, str | None]:
        """The turns, within the loop's share of the budget: why they ended, and the error that ended them."""
        try:
            async with asyncio.timeout_at(budget.loop_deadline):
                return await self._turns(flow), None
        except TimeoutError:
            return StopReason.MAX_TIME, budget.ran_out(flow.doing)
        except EngineError as exc:
            return StopReason.ENGINE_ERROR, one_line(exc)
        except ModuleError as exc:
            return StopReason.MODULE_ERROR, str(exc)

    async def _turns(self, flow: _Flow) -> StopReason:
        await self._offer(flow)
        flow.analysis = await self._step(flow, "planner", "analyze", self.planner.analyze(flow.state()))
        flow.observe(flow.analysis)
        for turn in range(1, self.config.agent.max_steps + 1):
            flow.begin_turn(turn)
            offered = flow.fits_said()
            flow.decision = await self._step(flow, "planner", "next_step", self.planner.next_step(flow.state()))
            flow.tool_call = await self._step(
                flow, "executor", "command", self.executor.command(flow.state(), flow.decision)
            )
            flow.doing = f"the call of tool {flow.tool_call.tool!r} (turn {turn})"
            result = await self.toolset.run(flow.tool_call)
            flow.memory.add(Step(turn, flow.decision, flow.tool_call, result, tool_fits=offered))
            await self._offer(flow)  # the next turn's, which the verifier reads: a claim not yet answered
            verdict = await self._step(flow, "verifier", "check", self.verifier.check(flow.state()))
            flow.memory.replace_last(attrs.evolve(flow.memory.steps[-1], verdict=verdict))
            flow.observe(flow.memory.steps[-1])
            if verdict.decision is Decision.STOP:
                return StopReason.VERIFIER_STOP
            if flow.over_token_budget():
                return StopReason.MAX_TOKENS
        return StopReason.MAX_STEPS

    async def _offer(self, flow: _Flow) -> None:
        """The tools' fits for the turn about to start, given what the turns so far found."""
        flow.doing = "the tools' fits"
        steps = flow.memory.steps
        fits = await self.toolset.fits(flow.query.text, found_so_far(steps), answered_by(steps))
        flow.offer(fits, self.toolset)

    async def _answers(
        self, flow: _Flow, budget: TimeBudget, loop_stop: StopReason
    ) -> tuple[Answer | None, Answer | None, StopReason | None, str | None]:
        """The final answer is written whatever stopped the loop, until the budget's end.

        Only a failure of the generator prevents it; then the stop reason it implies (if any) and the error.
        When the budget ends first there is no answer, and the error says so.
        """
        final = direct = None
        try:
            async with asyncio.timeout_at(budget.deadline):
                final = await self._step(flow, "generator", "final_answer", self.generator.final_answer(flow.state()))
                flow.observe(final)
                if self.config.agent.direct_answer:
                    direct = await self._step(
                        flow, "generator", "direct_answer", self.generator.direct_answer(flow.state())
                    )
        except TimeoutError:
            said = loop_stop is StopReason.MAX_TIME  # the loop's error already named the budget
            cut = f"then {flow.doing} ran out too" if said else budget.ran_out(flow.doing)
            return final, direct, StopReason.MAX_TIME, cut + (": no answer" if final is None else "")
        except EngineError as exc:
            return final, direct, None, one_line(exc)
        except ModuleError as exc:
            return final, direct, StopReason.MODULE_ERROR, one_line(exc)
        return final, direct, None, None

    async def _step(self, flow: _Flow, role: ModuleRole, purpose: str, call: Awaitable[T]) -> T:
        """One module call, its output cut to the configured size. Whatever else it raises is a bug of that
        module, named as such: the loop stops, but the solve still returns what it has (an engine
        failure keeps its own reason)."""
        turn = f" (turn {flow.turn})" if flow.turn and role != "generator" else ""
        flow.doing = f"the {role}'s {purpose} call{turn}"
        try:
            output = await call
        except EngineError:
            raise
        except Exception as exc:
            registered = self.registry.module(role, getattr(self.config.modules, role))
            raise ModuleError(
                f"{role} module {registered.name!r} ({registered.source}) failed: {type(exc).__name__}: {one_line(exc)}"
            ) from exc
        return capped(output, self.config.agent.max_module_output_chars)

    def solve(self, query: str | Query, *, observe: Observer | None = None) -> Trajectory:
        """Blocking ``asolve`` for scripts; reuses one event loop so engine connections survive."""
        if self._runner is None:
            self._runner = asyncio.Runner()
        return self._runner.run(self.asolve(query, observe=observe))

    async def aclose(self) -> None:
        await self.toolset.aclose()
        await self._sources.aclose()
        await self._pool.aclose()

    def close(self) -> None:
        if self._runner is None:
            asyncio.run(self.aclose())
            return
        self._runner.run(self.aclose())
        self._runner.close()
        self._runner = None

    async def __aenter__(self) -> Solver:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def __enter__(self) -> Solver:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def check_names(
    config: Config, registry: Registry, *, from_sources: Callable[[str], bool] = lambda name: False
) -> None:
    """Every tool, module and engine provider the config names is installed (or, for a tool, may come
    from a tool source); else which key names what. Default tools are installed by definition."""
    for name in config.agent.tools or ():
        if not from_sources(name):
            _known(config.where("agent.tools"), registry.tool, name)
    for name, tool in config.tools.items():
        if not from_sources(name):
            _known(config.where(f"tools.{name}"), registry.tool, name)
        if tool.engine is not None:
            _known(config.where(f"tools.{name}.engine"), registry.engine, tool.engine.provider)
    for role in MODULE_ROLES:
        _known(config.where(f"modules.{role}"), registry.module, role, getattr(config.modules, role))
        _known(config.where(config.engine_key(role)), registry.engine, config.engines.for_module(role).provider)


def _known(where: str, lookup: Callable[..., object], *key: Any) -> None:
    try:
        lookup(*key)
    except PluginError as exc:
        raise ConfigError(f"{where}: {exc}") from None


class _Flow:
    """The mutable state of one solve; modules only ever see a ``FlowState`` snapshot of it."""

    def __init__(self, query: Query, solver: Solver, observe: Observer) -> None:
        self.query = query
        self.memory = Memory()
        self.analysis: QueryAnalysis | None = None
        self.observe = observe
        self._tools = solver.toolset.specs
        self._fits: dict[str, ToolFit] = {}
        self._limits = solver.config.agent
        #: The turn under way (0 before the first), and what it has made so far.
        self.turn = 0
        self.decision: PlannerDecision | None = None
        self.tool_call: ToolCall | None = None
        #: What is running now, as an error names it if the time budget cuts it.
        self.doing = "the start of the solve"

    def offer(self, fits: Mapping[str, ToolFit], toolset: Toolset) -> None:
        """The tools in the order their fits put them, without those that cannot help."""
        self._fits = dict(fits)
        self._tools = toolset.offered(fits)

    def fits_said(self) -> dict[str, ToolFit]:
        """The fits worth recording: none where every tool had no opinion."""
        return dict(self._fits) if any(fit != ToolFit() for fit in self._fits.values()) else {}

    def begin_turn(self, turn: int) -> None:
        self.turn, self.decision, self.tool_call = turn, None, None

    def unfinished(self) -> UnfinishedStep | None:
        """The turn under way, if the loop ended after its planner call and before memory held it."""
        if self.decision is None or (self.memory.steps and self.memory.steps[-1].index == self.turn):
            return None
        return UnfinishedStep(self.turn, self.decision, self.tool_call)

    def state(self) -> FlowState:
        return FlowState(
            query=self.query,
            tools=self._tools,
            analysis=self.analysis,
            steps=self.memory.steps,
            memory_text=self.memory.render(),
            max_steps=self._limits.max_steps,
            tool_fits=self.fits_said(),
        )

    def over_token_budget(self) -> bool:
        budget = self._limits.max_tokens
        if budget is None:
            return False
        calls = [self.analysis.call] if self.analysis and self.analysis.call else []
        calls += [call for step in self.memory.steps for call in step.module_calls()]
        return sum(c.usage.total_tokens for c in calls) >= budget
