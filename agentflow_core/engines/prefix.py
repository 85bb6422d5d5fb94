"""Prompts that share their beginning are forwarded once: the prefill of a batch of causal-LM rows.

A GRPO group samples several completions of one prompt, and prompts built from one template share
their opening (the system message, the tool list). Forwarding every row in full repeats that work;
on a CPU the prompt is most of a rollout's and an update's cost (a 170-token prompt against a
7-token tool-choice reply). So a batch is forwarded in up to two passes over one KV cache: the
tokens every row starts with, once, then each *distinct* remainder once; the cache is then indexed
out to one row per prompt. Rows are laid out as ``[common prefix][padding][remainder]`` with the
padding hidden by the attention mask and positions counted over real tokens only, so every row
sees exactly the tokens and positions it would see alone.

Index selection on the cache is differentiable, so the trainer uses the same prefill with
gradients on: the shared tokens' activations receive the summed gradient of every row that reads
them. Activation checkpointing drops KV caches in training, so a checkpointed forward cannot share.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import attrs

if TYPE_CHECKING:
    import torch

#: A common prefix shorter than this is not worth a forward pass of its own.
MIN_SHARED_PREFIX = 8


@attrs.frozen
class PrefixPlan:
    """How a batch of prompts is forwarded: one shared prefix, the distinct remainders, and which
    remainder each row has. Every remainder has at least one token, so each row's last prompt
    position (whose logits predict its first completion token) is computed in the second pass."""

    common: tuple[int, ...]
    remainders: tuple[tuple[int, ...], ...]
    rows: tuple[int, ...]

    @property
    def forwarded_tokens(self) -> int:
        return len(self.common) + sum(len(r) for r in self.remainders)


def plan_prefix(prompts: Sequence[Sequence[int]], min_shared: int = MIN_SHARED_PREFIX) -> PrefixPlan:
    """Deduplicates ``prompts`` and finds the prefix all of them share (none if shorter than ``min_shared``)."""
    if not prompts or any(not p for p in prompts):
        raise ValueError("every prompt needs at least one token")
    distinct: dict[tuple[int, ...], int] = {}
    rows = tuple(distinct.setdefault(tuple(p), len(distinct)) for p in prompts)
    unique = list(distinct)
    first, limit = unique[0], min(len(u) for u in unique) - 1
    shared = 0
    while shared < limit and all(u[shared] == first[shared] for u in unique):
        shared += 1
    if shared < min_shared:
        shared = 0
    return PrefixPlan(first[:shared], tuple(u[shared:] for u in unique), rows)


@attrs.frozen
class Prefilled:
    """The state after a batch's prompts: a KV cache with one row per prompt, the logits at each
    row's last prompt token (``[B, V]``), and the attention mask over the cached columns (``[B, W]``)."""

    cache: Any
    logits: torch.Tensor
    mask: torch.Tensor


def inner_model(model: Any) -> Any:
    """The transformers model behind DDP's ``.module`` and a peft wrapper (which passes keyword
    arguments on to its base): where the forward signature and the model's flags are."""
    inner = getattr(model, "module", model)
    return inner.get_base_model() if hasattr(inner, "get_base_model") else inner


def forward_arguments(model: Any) -> tuple[str, str | None]:
    """The names of the KV-cache argument and of the keep-only-the-last-logits argument.

    transformers 5 renamed ``past_key_values`` to ``cache``; older releases spell the other one
    ``num_logits_to_keep``. Asking for the last position's logits only matters: a 4k-token prompt
    would otherwise cost 800 MB of logits with a 49k-token vocabulary.
    """
    parameters = inspect.signature(inner_model(model).forward).parameters
    cache_name = "cache" if "cache" in parameters else "past_key_values"
    keep = next((name for name in ("logits_to_keep", "num_logits_to_keep") if name in parameters), None)
    return cache_name, keep


