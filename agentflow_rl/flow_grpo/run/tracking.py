"""Metrics: accelerate trackers (TensorBoard by default) plus a JSONL file, and the learning curve.

The JSONL tracker is always on: one object per logged step in ``<output_dir>/metrics.jsonl``,
appended, so a resumed run extends the same file (after ``logs.rewind`` dropped the rows of the steps it
does again). It is what the curve, the smoke proof and the resume test read; TensorBoard is for people.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from accelerate.tracking import GeneralTracker

from agentflow_core.files import write_atomic
from agentflow_rl.flow_grpo.run.storage import RESUME_WITH_ROOM, writing

METRICS_FILE = "metrics.jsonl"


class JsonlTracker(GeneralTracker):
    name = "jsonl"
    requires_logging_directory = True

    def __init__(self, run_name: str, logging_dir: str | Path) -> None:
        super().__init__()
        self.path = Path(logging_dir) / METRICS_FILE

    def start(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)

    @property
    def tracker(self) -> Path:
        return self.path

    def store_init_configuration(self, values: dict[str, Any]) -> None:
        path = self.path.parent / "config.json"
        with writing(path, RESUME_WITH_ROOM):
            write_atomic(path, json.dumps(values, indent=2, default=str))

    def log(self, values: dict[str, Any], step: int | None = None, **kwargs: Any) -> None:
        row = {"step": step, "time": time.time(), **values}
        with writing(self.path, RESUME_WITH_ROOM), self.path.open("a", encoding="utf-8") as out:
            out.write(json.dumps(row) + "\n")


def read_metrics(output_dir: str | Path) -> list[dict[str, Any]]:
    """A run's metrics, from its output folder (or from a metrics JSONL file itself).

    A line that is not a row (the last one, cut short by a kill or a full disk) is skipped.
    """
    path = Path(output_dir) if Path(output_dir).is_file() else Path(output_dir) / METRICS_FILE
    if not path.is_file():
        return []
    rows = []
    for line in path.read_bytes().splitlines():
        try:
            row = json.loads(line)
        except ValueError:
            continue
        if isinstance(row, dict):
            rows.append(row)
    return rows


def plot_curves(runs: Sequence[tuple[str, Sequence[dict[str, Any]]]], path: str | Path, title: str) -> Path:
    """Held-out success against training minutes, one line per run (e.g. Flow-GRPO vs ablation)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 2, figsize=(11, 4))
    for label, rows in runs:
        evals = [r for r in rows if "eval/success" in r]
        axes[0].plot([r["train/minutes"] for r in evals], [r["eval/success"] for r in evals], marker="o", label=label)
        trains = [r for r in rows if "train/reward" in r]
        axes[1].plot([r["step"] for r in trains], [r["train/reward"] for r in trains], label=label)
    axes[0].set(xlabel="training time (min)", ylabel="held-out success (greedy)", ylim=(0, 1.02), title=title)
    axes[1].set(xlabel="step", ylabel="mean training reward (sampled)", ylim=(0, 1.02), title="training reward")
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return Path(path)


#: What ``plot_diagnostics`` draws against the step, after held-out success against minutes.
DIAGNOSTICS = (
    ("loss/kl", "mean k3 KL per token", True),
    ("loss/kl_max", "largest k3 KL of a token", True),
    ("loss/grad_norm", "gradient norm (before clipping)", True),
    ("train/reward", "mean training reward", False),
)


def plot_diagnostics(runs: Sequence[tuple[str, Sequence[dict[str, Any]]]], path: str | Path, title: str) -> Path:
    """Held-out success, KL (mean and largest), gradient norm and reward of several runs, side by side:
    how two objectives or settings compare on the same task."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 1 + len(DIAGNOSTICS), figsize=(4.2 * (1 + len(DIAGNOSTICS)), 3.8))
    for label, rows in runs:
        evals = [r for r in rows if "eval/success" in r]
        axes[0].plot([r["train/minutes"] for r in evals], [r["eval/success"] for r in evals], marker="o", label=label)
        for ax, (key, _, _) in zip(axes[1:], DIAGNOSTICS, strict=True):
            points = [(r["step"], r[key]) for r in rows if key in r and r[key] > 0]
            ax.plot([p[0] for p in points], [p[1] for p in points], label=label)
    axes[0].set(xlabel="training time (min)", ylabel="held-out success (greedy)", ylim=(0, 1.02), title=title)
    for ax, (_, name, log) in zip(axes[1:], DIAGNOSTICS, strict=True):
        ax.set(xlabel="step", title=name)
        if log:
            ax.set_yscale("log")
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return Path(path)
