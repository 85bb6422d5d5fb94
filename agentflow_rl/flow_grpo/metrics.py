"""What a step reports: rollout outcomes, advantage spread, loss terms, throughput."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from typing import Any

import attrs

from agentflow_core import ToolFailure
from agentflow_rl.flow_grpo.rollout import Rollout
from agentflow_rl.flow_grpo.update import UpdateStats


def step_metrics(
    rollouts: Sequence[Rollout],
    rewards: Sequence[float],
    per_turn: Sequence[Sequence[float]],
    updates: Sequence[UpdateStats],
    rollout_s: float,
    update_s: float,
) -> dict[str, float]:
    steps = [s for r in rollouts for s in r.trajectory.steps]
    groups: dict[int, list[float]] = {}
    for rollout, reward in zip(rollouts, rewards, strict=True):
        groups.setdefault(rollout.group, []).append(reward)
    first, last = updates[0], updates[-1]
    prompt_tokens = sum(len(t.prompt_ids) for r in rollouts for t in r.turns)
    completion_tokens = sum(len(t.completion_ids) for r in rollouts for t in r.turns)
    advantages = [a for turn in per_turn for a in turn]
    return {
        "train/reward": statistics.fmean(rewards) if rewards else 0.0,
        "train/turns_per_trajectory": len(steps) / max(len(rollouts), 1),
        "train/tool_error_rate": sum(isinstance(s.result, ToolFailure) for s in steps) / max(len(steps), 1),
        "train/uniform_groups": sum(len(set(g)) == 1 for g in groups.values()) / max(len(groups), 1),
        "train/advantage_abs": statistics.fmean(abs(a) for a in advantages) if advantages else 0.0,
        "loss/loss": first.loss,
        "loss/kl": last.kl,
        "loss/entropy": first.entropy,
        "loss/ratio_mean": last.ratio_mean,
        "loss/clip_low_fraction": last.clip_low_fraction,
        "loss/clip_high_fraction": last.clip_high_fraction,
        "loss/logprob_gap": first.logprob_gap,
        "loss/grad_norm": first.grad_norm,
        "perf/rollout_s": rollout_s,
        "perf/update_s": update_s,
        "perf/trained_tokens": float(first.tokens),
        "perf/rollout_tokens_per_s": (prompt_tokens + completion_tokens) / max(rollout_s, 1e-9),
        "perf/rollout_tokens": float(prompt_tokens + completion_tokens),
        "perf/update_tokens_per_s": sum(u.sequence_tokens for u in updates) / max(update_s, 1e-9),
    }


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
