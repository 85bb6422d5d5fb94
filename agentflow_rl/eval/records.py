"""What an evaluation run writes: one ``EvalRecord`` per query, and the run's ``RunInfo``.

Both go to disk through the core's converter (``agentflow_core.serde``), so a results file is read
back into the same typed records, trajectories included.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping

import attrs

from agentflow_core import Score, StopReason, Trajectory
from agentflow_rl.judge import JUDGE_FAILED


class Mode(enum.Enum):
    #: The full AgentFlow loop: planner, executor, tools, verifier, generator.
    AGENT = "agent"
    #: The generator's engine alone, no tools, no loop (the paper's "base model" rows).
    BASE = "base"


class Failure(enum.Enum):
    """Why a record is not final: something the model under test did not cause stopped it.

    Only failures of the machinery count: an engine that did not answer, module code that raised,
    a solve that could not start, a judge that could not be asked. What the model does itself
    (unreadable output that a module replaces by a fallback, a wrong tool, a limit reached) and
    what tools report back (errors the planner reads and can act on, as with any real tool) are
    part of the result and leave it final.
    """

    #: An LLM engine of a module failed for good (server down, 5xx after retries, timeout).
    ENGINE = "engine error"
    #: A planner, executor, verifier or generator implementation raised: a bug in it or its plugin.
    MODULE = "module error"
    #: The solve raised before it had a trajectory: a tool source that did not open, a bug.
    SOLVE = "solve error"
    #: The LLM judge's engine failed, so the judge column has no verdict for this query.
    JUDGE = "judge error"


@attrs.frozen
class EvalRecord:
    benchmark: str
    item_id: str
    question: str
    gold: tuple[str, ...]
    #: The reply that was scored ("" when the solve produced none).
    answer: str
    #: The deterministic scorer's verdict; always present.
    score: Score
    mode: Mode
    elapsed_s: float
    #: The optional LLM judge's verdict (``--judge-engine``).
    judge: Score | None = None
    trajectory: Trajectory | None = None
    #: One line when the query could not be answered (an engine failure, a bug).
    error: str | None = None

    @property
    def key(self) -> tuple[str, str]:
        return self.benchmark, self.item_id

    @property
    def failure(self) -> Failure | None:
        """What kept this query from a usable result; ``None`` when every part it depends on worked."""
        if self.trajectory is None:
            return Failure.SOLVE if self.error else None
        if self.trajectory.stop_reason is StopReason.MODULE_ERROR:
            return Failure.MODULE
        if self.trajectory.error or self.error:  # a module's engine, in the loop or for the answer
            return Failure.ENGINE
        if self.judge is not None and self.judge.method == JUDGE_FAILED:
            return Failure.JUDGE
        return None

    @property
    def final(self) -> bool:
        """Whether a resumed run keeps this record; any other is asked again (or, for the judge, judged again)."""
        return self.failure is None


@attrs.frozen
class RunInfo:
    """What was asked for, written once as ``run.json``; a resumed run must ask for the same."""

    mode: Mode
    benchmarks: tuple[str, ...]
    limit: int | None
    seed: int
    #: ``provider:model`` per module (and tool), as the solver reported them.
    engines: Mapping[str, str] = attrs.field(factory=dict)
    max_steps: int | None = None
    tools: tuple[str, ...] = ()
    judge: str | None = None
    #: Every setting that changes what a result means, as ``key: value`` text (see ``settings.py``);
    #: empty in run directories made before it existed.
    settings: Mapping[str, str] = attrs.field(factory=dict)
