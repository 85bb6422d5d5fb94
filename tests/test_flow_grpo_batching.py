"""From real rollouts to the loss: masking, log-probability agreement, zero-advantage gradients."""

from __future__ import annotations

from typing import Any

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from agentflow_core import Solver  # noqa: E402
from agentflow_rl.flow_grpo.advantages import AdvantageMode, advantages, failed_groups  # noqa: E402
from agentflow_rl.flow_grpo.collation import TurnSample, build_samples, collate  # noqa: E402
from agentflow_rl.flow_grpo.logprobs import completion_logprobs  # noqa: E402
from agentflow_rl.flow_grpo.loss import ClipSettings, LossType, token_terms, weighted_loss  # noqa: E402
from agentflow_rl.flow_grpo.masking import GrammarReplay  # noqa: E402
from agentflow_rl.flow_grpo.model.trained import frozen_copy  # noqa: E402
from agentflow_rl.flow_grpo.rollout import Rollout, rollout_batch  # noqa: E402
from agentflow_rl.flow_grpo.testing import TinyWorld, tiny_world  # noqa: E402
from agentflow_rl.flow_grpo.update import learnable  # noqa: E402

TEMPERATURE = 0.7


@pytest.fixture(scope="module")
def world() -> TinyWorld:
    return tiny_world()


def _rollouts(world: TinyWorld, max_batch: int = 1) -> list[Rollout]:
    """Two groups of four real trajectories at temperature 0.7; prompts of several lengths."""
    import asyncio

    async def run() -> list[Rollout]:
        config = world.config(TEMPERATURE, max_batch=max_batch, seed=11)
        async with Solver(config, registry=world.registry) as solver:
            questions = [r for r in world.task.split()[0] if "plus" in r.question][:2]
            return (await rollout_batch(solver, questions, 4)).rollouts

    return asyncio.run(run())


@pytest.fixture(scope="module")
def rollouts(world: TinyWorld) -> list[Rollout]:
    return _rollouts(world)


def _samples(
    rollouts: list[Rollout], rewards: list[float] | None = None, replay: GrammarReplay | None = None
) -> list[TurnSample]:
    rewards = rewards if rewards is not None else [float(i % 2) for i in range(len(rollouts))]
    per_turn = advantages(
        AdvantageMode.TRAJECTORY, rewards, [r.group for r in rollouts], [len(r.turns) for r in rollouts]
    )
    return build_samples(rollouts, per_turn, LossType.FLOW_GRPO, replay)


def test_every_planner_turn_is_collected_with_its_trace(rollouts: list[Rollout]) -> None:
    for rollout in rollouts:
        assert len(rollout.turns) == len(rollout.trajectory.steps) >= 1
        for turn in rollout.turns:
            assert turn.role == "planner"
            assert len(turn.trace.completion_ids) == len(turn.trace.completion_logprobs) > 0
            assert turn.trace.grammar is not None and turn.trace.temperature == TEMPERATURE


@pytest.mark.parametrize("share", [True, False], ids=["shared-prompts", "full-rows"])
@pytest.mark.parametrize("max_batch", [1, 64], ids=["alone", "batched"])
def test_masked_logprobs_recomputed_at_the_first_pass_equal_those_recorded(
    world: TinyWorld, max_batch: int, share: bool
) -> None:
    samples = _samples(_rollouts(world, max_batch), replay=GrammarReplay(world.model, world.tokenizer))
    assert len({len(s.prompt_ids) for s in samples}) > 1  # padding is really exercised
    assert len({s.prompt_ids for s in samples}) < len(samples)  # and prompts that rows share
    batch = collate(samples, pad_id=world.tokenizer.pad_token_id)
    with torch.no_grad():
        logp, _ = completion_logprobs(world.model, batch, share_prompts=share)
    real = torch.tensor(
        [[1.0] * len(s.completion_ids) + [0.0] * (batch.completion_width - len(s.completion_ids)) for s in samples]
    ).bool()
    assert torch.allclose(logp[real], batch.old_logprobs[real], atol=1e-4)  # forced positions too
    ratio = token_terms(logp, batch.old_logprobs, batch.advantages, ClipSettings()).ratio
    assert torch.allclose(ratio[real], torch.ones_like(ratio[real]), atol=1e-4)


