"""The policy's log-probabilities (and entropy) of what it sampled, recomputed with gradients for the loss.

Each token is scored under the distribution it was drawn from: the tempered logits restricted to
the grammar's allowed set at that position (rebuilt by
:class:`~agentflow_rl.flow_grpo.masking.GrammarReplay`), renormalised. Positions the grammar forced
are left out of the loss mask, so they add nothing to the loss, the KL or the entropy. (Scoring every
token under the full vocabulary instead, as earlier releases did, was measured against this on
SmolLM2 and dropped: see docs/flow-grpo.md.)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from agentflow_core.engines.token_runtime import forward_arguments, inner_model, prefill, unpack
from agentflow_rl.flow_grpo.collation import TurnBatch

if TYPE_CHECKING:
    import torch


def completion_logprobs(
    model: Any, batch: TurnBatch, *, share_prompts: bool = True, entropy: bool = True, entropy_grad: bool = False
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``(logp, entropy)``, each ``[B, C]``: the sampling distribution at every trained completion
    position (``completion_mask``); 0 at forced positions, where it is exactly that, and on padding.
    The entropy is ``None`` when not asked for (the reference's is never used), and carries a
    gradient only with ``entropy_grad`` (for an entropy bonus in the loss).

    Logits are divided by each row's sampling temperature (the engine recorded the tempered
    distribution) and, where the batch carries allowed sets, restricted to them. With
    ``share_prompts`` (and no activation checkpointing, which drops KV caches) the prompts are
    forwarded as the engine prefills them, what rows share once (``token_runtime.prefill``),
    and the completions after them over the cache.
    """
    import torch

    if len(batch.forwarded) < len(batch.same_as):
        once = batch.rows(batch.forwarded)
        logp, spread = completion_logprobs(
            model, once, share_prompts=share_prompts, entropy=entropy, entropy_grad=entropy_grad
        )
        index = torch.tensor(batch.same_as, dtype=torch.long, device=logp.device)
        return logp[index], None if spread is None else spread[index]
    # Only trained positions get a softmax: a forced token's masked probability is 1 (log 0, no
    # entropy) and padding is nothing, and [positions, vocabulary] tensors are most of the memory,
    # so they are changed in place where autograd allows (neither the division by a constant nor
    # masked_fill keeps its input for the backward pass) and the entropy is summed a block at a time.
    trained = batch.completion_mask.bool()
    if share_prompts and batch.prompts and not _checkpointing(model):
        logits = _shared_prompt_logits(model, batch)[trained]
    else:
        logits = _trained_position_logits(model, batch, trained)
    picked = logits.float()
    temperatures = batch.temperatures.expand(-1, trained.shape[1], 1)[trained]
    picked = picked.div_(temperatures) if picked is not logits else picked / temperatures
    del logits
    blocked = None
    if batch.allowed is not None:
        blocked = unpack(batch.allowed[trained], picked.shape[-1]).logical_not_()
        picked.masked_fill_(blocked, float("-inf"))
    logp_all = torch.log_softmax(picked, dim=-1)
    del picked
    chosen = logp_all.gather(-1, batch.completion_ids[trained].unsqueeze(-1)).squeeze(-1)
    logp = torch.zeros(trained.shape, dtype=chosen.dtype, device=chosen.device).masked_scatter(trained, chosen)
    if not entropy:
        return logp, None
    if entropy_grad:
        per_position = _entropy(logp_all, blocked)
    else:
        with torch.no_grad():
            blocks = [slice(i, i + _ENTROPY_BLOCK) for i in range(0, len(logp_all), _ENTROPY_BLOCK)]
            per_position = torch.cat(
                [logp_all.new_zeros(0)]
                + [_entropy(logp_all[b], None if blocked is None else blocked[b]) for b in blocks]
            )
    spread = torch.zeros(trained.shape, dtype=per_position.dtype, device=per_position.device)
    return logp, spread.masked_scatter(trained, per_position)


#: Positions whose entropy is summed at once without a gradient: a few MB of [positions, vocabulary].
_ENTROPY_BLOCK = 32


def _entropy(logp: torch.Tensor, blocked: torch.Tensor | None) -> torch.Tensor:
    """``-sum p log p`` over each row of log-probabilities; tokens outside the set contribute nothing."""
    # 0 * -inf is nan, and so is its gradient: the log-probability is zeroed there first.
    finite = logp if blocked is None else logp.masked_fill(blocked, 0.0)
    return -(logp.exp() * finite).sum(-1)


def _trained_position_logits(model: Any, batch: TurnBatch, trained: torch.Tensor) -> torch.Tensor:
    """``[N, V]``: the logits at the ``N`` trained positions (``trained``, ``[B, C]``), from one pass
    over prompt + completion rows.

    The output head gets only those positions' hidden states: a pre-hook on it picks them out of
    the last ``C + 1`` columns the model keeps (``logits_to_keep``). A ``[B, C, V]`` tensor is
    never made, nor, in the backward pass, its gradient; with a 49k-token vocabulary that was the
    largest tensor of a checkpointed LoRA update. What the model does after its head (a scale, a
    soft cap) still applies, elementwise, to the rows it returns.
    """
    width = batch.completion_width
    _, keep = forward_arguments(model)
    inner = inner_model(model)
    head = inner.get_output_embeddings() if hasattr(inner, "get_output_embeddings") else None

    def select(module: Any, args: tuple[Any, ...]) -> tuple[Any, ...]:
        hidden = args[0][:, -(width + 1) : -1]
        return (hidden[trained].unsqueeze(0), *args[1:])

    handle = head.register_forward_pre_hook(select, prepend=True) if head is not None else None
    try:
        out = model(
            input_ids=batch.input_ids,
            attention_mask=batch.attention_mask,
            position_ids=batch.position_ids,
            use_cache=False,
            **({keep: width + 1} if keep else {}),
        )
    finally:
        if handle is not None:
            handle.remove()
    if handle is not None:
        return out.logits[0]
    return out.logits[:, -(width + 1) : -1][trained]


def _shared_prompt_logits(model: Any, batch: TurnBatch) -> torch.Tensor:
    """``[B, C, V]``: the prompts prefilled with sharing, then all completions but their last token
    in one pass over that cache (the last prompt position predicts the first completion token)."""
    import torch

    start = prefill(model, batch.prompts, batch.pad_id, batch.input_ids.device)
    first = start.logits[:, None]
    width = batch.completion_width
    if width == 1:
        return first
    cache_name, _ = forward_arguments(model)
    fed = batch.completion_ids[:, : width - 1]
    fed_mask = batch.attention_mask[:, -width:][:, : width - 1]
    steps = torch.arange(width - 1, device=fed.device)[None]
    out = model(
        input_ids=fed,
        attention_mask=torch.cat([start.mask, fed_mask], dim=1),
        position_ids=start.mask.sum(-1, keepdim=True) + steps,
        use_cache=True,
        **{cache_name: start.cache},
    )
    return torch.cat([first, out.logits], dim=1)


def _checkpointing(model: Any) -> bool:
    """Whether this forward recomputes activations in the backward pass (and so drops KV caches)."""
    import torch

    inner = inner_model(model)
    flag = next((n for n in ("is_activation_checkpointing", "is_gradient_checkpointing") if hasattr(inner, n)), None)
    return bool(flag and getattr(inner, flag)) and inner.training and torch.is_grad_enabled()
