"""From rollouts to training samples, and from samples to padded tensors.

Every turn of a trained module with a real choice in it becomes one ``TurnSample`` (its tokens,
recorded log-probabilities, advantage, loss weight and the grammar's allowed sets); ``collate``
pads a micro-batch of them. Layout of a batch row: the prompt is left-padded and the completion
right-padded, so every completion starts in the same column and the forward pass needs logits only
for the last ``C + 1`` columns (``logits_to_keep``). Positions are counted from each row's first
real token, as they were during generation, so the recomputed log-probabilities
(:mod:`~agentflow_rl.flow_grpo.logprobs`) match those recorded in the ``TokenTrace``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Hashable, Sequence
from typing import TYPE_CHECKING, Any

import attrs

from agentflow_core.records import ModuleRole
from agentflow_rl.flow_grpo.loss import LossType, TurnShape, turn_weights
from agentflow_rl.flow_grpo.masking import GrammarReplay
from agentflow_rl.flow_grpo.rollout import Rollout

if TYPE_CHECKING:
    import torch


@attrs.frozen
class TurnSample:
    """One turn of a trained module, as the loss sees it."""

    prompt_ids: tuple[int, ...]
    completion_ids: tuple[int, ...]
    #: Log-probabilities recorded at rollout (the "old" policy of the ratio).
    old_logprobs: tuple[float, ...]
    advantage: float
    #: The aggregation weight of each of its trained tokens.
    weight: float
    #: The temperature the completion was sampled at (1.0 for greedy).
    temperature: float = 1.0
    #: Packed allowed sets per position (``[n, W]`` int32), ``None`` when sampled without a grammar
    #: or when scoring ignores the grammar.
    allowed: Any = None
    #: Per position: trained (True) or forced by the grammar (False); ``None`` means all trained.
    free: tuple[bool, ...] | None = None
    role: ModuleRole = "planner"
    #: Whether no trajectory of its group earned any reward: such a turn has no advantage, and
    #: ``loss.failed_group_entropy`` rewards it for spreading its choices instead.
    failed_group: bool = False

    @property
    def trained_tokens(self) -> int:
        return len(self.completion_ids) if self.free is None else sum(self.free)


def build_samples(
    rollouts: Sequence[Rollout],
    advantages: Sequence[Sequence[float]],
    loss_type: LossType,
    replay: GrammarReplay | None = None,
    failed_groups: Collection[Hashable] = (),
) -> list[TurnSample]:
    """Every turn of a trained module that has a real choice in it, weighted by ``loss_type``.

    With a ``replay`` the grammar of each turn is rebuilt and forced positions are left out (the
    masked objective); without one every completion token counts. Weights are computed per module,
    so each trained module's loss is its own average and one module's turns do not dilute another's.
    """
    by_role: dict[str, list[tuple[TurnSample, TurnShape]]] = defaultdict(list)
    for index, (rollout, per_turn) in enumerate(zip(rollouts, advantages, strict=True)):
        for turn, advantage in zip(rollout.turns, per_turn, strict=True):
            trace = turn.trace
            if not trace.completion_ids:
                continue
            sample = TurnSample(
                trace.prompt_ids, trace.completion_ids, trace.completion_logprobs, advantage, 0.0, trace.temperature
            )
            if replay is not None:
                sets = replay.allowed(trace)
                sample = attrs.evolve(sample, allowed=sets.packed, free=sets.free)
            sample = attrs.evolve(sample, role=turn.role, failed_group=rollout.group in failed_groups)
            if sample.trained_tokens:
                shape = TurnShape(sample.trained_tokens, trajectory=index, group=rollout.group)
                by_role[turn.role].append((sample, shape))
    samples = []
    for turns in by_role.values():
        weights = turn_weights(loss_type, [shape for _, shape in turns])
        samples += [attrs.evolve(sample, weight=w) for (sample, _), w in zip(turns, weights, strict=True)]
    return samples


@attrs.frozen
class TurnBatch:
    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    position_ids: torch.Tensor
    #: ``[B, C]``: 1 where a trained completion token is; 0 on padding and on forced positions
    #: (prompt tokens are never in it).
    completion_mask: torch.Tensor
    completion_ids: torch.Tensor
    old_logprobs: torch.Tensor
    advantages: torch.Tensor
    weights: torch.Tensor
    #: ``[B, C]``: 1 on the rows of turns from groups where every trajectory failed, else 0.
    failed_groups: torch.Tensor
    #: ``[B, 1, 1]`` sampling temperature of each row.
    temperatures: torch.Tensor
    #: ``[B, C, W]`` packed allowed sets (all bits set where unconstrained or padded); ``None`` when
    #: no row of the batch was sampled under a grammar.
    allowed: torch.Tensor | None = None
    #: Each row's prompt, for the forward that shares what rows have in common.
    prompts: tuple[tuple[int, ...], ...] = ()
    pad_id: int = 0
    #: The rows that are forwarded: the first of each set of identical turns (same prompt,
    #: completion, temperature and grammar); empty, with ``same_as``, when every row is.
    forwarded: tuple[int, ...] = ()
    #: For each row, the position in ``forwarded`` of the row whose log-probabilities it shares.
    same_as: tuple[int, ...] = ()

    @property
    def completion_width(self) -> int:
        return int(self.completion_ids.shape[1])

    def rows(self, index: Sequence[int]) -> TurnBatch:
        """The batch of just these rows (in this order), every one of them forwarded."""
        import torch

        at = torch.tensor(list(index), dtype=torch.long, device=self.input_ids.device)
        picked = {
            field.name: value[at]
            for field in attrs.fields(TurnBatch)
            if isinstance(value := getattr(self, field.name), torch.Tensor)
        }
        prompts = tuple(self.prompts[i] for i in index) if self.prompts else ()
        return attrs.evolve(self, **picked, prompts=prompts, forwarded=(), same_as=())


def collate(
    samples: Sequence[TurnSample], pad_id: int, device: Any = "cpu", *, merge_repeats: bool = True
) -> TurnBatch:
    """Pads ``samples`` into one batch. With ``merge_repeats`` a turn that repeats an earlier one
    token for token is scored from that one's forward pass (``logprobs.completion_logprobs``)."""
    import torch

    prompt_width = max(len(s.prompt_ids) for s in samples)
    width = max(len(s.completion_ids) for s in samples)
    rows, masks, completion_mask, completion, old, advantage, weight = [], [], [], [], [], [], []
    for s in samples:
        left, right = prompt_width - len(s.prompt_ids), width - len(s.completion_ids)
        rows.append([pad_id] * left + list(s.prompt_ids) + list(s.completion_ids) + [pad_id] * right)
        masks.append([0] * left + [1] * (len(s.prompt_ids) + len(s.completion_ids)) + [0] * right)
        free = s.free if s.free is not None else (True,) * len(s.completion_ids)
        completion_mask.append([float(f) for f in free] + [0.0] * right)
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
        failed_groups=torch.tensor([[float(s.failed_group)] * width for s in samples], device=device),
        temperatures=torch.tensor([s.temperature for s in samples], device=device).view(-1, 1, 1),
        allowed=_collate_allowed(samples, width, device),
        prompts=tuple(s.prompt_ids for s in samples),
        pad_id=pad_id,
        **(_repeats(samples) if merge_repeats else {}),
    )


