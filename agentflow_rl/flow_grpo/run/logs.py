"""The run folder's logs in step with its checkpoints, so that it never tells two stories of one step.

``metrics.jsonl`` and the kept rollouts ``samples/step-*.jsonl`` are appended as steps finish;
checkpoints come every ``run.checkpoint_every`` steps. Two things keep them in step:

- ``settle``, before each checkpoint is sealed: the logs written since the one before are fsync'd,
  so a power cut cannot keep a checkpoint and lose the rows of the steps it holds.
- ``rewind``, before a run starts: a run killed at step 12 whose last checkpoint is step 10 has
  logged steps 11 and 12, kept their rollouts, and perhaps half written checkpoint 12, and the
  resumed run does steps 11 and 12 again, from other weights. So everything the folder holds for
  steps after the one the run starts from is dropped: the rows of ``metrics.jsonl`` (the file is
  rewritten atomically, so a viewer following it sees a new file and reads it again from the top; a
  torn last line goes with them), the kept rollouts of those steps, and the checkpoint folders (a
  half-written one, or with ``run.resume = false`` those of the run it replaces). TensorBoard is told
  the same with its own ``purge_step`` (``tensorboard_purge_step``); its event files keep the old events.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from agentflow_core.files import fsync_folder, write_atomic
from agentflow_rl.flow_grpo.run.checkpoint import (
    checkpoint_folders,
    is_complete,
    latest_checkpoint,
    remove_checkpoint,
    step_of,
)
from agentflow_rl.flow_grpo.run.kept_rollouts import KEPT_DIR, kept_path, kept_steps
from agentflow_rl.flow_grpo.run.storage import RESUME_WITH_ROOM, writing
from agentflow_rl.flow_grpo.run.tracking import METRICS_FILE


def settle(output_dir: str | Path) -> None:
    """fsync ``metrics.jsonl`` and the rollouts kept since the last checkpoint (call it before the next)."""
    folder = Path(output_dir)
    last = latest_checkpoint(folder)
    since = step_of(last) if last is not None else 0
    files = [folder / METRICS_FILE, *(kept_path(folder, step) for step in kept_steps(folder) if step > since)]
    for path in files:
        if path.is_file():
            with writing(path, RESUME_WITH_ROOM), path.open("rb") as raw:
                os.fsync(raw.fileno())
    fsync_folder(folder / KEPT_DIR)
    fsync_folder(folder)


def rewind(output_dir: str | Path, step: int) -> None:
    """Drop what ``output_dir`` holds for steps after ``step`` (0: everything of an earlier run)."""
    folder = Path(output_dir)
    rewind_metrics(folder / METRICS_FILE, step)
    for kept in kept_steps(folder):
        if kept > step:
            with writing(kept_path(folder, kept), RESUME_WITH_ROOM):
                kept_path(folder, kept).unlink(missing_ok=True)
    for checkpoint in checkpoint_folders(folder):
        if step_of(checkpoint) > step or not is_complete(checkpoint):
            remove_checkpoint(checkpoint)


def rewind_metrics(path: Path, step: int) -> None:
    """Keep the rows of ``path`` logged at ``step`` or before; rewrite it only when something goes."""
    if not path.is_file():  # absent, or not a file of ours (a device, a pipe)
        return
    with writing(path, RESUME_WITH_ROOM):
        lines = path.read_bytes().splitlines(keepends=True)
        kept = [line for line in lines if _logged_by(line, step)]
        if len(kept) < len(lines):
            write_atomic(path, b"".join(kept).decode("utf-8"))


def tensorboard_purge_step(step: int) -> int:
    """TensorBoard hides earlier events at this step and after: those after ``step``, or all on a fresh
    start, whose step-0 evaluation is logged again."""
    return step + 1 if step else 0


def _logged_by(line: bytes, step: int) -> bool:
    """Whether ``line`` is a whole row logged at ``step`` or before (a torn or garbled line is not)."""
    if not line.endswith(b"\n"):
        return False
    try:
        row = json.loads(line)
    except ValueError:
        return False
    logged = row.get("step") if isinstance(row, dict) else None
    return isinstance(logged, int) and logged <= step
