"""How often a right answer hides in a reply that was scored wrong, before and after the short answer line.

Issue 34: "...would be Boston." was scored wrong for the gold ``Boston``, because the whole sentence
was taken as the answer. AgentFlow's generator now ends every reply with ``Answer: <short answer>``
and the scorers read that line. This reads two finished ``agentflow eval`` run directories of the
same items (the previous release's and this one's), scores every recorded reply with today's
scorers, and counts per set:

* ``right``: replies scored correct (as recorded, for the old run also as rescored today);
* ``hidden``: replies that contain a gold answer as a whole phrase (normalised as the QA scorer
  does) and yet are scored wrong. In an old reply that is a right answer the scorer cannot find;
  in a new one, whose short answer the scorer reads, it is reasoning that names the gold while the
  short answer names something else.

No model is asked; the runs are made beforehand, for example (the old checkout on ``PYTHONPATH``):

    agentflow eval --limit 3 --seed 0 --max-steps 3 --tools base_generator --data-dir DIR --run-dir runs/old
    agentflow eval --limit 3 --seed 0 --max-steps 3 --tools base_generator --data-dir DIR --run-dir runs/new
    python benchmarks/short_answers.py runs/old runs/new --data-dir DIR

Game of 24 has no gold phrase to look for (any expression equal to 24 is right), so it counts only
``right``.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from agentflow_core import Benchmark, BenchmarkItem
from agentflow_core.plugins import load_registry
from agentflow_rl.benchmarks.normalize import normalize_answer
from agentflow_rl.eval.records import EvalRecord
from agentflow_rl.eval.rundir import RunDir

Items = dict[tuple[str, str], BenchmarkItem]
Benchmarks = dict[str, Benchmark]


def gold_inside(item: BenchmarkItem, reply: str) -> bool:
    """Whether a gold answer appears in ``reply`` as a whole phrase (option letters alone do not count)."""
    said = f" {normalize_answer(reply)} "
    golds = [normalize_answer(gold) for gold in item.answers if gold not in item.choices]
    return any(gold and f" {gold} " in said for gold in golds)


def _counts(records: list[EvalRecord], items: Items, benchmarks: Benchmarks | None) -> tuple[int, int]:
    """``(right, hidden)`` over ``records``: as recorded, or as ``benchmarks``' scorers see them today."""
    right = hidden = 0
    for record in records:
        item = items[record.key]
        rescored = benchmarks[item.benchmark].score(item, record.answer) if benchmarks else record.score
        right += rescored.correct
        hidden += not rescored.correct and item.benchmark != "gameof24" and gold_inside(item, record.answer)
    return right, hidden


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("old", type=Path, nargs="?", help="run directory of the previous release")
    parser.add_argument("new", type=Path, nargs="?", help="run directory of this release, same items")
    parser.add_argument("--data-dir", type=Path, default=Path(os.environ.get("AGENTFLOW_DATA", "../shared/benchmarks")))
    args = parser.parse_args()
    if args.old is None or args.new is None:
        # `nox -s bench` runs every script; this one has nothing to read until two evals have run.
        print("short_answers: name two run directories of `agentflow eval` (see the docstring)")
        return
    old, new = RunDir(args.old).read(), RunDir(args.new).read()
    registry = load_registry()
    benchmarks = {name: registry.benchmark(name).factory() for name in sorted({key[0] for key in (*old, *new)})}
    items = {(name, item.id): item for name, bench in benchmarks.items() for item in bench.load(args.data_dir)}
    print("| set | n | old: right / hidden | old rescored today: right / hidden | new: right / hidden |")
    print("| --- | --- | --- | --- | --- |")
    totals = [0] * 7
    for name in sorted({key[0] for key in new}):
        before = [r for r in old.values() if r.benchmark == name and r.key in new]
        after = [new[r.key] for r in before]
        row = (
            len(before),
            *_counts(before, items, None),
            *_counts(before, items, benchmarks),
            *_counts(after, items, benchmarks),
        )
        totals = [t + v for t, v in zip(totals, row, strict=True)]
        print(f"| {name} | {row[0]} | {row[1]} / {row[2]} | {row[3]} / {row[4]} | {row[5]} / {row[6]} |")
    print(f"| all | {totals[0]} | {totals[1]} / {totals[2]} | {totals[3]} / {totals[4]} | {totals[5]} / {totals[6]} |")


if __name__ == "__main__":
    main()