def _repeats(samples: Sequence[TurnSample]) -> dict[str, tuple[int, ...]]:
    """``forwarded`` and ``same_as`` for the batch: which rows are first of their kind, and whose each row is.

    A GRPO group samples one prompt several times and a peaked policy often writes the same reply,
    so a step's turns repeat, more as it converges (how often: ``docs/flow-grpo.md``).
    A repeat has the same log-probabilities (the same tokens under the same distribution), so one
    forward serves all of them; its own advantage and weight still enter the loss, so the loss and
    its gradient are those of forwarding every row.
    """
    first: dict[tuple[Any, ...], int] = {}
    forwarded: list[int] = []
    same_as = []
    for row, s in enumerate(samples):
        allowed = None if s.allowed is None else s.allowed.cpu().numpy().tobytes()
        key = (s.prompt_ids, s.completion_ids, s.temperature, s.free, allowed)
        if key not in first:
            first[key] = len(forwarded)
            forwarded.append(row)
        same_as.append(first[key])
    return {"forwarded": tuple(forwarded), "same_as": tuple(same_as)}


def _collate_allowed(samples: Sequence[TurnSample], width: int, device: Any) -> torch.Tensor | None:
    """Every row's allowed sets, padded with "everything allowed" so no softmax sees an empty set."""
    import torch

    known = [s.allowed for s in samples if s.allowed is not None]
    if not known:
        return None
    words = int(known[0].shape[-1])
    out = torch.full((len(samples), width, words), -1, dtype=torch.int32)  # -1: all 32 bits set
    for row, sample in enumerate(samples):
        if sample.allowed is not None:
            out[row, : sample.allowed.shape[0]] = sample.allowed
    return out.to(device)
