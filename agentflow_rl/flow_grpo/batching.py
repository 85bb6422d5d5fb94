"""From rollouts to padded tensors, and the policy's log-probabilities of what it sampled.

Layout of a batch row: the prompt is left-padded and the completion right-padded, so every
completion starts in the same column. The forward pass then needs logits only for the last
``C + 1`` columns (``logits_to_keep``), which matters with a 49k-token vocabulary. Positions are
counted from each row's first real token, as they were during generation, so the recomputed
log-probabilities match those recorded in the ``TokenTrace``.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import attrs

from agentflow_rl.flow_grpo.loss import LossType, TurnShape, turn_weights
from agentflow_rl.flow_grpo.rollout import Rollout

if TYPE_CHECKING:
    import torch


@attrs.frozen
class TurnSample:
    """One planner turn as the loss sees it."""

    prompt_ids: tuple[int, ...]
    completion_ids: tuple[int, ...]
    #: Log-probabilities recorded at rollout (the "old" policy of the ratio).
    old_logprobs: tuple[float, ...]
    advantage: float
    #: The aggregation weight of each of its tokens.
    weight: float


def build_samples(
    rollouts: Sequence[Rollout], advantages: Sequence[Sequence[float]], loss_type: LossType
) -> list[TurnSample]:
    """Every planner turn with tokens, weighted by ``loss_type``'s aggregation."""
    turns, shapes = [], []
    for index, (rollout, per_turn) in enumerate(zip(rollouts, advantages, strict=True)):
        for trace, advantage in zip(rollout.turns, per_turn, strict=True):
            if trace.completion_ids:
                turns.append((trace, advantage))
                shapes.append(TurnShape(len(trace.completion_ids), trajectory=index, group=rollout.group))
    weights = turn_weights(loss_type, shapes)
    return [
        TurnSample(t.prompt_ids, t.completion_ids, t.completion_logprobs, a, w)
        for (t, a), w in zip(turns, weights, strict=True)
    ]


@attrs.frozen
class TurnBatch:
    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    position_ids: torch.Tensor
    #: ``[B, C]``: 1 where a completion token is, 0 on padding (prompt tokens are never in it).
    completion_mask: torch.Tensor
    completion_ids: torch.Tensor
    old_logprobs: torch.Tensor
    advantages: torch.Tensor
    weights: torch.Tensor

    @property
    def completion_width(self) -> int:
        return int(self.completion_ids.shape[1])


def collate(samples: Sequence[TurnSample], pad_id: int, device: Any = "cpu") -> TurnBatch:
    import torch

    prompt_width = max(len(s.prompt_ids) for s in samples)
    width = max(len(s.completion_ids) for s in samples)
    rows, masks, completion_mask, completion, old, advantage, weight = [], [], [], [], [], [], []
    for s in samples:
        left, right = prompt_width - len(s.prompt_ids), width - len(s.completion_ids)
        rows.append([pad_id] * left + list(s.prompt_ids) + list(s.completion_ids) + [pad_id] * right)
        masks.append([0] * left + [1] * (len(s.prompt_ids) + len(s.completion_ids)) + [0] * right)
        completion_mask.append([1.0] * len(s.completion_ids) + [0.0] * right)
        completion.append(list(s.completion_ids) + [pad_id] * right)
        old.append(list(s.old_logprobs) + [0.0] * right)
        advantage.append([s.advantage] * width)
        weight.append([s.weight] * width)
    attention = torch.tensor(masks, device=device)
    return TurnBatch(
        input_ids=torch.tensor(rows, device=device),
        attention_mask=attention,
        position_ids=(attention.cumsum(-1) - 1).clamp(min=0),
        completion_mask=torch.tensor(completion_mask, device=device),
        completion_ids=torch.tensor(completion, device=device),
        old_logprobs=torch.tensor(old, device=device),
        advantages=torch.tensor(advantage, device=device),
        weights=torch.tensor(weight, device=device),
    )


def completion_logprobs(model: Any, batch: TurnBatch, temperature: float) -> tuple[torch.Tensor, torch.Tensor]:
    """``(logp, entropy)``, each ``[B, C]``: the tempered policy at every completion position.

    ``temperature`` must be the sampling temperature (1 for greedy rollouts): the engine recorded
    ``log_softmax(logits / T)``, and the ratio compares like with like.
    """
    import torch

    width = batch.completion_width
    extra = {"logits_to_keep": width + 1} if _accepts(model, "logits_to_keep") else {}
    out = model(
        input_ids=batch.input_ids,
        attention_mask=batch.attention_mask,
        position_ids=batch.position_ids,
        use_cache=False,
        **extra,
    )
    logits = out.logits[:, -(width + 1) : -1].float() / temperature
    logp_all = torch.log_softmax(logits, dim=-1)
    logp = logp_all.gather(-1, batch.completion_ids.unsqueeze(-1)).squeeze(-1)
    with torch.no_grad():
        entropy = -(logp_all.exp() * logp_all).sum(-1)
    return logp, entropy


def _accepts(model: Any, name: str) -> bool:
    forward = getattr(model, "module", model).forward  # DDP wraps the model in .module
    return name in inspect.signature(forward).parameters
