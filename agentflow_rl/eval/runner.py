"""The evaluation loop: many queries in flight, one shared solver, each result on disk as it lands.

``concurrency`` workers pull from one iterator of tasks (asyncio runs them on one thread, so the
iterator needs no lock). They share one ``Solver``, whose engines share their HTTP connections.
Each finished query is scored, appended to ``results.jsonl`` and flushed before the next is
taken, which is what makes a killed run resumable. When queries keep failing for a reason that is
not the model's (``EvalRecord.failure``: a server that went away, a missing key), the run stops after
``stop_after`` of them in a row instead of filling the results with thousands of identical errors.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Mapping, Sequence

import attrs

from agentflow_core import AgentFlowError, Benchmark, BenchmarkItem, Query, Score, Solver, Trajectory
from agentflow_rl.eval.base import base_answer
from agentflow_rl.eval.progress import Progress
from agentflow_rl.eval.records import EvalRecord, Failure, Mode
from agentflow_rl.eval.rundir import RunDir
from agentflow_rl.judge import LLMJudge

#: Default of ``--stop-after-failures``: queries in a row without a usable result that stop a run.
STOP_AFTER_FAILURES = 8


@attrs.frozen
class EvalTask:
    benchmark: Benchmark
    item: BenchmarkItem

    @property
    def key(self) -> tuple[str, str]:
        return self.item.benchmark, self.item.id


def pending(tasks: Iterable[EvalTask], done: Mapping[tuple[str, str], EvalRecord]) -> list[EvalTask]:
    """Tasks without a final record: never run, or failed with no answer in an earlier run."""
    return [t for t in tasks if t.key not in done or not done[t.key].final]


async def run_tasks(
    solver: Solver,
    tasks: Sequence[EvalTask],
    run_dir: RunDir,
    *,
    mode: Mode = Mode.AGENT,
    concurrency: int = 8,
    judge: LLMJudge | None = None,
    progress: Progress | None = None,
    previous: Mapping[tuple[str, str], EvalRecord] | None = None,
    stop_after: int = STOP_AFTER_FAILURES,
) -> str | None:
    """Answer ``tasks``; ``None`` when all were tried, else why the run stopped early.

    ``previous``: the records already on disk; a query whose only failure was the judge is judged
    again rather than asked again. ``stop_after`` 0 never stops.
    """
    queue = iter(tasks)
    breaker = _Breaker(stop_after)
    earlier = previous or {}

    async def worker() -> None:
        for task in queue:
            record = await evaluate_one(solver, task, mode=mode, judge=judge, previous=earlier.get(task.key))
            run_dir.append(record)
            if progress is not None:
                progress.update(record)
            breaker.check(record)

    try:
        async with asyncio.TaskGroup() as group:
            for _ in range(max(1, min(concurrency, len(tasks)))):
                group.create_task(worker())
    except BaseExceptionGroup as failed:  # the first failure ends the run; its siblings were cancelled
        first = failed.exceptions[0]
        if isinstance(first, _Stop):
            return str(first)
        raise first from None
    return None


async def evaluate_one(
    solver: Solver, task: EvalTask, *, mode: Mode, judge: LLMJudge | None = None, previous: EvalRecord | None = None
) -> EvalRecord:
    item = task.item
    if judge is not None and previous is not None and previous.failure is Failure.JUDGE:
        return attrs.evolve(previous, judge=await judge.score(item, previous.answer))
    started = time.perf_counter()
    trajectory, error = await _solve(solver, Query(item.question, id=f"{item.benchmark}/{item.id}"), mode)
    answer = (trajectory.answer if trajectory else None) or ""
    score = _score(task, answer)
    judged = None
    if judge is not None:
        judged = await judge.score(item, answer) if answer else Score(False, 0.0, "llm_judge", "no answer")
    return EvalRecord(
        benchmark=item.benchmark,
        item_id=item.id,
        question=item.question,
        gold=item.answers,
        answer=answer,
        score=score,
        mode=mode,
        elapsed_s=time.perf_counter() - started,
        judge=judged,
        trajectory=trajectory,
        error=error,
    )


async def _solve(solver: Solver, query: Query, mode: Mode) -> tuple[Trajectory | None, str | None]:
    try:
        trajectory = await (base_answer(solver, query) if mode is Mode.BASE else solver.asolve(query))
    except AgentFlowError as exc:
        return None, " ".join(str(exc).split())
    except Exception as exc:  # a bug in a module or tool must cost one query, not the run
        return None, f"{type(exc).__name__}: {exc}"
    return trajectory, trajectory.error


def _score(task: EvalTask, answer: str) -> Score:
    try:
        return task.benchmark.score(task.item, answer)
    except Exception as exc:  # a scorer bug is recorded on the query it hit
        return Score(correct=False, value=0.0, method="scorer_error", extracted=f"{type(exc).__name__}: {exc}")


class _Stop(Exception):
    """Raised in a worker to end the run early; the message says why."""


class _Breaker:
    """Stops the run when ``limit`` queries in a row end without a usable result: a server that is
    not there (or went away), a missing key, a module that always raises."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.in_a_row, self.succeeded = 0, 0

    def check(self, record: EvalRecord) -> None:
        if record.final:
            self.succeeded += 1
            self.in_a_row = 0
            return
        self.in_a_row += 1
        if self.limit and self.in_a_row >= self.limit:
            which = f"{self.in_a_row} queries in a row" if self.succeeded else f"the first {self.in_a_row} queries all"
            raise _Stop(f"stopped early: {which} failed (--stop-after-failures {self.limit})")
