"""Where the time of an evaluation run goes: prompt processing, decoding, tools, framework.

Reads a finished run directory (``results.jsonl``), so it costs no model time. Every LLM call in a
trajectory carries its token counts and latency; a least-squares fit of

    latency = prompt_tokens / prompt_rate + completion_tokens / decode_rate

over all calls (separately for calls under a JSON schema, whose decoding pays for the grammar)
splits the model's time into prompt processing and decoding. Tool time is each step's measured
tool run minus nothing (for ``base_generator`` that is one more model call); the framework is what
is left of each query's wall time.

    python benchmarks/eval_time_breakdown.py runs/smollm2-agent
"""

from __future__ import annotations

import argparse
import json
import statistics
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def _calls(trajectory: dict[str, Any]) -> Iterator[dict[str, Any]]:
    analysis = trajectory.get("analysis") or {}
    if analysis.get("call"):
        yield analysis["call"]
    for step in trajectory.get("steps", []):
        for part in ("decision", "tool_call", "verdict"):
            call = (step.get(part) or {}).get("call")
            if call:
                yield call
    final = trajectory.get("final_answer") or {}
    if final.get("call"):
        yield final["call"]


def _fit(rows: list[tuple[float, float, float]]) -> tuple[float, float]:
    """Seconds per prompt token and per completion token, no intercept, by the normal equations."""
    spp = sum(p * p for p, _, _ in rows)
    scc = sum(c * c for _, c, _ in rows)
    spc = sum(p * c for p, c, _ in rows)
    spy = sum(p * y for p, _, y in rows)
    scy = sum(c * y for _, c, y in rows)
    det = spp * scc - spc * spc
    if not rows or det == 0:
        return 0.0, 0.0
    return (spy * scc - scy * spc) / det, (scy * spp - spy * spc) / det


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir", type=Path, nargs="?", help="default: runs/smollm2-agent, if it exists")
    args = parser.parse_args()
    if args.run_dir is None:
        args.run_dir = Path("runs/smollm2-agent")
        if not (args.run_dir / "results.jsonl").is_file():
            # `nox -s bench` runs every script; this one has nothing to read until an eval has run.
            print(f"eval_time_breakdown: no run at {args.run_dir}; name a run directory of `agentflow eval`")
            return
    records = [json.loads(line) for line in (args.run_dir / "results.jsonl").read_text().splitlines() if line.strip()]
    records = [r for r in records if r.get("trajectory")]
    if not records:
        raise SystemExit(f"{args.run_dir}: no trajectories in results.jsonl")

    by_kind: dict[bool, list[tuple[float, float, float]]] = {True: [], False: []}
    wall = tool = llm = 0.0
    for record in records:
        wall += record["elapsed_s"]
        trajectory = record["trajectory"]
        for call in _calls(trajectory):
            usage, latency = call.get("usage") or {}, float(call.get("latency_s") or 0.0)
            llm += latency
            structured = call.get("purpose") in ("next_step", "command", "check", "final_answer", "direct_answer")
            by_kind[structured].append((usage.get("prompt_tokens", 0), usage.get("completion_tokens", 0), latency))
        for step in trajectory.get("steps", []):
            tool += float((step.get("result") or {}).get("elapsed_s") or 0.0)

    prompt_s = decode_s = 0.0
    print(f"{len(records)} queries from {args.run_dir}; {60 * len(records) / wall:.2f} queries/min at concurrency 1")
    print(f"mean {wall / len(records):.1f} s/query, median {statistics.median(r['elapsed_s'] for r in records):.1f} s")
    for structured, rows in by_kind.items():
        if not rows:
            continue
        per_prompt, per_completion = _fit(rows)
        p_tokens, c_tokens = sum(r[0] for r in rows), sum(r[1] for r in rows)
        prompt_s += per_prompt * p_tokens
        decode_s += per_completion * c_tokens
        label = "JSON-schema calls (grammar)" if structured else "free-text calls"
        rate = lambda s: f"{1 / s:.0f} tok/s" if s > 0 else "n/a"  # noqa: E731
        print(
            f"  {label}: {len(rows)} calls, {p_tokens} prompt / {c_tokens} completion tokens; "
            f"fitted prompt {rate(per_prompt)}, decode {rate(per_completion)}"
        )
    framework = max(0.0, wall - llm - tool)
    print("share of wall time:")
    for name, seconds in (
        ("prompt processing (fitted)", prompt_s),
        ("decoding (fitted)", decode_s),
        ("tools (base_generator is a model call too)", tool),
        ("framework and everything else", framework),
    ):
        print(f"  {name:44s} {seconds / len(records):6.2f} s/query  {100 * seconds / wall:5.1f}%")
    unexplained = llm - prompt_s - decode_s
    print(f"  (fit residual: {unexplained / len(records):+.2f} s/query of module LLM time)")


if __name__ == "__main__":
    main()
