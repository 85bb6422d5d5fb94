"""A one-line progress report on stderr: queries done, accuracy so far, rate, time left, failures.

On a terminal the line is rewritten in place; in a log file (``nohup``) a line is printed every
twentieth of the run or every 30 seconds, whichever comes first. No dependency beyond click.
"""

from __future__ import annotations

import sys
import time
from collections import Counter
from collections.abc import Iterable
from typing import IO

import click

from agentflow_core.inert import inert
from agentflow_rl.eval.records import EvalRecord


class Progress:
    def __init__(self, total: int, *, previous: Iterable[EvalRecord] = (), stream: IO[str] | None = None) -> None:
        """``previous``: records of an earlier, interrupted run of the same sample; they count as done."""
        self.total, self.done = total, 0
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self._started = time.monotonic()
        self._new = 0
        #: Queries of this session without a usable result (``EvalRecord.final`` false).
        self.failed = 0
        self._last_print = self._started
        self._seen: Counter[str] = Counter()
        self._correct: Counter[str] = Counter()
        for record in previous:
            self._count(record)

    def _count(self, record: EvalRecord) -> None:
        self.done += 1
        self._seen[record.benchmark] += 1
        self._correct[record.benchmark] += record.score.correct

    def update(self, record: EvalRecord) -> None:
        if record.final:
            self._count(record)
        else:
            self.done += 1
            self.failed += 1
        self._new += 1
        now = time.monotonic()
        step = max(1, self.total // 20)
        if self.tty or self.done % step == 0 or now - self._last_print > 30 or self.done == self.total:
            self._last_print = now
            self._show(self.line(now))

    def line(self, now: float | None = None) -> str:
        elapsed = (now or time.monotonic()) - self._started
        rate = self._new / elapsed if elapsed > 0 else 0.0
        left = (self.total - self.done) / rate if rate > 0 else 0.0
        seen = sum(self._seen.values())
        accuracy = sum(self._correct.values()) / seen if seen else 0.0
        sets = " ".join(f"{b} {self._correct[b]}/{n}" for b, n in sorted(self._seen.items()))
        failed = f" | {self.failed} failed" if self.failed else ""
        head = f"eval {self.done}/{self.total} | acc {accuracy:.3f} | {rate:.2f} q/s | left {_duration(left)}"
        return f"{head}{failed} | {sets}"

    def _show(self, line: str) -> None:
        line = inert(line)  # benchmark names come from plugins and from results files
        if self.tty:
            width = 160
            click.echo("\r" + line[:width].ljust(width), nl=False, file=self.stream)
        else:
            click.echo(line, file=self.stream)

    def finish(self) -> None:
        if self.tty:
            click.echo("", file=self.stream)


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 60}m{seconds % 60:02d}s"
