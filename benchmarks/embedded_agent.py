"""The embedded default with and without its shipped adapters, on held-out questions of each kind.

Runs the real Solver on ``llamacpp:smollm2`` (one model, the per-module LoRA adapters of
``agentflow_core/adapters/smollm2`` switched per request) over the held-out rows of
``agentflow_rl/flow_grpo/tasks/data/embedded_eval.jsonl``: arithmetic (python_coder in the Docker
sandbox), facts of the made-up world (local_search over its passages) and a fact then arithmetic.
Templates, names and numbers there never appear in training. For each setting and kind it prints
the accuracy (the short answer against the gold, numbers as numbers), how many solves copied prompt
or schema text into a sub-goal, argument or answer, and the mean tokens and seconds per solve:

    python benchmarks/embedded_agent.py --per-kind 10 --out docs/results/embedded-agent.json

The two settings alternate question by question, so a change in the machine's load falls on both.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from agentflow_core import Solver, Trajectory
from agentflow_core.config import config_from_dict
from agentflow_core.testing import copied_prompt_text, registry_with, tool_texts
from agentflow_rl.flow_grpo.rewards import short_answer
from agentflow_rl.flow_grpo.tasks.records import TrainRecord

DATA = Path(__file__).resolve().parent.parent / "agentflow_rl" / "flow_grpo" / "tasks" / "data"
SETTINGS = {"adapters": True, "no adapters": False}


def agent_config(adapters: bool, index_dir: str, max_steps: int) -> dict[str, Any]:
    """The embedded default with the tools the questions need; only the adapters differ."""
    return {
        "agent": {"tools": ["base_generator", "python_coder", "local_search"], "max_steps": max_steps},
        "engines": {"adapters": adapters},
        "tools": {"local_search": {"corpus": str(DATA / "embedded_corpus.jsonl"), "index_dir": index_dir}},
    }


def held_out(per_kind: int) -> list[dict[str, Any]]:
    rows = [json.loads(line) for line in (DATA / "embedded_eval.jsonl").read_text(encoding="utf-8").splitlines()]
    taken: dict[str, int] = defaultdict(int)
    chosen = []
    for row in rows:
        if taken[row["kind"]] < per_kind:
            taken[row["kind"]] += 1
            chosen.append(row)
    return chosen


def measure(trajectory: Trajectory, row: dict[str, Any], seconds: float, instructions: list[str]) -> dict[str, Any]:
    record = TrainRecord(row["id"], row["question"], tuple(row["answers"]))
    score = short_answer(record, trajectory.answer or "")
    copies = copied_prompt_text(trajectory, instructions)
    return {
        "id": row["id"],
        "kind": row["kind"],
        "question": row["question"],
        "gold": row["answers"],
        "answer": score.extracted,
        "correct": score.correct,
        "first_tool": trajectory.steps[0].decision.tool if trajectory.steps else None,
        "gold_tool": row["tool"],
        "turns": len(trajectory.steps),
        "copied": [str(c) for c in copies],
        "tokens": trajectory.usage.total_tokens,
        "seconds": round(seconds, 2),
        "error": trajectory.error,
    }


def summary(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    for setting in SETTINGS:
        for kind in ("arithmetic", "fact", "two_step", "all"):
            mine = [r for r in results if r["setting"] == setting and kind in ("all", r["kind"])]
            if not mine:
                continue
            rows.append(
                {
                    "setting": setting,
                    "kind": kind,
                    "n": len(mine),
                    "accuracy": sum(r["correct"] for r in mine) / len(mine),
                    "gold_first_tool": sum(r["first_tool"] == r["gold_tool"] for r in mine) / len(mine),
                    "copied_solves": sum(bool(r["copied"]) for r in mine),
                    "tokens": statistics.mean(r["tokens"] for r in mine),
                    "seconds": statistics.mean(r["seconds"] for r in mine),
                }
            )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--per-kind", type=int, default=10, help="held-out questions of each kind")
    parser.add_argument("--max-steps", type=int, default=3)
    parser.add_argument("--index-dir", default="runs/embedded-corpus.bm25s")
    parser.add_argument("--out", type=Path, help="write every solve and the summary here as JSON")
    args = parser.parse_args()
    rows = held_out(args.per_kind)
    instructions = list(tool_texts([t.spec for t in registry_with().tools.values()]))
    results = []
    solvers = {
        name: Solver(config_from_dict(agent_config(on, args.index_dir, args.max_steps)))
        for name, on in SETTINGS.items()
    }
    try:
        for solver in solvers.values():
            solver.solve("What is 2 plus 2?")  # loads the model and the index: not part of any timed solve
        for row in rows:
            for name, solver in solvers.items():
                started = time.perf_counter()
                trajectory = solver.solve(row["question"])
                result = {"setting": name, **measure(trajectory, row, time.perf_counter() - started, instructions)}
                results.append(result)
                print(
                    json.dumps({k: result[k] for k in ("setting", "id", "correct", "answer", "first_tool", "seconds")})
                )
    finally:
        for solver in solvers.values():
            solver.close()
    table = summary(results)
    print(f"\n{'setting':<12} {'kind':<11} {'n':>3} {'right':>6} {'tool':>5} {'copied':>6} {'tokens':>7} {'s':>6}")
    for r in table:
        print(
            f"{r['setting']:<12} {r['kind']:<11} {r['n']:>3} {r['accuracy']:>6.0%} {r['gold_first_tool']:>5.0%} "
            f"{r['copied_solves']:>6} {r['tokens']:>7.0f} {r['seconds']:>6.1f}"
        )
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"summary": table, "solves": results}, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
