"""Checkpoints a killed run can resume from: weights, optimizer, RNG, step and data position.

``accelerator.save_state`` writes the model, the optimizer, every RNG (Python, NumPy, torch; the
rollout's sampling draws from torch's global generator, so it is covered) and the objects given
to ``register_for_checkpointing`` — here the :class:`Progress` counters and the record stream.
Then ``manifest.seal`` makes every file durable and writes the ``COMPLETE`` marker last: a run
killed while saving leaves a folder without it, which nothing loads and the next start removes.
A save that fails for want of room removes its half-written folder and says which file it was
writing; the checkpoint before it is untouched (old ones are pruned only once a new one is sealed).
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

from agentflow_core.errors import StorageError
from agentflow_rl.flow_grpo.run.manifest import COMPLETE, seal
from agentflow_rl.flow_grpo.run.storage import writing

#: A checkpoint folder's name; anything else under ``checkpoints/`` (``step-0000030.damaged``) is not one.
_NAME = re.compile(r"step-(\d{7,})")


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


def checkpoint_path(output_dir: str | Path, step: int) -> Path:
    return checkpoint_root(output_dir) / f"step-{step:07d}"


def step_of(folder: Path) -> int:
    found = _NAME.fullmatch(folder.name)
    if found is None:
        raise ValueError(f"{folder} is not a checkpoint folder")
    return int(found.group(1))


def checkpoint_folders(output_dir: str | Path) -> list[Path]:
    """Every checkpoint folder of the run, sealed or not, oldest first."""
    root = checkpoint_root(output_dir)
    found = [p for p in root.iterdir() if _NAME.fullmatch(p.name) and p.is_dir()] if root.is_dir() else []
    return sorted(found, key=step_of)


def is_complete(folder: Path) -> bool:
    return (folder / COMPLETE).is_file()


def latest_checkpoint(output_dir: str | Path) -> Path | None:
    """The newest checkpoint that finished saving, or ``None`` (whether it is whole: ``manifest.damage``)."""
    done = [p for p in checkpoint_folders(output_dir) if is_complete(p)]
    return done[-1] if done else None


def save_checkpoint(
    accelerator: Any, output_dir: str | Path, step: int, *, keep: int, settings: Mapping[str, str], checksums: bool
) -> Path:
    path = checkpoint_path(output_dir, step)
    if accelerator.is_main_process:
        remove_checkpoint(path)  # what a killed save, or a run that was rewound past it, left there
    accelerator.wait_for_everyone()
    before = latest_checkpoint(output_dir)
    then = (
        f"{before.name} is still the last checkpoint, and the same command resumes from it once there is room"
        if before is not None
        else "there is no earlier checkpoint: the same command starts the run again once there is room"
    )
    try:
        with writing(path, then):
            accelerator.save_state(str(path))
            accelerator.wait_for_everyone()
            if accelerator.is_main_process:
                seal(path, step, settings, checksums=checksums)
    except StorageError:
        if accelerator.is_main_process:
            remove_checkpoint(path)  # frees the room it took; it was never sealed
        raise
    if accelerator.is_main_process:
        _prune(output_dir, keep)
    accelerator.wait_for_everyone()
    return path


def remove_checkpoint(folder: Path) -> None:
    """Unseal first, so that a kill halfway through leaves an unsealed folder, never a sealed half."""
    if folder.is_dir():
        (folder / COMPLETE).unlink(missing_ok=True)
        shutil.rmtree(folder, ignore_errors=True)


def _prune(output_dir: str | Path, keep: int) -> None:
    finished = [p for p in checkpoint_folders(output_dir) if is_complete(p)]
    for old in finished[:-keep]:
        remove_checkpoint(old)