def test_only_the_tool_name_is_a_real_choice_in_a_tiny_planner_reply(world: TinyWorld, rollouts: list[Rollout]) -> None:
    """``{"tool": "`` · NAME · ``"}`` · END: the grammar forces all but the name (one token here)."""
    samples = _samples(rollouts, replay=GrammarReplay(world.model, world.tokenizer))
    names = {world.tokenizer.convert_tokens_to_ids(t) for t in ("lookup", "double", "square", "add")}
    for sample in samples:
        assert sample.free is not None and sample.trained_tokens == 1
        [chosen] = [token for token, free in zip(sample.completion_ids, sample.free, strict=True) if free]
        assert chosen in names


def test_a_forced_token_adds_exactly_nothing_to_loss_kl_and_entropy(world: TinyWorld, rollouts: list[Rollout]) -> None:
    samples = _samples(rollouts, replay=GrammarReplay(world.model, world.tokenizer))
    model = frozen_copy(world.model)
    for parameter in model.parameters():
        parameter.requires_grad_(True)
    batch = collate(samples, pad_id=world.tokenizer.pad_token_id)
    logp, entropy = completion_logprobs(model, batch)
    with torch.no_grad():
        perturbed = frozen_copy(world.model)
        for parameter in perturbed.parameters():
            parameter.add_(0.05 * torch.randn_like(parameter))  # a reference that disagrees with the policy
        ref_logp, _ = completion_logprobs(perturbed, batch)
    forced = torch.zeros_like(batch.completion_mask, dtype=torch.bool)
    for row, sample in enumerate(samples):
        forced[row, : len(sample.completion_ids)] = torch.tensor([not f for f in sample.free])
    assert forced.any()
    # Under the masked distribution a forced token has probability 1 for any weights...
    assert torch.equal(logp[forced], torch.zeros_like(logp[forced]))
    assert torch.equal(ref_logp[forced], torch.zeros_like(ref_logp[forced]))
    assert torch.equal(entropy[forced], torch.zeros_like(entropy[forced]))
    terms = token_terms(logp, batch.old_logprobs, batch.advantages, ClipSettings(kl_coef=0.5), ref_logp)
    assert torch.equal(terms.kl[forced], torch.zeros_like(terms.kl[forced]))
    # ...and it is outside the loss mask besides, so even garbage recorded there changes nothing.
    assert not batch.completion_mask.bool()[forced].any()
    dirty = batch.old_logprobs.clone()
    dirty[forced] = -7.0
    clean_loss = weighted_loss(terms, batch.weights, batch.completion_mask)
    dirty_terms = token_terms(logp, dirty, batch.advantages, ClipSettings(kl_coef=0.5), ref_logp)
    assert torch.equal(clean_loss, weighted_loss(dirty_terms, batch.weights, batch.completion_mask))
    assert terms.kl[batch.completion_mask.bool()].sum() > 0  # the free tokens do feel the KL


def test_entropy_summed_block_by_block_is_that_of_the_whole_masked_distribution(
    world: TinyWorld, rollouts: list[Rollout], monkeypatch: pytest.MonkeyPatch
) -> None:
    from agentflow_core.engines.grammar import unpack
    from agentflow_rl.flow_grpo import logprobs

    samples = _samples(rollouts, replay=GrammarReplay(world.model, world.tokenizer))
    batch = collate(samples, pad_id=world.tokenizer.pad_token_id)
    trained = batch.completion_mask.bool()
    monkeypatch.setattr(logprobs, "_ENTROPY_BLOCK", 3)
    assert int(trained.sum()) % 3 and int(trained.sum()) > 3  # several blocks, the last one short
    with torch.no_grad():
        _, blockwise = completion_logprobs(world.model, batch, share_prompts=False)
        _, whole = completion_logprobs(world.model, batch, share_prompts=False, entropy_grad=True)
        out = world.model(
            input_ids=batch.input_ids, attention_mask=batch.attention_mask, position_ids=batch.position_ids
        )
        width = batch.completion_width
        logits = out.logits[:, -(width + 1) : -1][trained].float() / TEMPERATURE
        allowed = unpack(batch.allowed[trained], logits.shape[-1])
        probabilities = torch.softmax(logits.masked_fill(~allowed, float("-inf")), dim=-1)
        direct = -(probabilities * probabilities.clamp_min(1e-30).log()).sum(-1)
    assert torch.allclose(blockwise[trained], direct, atol=1e-4)
    assert torch.allclose(whole[trained], direct, atol=1e-4)
    assert torch.equal(blockwise[~trained], torch.zeros_like(blockwise[~trained]))
    assert float(direct.max()) > 0.01  # not a batch of one-token sets


