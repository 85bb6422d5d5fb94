"""The two proofs that the trainer learns: the synthetic task on the tiny policy (with its ablation), and SmolLM2.

``nox -s train_smoke`` and ``nox -s train_real`` run them through ``python -m agentflow_rl.flow_grpo``;
each trains through ``launch.train_from_file`` like any run and draws its learning curve.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import attrs

from agentflow_rl.flow_grpo.config import bundled_config
from agentflow_rl.flow_grpo.launch import percent, train_from_file
from agentflow_rl.flow_grpo.run.tracking import plot_curves, read_metrics
from agentflow_rl.flow_grpo.trainer import TrainResult


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
    main = train_from_file(source, {**base, "run.output_dir": str(output / "flow-grpo")})
    runs = [("Flow-GRPO", read_metrics(main.output_dir))]
    control = None
    if ablation:
        control = train_from_file(
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
        f"before: {percent(main.first_success)} held-out success; after: {percent(main.last_success)} "
        f"({main.steps} steps, {main.minutes:.1f} min); curve: {curve}"
    )
    if control is not None:
        before, after = percent(control.first_success), percent(control.last_success)
        print(f"advantage off: {before} -> {after} in {control.steps} steps")
    return ProofResult(main, control, curve, summary)


def real(
    output_dir: str | Path = "runs/train-real", *, steps: int | None = None, overrides: dict[str, Any] | None = None
) -> TrainResult:
    """SmolLM2-135M-Instruct as the Planner on the synthetic task mixture (``configs/smollm2.toml``),
    with its learning curve drawn to ``<output_dir>/learning_curve.png``."""
    extra = {"run.output_dir": str(output_dir), **({"run.max_steps": steps} if steps else {}), **(overrides or {})}
    result = train_from_file(bundled_config("smollm2.toml"), extra)
    title = "Flow-GRPO, synthetic tool use, SmolLM2-135M-Instruct planner"
    runs = [("Flow-GRPO", read_metrics(result.output_dir))]
    curve = plot_curves(runs, Path(output_dir) / "learning_curve.png", title)
    print(f"curve: {curve}")
    return result


def _as_dict(result: TrainResult | None) -> dict[str, Any] | None:
    if result is None:
        return None
    return {k: str(v) if isinstance(v, Path) else v for k, v in attrs.asdict(result).items()}
