"""What a step reports: rollout outcomes, advantage spread, loss terms, throughput; and per trained module.

Whole-step figures keep their names (``train/reward``, ``loss/kl``, ...); the same figures for each
trained module are ``module/<role>/<name>`` (``module/verifier/kl``), so a run training several
modules shows which one drifts.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from typing import Any

import attrs

from agentflow_core import ToolFailure
from agentflow_core.records import ModuleRole
from agentflow_rl.flow_grpo.advantages import failed_groups
from agentflow_rl.flow_grpo.collation import TurnSample
from agentflow_rl.flow_grpo.rollout import Rollout
from agentflow_rl.flow_grpo.update import UpdateStats

#: Modules whose decisions a tool error reflects (which tool; which arguments).
_TOOL_MODULES = ("planner", "executor")


@attrs.frozen
class StepRecord:
    rollouts: Sequence[Rollout]
    rewards: Sequence[float]
    per_turn: Sequence[Sequence[float]]
    updates: Sequence[UpdateStats]
    roles: Sequence[ModuleRole]
    timed_out: int = 0
    #: Every turn with a real choice, before zero-advantage turns were left out.
    samples: Sequence[TurnSample] = ()
    #: Modules with a later ``train.start_step``, and whether this step's update trained them.
    deferred: dict[str, bool] = attrs.field(factory=dict)


def step_metrics(record: StepRecord, rollout_s: float, update_s: float) -> dict[str, float]:
    rollouts, rewards, updates = record.rollouts, record.rewards, record.updates
    steps = [s for r in rollouts for s in r.trajectory.steps]
    groups: dict[int, list[float]] = {}
    for rollout, reward in zip(rollouts, rewards, strict=True):
        groups.setdefault(rollout.group, []).append(reward)
    first, last = updates[0], updates[-1]
    traces = [t.trace for r in rollouts for t in r.turns]
    prompt_tokens = sum(len(t.prompt_ids) for t in traces)
    completion_tokens = sum(len(t.completion_ids) for t in traces)
    advantages = [a for turn in record.per_turn for a in turn]
    values = {
        "train/reward": _mean(rewards),
        "train/turns_per_trajectory": len(steps) / max(len(rollouts), 1),
        "train/tool_error_rate": _tool_error_rate(rollouts),
        "train/uniform_groups": sum(len(set(g)) == 1 for g in groups.values()) / max(len(groups), 1),
        "train/failed_groups": len(failed_groups(rewards, [r.group for r in rollouts])) / max(len(groups), 1),
        "train/advantage_abs": _mean([abs(a) for a in advantages]),
        "train/timed_out_groups": float(record.timed_out),
        **_loss_metrics("loss/", first, last),
        **_gap_metrics("rollout/", first),
        "loss/forced_fraction": _forced_fraction(completion_tokens, record.samples),
        "perf/rollout_s": rollout_s,
        "perf/update_s": update_s,
        "perf/trained_tokens": float(first.tokens),
        "perf/rollout_tokens_per_s": (prompt_tokens + completion_tokens) / max(rollout_s, 1e-9),
        "perf/rollout_tokens": float(prompt_tokens + completion_tokens),
        "perf/update_tokens_per_s": sum(u.sequence_tokens for u in updates) / max(update_s, 1e-9),
        "perf/peak_rss_mib": peak_rss_mib(),
    }
    for role in record.roles:
        values.update(_module_metrics(record, role))
    return values


def _module_metrics(record: StepRecord, role: ModuleRole) -> dict[str, float]:
    prefix = f"module/{role}/"
    calls = [c for r in record.rollouts for c in r.trajectory.module_calls() if c.role == role]
    having = [w for r, w in zip(record.rollouts, record.rewards, strict=True) if r.turns_of(role)]
    completion = sum(len(t.trace.completion_ids) for r in record.rollouts for t in r.turns_of(role))
    values = {
        prefix + "turns": sum(len(r.turns_of(role)) for r in record.rollouts) / max(len(record.rollouts), 1),
        prefix + "reward": _mean(having),
        prefix + "parse_error_rate": sum(c.parse_error is not None for c in calls) / max(len(calls), 1),
        prefix + "forced_fraction": _forced_fraction(completion, [s for s in record.samples if s.role == role]),
    }
    if role in _TOOL_MODULES:
        values[prefix + "tool_error_rate"] = _tool_error_rate(record.rollouts)
    if role in record.deferred:
        values[prefix + "training"] = float(record.deferred[role])
    first = record.updates[0].by_role.get(role)
    last = record.updates[-1].by_role.get(role)
    if first is not None and last is not None:
        values.update({k: v for k, v in _loss_metrics(prefix, first, last).items() if not k.endswith("grad_norm")})
        values.update(_gap_metrics(prefix, first))
    return values


def _loss_metrics(prefix: str, first: UpdateStats, last: UpdateStats) -> dict[str, float]:
    return {
        prefix + "loss": first.loss,
        prefix + "kl": last.kl,
        prefix + "kl_max": last.kl_max,
        prefix + "entropy": first.entropy,
        prefix + "ratio_mean": last.ratio_mean,
        prefix + "clip_low_fraction": last.clip_low_fraction,
        prefix + "clip_high_fraction": last.clip_high_fraction,
        prefix + "grad_norm": first.grad_norm,  # clipped jointly: a whole-step figure
    }


def _gap_metrics(prefix: str, first: UpdateStats) -> dict[str, float]:
    """How far the rollout engine's log-probabilities are from the trainer's, per trained token."""
    return {
        prefix + "logprob_gap_mean": first.logprob_gap_mean,
        prefix + "logprob_gap_p99": first.logprob_gap_p99,
        prefix + "logprob_gap_max": first.logprob_gap,
    }


def _tool_error_rate(rollouts: Sequence[Rollout]) -> float:
    steps = [s for r in rollouts for s in r.trajectory.steps]
    return sum(isinstance(s.result, ToolFailure) for s in steps) / max(len(steps), 1)


def _forced_fraction(completion_tokens: int, samples: Sequence[TurnSample]) -> float:
    """Share of the completion tokens the grammar forced (0 when no turn was scored with masks)."""
    if not completion_tokens or not any(s.free is not None for s in samples):
        return 0.0
    return 1.0 - sum(s.trained_tokens for s in samples) / completion_tokens


def _mean(values: Sequence[float]) -> float:
    return statistics.fmean(values) if values else 0.0


def peak_rss_mib() -> float:
    """This process's peak resident memory so far, in MiB (Linux reports KiB)."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def mean_across(accelerator: Any, values: dict[str, float]) -> dict[str, float]:
    """Average every metric over processes (a no-op with one)."""
    if accelerator.num_processes == 1:
        return values
    import torch

    keys = sorted(values)
    tensor = torch.tensor([values[k] for k in keys], device=accelerator.device, dtype=torch.float64)
    reduced = accelerator.reduce(tensor, reduction="mean")
    return {k: float(v) for k, v in zip(keys, reduced.tolist(), strict=True)}


def sum_across(accelerator: Any, value: float) -> float:
    if accelerator.num_processes == 1:
        return float(value)
    import torch

    tensor = torch.tensor([float(value)], device=accelerator.device, dtype=torch.float64)
    return float(accelerator.reduce(tensor, reduction="sum")[0])


def flat_config(config: Any) -> dict[str, str | int | float | bool]:
    """The config as ``section.key`` scalars, which is what TensorBoard's hparams accept."""
    flat: dict[str, str | int | float | bool] = {}

    def walk(prefix: str, value: Any) -> None:
        if attrs.has(type(value)):
            for field in attrs.fields(type(value)):
                walk(f"{prefix}{field.name}.", getattr(value, field.name))
        elif isinstance(value, bool | int | float | str):
            flat[prefix.rstrip(".")] = value
        else:
            flat[prefix.rstrip(".")] = str(getattr(value, "value", value))

    walk("", config)
    return flat