def test_the_head_scores_only_trained_positions_and_the_pass_leaves_no_hook(
    world: TinyWorld, rollouts: list[Rollout]
) -> None:
    from agentflow_rl.flow_grpo import logprobs

    batch = collate(_samples(rollouts), pad_id=world.tokenizer.pad_token_id)
    trained = batch.completion_mask.bool()
    head = world.model.get_output_embeddings()
    hooks = dict(head._forward_pre_hooks)
    seen: list[tuple[int, ...]] = []
    watch = head.register_forward_hook(lambda module, args, out: seen.append(tuple(out.shape)))
    try:
        with torch.no_grad():
            picked = logprobs._trained_position_logits(world.model, batch, trained)
    finally:
        watch.remove()
    assert dict(head._forward_pre_hooks) == hooks
    vocabulary = picked.shape[-1]
    assert seen == [(1, int(trained.sum()), vocabulary)]  # no [rows, columns, vocabulary] tensor
    with torch.no_grad():
        width = batch.completion_width
        full = world.model(
            input_ids=batch.input_ids, attention_mask=batch.attention_mask, position_ids=batch.position_ids
        ).logits[:, -(width + 1) : -1][trained]
    assert torch.allclose(picked, full, atol=1e-5)


def test_unpack_reads_token_32w_plus_k_from_bit_k_of_word_w() -> None:
    from agentflow_core.engines.grammar import unpack

    packed = torch.zeros(2, 3, dtype=torch.int32)
    tokens = [[0, 7, 8, 31, 32, 63, 64, 95], [5, 40, 70]]
    for row, chosen in enumerate(tokens):
        for token in chosen:
            word, bit = divmod(token, 32)
            packed[row, word] |= torch.tensor(1 << bit, dtype=torch.int64).to(torch.int32)
    bits = unpack(packed, 90)
    assert bits.shape == (2, 90) and bits.dtype == torch.bool
    assert bits[0].nonzero().flatten().tolist() == [t for t in tokens[0] if t < 90]
    assert bits[1].nonzero().flatten().tolist() == tokens[1]
    assert unpack(packed.t().contiguous().t(), 96).tolist() == unpack(packed, 96).tolist()  # strided input


def test_sharing_prompts_gives_the_full_rows_loss_and_gradient(world: TinyWorld, rollouts: list[Rollout]) -> None:
    """Forwarding a shared prompt once must not change what each row's loss sees, nor its gradient."""
    samples = _samples(rollouts, replay=GrammarReplay(world.model, world.tokenizer))
    batch = collate(samples, pad_id=world.tokenizer.pad_token_id)
    gradients = []
    for share in (True, False):
        model = frozen_copy(world.model)
        for parameter in model.parameters():
            parameter.requires_grad_(True)
        logp, entropy = completion_logprobs(model, batch, share_prompts=share)
        # logp - 0.1: a ratio away from 1, so clipping is in play too
        terms = token_terms(logp - 0.1, batch.old_logprobs, batch.advantages, ClipSettings())
        weighted_loss(terms, batch.weights, batch.completion_mask).backward()
        gradients.append(([p.grad.clone() for p in model.parameters()], logp.detach(), entropy))
    (shared, logp_a, ent_a), (full, logp_b, ent_b) = gradients
    mask = batch.completion_mask.bool()
    assert torch.allclose(logp_a[mask], logp_b[mask], atol=1e-5)
    assert torch.allclose(ent_a[mask], ent_b[mask], atol=1e-5)
    assert any(torch.count_nonzero(g) for g in full)
    for a, b in zip(shared, full, strict=True):
        assert torch.allclose(a, b, atol=1e-6, rtol=1e-4)


