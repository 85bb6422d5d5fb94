"""Reward functions: small, pure, one number per trajectory, registered by name through a hook.

A reward function takes one :class:`RewardContext` (the question with its gold answers and gold
tool, the finished trajectory, and the task's scorer) and returns a float. Flow-GRPO gives each
trajectory one reward and lets the advantage carry it to every turn of the trained modules.

Rewards are plugins: ``register_rewards(register)`` calls ``register("name", fn)``; a training TOML
picks one with ``[task] reward = "name"``. The built-ins, registered through that same hook:

* ``outcome`` — 1 when the task's scorer calls the final answer right (the paper's only reward);
* ``graded`` — the scorer's graded value in [0, 1] (token F1, say);
* ``tool_choice`` — 1 when the planner's first chosen tool is the record's gold tool.

>>> from agentflow_rl.flow_grpo.tasks.records import TrainRecord
>>> outcome(RewardContext(TrainRecord("1", "2+2?", ("4",)), answer="4"))
1.0
"""

from __future__ import annotations

import re
import string
import unicodedata
from collections.abc import Callable
from fractions import Fraction
from typing import Protocol

import attrs

from agentflow_core import Score, Trajectory
from agentflow_rl.benchmarks.extract import candidates
from agentflow_rl.benchmarks.math import last_number
from agentflow_rl.benchmarks.normalize import as_number
from agentflow_rl.benchmarks.qa import exact_match as qa_exact_match
from agentflow_rl.benchmarks.qa import token_f1
from agentflow_rl.flow_grpo.tasks.records import TrainRecord

#: Reads an answer against a record's gold answers (a benchmark's ``score`` fits).
Scorer = Callable[[TrainRecord, str], Score]


def exact_match(record: TrainRecord, answer: str) -> Score:
    """Normalised exact match (case, punctuation, articles, spaces ignored) against any gold answer.

    >>> exact_match(TrainRecord("1", "q", ("The Beatles",)), "beatles").correct
    True
    """
    got = _normalise(answer)
    correct = any(got == _normalise(gold) for gold in record.answers)
    return Score(correct=correct, value=float(correct), method="exact_match", extracted=answer.strip())


def short_answer(record: TrainRecord, answer: str) -> Score:
    """The reply's short answer (its ``Answer:`` line) against the gold answers, as a benchmark would read it.

    Where every gold answer is a number, the answer's last number must equal one: exactly for a whole
    gold number, within rounding to two decimals otherwise (a printed ``19.308000000000003`` or a
    rounded ``19.31`` for ``19.308``); the value is 0 or 1. Otherwise normalised exact match, with the
    token F1 as the graded value.

    >>> short_answer(TrainRecord("1", "q", ("391",)), "17 * 23 is 391.\\n\\nAnswer: 391").correct
    True
    >>> short_answer(TrainRecord("1", "q", ("391",)), "The product.\\n\\nAnswer: 17 * 23").correct
    False
    """
    spans = candidates(answer)
    golds = [as_number(gold) for gold in record.answers]
    if golds and all(gold is not None for gold in golds):
        for span in spans:
            got = last_number(span)
            if got is not None and any(_close(got, gold) for gold in golds if gold is not None):
                return Score(correct=True, value=1.0, method="number", extracted=span)
        return Score(correct=False, value=0.0, method="number", extracted=spans[0] if spans else "")
    for span in spans:
        if qa_exact_match(span, record.answers):
            return Score(correct=True, value=1.0, method="exact_match", extracted=span)
    f1 = max((token_f1(span, record.answers) for span in spans), default=0.0)
    return Score(correct=False, value=f1, method="exact_match", extracted=spans[0] if spans else "")


def _close(got: Fraction, gold: Fraction) -> bool:
    if gold.denominator == 1:
        return got == gold
    return abs(got - gold) <= Fraction(1, 200)


#: The scorers a records task can name (``[task] scorer``).
SCORERS: dict[str, Scorer] = {"exact_match": exact_match, "short_answer": short_answer}


@attrs.frozen
class RewardContext:
    record: TrainRecord
    #: The final answer text ("" when the solve produced none).
    answer: str
    trajectory: Trajectory | None = None
    #: How the task judges an answer against the record's gold answers.
    scorer: Scorer = exact_match


class RewardFn(Protocol):
    def __call__(self, context: RewardContext) -> float: ...


def context_for(record: TrainRecord, trajectory: Trajectory, scorer: Scorer = exact_match) -> RewardContext:
    return RewardContext(record, trajectory.answer or "", trajectory, scorer)


def outcome(context: RewardContext) -> float:
    """1.0 when the scorer calls the final answer correct, else 0.0 — the paper's only reward.

    >>> outcome(RewardContext(TrainRecord("1", "q", ("Paris",)), "paris."))
    1.0
    """
    return 1.0 if context.scorer(context.record, context.answer).correct else 0.0


def graded(context: RewardContext) -> float:
    """The scorer's graded value in [0, 1] instead of right/wrong."""
    return float(context.scorer(context.record, context.answer).value)


def tool_choice(context: RewardContext) -> float:
    """1.0 when the planner's first chosen tool is the record's gold tool (``tool`` in the row).

    A trajectory with no turn, or a record without a gold tool, earns 0.
    """
    gold = context.record.tool
    steps = context.trajectory.steps if context.trajectory is not None else ()
    return 1.0 if gold is not None and steps and steps[0].decision.tool == gold else 0.0


def outcome_reward(scorer: Scorer) -> RewardFn:
    """``outcome`` judged by ``scorer`` whatever the context says, for code that holds a scorer."""

    def reward(context: RewardContext) -> float:
        return outcome(attrs.evolve(context, scorer=scorer))

    return reward


#: The built-in rewards, each with the one-line description ``agentflow plugins`` shows.
BUILTIN_REWARDS: dict[str, tuple[RewardFn, str]] = {
    "outcome": (outcome, "1 when the final answer is right (the task's scorer)"),
    "graded": (graded, "the scorer's graded value in [0, 1]"),
    "tool_choice": (tool_choice, "1 when the planner's first tool is the record's gold tool"),
}


_PUNCTUATION = str.maketrans("", "", string.punctuation)


def _normalise(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).lower().translate(_PUNCTUATION)
    return " ".join(re.sub(r"\b(a|an|the)\b", " ", text).split())
