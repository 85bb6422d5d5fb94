"""``--mode base``: the generator's engine answers alone, with no tools and no loop.

It calls ``Generator.direct_answer`` (the same prompt the agent uses for its "direct output"), so
the agent and base numbers differ only by the loop. The result is an ordinary ``Trajectory`` with
zero steps and ``stop_reason=max_steps``: base mode is the loop with a step budget of zero.
"""

from __future__ import annotations

import time

from agentflow_core import EngineError, Query, Solver, StopReason, Trajectory
from agentflow_core.module import FlowState


async def base_answer(solver: Solver, query: Query) -> Trajectory:
    started = time.perf_counter()
    answer, error = None, None
    try:
        answer = await solver.generator.direct_answer(FlowState(query=query, tools=(), max_steps=0))
    except EngineError as exc:
        error = str(exc)
    return Trajectory(
        query=query,
        analysis=None,
        steps=(),
        final_answer=answer,
        direct_answer=None,
        stop_reason=StopReason.MAX_STEPS,
        elapsed_s=time.perf_counter() - started,
        engines={"generator": solver.engines["generator"]},
        error=error,
    )
