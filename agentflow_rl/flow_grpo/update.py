"""One policy update: forward the turns in micro-batches, accumulate the weighted loss, step.

Turns are accumulated without gradient synchronisation except on the last micro-batch, so a
multi-GPU run all-reduces once per optimizer step. A process that has nothing to learn from
(every advantage zero and no KL) still joins that one all-reduce with a zero loss, or the others
would wait for it forever.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

import attrs

from agentflow_rl.flow_grpo.batching import TurnSample, collate, completion_logprobs
from agentflow_rl.flow_grpo.loss import ClipSettings, token_terms, weighted_loss


@attrs.frozen
class UpdateContext:
    accelerator: Any
    model: Any
    #: Frozen reference for the KL term; ``None`` when ``kl_coef`` is 0.
    reference: Any
    optimizer: Any
    settings: ClipSettings
    #: The rollout sampling temperature (1.0 for greedy).
    temperature: float
    pad_id: int
    micro_batch_turns: int
    max_grad_norm: float


@attrs.define
class UpdateStats:
    loss: float = 0.0
    kl: float = 0.0
    entropy: float = 0.0
    ratio_mean: float = 0.0
    clip_low_fraction: float = 0.0
    clip_high_fraction: float = 0.0
    #: Largest |recomputed - recorded| log-probability on the first pass (rollout/trainer mismatch).
    logprob_gap: float = 0.0
    grad_norm: float = 0.0
    #: Completion tokens trained on (the loss's tokens).
    tokens: int = 0
    #: Prompt and completion tokens forwarded (what a pass costs).
    sequence_tokens: int = 0


def learnable(samples: Sequence[TurnSample], kl_coef: float, *, kl_on_zero_advantage: bool = True) -> list[TurnSample]:
    """Turns worth a forward/backward pass: with no KL (or KL not wanted there), a zero advantage moves nothing."""
    if kl_coef > 0 and kl_on_zero_advantage:
        return list(samples)
    return [s for s in samples if s.advantage != 0.0]


def policy_update(ctx: UpdateContext, samples: Sequence[TurnSample], *, first_pass: bool = True) -> UpdateStats:
    """Accumulate gradients over all ``samples`` and take one optimizer step."""
    ctx.model.train()
    stats, sums = UpdateStats(), _Sums()
    chunks = list(_chunks(samples, ctx.micro_batch_turns))
    for index, chunk in enumerate(chunks):
        sync = index == len(chunks) - 1
        with contextlib.nullcontext() if sync else ctx.accelerator.no_sync(ctx.model):
            _micro_step(ctx, chunk, sums, first_pass)
    if not chunks:
        _zero_backward(ctx)
    if ctx.max_grad_norm > 0:
        stats.grad_norm = float(ctx.accelerator.clip_grad_norm_(ctx.model.parameters(), ctx.max_grad_norm))
    ctx.optimizer.step()
    ctx.optimizer.zero_grad(set_to_none=True)
    return sums.finish(stats)


def _micro_step(ctx: UpdateContext, chunk: Sequence[TurnSample], sums: _Sums, first_pass: bool) -> None:
    batch = collate(chunk, ctx.pad_id, ctx.accelerator.device)
    with ctx.accelerator.autocast():
        logp, entropy = completion_logprobs(ctx.model, batch, ctx.temperature)
        reference = None
        if ctx.reference is not None:
            import torch

            with torch.no_grad():
                reference, _ = completion_logprobs(ctx.reference, batch, ctx.temperature)
    terms = token_terms(logp, batch.old_logprobs, batch.advantages, ctx.settings, reference)
    loss = weighted_loss(terms, batch.weights, batch.completion_mask)
    ctx.accelerator.backward(loss)
    mask = batch.completion_mask
    sums.add(loss, terms, entropy, mask)
    sums.sequence += float(batch.attention_mask.sum())
    if first_pass:
        gap = ((logp.detach() - batch.old_logprobs).abs() * mask).max()
        sums.gap = max(sums.gap, float(gap))


def _zero_backward(ctx: UpdateContext) -> None:
    ctx.accelerator.backward(sum(p.sum() * 0.0 for p in ctx.model.parameters() if p.requires_grad))


@attrs.define
class _Sums:
    loss: float = 0.0
    kl: float = 0.0
    entropy: float = 0.0
    ratio: float = 0.0
    low: float = 0.0
    high: float = 0.0
    tokens: float = 0.0
    sequence: float = 0.0
    gap: float = 0.0

    def add(self, loss: Any, terms: Any, entropy: Any, mask: Any) -> None:
        self.loss += float(loss.detach())
        self.kl += float((terms.kl * mask).sum())
        self.entropy += float((entropy * mask).sum())
        self.ratio += float((terms.ratio * mask).sum())
        self.low += float((terms.low_clipped * mask).sum())
        self.high += float((terms.high_clipped * mask).sum())
        self.tokens += float(mask.sum())

    def finish(self, stats: UpdateStats) -> UpdateStats:
        n = max(self.tokens, 1.0)
        stats.loss, stats.kl, stats.entropy, stats.ratio_mean = self.loss, self.kl / n, self.entropy / n, self.ratio / n
        stats.clip_low_fraction, stats.clip_high_fraction = self.low / n, self.high / n
        stats.logprob_gap, stats.tokens, stats.sequence_tokens = self.gap, int(self.tokens), int(self.sequence)
        return stats


def _chunks(items: Sequence[TurnSample], size: int) -> Iterator[Sequence[TurnSample]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
