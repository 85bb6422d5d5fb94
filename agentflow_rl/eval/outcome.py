"""What an ``agentflow eval`` run ended with: its summary, and the queries of its sample that still
have no usable result, by cause, in the one line the CLI prints before exiting non-zero."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from pathlib import Path

import attrs

from agentflow_rl.eval.records import EvalRecord, Failure
from agentflow_rl.eval.summary import RunSummary

#: The cause of a sampled query with no record at all: the run stopped before it was asked.
NOT_RUN = "not run"


@attrs.frozen
class EvalOutcome:
    summary: RunSummary
    run_dir: Path
    #: Queries in the sample.
    sample: int
    #: Queries of the sample without a final record, by cause (``Failure`` values and ``NOT_RUN``).
    missing: Mapping[str, int]
    #: The commonest failure message among them, for the one-line report.
    example: str | None = None
    #: Why the run stopped before trying every query (``--stop-after-failures``), if it did.
    stopped: str | None = None

    @property
    def complete(self) -> bool:
        return not self.missing

    def shortfall(self) -> str | None:
        """``None`` when every sampled query has a usable result, else one line saying what is missing and why."""
        if self.complete:
            return None
        line = f"{sum(self.missing.values())} of {self.sample} queries have no usable result: {causes(self.missing)}"
        if self.example:
            line += f" (e.g. {self.example})"
        return f"{self.stopped}; {line}" if self.stopped else line


def outcome(
    summary: RunSummary,
    run_dir: Path,
    keys: Iterable[tuple[str, str]],
    records: Mapping[tuple[str, str], EvalRecord],
    stopped: str | None = None,
) -> EvalOutcome:
    """The outcome for the sample ``keys`` given the run directory's ``records``."""
    missing: Counter[str] = Counter()
    messages: Counter[str] = Counter()
    sample = 0
    for key in keys:
        sample += 1
        record = records.get(key)
        if record is None:
            missing[NOT_RUN] += 1
        elif record.failure is not None:
            missing[record.failure.value] += 1
            messages[_message(record)] += 1
    example = messages.most_common(1)[0][0] if messages else None
    return EvalOutcome(summary, run_dir, sample, dict(missing), example, stopped)


def causes(counts: Mapping[str, int]) -> str:
    """``3 engine errors, 1 module error, 12 not run``, in a fixed order."""
    order = [f.value for f in Failure] + [NOT_RUN]
    named = sorted(counts, key=lambda c: order.index(c) if c in order else len(order))
    return ", ".join(f"{counts[c]} {c}{'s' if counts[c] != 1 and c.endswith('error') else ''}" for c in named)


def _message(record: EvalRecord, limit: int = 200) -> str:
    if record.failure is Failure.JUDGE and record.judge is not None:
        text = record.judge.extracted
    else:
        text = record.error or (record.trajectory.error if record.trajectory else None) or "no message"
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."
