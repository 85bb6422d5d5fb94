"""The synthetic task in the tiny policy's words: a Planner and a Verifier whose prompts a 2-layer model can read.

Every word of these prompts is in the tiny tokenizer (``SyntheticTask.vocabulary``), so the
random Llama of ``model.tiny_policy`` trains on them in minutes; a real model gets ``chat``.
"""

from __future__ import annotations

from collections.abc import Iterable

from agentflow_core import FlowState, Message, Step, ToolSuccess
from agentflow_rl.flow_grpo.tasks.choice import ChoicePlanner, ChoiceVerifier

#: Words of the compact prompts besides the question itself and the tool names.
_COMPACT_WORDS = (";", "done", ":", "none", "ok", "err", "stop", "?", "STOP", "CONTINUE")


def compact_vocabulary(tool_names: Iterable[str]) -> list[str]:
    return [*_COMPACT_WORDS, *tool_names]


def status_word(step: Step) -> str:
    return "ok" if isinstance(step.result, ToolSuccess) else "err"


def compact_history(state: FlowState) -> str:
    """``lookup ok add err``: each turn's tool and whether it worked; ``none`` before the first."""
    return " ".join(f"{s.tool_call.tool} {status_word(s)}" for s in state.steps) or "none"


class CompactPlanner(ChoicePlanner):
    """``<question> ; done : lookup ok add err``."""

    def messages(self, state: FlowState) -> tuple[Message, ...]:
        return (Message("user", f"{state.query.text} ; done : {compact_history(state)}"),)


class CompactVerifier(ChoiceVerifier):
    """``<question> ; done : lookup ok add ok ; stop ?``."""

    def messages(self, state: FlowState) -> tuple[Message, ...]:
        return (Message("user", f"{state.query.text} ; done : {compact_history(state)} ; stop ?"),)
