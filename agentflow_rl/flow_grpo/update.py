"""One policy update: forward the turns in micro-batches, accumulate the weighted loss, step.

The importance ratio is the trainer's own: on the first pass over a rollout batch its "old"
log-probabilities are that pass's recomputation, detached (the weights have not moved yet, so the
ratio is 1), and later passes use what the first one computed (:func:`anchored`). The engine's
recorded log-probabilities only measure how far the rollout's numbers are from the trainer's (the
``logprob_gap`` figures): a vLLM server's kernels round differently, and a ratio against its
numbers would clip tokens the policy never moved.

Turns are grouped by trained module (each forward pass runs one module's adapter or model) and
accumulated without gradient synchronisation except on each model's last micro-batch, so a
multi-GPU run all-reduces once per model and optimizer step. A process that has nothing to learn
from (every advantage zero and no KL) still joins that all-reduce with a zero loss, or the others
would wait for it forever.
"""

from __future__ import annotations

import contextlib
from collections import defaultdict
from collections.abc import Iterator, Sequence
from typing import Any

import attrs

from agentflow_core.records import ModuleRole
from agentflow_rl.flow_grpo.collation import TurnSample, collate
from agentflow_rl.flow_grpo.logprobs import completion_logprobs
from agentflow_rl.flow_grpo.loss import ClipSettings, token_terms, weighted_loss
from agentflow_rl.flow_grpo.model.trained import TrainedModules
from agentflow_rl.flow_grpo.run import memory


@attrs.frozen
class UpdateContext:
    accelerator: Any
    modules: TrainedModules
    optimizer: Any
    settings: ClipSettings
    pad_id: int
    micro_batch_turns: int
    max_grad_norm: float
    share_prompts: bool = True
    #: Trim the allocator's heaps after each micro-batch (``[run] release_freed_memory``).
    release_memory: bool = False


@attrs.define
class UpdateStats:
    loss: float = 0.0
    kl: float = 0.0
    #: Largest per-token k3 KL of the pass.
    kl_max: float = 0.0
    entropy: float = 0.0
    ratio_mean: float = 0.0
    clip_low_fraction: float = 0.0
    clip_high_fraction: float = 0.0
    #: Largest |recomputed - recorded| log-probability of a trained token on the first pass: how far
    #: the rollout engine's numbers are from the trainer's.
    logprob_gap: float = 0.0
    #: The same gap, averaged over the trained tokens, and its 99th percentile.
    logprob_gap_mean: float = 0.0
    logprob_gap_p99: float = 0.0
    grad_norm: float = 0.0
    #: Completion tokens trained on (the loss's tokens).
    tokens: int = 0
    #: Prompt and completion tokens forwarded (what a pass costs).
    sequence_tokens: int = 0
    #: The same figures per trained module.
    by_role: dict[str, UpdateStats] = attrs.field(factory=dict)
    #: The first pass's log-probabilities of each sample's completion, in the order of the samples
    #: (empty after a later pass): the old policy of the passes after it.
    recomputed: list[tuple[float, ...]] = attrs.field(factory=list)


def learnable(
    samples: Sequence[TurnSample],
    kl_coef: float,
    *,
    kl_on_zero_advantage: bool = True,
    failed_group_entropy: float = 0.0,
) -> list[TurnSample]:
    """Turns worth a forward/backward pass: with no KL (or KL not wanted there), a zero advantage
    moves nothing, except on a failed group's turns when they carry an entropy bonus."""
    if kl_coef > 0 and kl_on_zero_advantage:
        return list(samples)
    return [s for s in samples if s.advantage != 0.0 or (failed_group_entropy > 0 and s.failed_group)]


def policy_update(ctx: UpdateContext, samples: Sequence[TurnSample], *, first_pass: bool = True) -> UpdateStats:
    """Accumulate gradients over all ``samples`` and take one optimizer step.

    On the ``first_pass`` the ratio's old log-probabilities are the pass's own; later passes take
    ``samples`` re-anchored on them (:func:`anchored`).
    """
    ctx.modules.train_mode(True)
    sums: dict[str, _Sums] = defaultdict(_Sums)
    recomputed: dict[int, tuple[float, ...]] = {}
    by_role: dict[ModuleRole, list[TurnSample]] = defaultdict(list)
    for sample in samples:
        by_role[sample.role].append(sample)
    last_of_model = {ctx.modules.prepared(role): role for role in by_role}  # dicts keep the last role per model
    for role, turns in by_role.items():
        chunks = list(_chunks(turns, ctx.micro_batch_turns, by_prompt=ctx.share_prompts))
        for index, chunk in enumerate(chunks):
            sync = index == len(chunks) - 1 and last_of_model[ctx.modules.prepared(role)] == role
            with contextlib.nullcontext() if sync else ctx.accelerator.no_sync(ctx.modules.prepared(role)):
                _micro_step(ctx, role, chunk, sums[role], recomputed if first_pass else None)
            if ctx.release_memory:
                memory.trim()
    if not samples:
        _zero_backward(ctx)
    stats = _total(sums)
    if ctx.max_grad_norm > 0:
        parameters = ctx.modules.parameters()
        stats.grad_norm = float(ctx.accelerator.clip_grad_norm_(parameters, ctx.max_grad_norm))
    ctx.optimizer.step()
    ctx.optimizer.zero_grad(set_to_none=True)
    if first_pass:
        stats.recomputed = [recomputed[id(sample)] for sample in samples]
    return stats