def contiguous_head_input(model: Any) -> Any:
    """Makes the output head receive contiguous hidden states; returns ``model``.

    ``logits_to_keep`` slices the last hidden states to a strided view, and PyTorch's CPU matmul in
    bfloat16 (torch 2.13) then allocates for the whole tensor under the view: on SmolLM2 a
    ``[22, 1, 576]`` view of ``[22, 68, 576]`` took 1.2 GB to make 2 MB of logits, enough to lift a
    bfloat16 rollout's peak above a float32 one. Copying the kept rows first costs
    ``rows * kept * hidden`` values. Applied where models are loaded, so that the engine's forwards
    and the trainer's get it alike; a model without an output head is left as it is.
    """
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    if head is not None and not getattr(head, "agentflow_contiguous_input", False):
        head.register_forward_pre_hook(_contiguous_arguments)
        head.agentflow_contiguous_input = True
    return model


def _contiguous_arguments(module: Any, args: tuple[Any, ...]) -> tuple[Any, ...]:
    # ``contiguous()`` leaves a size-1 dimension's stride as it was (``[1, 8, 576]`` sliced from
    # ``[1, 160, 576]`` keeps stride 92160), and matmul then finds the rows not viewable as one
    # matrix and goes through bmm, which copies the whole head weight expanded to the batch: 57 MB
    # for SmolLM2 at every head call in a training pass or a one-row decode. ``view`` gives the
    # canonical strides without copying.
    return tuple(a.contiguous().view(a.shape) if hasattr(a, "contiguous") else a for a in args)


def prefill(model: Any, prompts: Sequence[Sequence[int]], pad_id: int, device: Any, *, share: bool = True) -> Prefilled:
    """Forwards ``prompts`` sharing what they have in common (``share``) or every row in full;
    gradients flow if they are enabled."""
    if share:
        try:
            return _forward(model, plan_prefix(prompts), pad_id, device)
        except _CacheNotIndexable:  # a model that returns a legacy tuple cache: every row in full
            pass
    return _forward(model, PrefixPlan((), tuple(map(tuple, prompts)), tuple(range(len(prompts)))), pad_id, device)


class _CacheNotIndexable(Exception):
    pass


def _forward(model: Any, plan: PrefixPlan, pad_id: int, device: Any) -> Prefilled:
    import torch

    cache_name, keep = forward_arguments(model)
    last_only = {keep: 1} if keep else {}
    shared, distinct = len(plan.common), len(plan.remainders)

    def indexed(cache: Any, index: list[int] | tuple[int, ...]) -> Any:
        if not hasattr(cache, "reorder_cache"):
            raise _CacheNotIndexable
        cache.reorder_cache(torch.tensor(index, dtype=torch.long, device=device))
        return cache

    cache = None
    if shared:
        out = model(
            input_ids=torch.tensor([plan.common], device=device),
            attention_mask=torch.ones((1, shared), dtype=torch.long, device=device),
            position_ids=torch.arange(shared, device=device)[None],
            use_cache=True,
            **{cache_name: None},
            **last_only,
        )
        cache = indexed(getattr(out, cache_name), [0] * distinct)
    width = max(len(r) for r in plan.remainders)
    ids = torch.full((distinct, width), pad_id, dtype=torch.long, device=device)
    mask = torch.zeros((distinct, shared + width), dtype=torch.long, device=device)
    mask[:, :shared] = 1
    for i, remainder in enumerate(plan.remainders):
        ids[i, width - len(remainder) :] = torch.tensor(remainder, device=device)
        mask[i, shared + width - len(remainder) :] = 1
    positions = (mask.cumsum(-1) - 1).clamp(min=0)[:, shared:]
    out = model(
        input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=True, **{cache_name: cache}, **last_only
    )
    cache, logits = getattr(out, cache_name), out.logits[:, -1]
    if distinct < len(plan.rows):
        cache = indexed(cache, plan.rows)
        index = torch.tensor(plan.rows, dtype=torch.long, device=device)
        logits, mask = logits[index], mask[index]
    return Prefilled(cache, logits, mask)
