"""What the query list holds for each record: a few fields to show, filter and sort on.

The list of a 10,000-query run must reach the browser in one piece, small enough to filter
there as fast as a key is typed, so each record becomes one flat row. The whole trajectory is
fetched only when a row is opened.
"""

from __future__ import annotations

from typing import Any

from agentflow_core import ToolFailure
from agentflow_rl.eval.records import EvalRecord

#: Longest question, answer or gold string a row carries; the trajectory view shows all of it.
TEXT_CAP = 400


def _cap(text: str) -> str:
    return text if len(text) <= TEXT_CAP else text[: TEXT_CAP - 1] + "…"


def row_of(record: EvalRecord, index: int, seq: int) -> dict[str, Any]:
    trajectory = record.trajectory
    steps = trajectory.steps if trajectory else ()
    return {
        "i": index,
        "seq": seq,
        "benchmark": record.benchmark,
        "id": record.item_id,
        "question": _cap(record.question),
        "gold": [_cap(g) for g in record.gold[:4]],
        "answer": _cap(record.answer),
        "correct": record.score.correct,
        "value": record.score.value,
        "judge": record.judge.correct if record.judge else None,
        "error": _cap(record.error) if record.error else None,
        "turns": len(steps),
        "tools": sorted({s.tool_call.tool for s in steps}),
        "tool_errors": sum(isinstance(s.result, ToolFailure) for s in steps),
        "tokens": trajectory.usage.total_tokens if trajectory else 0,
        "elapsed": round(record.elapsed_s, 3),
        "stop": trajectory.stop_reason.value if trajectory else None,
    }


def lean(data: Any) -> Any:
    """An ``EvalRecord``'s JSON without what the list and the summary never read.

    Prompts, raw responses, token traces, tool arguments and outputs are most of a record's
    bytes; dropping them before structuring keeps a big run's records in memory cheaply, and
    the numbers ``summarize`` needs (steps, tools, failures, usage, stop reasons) stay.
    """
    trajectory = data.get("trajectory") if isinstance(data, dict) else None
    if not isinstance(trajectory, dict):
        return data
    for key in ("analysis", "final_answer", "direct_answer"):
        _lean_holder(trajectory.get(key))
    for step in trajectory.get("steps") or ():
        if not isinstance(step, dict):
            continue
        for key in ("decision", "tool_call", "verdict"):
            _lean_holder(step.get(key))
        if isinstance(step.get("tool_call"), dict):
            step["tool_call"]["arguments"] = {}
        result = step.get("result")
        if isinstance(result, dict):
            for key in ("output", "error"):
                if key in result:
                    result[key] = ""
    return data


def _lean_holder(holder: Any) -> None:
    for key in ("call", "choice"):  # an answer's declined offer of values is a call too
        if isinstance(holder, dict) and isinstance(holder.get(key), dict):
            holder[key].update(messages=[], response="", tokens=None)
