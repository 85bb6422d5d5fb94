"""The Flow-GRPO objective: a clipped importance ratio with separate low and high clips, a k3 KL
penalty to a frozen reference, and a choice of how token terms are averaged.

Per completion token ``t`` with advantage ``A``, ratio ``r = exp(logp - logp_old)``::

    objective_t = min(r * A, clip(r, 1 - clip_low, 1 + clip_high) * A) - kl_coef * k3_t
    k3_t        = exp(logp_ref - logp) - (logp_ref - logp) - 1          (>= 0, unbiased for KL)

and the loss is ``-sum_t w_t * objective_t``. The aggregations differ only in the weights ``w``,
so each is one small function in :data:`AGGREGATIONS`, keyed by :class:`LossType` (whose members
say how each one averages).

Because the weights are fixed before the forward pass, the loss of a batch is the sum of the
losses of its micro-batches: gradient accumulation is exact whatever the micro-batch size.
"""

from __future__ import annotations

import enum
from collections import Counter
from collections.abc import Callable, Hashable, Sequence
from typing import TYPE_CHECKING

import attrs

if TYPE_CHECKING:
    import torch


class LossType(enum.Enum):
    #: The paper's: mean over a turn's tokens, then over a trajectory's turns, a group's trajectories, the groups.
    FLOW_GRPO = "flow_grpo"
    #: Every turn one sample: mean over its tokens, then over all turns.
    GRPO = "grpo"
    #: Every token of the batch weighs the same.
    DAPO = "dapo"
    #: Token sums divided by a constant (turns times the longest completion): no length bias.
    DR_GRPO = "dr_grpo"


@attrs.frozen
class TurnShape:
    """Where one training turn sits: what the aggregation weights need to know about it."""

    tokens: int
    trajectory: Hashable
    group: Hashable


#: Per-turn weight of each of its tokens, for a batch of turns.
WeightFn = Callable[[Sequence[TurnShape]], list[float]]


def flow_grpo_weights(turns: Sequence[TurnShape]) -> list[float]:
    """1 / (tokens in the turn x turns in the trajectory x trajectories in the group x groups)."""
    per_trajectory = Counter(t.trajectory for t in turns)
    trajectories_per_group = Counter(g for g, _ in {(t.group, t.trajectory) for t in turns})
    groups = len(trajectories_per_group)
    return [1.0 / (t.tokens * per_trajectory[t.trajectory] * trajectories_per_group[t.group] * groups) for t in turns]


def grpo_weights(turns: Sequence[TurnShape]) -> list[float]:
    return [1.0 / (t.tokens * len(turns)) for t in turns]


def dapo_weights(turns: Sequence[TurnShape]) -> list[float]:
    total = sum(t.tokens for t in turns)
    return [1.0 / total for _ in turns]


def dr_grpo_weights(turns: Sequence[TurnShape]) -> list[float]:
    longest = max(t.tokens for t in turns)
    return [1.0 / (len(turns) * longest) for _ in turns]


AGGREGATIONS: dict[LossType, WeightFn] = {
    LossType.FLOW_GRPO: flow_grpo_weights,
    LossType.GRPO: grpo_weights,
    LossType.DAPO: dapo_weights,
    LossType.DR_GRPO: dr_grpo_weights,
}


def turn_weights(loss_type: LossType, turns: Sequence[TurnShape]) -> list[float]:
    """Per-turn token weights; they sum (over tokens) to 1 for every type but ``DR_GRPO``."""
    if not turns:
        return []
    return AGGREGATIONS[loss_type](turns)


@attrs.frozen
class ClipSettings:
    clip_low: float = 0.2
    clip_high: float = 0.3
    kl_coef: float = 0.001
    #: Weight of the entropy bonus on turns of groups where every trajectory failed.
    failed_group_entropy: float = 0.0


@attrs.frozen
class TokenTerms:
    """Per-token pieces of the objective (all shaped like the completion mask)."""

    loss: torch.Tensor
    ratio: torch.Tensor
    kl: torch.Tensor
    low_clipped: torch.Tensor
    high_clipped: torch.Tensor


def k3_kl(logp: torch.Tensor, ref_logp: torch.Tensor) -> torch.Tensor:
    """Schulman's k3 estimator of KL(policy || reference): non-negative, zero when they agree."""
    import torch

    delta = ref_logp - logp
    return torch.exp(delta) - delta - 1.0


def token_terms(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    advantages: torch.Tensor,
    settings: ClipSettings,
    ref_logp: torch.Tensor | None = None,
    entropy: torch.Tensor | None = None,
    failed_groups: torch.Tensor | None = None,
) -> TokenTerms:
    """The clipped surrogate and KL for every token; ``loss`` is the negated objective.

    With ``settings.failed_group_entropy``, ``entropy`` (with its gradient) and ``failed_groups``
    (1 on turns of groups in which every trajectory failed), those turns' entropy is a bonus: a group
    that all failed has no advantage, so without it nothing stops the policy from collapsing onto
    the choice that fails there, and sampling the same wrong answer G times, step after step.
    """
    import torch

    ratio = torch.exp(logp - old_logp)
    clipped = torch.clamp(ratio, 1.0 - settings.clip_low, 1.0 + settings.clip_high)
    objective = torch.minimum(ratio * advantages, clipped * advantages)
    kl = k3_kl(logp, ref_logp) if ref_logp is not None else torch.zeros_like(logp)
    loss = -(objective - settings.kl_coef * kl)
    if settings.failed_group_entropy > 0 and entropy is not None and failed_groups is not None:
        loss = loss - settings.failed_group_entropy * failed_groups * entropy
    return TokenTerms(
        loss=loss,
        ratio=ratio.detach(),
        kl=kl.detach(),
        low_clipped=((ratio < 1.0 - settings.clip_low) & (advantages < 0)).detach(),
        high_clipped=((ratio > 1.0 + settings.clip_high) & (advantages > 0)).detach(),
    )


def weighted_loss(terms: TokenTerms, token_weights: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``sum(w * loss)`` over real completion tokens: the micro-batch's share of the batch loss."""
    return (terms.loss * token_weights * mask).sum()
