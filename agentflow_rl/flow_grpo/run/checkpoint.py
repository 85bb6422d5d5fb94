"""Checkpoints a killed run can resume from: weights, optimizer, RNG, step and data position.

``accelerator.save_state`` writes the model, the optimizer, every RNG (Python, NumPy, torch; the
rollout's sampling draws from torch's global generator, so it is covered) and the objects given
to ``register_for_checkpointing`` — here the :class:`Progress` counters and the record stream.
A ``COMPLETE`` file is written last: a run killed while saving leaves a folder without it, and
resuming skips that folder.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

COMPLETE = "COMPLETE"


@attrs.define
class Progress:
    #: Training steps done: one rollout batch and its ``updates_per_batch`` optimizer steps each.
    step: int = 0
    #: Wall time spent in earlier sessions of this run, in seconds.
    elapsed_s: float = 0.0
    best_success: float = -1.0

    def state_dict(self) -> dict[str, Any]:
        return attrs.asdict(self)

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        for key, value in state.items():
            setattr(self, key, value)


def checkpoint_root(output_dir: str | Path) -> Path:
    return Path(output_dir) / "checkpoints"


def latest_checkpoint(output_dir: str | Path) -> Path | None:
    """The newest checkpoint that finished saving, or ``None``."""
    root = checkpoint_root(output_dir)
    done = sorted(p for p in root.glob("step-*") if (p / COMPLETE).is_file()) if root.is_dir() else []
    return done[-1] if done else None


def save_checkpoint(accelerator: Any, output_dir: str | Path, step: int, keep: int) -> Path:
    path = checkpoint_root(output_dir) / f"step-{step:07d}"
    accelerator.save_state(str(path))
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        (path / COMPLETE).write_text(f"{step}\n", encoding="utf-8")
        _prune(checkpoint_root(output_dir), keep)
    accelerator.wait_for_everyone()
    return path


def _prune(root: Path, keep: int) -> None:
    finished = sorted(p for p in root.glob("step-*") if (p / COMPLETE).is_file())
    for old in finished[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
