"""Per-benchmark numbers from a run's records: accuracy, turns, tools, tokens, latency.

Computed from ``results.jsonl`` alone, so a summary can be rebuilt for any run directory (even
one still running) and two runs compared. Written as ``summary.json`` (through the converter) and
``summary.md`` (a table for people and READMEs).

Only final records count (``EvalRecord.failure``): a query whose planner's server was down is no
wrong answer of the model, it is a query not yet answered, like one a killed run never reached.
Those are counted apart, by cause, in ``errors`` and ``failures``.
"""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence

import attrs

from agentflow_core import ToolFailure
from agentflow_rl.eval.records import EvalRecord, RunInfo


@attrs.frozen
class ToolStats:
    calls: int
    errors: int

    @property
    def error_rate(self) -> float:
        return self.errors / self.calls if self.calls else 0.0


@attrs.frozen
class TokenStats:
    """Mean tokens per query spent by one module."""

    prompt: float
    completion: float


@attrs.frozen
class BenchmarkSummary:
    benchmark: str
    #: Queries with a final record; every figure below but ``errors`` and ``failures`` is over these.
    n: int
    #: Share of queries the deterministic scorer marked correct.
    accuracy: float
    #: Mean graded value (token F1 for QA; equals accuracy elsewhere).
    mean_value: float
    #: Share the LLM judge marked correct; ``None`` without ``--judge-engine``.
    judge_accuracy: float | None
    mean_turns: float
    tools: Mapping[str, ToolStats]
    tokens: Mapping[str, TokenStats]
    latency_p50_s: float
    latency_p95_s: float
    mean_latency_s: float
    #: Queries without a usable result yet (not final: asked again on resume), in no figure above.
    errors: int
    stop_reasons: Mapping[str, int]
    #: ``errors`` by cause (``Failure`` values: ``engine error``, ``module error``, ...).
    failures: Mapping[str, int] = attrs.field(factory=dict)

    @property
    def tool_calls(self) -> int:
        return sum(t.calls for t in self.tools.values())

    @property
    def tool_error_rate(self) -> float:
        calls = self.tool_calls
        return sum(t.errors for t in self.tools.values()) / calls if calls else 0.0


@attrs.frozen
class RunSummary:
    info: RunInfo | None
    benchmarks: tuple[BenchmarkSummary, ...]

    @property
    def macro_accuracy(self) -> float:
        """Mean accuracy over the sets with at least one final record."""
        answered = [b.accuracy for b in self.benchmarks if b.n]
        return statistics.fmean(answered) if answered else 0.0

    @property
    def errors(self) -> int:
        return sum(b.errors for b in self.benchmarks)

    def failures(self) -> dict[str, int]:
        """Queries without a usable result, by cause, over every set."""
        total: Counter[str] = Counter()
        for bench in self.benchmarks:
            total.update(bench.failures)
        return dict(total)


def percentile(values: Sequence[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default); 0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    position = (len(ordered) - 1) * q
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def summarize(records: Iterable[EvalRecord], info: RunInfo | None = None, order: Sequence[str] = ()) -> RunSummary:
    """One ``BenchmarkSummary`` per benchmark: in ``order`` (default: the run's), then alphabetically."""
    order = order or (info.benchmarks if info else ())
    by_benchmark: dict[str, list[EvalRecord]] = defaultdict(list)
    for record in records:
        by_benchmark[record.benchmark].append(record)
    names = [n for n in order if n in by_benchmark] + sorted(set(by_benchmark) - set(order))
    return RunSummary(info, tuple(summarize_benchmark(name, by_benchmark[name]) for name in names))


def summarize_benchmark(name: str, records: Sequence[EvalRecord]) -> BenchmarkSummary:
    failures = Counter(r.failure.value for r in records if r.failure is not None)
    records = [r for r in records if r.final]
    n = len(records)
    judged = [r.judge for r in records if r.judge is not None]
    latencies = [r.elapsed_s for r in records]
    trajectories = [r.trajectory for r in records if r.trajectory is not None]
    return BenchmarkSummary(
        benchmark=name,
        n=n,
        accuracy=sum(r.score.correct for r in records) / n if n else 0.0,
        mean_value=statistics.fmean(r.score.value for r in records) if n else 0.0,
        judge_accuracy=sum(j.correct for j in judged) / len(judged) if judged else None,
        mean_turns=statistics.fmean(len(t.steps) for t in trajectories) if trajectories else 0.0,
        tools=_tool_stats(records),
        tokens=_token_stats(records),
        latency_p50_s=percentile(latencies, 0.5),
        latency_p95_s=percentile(latencies, 0.95),
        mean_latency_s=statistics.fmean(latencies) if n else 0.0,
        errors=sum(failures.values()),
        stop_reasons=dict(Counter(t.stop_reason.value for t in trajectories)),
        failures=dict(failures),
    )


def _tool_stats(records: Sequence[EvalRecord]) -> dict[str, ToolStats]:
    calls: Counter[str] = Counter()
    errors: Counter[str] = Counter()
    for record in records:
        for step in record.trajectory.steps if record.trajectory else ():
            calls[step.tool_call.tool] += 1
            errors[step.tool_call.tool] += isinstance(step.result, ToolFailure)
    return {tool: ToolStats(calls[tool], errors[tool]) for tool in sorted(calls)}


def _token_stats(records: Sequence[EvalRecord]) -> dict[str, TokenStats]:
    """Mean tokens per query and module, over all queries (a module a query never called counts 0)."""
    prompt: Counter[str] = Counter()
    completion: Counter[str] = Counter()
    for record in records:
        for role, usage in (record.trajectory.usage_by_module() if record.trajectory else {}).items():
            prompt[role] += usage.prompt_tokens
            completion[role] += usage.completion_tokens
    n = len(records) or 1
    return {role: TokenStats(prompt[role] / n, completion[role] / n) for role in sorted(prompt | completion)}


def by_name(summary: RunSummary) -> Mapping[str, BenchmarkSummary]:
    return {b.benchmark: b for b in summary.benchmarks}
