"""``agentflow eval`` as a pipeline: choose items, lock and open the run, answer what is left, summarise, plot."""

from __future__ import annotations

import asyncio
import itertools
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import IO

import attrs

from agentflow_core import Benchmark, Config, EngineConfig, Solver, UsageError
from agentflow_core.registry import Registry
from agentflow_rl.benchmarks.sampling import sample
from agentflow_rl.eval.outcome import EvalOutcome, outcome
from agentflow_rl.eval.plot import plot_accuracy
from agentflow_rl.eval.progress import Progress
from agentflow_rl.eval.records import EvalRecord, Mode, RunInfo
from agentflow_rl.eval.report import write_summary
from agentflow_rl.eval.rescore import rescore
from agentflow_rl.eval.rundir import RunDir
from agentflow_rl.eval.runner import STOP_AFTER_FAILURES, EvalTask, pending, run_tasks
from agentflow_rl.eval.settings import run_settings
from agentflow_rl.eval.summary import RunSummary, summarize
from agentflow_rl.judge import LLMJudge


@attrs.frozen
class EvalRequest:
    benchmarks: tuple[str, ...]
    data_dir: Path
    run_dir: Path
    mode: Mode = Mode.AGENT
    limit: int | None = None
    seed: int = 0
    concurrency: int = 8
    judge: EngineConfig | None = None
    #: Stop when this many queries in a row end without a usable result; 0 never stops.
    stop_after_failures: int = STOP_AFTER_FAILURES
    #: Settings beyond the config's that make the run what it is, held to on resume like the rest:
    #: ``{"planner.weights": "sha256:..."}`` for a module whose engine name does not say which weights.
    identity: Mapping[str, str] = attrs.field(factory=dict)


def evaluate(
    config: Config,
    request: EvalRequest,
    registry: Registry,
    *,
    stream: IO[str] | None = None,
    announce: Callable[[str], None] | None = None,
) -> EvalOutcome:
    """Answer every sampled item without a final record in the run dir, then summarise the whole run dir.

    The run dir is locked for the whole run and must have been made with the same settings.
    ``announce`` receives one line once the data is read and the run dir opened (before any query).
    """
    benchmarks = [registry.benchmark(name).factory() for name in request.benchmarks]
    tasks = load_tasks(benchmarks, request.data_dir, request.limit, request.seed)
    run_dir = RunDir(request.run_dir)
    solver = Solver(config, registry=registry)
    with run_dir.lock():
        run_dir.start(_info(request, solver, config, tasks))
        done = run_dir.read()
        todo = pending(tasks, done)
        if announce is not None:
            announce(f"run dir {run_dir.path}: {len(todo)} of {len(tasks)} queries to answer")
        finished = [done[t.key] for t in tasks if t.key in done and done[t.key].final]
        progress = Progress(len(tasks), previous=finished, stream=stream)
        judge = LLMJudge(registry.engine(request.judge.provider).factory(request.judge)) if request.judge else None
        with run_dir:
            stopped = asyncio.run(_answer(solver, todo, run_dir, request, judge, progress, done))
        progress.finish()
        records = run_dir.read()
        summary = _write(run_dir, list(records.values()), request.benchmarks)
    return outcome(summary, run_dir.path, [t.key for t in tasks], records, stopped)


def load_tasks(benchmarks: Sequence[Benchmark], data_dir: Path, limit: int | None, seed: int) -> list[EvalTask]:
    """Every benchmark's fixed sample, interleaved set by set.

    All files are read first, so a missing one fails before any query. Interleaving makes a run
    stopped halfway a smaller sample of every set rather than all of some sets and none of others.
    """
    samples = [[EvalTask(b, item) for item in sample(b.load(data_dir), limit, seed, name=b.name)] for b in benchmarks]
    rounds = itertools.zip_longest(*samples)
    return [task for round_ in rounds for task in round_ if task is not None]


async def _answer(
    solver: Solver,
    todo: list[EvalTask],
    run_dir: RunDir,
    request: EvalRequest,
    judge: LLMJudge | None,
    progress: Progress,
    done: dict[tuple[str, str], EvalRecord],
) -> str | None:
    try:
        async with solver:
            return await run_tasks(
                solver,
                todo,
                run_dir,
                mode=request.mode,
                concurrency=request.concurrency,
                judge=judge,
                progress=progress,
                previous=done,
                stop_after=request.stop_after_failures,
            )
    finally:
        if judge is not None:
            await judge.engine.aclose()


def finish(
    run_dir: RunDir, *, order: Sequence[str] = (), rescore_with: tuple[Registry, Path] | None = None
) -> RunSummary:
    """Write ``summary.json``, ``summary.md`` and ``accuracy.png`` from whatever the run dir holds.

    ``rescore_with=(registry, data_dir)`` scores the replies again with the current scorers first.
    """
    records = list(run_dir.read().values())
    if not records:
        raise UsageError(f"{run_dir.path} has no results yet")
    if rescore_with is not None:
        records = rescore(records, *rescore_with)
    return _write(run_dir, records, order)


def _write(run_dir: RunDir, records: list[EvalRecord], order: Sequence[str]) -> RunSummary:
    summary = summarize(records, run_dir.read_info(strict=False), order)
    write_summary(summary, run_dir.path)
    try:
        plot_accuracy(summary, run_dir.path / "accuracy.png", title=run_dir.path.name)
    except UsageError as exc:  # no matplotlib: the numbers matter more than the picture
        warnings.warn(f"no plot: {exc}", stacklevel=2)
    return summary


def _info(request: EvalRequest, solver: Solver, config: Config, tasks: Sequence[EvalTask]) -> RunInfo:
    engines = solver.engines if request.mode is Mode.AGENT else {"generator": solver.engines["generator"]}
    info = RunInfo(
        mode=request.mode,
        benchmarks=request.benchmarks,
        limit=request.limit,
        seed=request.seed,
        engines=engines,
        max_steps=config.agent.max_steps if request.mode is Mode.AGENT else 0,
        tools=solver.tools.names if request.mode is Mode.AGENT else (),
        judge=request.judge.model if request.judge else None,
    )
    items = [(t.item.benchmark, t.item.id, t.item.question, t.item.answers) for t in tasks]
    return attrs.evolve(info, settings={**run_settings(info, config, items, request.judge), **request.identity})
