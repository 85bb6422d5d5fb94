"""What a PATH given to ``agentflow view`` is: an evaluation run, a trajectory, or a training run."""

from __future__ import annotations

from pathlib import Path

from agentflow_core import UsageError
from agentflow_rl.view.eval_run import EvalRun
from agentflow_rl.view.training_run import TrainingRun
from agentflow_rl.view.trajectory_file import TrajectoryFile

Source = EvalRun | TrajectoryFile | TrainingRun

_KINDS: tuple[type[EvalRun] | type[TrajectoryFile] | type[TrainingRun], ...] = (EvalRun, TrainingRun, TrajectoryFile)


def open_source(path: Path) -> Source:
    """The viewer's reader for ``path``; a ``results.jsonl`` stands for its run directory."""
    if path.is_file() and path.name == "results.jsonl":
        path = path.parent
    if not path.exists():
        raise UsageError(f"{path} does not exist")
    for kind in _KINDS:
        if kind.claims(path):
            return kind(path)
    raise UsageError(
        f"{path} is neither an evaluation run (results.jsonl or run.json), a Flow-GRPO output directory "
        "(metrics.jsonl, samples/ or checkpoints/) nor a trajectory JSON from `agentflow solve --json`"
    )
