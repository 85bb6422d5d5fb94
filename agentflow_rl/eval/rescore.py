"""Scoring a finished run again with today's scorers, without asking the model anything.

Records keep the reply, so when a scorer improves (a new answer pattern, a fixed alias) old runs
can be re-scored and compared fairly. Items are reloaded from the data directory because some
scorers need more than the gold strings (options, Game of 24's numbers). The results file is
not rewritten, only the summary, so this is safe while the run is still appending to it.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import attrs

from agentflow_core.registry import Registry
from agentflow_rl.eval.records import EvalRecord


def rescore(records: Iterable[EvalRecord], registry: Registry, data_dir: Path) -> list[EvalRecord]:
    records = list(records)
    known = {}
    for name in sorted({r.benchmark for r in records}):
        benchmark = registry.benchmark(name).factory()
        known.update({(name, item.id): (benchmark, item) for item in benchmark.load(data_dir)})
    rescored = []
    for record in records:
        found = known.get(record.key)
        if found is None:  # the item is gone from the file: keep the verdict it had
            rescored.append(record)
            continue
        benchmark, item = found
        rescored.append(attrs.evolve(record, score=benchmark.score(item, record.answer)))
    return rescored
