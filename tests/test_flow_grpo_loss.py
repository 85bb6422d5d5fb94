"""The clipped objective, the k3 KL and the aggregation weights."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from agentflow_rl.flow_grpo.loss import (  # noqa: E402
    AGGREGATIONS,
    ClipSettings,
    LossType,
    TurnShape,
    k3_kl,
    token_terms,
    turn_weights,
)

SETTINGS = ClipSettings(clip_low=0.2, clip_high=0.3, kl_coef=0.0)


def test_at_the_first_update_the_ratio_is_one_and_clipping_changes_nothing() -> None:
    logp = torch.log(torch.tensor([[0.3, 0.6, 0.1]]))
    advantages = torch.tensor([[1.5, -0.5, 0.0]])
    terms = token_terms(logp, logp.clone(), advantages, SETTINGS)
    assert torch.equal(terms.ratio, torch.ones_like(logp))
    unclipped = -(terms.ratio * advantages)
    assert torch.allclose(terms.loss, unclipped)
    assert not terms.low_clipped.any() and not terms.high_clipped.any()


def test_low_and_high_clips_are_separate() -> None:
    old = torch.zeros(1, 4)
    logp = torch.log(torch.tensor([[1.5, 1.5, 0.5, 0.5]]))  # ratios 1.5, 1.5, 0.5, 0.5
    advantages = torch.tensor([[1.0, -1.0, 1.0, -1.0]])
    terms = token_terms(logp, old, advantages, SETTINGS)
    # A>0 and r>1+0.3: capped at 1.3; A<0 and r<1-0.2: capped at 0.8; otherwise the ratio stands.
    assert terms.loss.tolist()[0] == pytest.approx([-1.3, 1.5, -0.5, 0.8])
    assert terms.high_clipped.tolist() == [[True, False, False, False]]
    assert terms.low_clipped.tolist() == [[False, False, False, True]]


def test_kl_is_zero_when_policy_equals_reference_and_positive_otherwise() -> None:
    logp = torch.log(torch.tensor([0.2, 0.5, 0.9]))
    assert torch.equal(k3_kl(logp, logp), torch.zeros(3))
    assert (k3_kl(logp, logp - 0.3) > 0).all()
    terms = token_terms(logp, logp, torch.zeros(3), ClipSettings(kl_coef=0.5), ref_logp=logp.clone())
    assert torch.equal(terms.kl, torch.zeros(3))


def test_flow_grpo_weights_average_tokens_then_turns_then_trajectories_then_groups() -> None:
    # Group 0: trajectory a with turns of 2 and 4 tokens, trajectory b with one turn of 5; group 1: c, one turn of 1.
    turns = [TurnShape(2, "a", 0), TurnShape(4, "a", 0), TurnShape(5, "b", 0), TurnShape(1, "c", 1)]
    weights = turn_weights(LossType.FLOW_GRPO, turns)
    # tokens x turns in trajectory x trajectories in group x groups
    expected = [1 / (2 * 2 * 2 * 2), 1 / (4 * 2 * 2 * 2), 1 / (5 * 1 * 2 * 2), 1 / (1 * 1 * 1 * 2)]
    assert weights == pytest.approx(expected)
    assert sum(w * t.tokens for w, t in zip(weights, turns, strict=True)) == pytest.approx(1.0)


@pytest.mark.parametrize("loss_type", list(LossType))
def test_every_loss_type_has_an_aggregation(loss_type: LossType) -> None:
    turns = [TurnShape(3, 0, 0), TurnShape(1, 1, 0)]
    weights = AGGREGATIONS[loss_type](turns)
    assert len(weights) == 2 and all(w > 0 for w in weights)
    if loss_type is not LossType.DR_GRPO:
        assert sum(w * t.tokens for w, t in zip(weights, turns, strict=True)) == pytest.approx(1.0)
