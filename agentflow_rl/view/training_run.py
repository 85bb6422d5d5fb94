"""A Flow-GRPO output directory as the viewer serves it: metrics as they are logged, checkpoints, samples.

``metrics.jsonl`` is followed like a results file (a training run appends to it while the page
is open); ``config.json`` is the flat config the trainer stored; ``samples/step-*.jsonl`` are the
rollouts ``agentflow_rl.flow_grpo.run.kept_rollouts`` kept, read through the core's converter.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

from agentflow_core.serde import to_dict
from agentflow_rl.flow_grpo.run.checkpoint import checkpoint_folders, is_complete
from agentflow_rl.flow_grpo.run.kept_rollouts import KEPT_DIR, kept_path, kept_steps, read_kept_rollouts
from agentflow_rl.view.tail import JsonlTail, seen_upto

#: ``flow_grpo.run.tracking.METRICS_FILE``, named again: that module imports accelerate, which a viewer
#: must not need.
METRICS_FILE = "metrics.jsonl"

#: Prefix of per-module metrics: ``module/<role>/<metric>`` (``module/planner/kl``).
MODULE_PREFIX = "module/"


class TrainingRun:
    kind = "train"

    def __init__(self, path: Path) -> None:
        self.path = path
        self.name = path.resolve().name
        self._tail = JsonlTail(path / METRICS_FILE)
        self._lock = threading.Lock()
        self._epoch = 1
        self._rows: list[dict[str, Any]] = []

    @staticmethod
    def claims(path: Path) -> bool:
        markers = (METRICS_FILE, KEPT_DIR, "checkpoints")
        return path.is_dir() and any((path / marker).exists() for marker in markers)

    def metrics_since(self, version: str) -> dict[str, Any]:
        with self._lock:
            reset, lines = self._tail.read_new()
            if reset:
                self._epoch, self._rows = self._epoch + 1, []
            for _, line in lines:
                row = _metric_row(line)
                if row is not None:
                    self._rows.append(row)
            seen = seen_upto(version, self._epoch)
            rows = self._rows[seen or 0 :]
            return {"version": f"{self._epoch}-{len(self._rows)}", "reset": seen is None, "rows": rows}

    def info(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "path": str(self.path),
            "config": _json_file(self.path / "config.json"),
            "run": _json_file(self.path / "run.json"),
            "checkpoints": _checkpoints(self.path),
            "sample_steps": kept_steps(self.path),
        }

    def samples(self, step: int) -> dict[str, Any]:
        path = kept_path(self.path, step)
        if not path.is_file():
            raise KeyError(step)
        return {"step": step, "samples": [to_dict(s) for s in read_kept_rollouts(path)]}


def _metric_row(line: bytes) -> dict[str, Any] | None:
    try:
        row = json.loads(line)
    except ValueError:
        return None
    return row if isinstance(row, dict) else None


def _json_file(path: Path) -> Any:
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except ValueError:
        return {"error": f"{path.name} is not JSON"}


def _checkpoints(path: Path) -> list[dict[str, Any]]:
    return [{"name": p.name, "complete": is_complete(p)} for p in checkpoint_folders(path)]
