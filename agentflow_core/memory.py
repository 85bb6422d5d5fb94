"""The record of every turn of one solve, and how it reads to a model.

A ``Memory`` belongs to exactly one solve; the solver makes a new one per query (the reference
implementation shared one across queries, so a second query could read the first one's turns).
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from agentflow_core.records import Step, ToolFailure, ToolSuccess
from agentflow_core.sizes import clip

#: A long tool output is cut for prompts (the full text stays in the trajectory).
PROMPT_RESULT_CHARS = 2000


#: The most values :func:`found_so_far` gives: the latest ones.
MAX_FOUND = 24


def found_so_far(steps: Sequence[Step]) -> list[str]:
    """The values and candidates of the successful results so far, each once, the latest :data:`MAX_FOUND`.

    What the ``found`` input of a tool (``agentflow_core.tool.FOUND_INPUT``) and a tool's ``fit`` get.
    """
    found: dict[str, None] = {}
    for step in steps:
        if isinstance(step.result, ToolSuccess):
            value = [step.result.value] if step.result.value else []
            found.update(dict.fromkeys([*value, *step.result.candidates]))
    return list(found)[-MAX_FOUND:]


def answered_by(steps: Sequence[Step]) -> set[str]:
    """The tools that returned a result in ``steps``: a claim of theirs is no longer work to do."""
    return {step.tool_call.tool for step in steps if isinstance(step.result, ToolSuccess)}


class Memory:
    def __init__(self) -> None:
        self._steps: list[Step] = []

    def add(self, step: Step) -> None:
        self._steps.append(step)

    def replace_last(self, step: Step) -> None:
        """Swap in the completed version of the latest turn (once the verifier has spoken)."""
        self._steps[-1] = step

    @property
    def steps(self) -> tuple[Step, ...]:
        return tuple(self._steps)

    def __len__(self) -> int:
        return len(self._steps)

    def render(self) -> str:
        """Memory as the planner, verifier and generator read it."""
        if not self._steps:
            return "(no actions taken yet)"
        return "\n\n".join(render_step(step) for step in self._steps)


def render_step(step: Step) -> str:
    lines = [f"Action {step.index}:", f"  tool: {step.tool_call.tool}", f"  sub-goal: {step.decision.sub_goal}"]
    arguments = dict(step.tool_call.arguments)
    if arguments != {"query": step.decision.sub_goal}:  # the sub-goal as the query says nothing new
        lines.append(f"  arguments: {json.dumps(arguments, ensure_ascii=False)}")
    lines.append(f"  result: {render_result(step.result)}")
    return "\n".join(lines)


def render_result(result: ToolSuccess | ToolFailure) -> str:
    if isinstance(result, ToolSuccess):
        return clip(result.output, PROMPT_RESULT_CHARS)
    return f"TOOL ERROR ({result.kind.value}): {result.error}"
