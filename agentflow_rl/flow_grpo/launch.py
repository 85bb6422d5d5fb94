"""Starting a run from a training TOML: what ``agentflow train``, ``python -m agentflow_rl.flow_grpo`` and nox call."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from agentflow_rl.flow_grpo.config import load_train_config
from agentflow_rl.flow_grpo.trainer import TrainResult, train


def train_from_file(config_path: str | Path, overrides: dict[str, Any] | None = None) -> TrainResult:
    """Train as the TOML says, ``overrides`` (dotted keys: ``run.max_steps``) on top; print a summary line."""
    result = train(load_train_config(config_path, overrides))
    print(describe(result))
    return result


def describe(result: TrainResult) -> str:
    return (
        f"{result.steps} steps in {result.minutes:.1f} min (stopped: {result.stopped}); held-out success "
        f"{percent(result.first_success)} -> {percent(result.last_success)}; output in {result.output_dir}"
    )


def percent(value: float | None) -> str:
    return "n/a" if value is None or math.isnan(value) else f"{100 * value:.1f}%"
