"""Entry points the ``agentflow`` CLI (and nox) call: train from a TOML, and the two proofs.

Each function takes plain arguments and returns a result record; printing is limited to a few
summary lines, so the CLI layer can wrap them in click commands as it likes.
"""

from __future__ import annotations

import json
import math
from importlib import resources
from pathlib import Path
from typing import Any

import attrs

from agentflow_rl.flow_grpo.config import load_train_config
from agentflow_rl.flow_grpo.tracking import plot_curves, read_metrics
from agentflow_rl.flow_grpo.trainer import FlowGRPOTrainer, TrainResult


def bundled_config(name: str) -> Path:
    """A TOML from ``agentflow_rl/flow_grpo/configs`` (e.g. ``synthetic.toml``)."""
    return Path(str(resources.files("agentflow_rl.flow_grpo") / "configs" / name))


def train(config_path: str | Path, overrides: dict[str, Any] | None = None) -> TrainResult:
    """Train as the TOML says; ``overrides`` maps dotted keys (``run.max_steps``) to values."""
    result = FlowGRPOTrainer(load_train_config(config_path, overrides)).train()
    print(_describe(result))
    return result


@attrs.frozen
class ProofResult:
    flow_grpo: TrainResult
    ablation: TrainResult | None
    curve: Path
    summary: Path


def smoke(
    output_dir: str | Path = "runs/train-smoke",
    *,
    minutes: float = 15.0,
    ablation: bool = True,
    config: str | Path | None = None,
    overrides: dict[str, Any] | None = None,
) -> ProofResult:
    """The synthetic proof: train the tiny policy to 90% held-out success, then the same number of
    steps with the advantage switched off (rewards ignored), and plot both learning curves."""
    output = Path(output_dir)
    source = Path(config) if config else bundled_config("synthetic.toml")
    base = {"run.max_minutes": minutes, "run.target_success": 0.9, "run.resume": False, **(overrides or {})}
    main = train(source, {**base, "run.output_dir": str(output / "flow-grpo")})
    runs = [("Flow-GRPO", read_metrics(main.output_dir))]
    control = None
    if ablation:
        control = train(
            source,
            {
                **base,
                "run.output_dir": str(output / "no-advantage"),
                "advantage.mode": "none",
                "run.max_steps": max(main.steps, 1),
                "run.target_success": 0.0,
            },
        )
        runs.append(("advantage off (rewards ignored)", read_metrics(control.output_dir)))
    curve = plot_curves(runs, output / "learning_curve.png", "Flow-GRPO, synthetic tool use, tiny policy")
    summary = output / "summary.json"
    summary.write_text(json.dumps({"flow_grpo": _as_dict(main), "ablation": _as_dict(control)}, indent=2) + "\n")
    print(
        f"before: {_pct(main.first_success)} held-out success; after: {_pct(main.last_success)} "
        f"({main.steps} steps, {main.minutes:.1f} min); curve: {curve}"
    )
    if control is not None:
        print(f"advantage off: {_pct(control.first_success)} -> {_pct(control.last_success)} in {control.steps} steps")
    return ProofResult(main, control, curve, summary)


def real(
    output_dir: str | Path = "runs/train-real", *, steps: int | None = None, overrides: dict[str, Any] | None = None
) -> TrainResult:
    """SmolLM2-135M-Instruct as the Planner on the synthetic task mixture (``configs/smollm2.toml``),
    with its learning curve drawn to ``<output_dir>/learning_curve.png``."""
    extra = {"run.output_dir": str(output_dir), **({"run.max_steps": steps} if steps else {}), **(overrides or {})}
    result = train(bundled_config("smollm2.toml"), extra)
    title = "Flow-GRPO, synthetic tool use, SmolLM2-135M-Instruct planner"
    runs = [("Flow-GRPO", read_metrics(result.output_dir))]
    curve = plot_curves(runs, Path(output_dir) / "learning_curve.png", title)
    print(f"curve: {curve}")
    return result


def _describe(result: TrainResult) -> str:
    return (
        f"{result.steps} steps in {result.minutes:.1f} min (stopped: {result.stopped}); held-out success "
        f"{_pct(result.first_success)} -> {_pct(result.last_success)}; output in {result.output_dir}"
    )


def _pct(value: float | None) -> str:
    return "n/a" if value is None or math.isnan(value) else f"{100 * value:.1f}%"


def _as_dict(result: TrainResult | None) -> dict[str, Any] | None:
    if result is None:
        return None
    return {k: str(v) if isinstance(v, Path) else v for k, v in attrs.asdict(result).items()}