def test_a_repeated_turn_is_forwarded_once_and_keeps_its_own_advantage(
    world: TinyWorld, rollouts: list[Rollout]
) -> None:
    """Turns repeated token for token share one forward; loss and gradient stay those of every row."""
    import attrs

    samples = _samples(rollouts, replay=GrammarReplay(world.model, world.tokenizer))
    # The same turns again, with other advantages and weights, as other trajectories of a group.
    twins = [attrs.evolve(s, advantage=0.3 - 2 * s.advantage, weight=s.weight * 1.5) for s in samples]
    everything = samples + twins
    distinct = len({(s.prompt_ids, s.completion_ids) for s in samples})
    results = []
    for merge in (True, False):
        batch = collate(everything, pad_id=world.tokenizer.pad_token_id, merge_repeats=merge)
        model = frozen_copy(world.model)
        for parameter in model.parameters():
            parameter.requires_grad_(True)
        rows: list[int] = []
        hook = model.register_forward_pre_hook(
            lambda _m, _a, kw, seen=rows: seen.append(len(kw["input_ids"])), with_kwargs=True
        )
        logp, entropy = completion_logprobs(model, batch, share_prompts=False)
        hook.remove()
        terms = token_terms(logp - 0.1, batch.old_logprobs, batch.advantages, ClipSettings())
        loss = weighted_loss(terms, batch.weights, batch.completion_mask)
        loss.backward()
        results.append((rows, loss.detach(), logp.detach(), entropy, [p.grad.clone() for p in model.parameters()]))
    (rows_m, loss_m, logp_m, ent_m, grad_m), (rows_a, loss_a, logp_a, ent_a, grad_a) = results
    assert rows_m == [distinct] and rows_a == [len(everything)]
    assert torch.allclose(loss_m, loss_a, atol=1e-6)
    assert torch.allclose(logp_m, logp_a, atol=1e-5) and torch.allclose(ent_m, ent_a, atol=1e-5)
    assert any(torch.count_nonzero(g) for g in grad_a)
    for a, b in zip(grad_m, grad_a, strict=True):
        assert torch.allclose(a, b, atol=1e-6, rtol=1e-4)


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
    logp, _ = completion_logprobs(world.model, batch)
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
    logp, _ = completion_logprobs(model, batch)
    with torch.no_grad():
        ref_logp, _ = completion_logprobs(reference, batch)
    terms = token_terms(logp, batch.old_logprobs, batch.advantages, ClipSettings(kl_coef=0.001), ref_logp)
    weighted_loss(terms, batch.weights, batch.completion_mask).backward()
    # Zero up to float rounding: policy and reference forwards may take different attention kernels.
    assert all(p.grad is None or float(p.grad.abs().max()) < 1e-9 for p in model.parameters())


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


def _failed_group_samples(world: TinyWorld, rollouts: list[Rollout], reward: float) -> list[TurnSample]:
    rewards = [reward] * len(rollouts)
    groups = [r.group for r in rollouts]
    per_turn = advantages(AdvantageMode.TRAJECTORY, rewards, groups, [len(r.turns) for r in rollouts])
    replay = GrammarReplay(world.model, world.tokenizer)
    return build_samples(rollouts, per_turn, LossType.FLOW_GRPO, replay, failed_groups(rewards, groups))


def _entropy_bonus_step(world: TinyWorld, samples: list[TurnSample], coef: float) -> tuple[float, float, Any]:
    """(entropy before, entropy after one SGD step on the loss, the model) over the masked distribution."""
    model = frozen_copy(world.model)
    for parameter in model.parameters():
        parameter.requires_grad_(True)
    batch = collate(samples, pad_id=world.tokenizer.pad_token_id)
    settings = ClipSettings(kl_coef=0.0, failed_group_entropy=coef)
    logp, entropy = completion_logprobs(model, batch, entropy_grad=True)
    terms = token_terms(logp, batch.old_logprobs, batch.advantages, settings, None, entropy, batch.failed_groups)
    weighted_loss(terms, batch.weights, batch.completion_mask).backward()
    mask = batch.completion_mask
    before = float((entropy * mask).sum())
    with torch.no_grad():
        for parameter in model.parameters():
            if parameter.grad is not None:
                assert torch.isfinite(parameter.grad).all()  # no nan from the tokens the grammar ruled out
                parameter.sub_(0.01 * parameter.grad)
        _, after = completion_logprobs(model, batch)
    return before, float((after * mask).sum()), model


