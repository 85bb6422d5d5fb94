"""What an evaluation run writes: one ``EvalRecord`` per query, and the run's ``RunInfo``.

Both go to disk through the core's converter (``agentflow_core.serde``), so a results file is read
back into the same typed records, trajectories included.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping

import attrs

from agentflow_core import Score, Trajectory


class Mode(enum.Enum):
    #: The full AgentFlow loop: planner, executor, tools, verifier, generator.
    AGENT = "agent"
    #: The generator's engine alone, no tools, no loop (the paper's "base model" rows).
    BASE = "base"


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
    def final(self) -> bool:
        """Whether a resumed run keeps this record; a query that failed with no answer is tried again."""
        return not (self.error and not self.answer)


@attrs.frozen
class RunInfo:
    """What was asked for, written once as ``run.json`` so a resumed run can check it is the same kind."""

    mode: Mode
    benchmarks: tuple[str, ...]
    limit: int | None
    seed: int
    #: ``provider:model`` per module (and tool), as the solver reported them.
    engines: Mapping[str, str] = attrs.field(factory=dict)
    max_steps: int | None = None
    tools: tuple[str, ...] = ()
    judge: str | None = None
