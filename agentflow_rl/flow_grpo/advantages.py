"""Group-relative advantages: how much better one trajectory did than its siblings.

Flow-GRPO gives every trajectory one outcome reward and normalises it within the group of G
trajectories sampled for the same question, ``A = (R - mean) / (std + eps)``; the same ``A`` then
lands on every Planner turn of that trajectory, so an early good choice (a lookup that made the
final answer possible) is credited exactly like the last one. A group whose rewards are all equal
teaches nothing and gets zero advantage everywhere.

The reference implementation instead treats each turn as a separate sample and takes the group's
mean and standard deviation over turns (so longer trajectories weigh more in the statistics);
``AdvantageMode.TURN`` reproduces that. ``NONE`` and ``SHUFFLED`` are ablations that ignore the
reward: the first gives no policy gradient, the second the same spread of updates with the
reward's link to the trajectory cut.

>>> [round(a, 3) for a in trajectory_advantages([1.0, 0.0, 0.0, 0.0], groups=[0, 0, 0, 0])]
[1.5, -0.5, -0.5, -0.5]
"""

from __future__ import annotations

import enum
import math
import random
from collections import defaultdict
from collections.abc import Hashable, Sequence

#: Added to the standard deviation so a nearly uniform group does not explode.
EPS = 1e-6


class AdvantageMode(enum.Enum):
    #: The paper: one normalised outcome per trajectory, broadcast to all its turns.
    TRAJECTORY = "trajectory"
    #: The reference code: group statistics over turns rather than trajectories.
    TURN = "turn"
    #: Ablation: every advantage is zero, so rewards are ignored.
    NONE = "none"
    #: Ablation: rewards are permuted across the batch before normalising.
    SHUFFLED = "shuffled"


def normalise(values: Sequence[float], weights: Sequence[int] | None = None, *, scale: bool = True) -> list[float]:
    """``(v - mean) / (std + EPS)`` with the sample (Bessel) std; ``weights`` repeat values.

    A group of one, or of equal values, gives zeros: there is nothing to compare with.
    """
    counts = list(weights) if weights is not None else [1] * len(values)
    total = sum(counts)
    if total < 2:
        return [0.0] * len(values)
    mean = sum(v * c for v, c in zip(values, counts, strict=True)) / total
    if all(v == values[0] for v in values):
        return [0.0] * len(values)
    variance = sum(c * (v - mean) ** 2 for v, c in zip(values, counts, strict=True)) / (total - 1)
    spread = math.sqrt(variance) + EPS if scale else 1.0
    return [(v - mean) / spread for v in values]


def trajectory_advantages(rewards: Sequence[float], groups: Sequence[Hashable], *, scale: bool = True) -> list[float]:
    """One advantage per trajectory, normalised within its group."""
    return _by_group(rewards, groups, [1] * len(rewards), scale)


def turn_advantages(
    rewards: Sequence[float], groups: Sequence[Hashable], turn_counts: Sequence[int], *, scale: bool = True
) -> list[float]:
    """Per trajectory, as if each of its turns were a sample carrying the trajectory's reward."""
    return _by_group(rewards, groups, turn_counts, scale)


def _by_group(rewards: Sequence[float], groups: Sequence[Hashable], counts: Sequence[int], scale: bool) -> list[float]:
    members: dict[Hashable, list[int]] = defaultdict(list)
    for index, group in enumerate(groups):
        members[group].append(index)
    out = [0.0] * len(rewards)
    for indices in members.values():
        values = normalise([rewards[i] for i in indices], [counts[i] for i in indices], scale=scale)
        for i, value in zip(indices, values, strict=True):
            out[i] = value
    return out


def advantages(
    mode: AdvantageMode,
    rewards: Sequence[float],
    groups: Sequence[Hashable],
    turn_counts: Sequence[int],
    *,
    scale: bool = True,
    seed: int = 0,
) -> list[tuple[float, ...]]:
    """The advantage of every turn, per trajectory: ``result[i][t]`` for turn ``t`` of trajectory ``i``."""
    if mode is AdvantageMode.NONE:
        per_trajectory = [0.0] * len(rewards)
    elif mode is AdvantageMode.TURN:
        per_trajectory = turn_advantages(rewards, groups, turn_counts, scale=scale)
    else:
        if mode is AdvantageMode.SHUFFLED:
            rewards = list(rewards)
            random.Random(seed).shuffle(rewards)
        per_trajectory = trajectory_advantages(rewards, groups, scale=scale)
    return [(a,) * n for a, n in zip(per_trajectory, turn_counts, strict=True)]


def failed_groups(rewards: Sequence[float], groups: Sequence[Hashable]) -> set[Hashable]:
    """The groups in which no trajectory earned any reward (every reward <= 0).

    >>> sorted(failed_groups([0.0, 0.0, 1.0, 0.0, 0.5, 0.5], groups=[0, 0, 1, 1, 2, 2]))
    [0]
    """
    best: dict[Hashable, float] = {}
    for reward, group in zip(rewards, groups, strict=True):
        best[group] = max(best.get(group, reward), reward)
    return {group for group, reward in best.items() if reward <= 0}
