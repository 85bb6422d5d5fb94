"""A finished Flow-GRPO run as the eval sees it: which modules it trained, in what form, on what base.

Read from what ``agentflow train`` leaves in its ``run.output_dir``: ``policy/<module>/`` (a PEFT
adapter folder per trained module, or a transformers folder for all-weight runs) and ``config.json``
(the training config, flattened to ``section.key`` values). Nothing here loads a model.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

from agentflow_core import UsageError
from agentflow_core.records import MODULE_ROLES, ModuleRole

#: Where a run leaves its trained modules (``agentflow_rl.flow_grpo.run.export.POLICY_DIR``).
POLICY_DIR = "policy"
#: The training config a run writes beside its metrics.
CONFIG_FILE = "config.json"
ADAPTER_CONFIG = "adapter_config.json"


@attrs.frozen
class TrainingRun:
    path: Path
    #: Each trained module's folder under ``policy/``.
    folders: Mapping[ModuleRole, Path]
    #: LoRA adapter folders (True) or full transformers folders (False).
    adapters: bool
    #: The model the run started from: a folder, or a hub id.
    base_model: str
    #: The training config, flat (``{"task.kind": "records", ...}``).
    settings: Mapping[str, Any]

    @property
    def roles(self) -> tuple[ModuleRole, ...]:
        return tuple(self.folders)

    @property
    def records_task(self) -> bool:
        """Trained in an agent of its own (``task.kind = "records"``), not in the synthetic world."""
        return self.settings.get("task.kind") == "records"

    @property
    def agent_config(self) -> Path | None:
        """The ``agentflow.toml`` a records run solved with, as the run recorded it."""
        value = self.settings.get("task.agent_config")
        return Path(value) if self.records_task and value not in (None, "None") else None

    @property
    def modules(self) -> dict[ModuleRole, str]:
        """The module implementations a records run chose (``task.planner`` ...): the prompts its weights learnt."""
        if not self.records_task:
            return {}
        chosen = {role: self.settings.get(f"task.{role}") for role in MODULE_ROLES}
        return {role: name for role, name in chosen.items() if isinstance(name, str) and name != "None"}

    @property
    def eval_temperature(self) -> float:
        """The temperature the run evaluated its modules at (``rollout.eval_temperature``)."""
        value = self.settings.get("rollout.eval_temperature", 0.0)
        return float(value) if isinstance(value, int | float) else 0.0

    def lora_rank(self) -> int:
        """The largest adapter rank, which a vLLM server's ``--max-lora-rank`` must cover."""
        return max(int(_adapter_config(folder).get("r") or 16) for folder in self.folders.values())

    def digest(self, role: ModuleRole) -> str:
        """What ``role``'s weights are, by content: a retrained module is another run's result."""
        folder = self.folders[role]
        digest = hashlib.sha256()
        for file in sorted(folder.iterdir()):
            if file.suffix in (".safetensors", ".bin") or file.name == ADAPTER_CONFIG:
                digest.update(file.name.encode() + b"\0")
                with file.open("rb") as data:
                    while chunk := data.read(1 << 20):
                        digest.update(chunk)
        return "sha256:" + digest.hexdigest()[:16]


def read_training_run(path: str | Path, *, base_model: str | None = None) -> TrainingRun:
    """The trained modules of the run in ``path``; ``base_model`` overrides the base the run names."""
    path = Path(path)
    if not path.is_dir():
        raise UsageError(f"{path} is not a directory (give the run.output_dir of an `agentflow train` run)")
    settings = _settings(path)
    policy = path / POLICY_DIR
    folders = {role: policy / role for role in MODULE_ROLES if (policy / role).is_dir()}
    if not folders:
        raise UsageError(
            f"{path} has no trained modules in {policy}/: a run exports them when it ends (or stops at "
            "run.max_steps / run.max_minutes); run `agentflow train` to its end first"
        )
    kinds = {role: _kind(folder) for role, folder in folders.items()}
    adapters = set(kinds.values()) == {"adapter"}
    if not adapters and set(kinds.values()) != {"weights"}:
        odd = ", ".join(f"{folders[r]} ({k})" for r, k in kinds.items())
        raise UsageError(f"{policy} must hold PEFT adapter folders only, or transformers folders only: {odd}")
    first = next(iter(folders.values()))
    named = str(_adapter_config(first).get("base_model_name_or_path") or "") if adapters else ""
    base = base_model or _base_model(settings, named, first if adapters else path / CONFIG_FILE)
    return TrainingRun(path, folders, adapters, base, settings)


def _settings(path: Path) -> dict[str, Any]:
    file = path / CONFIG_FILE
    try:
        settings = json.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(f"{path} has no {CONFIG_FILE}: not the output directory of an `agentflow train` run") from None
    except (OSError, ValueError) as exc:
        raise UsageError(f"{file} is not readable JSON: {exc}") from None
    if not isinstance(settings, dict):
        raise UsageError(f"{file} is not a training config (a JSON object)")
    return settings


def _kind(folder: Path) -> str:
    if (folder / ADAPTER_CONFIG).is_file():
        return "adapter"
    if (folder / "config.json").is_file():
        return "weights"
    return "no adapter_config.json or config.json"


def _adapter_config(folder: Path) -> dict[str, Any]:
    file = folder / ADAPTER_CONFIG
    try:
        value = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UsageError(f"{file} is not readable JSON: {exc}") from None
    return value if isinstance(value, dict) else {}


def _base_model(settings: Mapping[str, Any], named: str, where: Path) -> str:
    """The folder an adapter names if it is there, else the run's ``policy.source`` (the embedded
    model's converted folder is made again where it is missing), else a hub id as given."""
    if named and Path(named).expanduser().is_dir():
        return named
    source = str(settings.get("policy.source") or "")
    if source == "tiny":
        raise UsageError(
            "the run trained the synthetic task's tiny random policy, which exists only in code and cannot "
            "answer benchmark questions; evaluate a run of a real model (policy.source)"
        )
    name = source.removeprefix("hf:")
    if name == "smollm2" or name.endswith(".gguf"):
        return str(_converted(name, str(settings.get("policy.dtype") or "float32")))
    candidate = named or name
    if not candidate:
        raise UsageError(f"{where} names no base model; pass --base-model (a folder or a hub id)")
    looks_like_a_path = Path(candidate).expanduser().is_absolute() or candidate.startswith(".")
    if looks_like_a_path and not Path(candidate).expanduser().is_dir():
        raise UsageError(
            f"base model not found: {candidate} (named by {where}) is not a folder here; "
            "pass --base-model (the folder or hub id the run trained on)"
        )
    return candidate


def _converted(name: str, dtype: str) -> Path:
    from agentflow_core.engines.embedded import smollm2_gguf_path
    from agentflow_rl.flow_grpo.model.policy import converted_gguf

    return converted_gguf(smollm2_gguf_path() if name == "smollm2" else Path(name).expanduser(), dtype)
