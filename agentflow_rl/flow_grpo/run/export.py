"""A finished run's deliverable: each trained module as a folder any ``hf:`` engine or vLLM loads.

Checkpoints are for resuming (optimizer, RNG, data position, accelerate's layout); this is what a
run is for. Full-weight runs write a plain transformers folder per module; LoRA runs a standard
PEFT adapter folder, and on request the adapter merged into a copy of the base.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from agentflow_rl.flow_grpo.model import lora
from agentflow_rl.flow_grpo.model.trained import TrainedModules
from agentflow_rl.flow_grpo.run.storage import writing

#: Where a run leaves its trained modules: ``<output_dir>/policy/<module>/``.
POLICY_DIR = "policy"
#: Where LoRA modules merged into the base go, on request: ``<output_dir>/merged/<module>/``.
MERGED_DIR = "merged"


def export_policy(
    accelerator: Any, modules: TrainedModules, tokenizer: Any, output_dir: str | Path, *, merged: bool = False
) -> dict[str, Path]:
    """Each trained module as something any ``hf:`` engine loads, in ``<output_dir>/policy/<module>/``.

    Full-weight runs write a plain transformers folder (safetensors, config, tokenizer); LoRA runs
    write a standard PEFT adapter folder, loaded with the base model (the ``hf`` engine's
    ``adapter`` option, or ``vllm serve --enable-lora``), and with ``merged`` also a transformers
    folder per module with its adapter merged in.
    """
    root = Path(output_dir) / POLICY_DIR
    with writing(root, "the last checkpoint is kept, and the same command exports from it once there is room"):
        if modules.adapters:
            folders = _export_lora(accelerator, modules, tokenizer, Path(output_dir), merged=merged)
        else:
            folders = {
                role: export_weights(accelerator, modules.prepared(role), tokenizer, root / role)
                for role in modules.roles
            }
    if accelerator.is_main_process:
        for written in (root, Path(output_dir) / MERGED_DIR):
            if written.is_dir():
                readable_as_umask(written)
    return folders


def _export_lora(
    accelerator: Any, modules: TrainedModules, tokenizer: Any, output_dir: Path, *, merged: bool
) -> dict[str, Path]:
    root = output_dir / POLICY_DIR
    accelerator.wait_for_everyone()
    folders: dict[str, Path] = {}
    if accelerator.is_main_process:
        model = modules.unwrapped(modules.roles[0])
        folders = lora.export_adapters(model, tokenizer, modules.roles, root)
        if merged:
            lora.export_merged(model, tokenizer, modules.roles, output_dir / MERGED_DIR)
    accelerator.wait_for_everyone()
    return folders or {role: root / role for role in modules.roles}


def readable_as_umask(folder: Path) -> None:
    """Give every exported file the mode a plain ``open`` would have given it.

    safetensors writes through a private temporary file, so weights land as 0600 while the config
    and tokenizer beside them follow the umask; a server running as another user (``vllm serve``
    in a container, a shared model directory) could then read the config and fail on the weights.
    """
    umask = _current_umask()
    for path in folder.rglob("*"):
        if path.is_file() and not path.is_symlink():
            path.chmod(0o666 & ~umask)


def _current_umask() -> int:
    """Read without setting it where the OS allows: ``os.umask`` alone would change it for every thread."""
    import os

    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except OSError:
        pass
    umask = os.umask(0o022)
    os.umask(umask)
    return umask


def export_weights(accelerator: Any, model: Any, tokenizer: Any, folder: str | Path) -> Path:
    """One model's full weights and the tokenizer as a transformers folder.

    Tied embeddings stay tied: ``save_pretrained`` writes the shared tensor once.
    """
    path = Path(folder)
    accelerator.wait_for_everyone()
    state = accelerator.get_state_dict(model)  # a gather under FSDP: every process must take part
    if accelerator.is_main_process:
        unwrapped = accelerator.unwrap_model(model)
        unwrapped.save_pretrained(path, state_dict=state, safe_serialization=True)
        tokenizer.save_pretrained(path)
    accelerator.wait_for_everyone()
    return path