def test_an_all_failed_group_is_pushed_towards_more_entropy_and_nothing_else(
    world: TinyWorld, rollouts: list[Rollout]
) -> None:
    failed = _failed_group_samples(world, rollouts, reward=0.0)
    assert all(s.failed_group and s.advantage == 0.0 for s in failed)
    before, after, _ = _entropy_bonus_step(world, failed, coef=1.0)
    assert after > before > 0

    # A group that all passed also has no advantage, but gets no bonus: its loss has no gradient.
    passed = _failed_group_samples(world, rollouts, reward=1.0)
    assert not any(s.failed_group for s in passed)
    _, _, model = _entropy_bonus_step(world, passed, coef=1.0)
    assert all(p.grad is None or float(p.grad.abs().max()) == 0.0 for p in model.parameters())


def test_failed_group_turns_are_trained_only_when_the_entropy_bonus_is_on() -> None:
    samples = [TurnSample((1,), (2,), (-0.5,), 0.0, 1.0, failed_group=f) for f in (True, False)]
    assert learnable(samples, 0.001, kl_on_zero_advantage=False) == []
    kept = learnable(samples, 0.001, kl_on_zero_advantage=False, failed_group_entropy=0.1)
    assert [s.failed_group for s in kept] == [True]


def test_tokens_written_by_jump_forward_are_not_trained_though_other_spellings_were_allowed(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """With a byte-level vocabulary the JSON around a value can be spelt in many token sequences; the
    engine writes one without sampling, so those positions are the policy's no more than forced ones."""
    import asyncio

    import attrs

    from agentflow_core import EngineConfig, GenerationRequest, JsonSchema, Message
    from agentflow_core.engines.grammar import unpack
    from agentflow_core.engines.hf_engine import HFEngine
    from agentflow_rl.flow_grpo.testing import save_tiny_chat_model

    folder = save_tiny_chat_model(tmp_path_factory.mktemp("bytes"), ['{"answer": "yes", "reason": "it is so"}'])
    schema = {
        "type": "object",
        "properties": {"answer": {"type": "string", "enum": ["yes", "no"]}, "reason": {"type": "string"}},
        "required": ["answer", "reason"],
        "additionalProperties": False,
    }
    engine = HFEngine(EngineConfig(model=f"hf:{folder}", temperature=1.0, options={"seed": 5}))
    request = GenerationRequest((Message("user", "Is it so?"),), json_schema=JsonSchema("a", schema), max_tokens=24)
    traces = [asyncio.run(engine.generate(request)).tokens for _ in range(3)]
    model, tokenizer = engine._model, engine._tokenizer
    replay = GrammarReplay(model, tokenizer)
    samples, several_spellings = [], 0
    for trace in traces:
        assert trace is not None and trace.filled
        sets = replay.allowed(trace)
        allowed = unpack(sets.packed, replay.vocab_size).sum(-1)
        several_spellings += sum(int(allowed[i]) > 1 for i in trace.filled)
        assert not any(sets.free[i] for i in trace.filled)
        assert all(sets.free[i] for i in range(len(trace.completion_ids)) if i not in trace.filled and allowed[i] > 1)
        sample = TurnSample(trace.prompt_ids, trace.completion_ids, trace.completion_logprobs, 1.0, 1.0, 1.0)
        samples.append(attrs.evolve(sample, allowed=sets.packed, free=sets.free))
    assert several_spellings > 0  # the case that matters: the grammar alone would call these free
    batch = collate(samples, pad_id=tokenizer.pad_token_id or 0)
    with torch.no_grad():
        logp, entropy = completion_logprobs(model, batch)
    mask = batch.completion_mask.bool()
    filled = torch.zeros_like(mask)
    for row, trace in enumerate(traces):
        filled[row, list(trace.filled)] = True
    assert not mask[filled].any()
    assert torch.equal(logp[filled], torch.zeros_like(logp[filled]))
    assert torch.equal(entropy[filled], torch.zeros_like(entropy[filled]))
    assert torch.allclose(logp[mask], batch.old_logprobs[mask], atol=1e-4)  # the sampled ones replay exactly
