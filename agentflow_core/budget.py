"""The time budget of one solve: when the loop must stop, and when everything must.

``[agent] max_time_s`` bounds the whole solve, the final answer included (#33). The loop runs
until ``loop_deadline``, which leaves ``reserve_s`` for the generator; the generator runs until
``deadline``. The solver runs every module call and tool call under one of the two
(``asyncio.timeout_at``), so no engine call, whatever its own ``timeout_s`` and retries, outlives
the budget: a hanging server is cut, the cut is named in ``Trajectory.error``, and the solve returns.
"""

from __future__ import annotations

import asyncio

import attrs

from agentflow_core.config import AgentConfig


@attrs.frozen
class TimeBudget:
    #: When the solve began, on the running event loop's clock (``loop.time()``).
    started: float
    max_time_s: float
    #: Seconds at the end of the budget that only the generator may use.
    reserve_s: float

    @classmethod
    def start(cls, limits: AgentConfig) -> TimeBudget:
        return cls(asyncio.get_running_loop().time(), limits.max_time_s, limits.reserve_s)

    @property
    def deadline(self) -> float:
        """When the whole solve, answer included, must be over."""
        return self.started + self.max_time_s

    @property
    def loop_deadline(self) -> float:
        """When the plan, execute, verify turns must stop, leaving the reserve for the answer."""
        return self.deadline - self.reserve_s

    def ran_out(self, during: str) -> str:
        """The one-line error of a call the budget cut short."""
        kept = f", {self.reserve_s:g} s of it kept for the answer" if self.reserve_s else ""
        return f"the time budget (max_time_s = {self.max_time_s:g} s{kept}) ran out during {during}"
