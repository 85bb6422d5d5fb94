"""Group-relative advantages, checked against values worked out by hand."""

from __future__ import annotations

import pytest

from agentflow_rl.flow_grpo.advantages import (
    AdvantageMode,
    advantages,
    normalise,
    trajectory_advantages,
    turn_advantages,
)


def test_trajectory_advantages_equal_hand_computed_values() -> None:
    # Group a: rewards 1,0,0,0 -> mean 0.25, sample std 0.5.  Group b: 1,1,0 -> mean 2/3, std 1/sqrt(3).
    got = trajectory_advantages([1, 0, 0, 0, 1, 1, 0], groups=["a", "a", "a", "a", "b", "b", "b"])
    b_std = (1 / 3) ** 0.5
    expected = [1.5, -0.5, -0.5, -0.5, (1 / 3) / b_std, (1 / 3) / b_std, (-2 / 3) / b_std]
    assert got == pytest.approx(expected, rel=1e-5)


def test_the_reference_per_turn_variant_counts_turns_in_the_statistics() -> None:
    # Rewards 1, 0 with 3 and 1 turns: the turn multiset is 1,1,1,0 -> mean 0.75, std 0.5.
    got = turn_advantages([1.0, 0.0], groups=[0, 0], turn_counts=[3, 1])
    assert got == pytest.approx([0.5, -1.5], rel=1e-5)


def test_the_same_advantage_lands_on_every_turn_of_a_trajectory() -> None:
    rewards, groups, turns = [1.0, 0.0, 0.0, 1.0], [0, 0, 1, 1], [3, 1, 2, 2]
    per_turn = advantages(AdvantageMode.TRAJECTORY, rewards, groups, turns)
    assert [len(t) for t in per_turn] == turns
    assert all(len(set(t)) == 1 for t in per_turn)
    assert [t[0] for t in per_turn] == pytest.approx(trajectory_advantages(rewards, groups))


@pytest.mark.parametrize("mode", [AdvantageMode.TRAJECTORY, AdvantageMode.TURN])
def test_a_group_with_equal_rewards_gets_zero_advantage(mode: AdvantageMode) -> None:
    per_turn = advantages(mode, [1.0, 1.0, 1.0, 0.0, 1.0], [0, 0, 0, 1, 1], [2, 3, 1, 2, 2])
    assert per_turn[:3] == [(0.0, 0.0), (0.0, 0.0, 0.0), (0.0,)]
    assert per_turn[3][0] < 0 < per_turn[4][0]


def test_a_lone_trajectory_has_nothing_to_compare_with() -> None:
    assert normalise([1.0]) == [0.0]


def test_without_scaling_only_the_mean_is_removed() -> None:
    got = trajectory_advantages([1.0, 0.0, 0.0, 0.0], [0] * 4, scale=False)
    assert got == pytest.approx([0.75, -0.25, -0.25, -0.25])


def test_the_ablations_ignore_the_reward() -> None:
    rewards, groups, turns = [1.0, 0.0, 0.0, 0.0], [0, 0, 1, 1], [1, 1, 1, 1]
    assert advantages(AdvantageMode.NONE, rewards, groups, turns) == [(0.0,)] * 4
    shuffled = advantages(AdvantageMode.SHUFFLED, rewards, groups, turns, seed=3)
    assert sorted(t[0] for t in shuffled) == pytest.approx(
        sorted(t[0] for t in advantages(AdvantageMode.TRAJECTORY, rewards, groups, turns))
    )
