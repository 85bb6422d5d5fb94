"""Where a run starts: the newest checkpoint that is whole and of this run, loaded; the folder rewound to it.

Sealed checkpoints are tried newest first. One that fails its manifest (``manifest.damage``) is
named in one warning line with the reason, set aside as ``step-NNNNNNN.damaged`` (kept for a look,
never loaded again), and the one before it is tried; with none left the run starts from step 0.
A whole checkpoint made with other identity settings (``identity``) is refused in one line, and so
is one that loads with an error: falling back to an older one would not help. With
``run.resume = false`` no checkpoint is loaded. Either way the folder is then rewound to the step
the run starts from (``logs.rewind``), and the optimizer takes this run's ``[optim]`` settings, since
loading its state brings back the learning rate it was saved with.

The main process decides and tells the others, so every process loads the same checkpoint.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import Any

from agentflow_core.errors import AgentFlowError, ConfigError, UsageError, naming_storage_errors, one_line
from agentflow_core.inert import inert
from agentflow_rl.flow_grpo.config import OptimConfig, TrainConfig
from agentflow_rl.flow_grpo.run.checkpoint import Progress, checkpoint_folders, is_complete
from agentflow_rl.flow_grpo.run.identity import differences, identity
from agentflow_rl.flow_grpo.run.logs import rewind
from agentflow_rl.flow_grpo.run.manifest import damage, read_manifest

#: What a refusal suggests instead.
_INSTEAD = (
    "resume with the settings it was made with, or set run.resume = false (or another run.output_dir) to start afresh"
)


def resume_run(accelerator: Any, config: TrainConfig, progress: Progress, optimizer: Any) -> Path | None:
    """Load the checkpoint the run resumes from (``None``: it starts at step 0) and rewind the folder to it."""
    run = config.run
    found = _agreed(accelerator, run.output_dir, identity(config)) if run.resume else None
    if found is not None:
        _load(accelerator, found)
        _apply_optim_settings(optimizer, config.optim)
        accelerator.print(f"resumed from {found} at step {progress.step}")
    if accelerator.is_main_process:
        rewind(run.output_dir, progress.step)
    accelerator.wait_for_everyone()
    return found


def newest_usable(output_dir: str | Path, settings: dict[str, str]) -> Path | None:
    """The newest sealed checkpoint that is whole (setting damaged ones aside, one warning each)."""
    sealed = [p for p in checkpoint_folders(output_dir) if is_complete(p)]
    for position in range(len(sealed) - 1, -1, -1):
        folder = sealed[position]
        why = damage(folder)
        if why is None:
            _check_settings(folder, settings)
            return folder
        aside = _set_aside(folder)
        then = f"trying {sealed[position - 1].name}" if position else "no checkpoint left: starting from step 0"
        _warn(f"checkpoint {folder} is damaged ({why}); set aside as {aside.name}; {then}")
    return None


def _agreed(accelerator: Any, output_dir: str, settings: dict[str, str]) -> Path | None:
    """``newest_usable`` as the main process finds it, on every process (its refusal too)."""
    if accelerator.num_processes == 1:
        return newest_usable(output_dir, settings)
    from accelerate.utils import broadcast_object_list

    answer: list[str | None] = [None, None]
    if accelerator.is_main_process:
        try:
            found = newest_usable(output_dir, settings)
            answer[0] = None if found is None else str(found)
        except AgentFlowError as exc:
            answer[1] = str(exc)
    broadcast_object_list(answer)
    if answer[1] is not None:
        raise ConfigError(answer[1])
    return None if answer[0] is None else Path(answer[0])


def _check_settings(folder: Path, settings: dict[str, str]) -> None:
    manifest = read_manifest(folder)
    changed = differences(manifest.settings, settings) if manifest is not None else []
    if changed:
        raise ConfigError(f"{folder} was made with other settings: {'; '.join(changed)}; {_INSTEAD}")


def _load(accelerator: Any, folder: Path) -> None:
    try:
        accelerator.load_state(str(folder))
    except AgentFlowError:
        raise
    except Exception as exc:  # a checkpoint from before manifests, or one this run cannot read
        raise UsageError(f"cannot resume from {folder}: {one_line(exc)}; {_INSTEAD}") from None


def _apply_optim_settings(optimizer: Any, optim: OptimConfig) -> None:
    for group in optimizer.param_groups:
        group.update(lr=optim.lr, betas=optim.betas, weight_decay=optim.weight_decay)


def _set_aside(folder: Path) -> Path:
    aside = folder.with_name(f"{folder.name}.damaged")
    with naming_storage_errors(aside):
        if aside.exists():
            shutil.rmtree(aside)
        folder.rename(aside)
    return aside


def _warn(line: str) -> None:
    print(f"warning: {inert(line)}", file=sys.stderr, flush=True)
