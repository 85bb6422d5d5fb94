"""One trajectory as ``agentflow solve --json`` writes it, read through the core's converter."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from agentflow_core import Trajectory, UsageError
from agentflow_core.serde import from_json, to_dict


class TrajectoryFile:
    kind = "trajectory"

    def __init__(self, path: Path) -> None:
        self.path = path
        self.name = path.name
        try:
            self._trajectory = from_json(path.read_text(encoding="utf-8"), Trajectory)
        except Exception as exc:
            message = " ".join(str(exc).split())[:200]
            raise UsageError(f"{path} is not a trajectory as `agentflow solve --json` writes one: {message}") from None

    @staticmethod
    def claims(path: Path) -> bool:
        return path.is_file() and path.suffix == ".json"

    def trajectory(self) -> dict[str, Any]:
        return {"name": self.name, "path": str(self.path), "trajectory": to_dict(self._trajectory)}
