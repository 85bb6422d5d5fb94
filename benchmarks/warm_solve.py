"""Seconds and tokens of one solve on the embedded default, with the model already loaded.

The README's first command is ``agentflow solve "What is the capital of France?"``; this times the
same solve in one process after a warm-up solve, so the model's load is left out, and prints each
solve's wall time, turns and tokens, then the median:

    python benchmarks/warm_solve.py --repeats 5
    python benchmarks/warm_solve.py --question "What is 17 * 23?" --tools python_coder

To compare two versions on the same machine state, run it alternately against both checkouts
(``PYTHONPATH=old python benchmarks/warm_solve.py`` then the new one, and again).
"""

from __future__ import annotations

import argparse
import statistics
import time

from agentflow_core import Solver
from agentflow_core.config import config_from_dict


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--question", default="What is the capital of France?")
    parser.add_argument("--tools", default="base_generator", help="comma-separated; empty for the default tools")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    agent = {"tools": [t for t in args.tools.split(",") if t]} if args.tools else {}
    with Solver(config_from_dict({"agent": agent})) as solver:
        started = time.perf_counter()
        warm_up = solver.solve(args.question)
        if warm_up.error:  # `nox -s bench` runs every script, in a venv that may lack the 'local' extra
            print(f"warm_solve: no solve to time: {warm_up.error}")
            return
        print(f"warm-up solve (model load included): {time.perf_counter() - started:.1f} s")
        seconds = []
        for _ in range(args.repeats):
            started = time.perf_counter()
            trajectory = solver.solve(args.question)
            seconds.append(time.perf_counter() - started)
            answer = " ".join((trajectory.answer or "").split())[-60:]
            print(
                f"{seconds[-1]:.1f} s, {len(trajectory.steps)} turn(s), {trajectory.usage.total_tokens} tokens, "
                f"{len(list(trajectory.module_calls()))} model calls, answer ...{answer!r}"
            )
    print(f"median {statistics.median(seconds):.1f} s over {len(seconds)} warm solves")


if __name__ == "__main__":
    main()