def anchored(samples: Sequence[TurnSample], first: UpdateStats) -> list[TurnSample]:
    """``samples`` with the first pass's log-probabilities as their old ones, for the passes after it."""
    return [attrs.evolve(s, old_logprobs=old) for s, old in zip(samples, first.recomputed, strict=True)]


def _micro_step(
    ctx: UpdateContext,
    role: ModuleRole,
    chunk: Sequence[TurnSample],
    sums: _Sums,
    recomputed: dict[int, tuple[float, ...]] | None,
) -> None:
    """One micro-batch's loss, backward. ``recomputed`` is given on the first pass only: it gets each
    sample's log-probabilities, which are also that pass's old ones."""
    batch = collate(chunk, ctx.pad_id, ctx.accelerator.device)
    with ctx.accelerator.autocast():
        reference = None
        if ctx.settings.kl_coef > 0 and ctx.modules.has_reference:
            import torch

            # Before the policy's pass, so that its [positions, vocabulary] tensors are freed before
            # the policy's graph holds its own, rather than on top of them.
            with torch.no_grad(), ctx.modules.reference_model(role) as frozen:
                reference, _ = completion_logprobs(frozen, batch, share_prompts=ctx.share_prompts, entropy=False)
        bonus = ctx.settings.failed_group_entropy > 0 and bool(batch.failed_groups.any())
        with ctx.modules.training(role) as model:
            logp, entropy = completion_logprobs(model, batch, share_prompts=ctx.share_prompts, entropy_grad=bonus)
    old = logp.detach() if recomputed is not None else batch.old_logprobs
    terms = token_terms(logp, old, batch.advantages, ctx.settings, reference, entropy, batch.failed_groups)
    loss = weighted_loss(terms, batch.weights, batch.completion_mask)
    ctx.accelerator.backward(loss)
    mask = batch.completion_mask
    sums.add(loss, terms, entropy, mask)
    sums.sequence += float(batch.attention_mask.sum())
    if recomputed is not None:
        sums.add_gap((old - batch.old_logprobs).abs()[mask.bool()])
        for row, sample in enumerate(chunk):
            recomputed[id(sample)] = tuple(old[row, : len(sample.completion_ids)].tolist())


def _zero_backward(ctx: UpdateContext) -> None:
    ctx.accelerator.backward(sum(p.sum() * 0.0 for p in ctx.modules.parameters()))


@attrs.define
class _Sums:
    loss: float = 0.0
    kl: float = 0.0
    kl_max: float = 0.0
    entropy: float = 0.0
    ratio: float = 0.0
    low: float = 0.0
    high: float = 0.0
    tokens: float = 0.0
    sequence: float = 0.0
    #: Every trained token's |recomputed - recorded| log-probability on the first pass.
    gaps: list[float] = attrs.field(factory=list)

    def add(self, loss: Any, terms: Any, entropy: Any, mask: Any) -> None:
        self.loss += float(loss.detach())
        self.kl += float((terms.kl * mask).sum())
        self.kl_max = max(self.kl_max, float((terms.kl * mask).max()))
        self.entropy += float((entropy.detach() * mask).sum())
        self.ratio += float((terms.ratio * mask).sum())
        self.low += float((terms.low_clipped * mask).sum())
        self.high += float((terms.high_clipped * mask).sum())
        self.tokens += float(mask.sum())

    def add_gap(self, gaps: Any) -> None:
        self.gaps += gaps.float().cpu().tolist()

    def merge(self, other: _Sums) -> None:
        for field in attrs.fields(_Sums):
            if field.name == "kl_max":
                setattr(self, field.name, max(getattr(self, field.name), getattr(other, field.name)))
            else:
                setattr(self, field.name, getattr(self, field.name) + getattr(other, field.name))

    def finish(self) -> UpdateStats:
        n = max(self.tokens, 1.0)
        gaps = sorted(self.gaps) or [0.0]
        return UpdateStats(
            loss=self.loss,
            kl=self.kl / n,
            kl_max=self.kl_max,
            entropy=self.entropy / n,
            ratio_mean=self.ratio / n,
            clip_low_fraction=self.low / n,
            clip_high_fraction=self.high / n,
            logprob_gap=gaps[-1],
            logprob_gap_mean=sum(gaps) / len(gaps),
            logprob_gap_p99=gaps[min(len(gaps) - 1, int(0.99 * len(gaps)))],
            tokens=int(self.tokens),
            sequence_tokens=int(self.sequence),
        )


def _total(sums: dict[str, _Sums]) -> UpdateStats:
    whole = _Sums()
    for one in sums.values():
        whole.merge(one)
    stats = whole.finish()
    stats.by_role = {role: one.finish() for role, one in sums.items()}
    return stats


def _chunks(items: Sequence[TurnSample], size: int, *, by_prompt: bool = False) -> Iterator[Sequence[TurnSample]]:
    """Micro-batches of ``size`` turns, or, ``by_prompt``, of ``size`` distinct prompts with every
    turn that has one of them (the loss is a sum, so the order of turns changes nothing).

    Prompts go in order of length, so each micro-batch pads its rows to a similar width: a
    trajectory's prompts grow turn by turn, and a pass that mixes first and third turns pads every
    first turn to the length of a third.
    """
    if not by_prompt:
        for start in range(0, len(items), size):
            yield items[start : start + size]
        return
    same: dict[tuple[int, ...], list[TurnSample]] = defaultdict(list)
    for item in items:
        same[item.prompt_ids].append(item)
    groups = sorted(same.values(), key=lambda group: len(group[0].prompt_ids))
    for start in range(0, len(groups), size):
        yield [turn for group in groups[start : start + size] for turn in group]
