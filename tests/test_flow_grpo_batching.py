"""From real rollouts to the loss: masking, log-probability agreement, zero-advantage gradients."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from agentflow_core import Solver  # noqa: E402
from agentflow_rl.flow_grpo.advantages import AdvantageMode, advantages  # noqa: E402
from agentflow_rl.flow_grpo.batching import TurnSample, build_samples, collate, completion_logprobs  # noqa: E402
from agentflow_rl.flow_grpo.loss import ClipSettings, LossType, token_terms, weighted_loss  # noqa: E402
from agentflow_rl.flow_grpo.policy import frozen_copy  # noqa: E402
from agentflow_rl.flow_grpo.rollout import Rollout, rollout_batch  # noqa: E402
from agentflow_rl.flow_grpo.testing import TinyWorld, tiny_world  # noqa: E402
from agentflow_rl.flow_grpo.update import learnable  # noqa: E402

TEMPERATURE = 0.7


@pytest.fixture(scope="module")
def world() -> TinyWorld:
    return tiny_world()


@pytest.fixture(scope="module")
def rollouts(world: TinyWorld) -> list[Rollout]:
    """Two groups of four real trajectories at temperature 0.7; prompts of several lengths."""
    import asyncio

    async def run() -> list[Rollout]:
        async with Solver(world.config(TEMPERATURE), registry=world.registry) as solver:
            questions = [r for r in world.task.split()[0] if "plus" in r.question][:2]
            return await rollout_batch(solver, questions, 4)

    return asyncio.run(run())


def _samples(rollouts: list[Rollout], rewards: list[float] | None = None) -> list[TurnSample]:
    rewards = rewards if rewards is not None else [float(i % 2) for i in range(len(rollouts))]
    per_turn = advantages(
        AdvantageMode.TRAJECTORY, rewards, [r.group for r in rollouts], [len(r.turns) for r in rollouts]
    )
    return build_samples(rollouts, per_turn, LossType.FLOW_GRPO)


def test_every_planner_turn_is_collected_with_its_trace(rollouts: list[Rollout]) -> None:
    for rollout in rollouts:
        assert len(rollout.turns) == len(rollout.trajectory.steps) >= 1
        for trace in rollout.turns:
            assert len(trace.completion_ids) == len(trace.completion_logprobs) > 0


def test_recomputed_logprobs_match_those_recorded_at_rollout(world: TinyWorld, rollouts: list[Rollout]) -> None:
    samples = _samples(rollouts)
    assert len({len(s.prompt_ids) for s in samples}) > 1  # padding is really exercised
    batch = collate(samples, pad_id=world.tokenizer.pad_token_id)
    with torch.no_grad():
        logp, _ = completion_logprobs(world.model, batch, TEMPERATURE)
    mask = batch.completion_mask.bool()
    assert torch.allclose(logp[mask], batch.old_logprobs[mask], atol=1e-4)


def test_masking_excludes_prompt_and_padding_tokens(world: TinyWorld) -> None:
    samples = [
        TurnSample((4, 10, 11, 12, 5), (6, 19, 7, 2), (-1.0, -2.0, -3.0, -4.0), 1.0, 0.25),
        TurnSample((4, 10, 5), (6, 20), (-1.5, -2.5), -1.0, 0.25),
    ]
    batch = collate(samples, pad_id=0)
    assert batch.completion_mask.tolist() == [[1, 1, 1, 1], [1, 1, 0, 0]]
    assert batch.attention_mask.tolist() == [[1, 1, 1, 1, 1, 1, 1, 1, 1], [0, 0, 1, 1, 1, 1, 1, 0, 0]]
    assert batch.position_ids[1].tolist()[2:7] == [0, 1, 2, 3, 4]  # counted from the first real token
    # Garbage in the padded slots (recorded logprobs, advantages) must not change the loss.
    logp, _ = completion_logprobs(world.model, batch, 1.0)
    clean = weighted_loss(
        token_terms(logp, batch.old_logprobs, batch.advantages, ClipSettings()), batch.weights, batch.completion_mask
    )
    dirty_old, dirty_adv = batch.old_logprobs.clone(), batch.advantages.clone()
    dirty_old[1, 2:], dirty_adv[1, 2:] = 123.0, -50.0
    dirty = weighted_loss(token_terms(logp, dirty_old, dirty_adv, ClipSettings()), batch.weights, batch.completion_mask)
    assert torch.equal(clean, dirty)


def test_all_equal_group_rewards_give_zero_gradient(world: TinyWorld, rollouts: list[Rollout]) -> None:
    samples = _samples(rollouts, rewards=[1.0] * len(rollouts))
    assert all(s.advantage == 0.0 for s in samples)
    model = frozen_copy(world.model)  # a trainable copy: same weights as its reference
    for parameter in model.parameters():
        parameter.requires_grad_(True)
    reference = frozen_copy(world.model)
    batch = collate(samples, pad_id=world.tokenizer.pad_token_id)
    logp, _ = completion_logprobs(model, batch, TEMPERATURE)
    with torch.no_grad():
        ref_logp, _ = completion_logprobs(reference, batch, TEMPERATURE)
    terms = token_terms(logp, batch.old_logprobs, batch.advantages, ClipSettings(kl_coef=0.001), ref_logp)
    weighted_loss(terms, batch.weights, batch.completion_mask).backward()
    assert all(p.grad is None or torch.count_nonzero(p.grad) == 0 for p in model.parameters())


@pytest.mark.parametrize(
    ("kl_coef", "kl_on_zero_advantage", "kept"),
    [(0.001, True, [1.0, 0.0, -1.0]), (0.001, False, [1.0, -1.0]), (0.0, True, [1.0, -1.0])],
)
def test_zero_advantage_turns_are_trained_only_for_a_wanted_kl(
    kl_coef: float, kl_on_zero_advantage: bool, kept: list[float]
) -> None:
    samples = [TurnSample((1,), (2,), (-0.5,), advantage, 1.0) for advantage in (1.0, 0.0, -1.0)]

    chosen = learnable(samples, kl_coef, kl_on_zero_advantage=kl_on_zero_advantage)

    assert [s.advantage for s in chosen] == kept
