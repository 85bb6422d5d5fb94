"""Reward functions: small, pure, one number per trajectory.

A reward function takes one :class:`RewardContext` (the question with its gold answers, and the
finished trajectory) and returns a float; Flow-GRPO uses a single outcome reward per trajectory
and lets the advantage carry it to every Planner turn.

>>> from agentflow_rl.flow_grpo.data import TrainRecord
>>> reward = outcome_reward(exact_match)
>>> reward(RewardContext(TrainRecord("1", "2+2?", ("4",)), answer="4"))
1.0
"""

from __future__ import annotations

import re
import string
import unicodedata
from collections.abc import Callable
from typing import Protocol

import attrs

from agentflow_core import Score, Trajectory
from agentflow_rl.flow_grpo.data import TrainRecord

#: Reads an answer against a record's gold answers (a benchmark's ``score`` fits).
Scorer = Callable[[TrainRecord, str], Score]


@attrs.frozen
class RewardContext:
    record: TrainRecord
    #: The final answer text ("" when the solve produced none).
    answer: str
    trajectory: Trajectory | None = None


class RewardFn(Protocol):
    def __call__(self, context: RewardContext) -> float: ...


def context_for(record: TrainRecord, trajectory: Trajectory) -> RewardContext:
    return RewardContext(record, trajectory.answer or "", trajectory)


def outcome_reward(scorer: Scorer) -> RewardFn:
    """1.0 when ``scorer`` calls the final answer correct, else 0.0 — the paper's only reward.

    >>> outcome_reward(exact_match)(RewardContext(TrainRecord("1", "q", ("Paris",)), "paris."))
    1.0
    """

    def reward(context: RewardContext) -> float:
        return 1.0 if scorer(context.record, context.answer).correct else 0.0

    return reward


def graded_reward(scorer: Scorer) -> RewardFn:
    """The scorer's graded value in [0, 1] (token F1, say) instead of right/wrong."""

    def reward(context: RewardContext) -> float:
        return float(scorer(context.record, context.answer).value)

    return reward


def exact_match(record: TrainRecord, answer: str) -> Score:
    """Normalised exact match (case, punctuation, articles, spaces ignored) against any gold answer.

    >>> exact_match(TrainRecord("1", "q", ("The Beatles",)), "beatles").correct
    True
    """
    got = _normalise(answer)
    correct = any(got == _normalise(gold) for gold in record.answers)
    return Score(correct=correct, value=float(correct), method="exact_match", extracted=answer.strip())


_PUNCTUATION = str.maketrans("", "", string.punctuation)


def _normalise(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).lower().translate(_PUNCTUATION)
    return " ".join(re.sub(r"\b(a|an|the)\b", " ", text).split())
