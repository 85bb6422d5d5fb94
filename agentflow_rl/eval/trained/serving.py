"""Where the trained modules run in an eval: on vLLM servers started for it, or in this process.

Either way each trained module gets two engines, one per run of the comparison: the untrained base
model (the ``base`` run) and the module's trained weights (the ``trained`` run). They keep the
sampling settings the agent config gives that module, so the two runs differ in the weights alone.

* ``vllm``: LoRA runs start one server with the base model and every adapter
  (``--lora-modules planner=<folder> ...``); requests name ``base`` or the module. All-weight runs
  start one server per model (the base, then each module's folder). The servers are the rollout
  fleet's (:mod:`agentflow_rl.flow_grpo.fleet.launcher`): they stop with the eval however it ends.
* ``hf``: the ``hf`` engine loads the base, with the module's adapter merged in (its ``adapter``
  option) or the module's own folder.
"""

from __future__ import annotations

import contextlib
import enum
import importlib.util
import os
import subprocess
import sys
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import attrs

from agentflow_core import EngineConfig, UsageError
from agentflow_core.records import ModuleRole
from agentflow_rl.eval.trained.training_run import TrainingRun
from agentflow_rl.flow_grpo.fleet.launcher import ServerFleet, ServerSpec

#: The interpreter that runs vLLM, where ``--vllm-python`` does not name one.
VLLM_PYTHON_VARIABLE = "AGENTFLOW_VLLM_PYTHON"
#: The name requests use for the untrained base on a vLLM server.
BASE_NAME = "base"
#: The ranks vLLM's ``--max-lora-rank`` accepts (``vllm.config.lora.MaxLoRARanks``).
VLLM_LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)


class Serve(enum.Enum):
    VLLM = "vllm"
    HF = "hf"


@attrs.frozen
class TrainedEngines:
    """Each trained module's engine in the run without its training (``base``) and with it (``trained``)."""

    base: Mapping[ModuleRole, EngineConfig]
    trained: Mapping[ModuleRole, EngineConfig]


def hf_engines(run: TrainingRun, configured: Mapping[ModuleRole, EngineConfig]) -> TrainedEngines:
    """In this process: the base, and the base with each adapter merged in (or each module's folder)."""
    base = f"hf:{run.base_model}"
    trained = {
        role: _like(configured[role], run, base, options={"adapter": str(folder)})
        if run.adapters
        else _like(configured[role], run, f"hf:{folder}")
        for role, folder in run.folders.items()
    }
    return TrainedEngines({role: _like(configured[role], run, base) for role in run.roles}, trained)


@contextlib.contextmanager
def vllm_engines(
    run: TrainingRun,
    configured: Mapping[ModuleRole, EngineConfig],
    *,
    python: str,
    extra_args: Sequence[str],
    log_dir: Path,
) -> Iterator[TrainedEngines]:
    """Start the servers (see the module doc), yield the engines that reach them, stop the servers."""
    with contextlib.ExitStack() as servers:
        urls = {}
        for name, spec in server_specs(run, python, extra_args).items():
            urls[name] = servers.enter_context(ServerFleet(spec, log_dir / name)).urls[0]
        base = {role: _like(configured[role], run, f"openai:{BASE_NAME}", urls[BASE_NAME]) for role in run.roles}
        trained = {
            role: _like(configured[role], run, f"openai:{role}", urls[BASE_NAME if run.adapters else role])
            for role in run.roles
        }
        yield TrainedEngines(base, trained)


def server_specs(run: TrainingRun, python: str, extra_args: Sequence[str]) -> dict[str, ServerSpec]:
    """The servers an eval of ``run`` needs, by the name requests use (the base's first)."""
    if run.adapters:
        lora = ["--lora-modules", *(f"{role}={folder}" for role, folder in run.folders.items())]
        lora += ["--max-lora-rank", str(_vllm_rank(run.lora_rank())), "--max-loras", str(len(run.folders))]
        return {BASE_NAME: ServerSpec(python, run.base_model, extra_args=(*lora, *extra_args), served_name=BASE_NAME)}
    models: dict[str, str] = {BASE_NAME: run.base_model, **{role: str(folder) for role, folder in run.folders.items()}}
    return {
        name: ServerSpec(python, model, extra_args=tuple(extra_args), served_name=name)
        for name, model in models.items()
    }


def vllm_python(given: str | None) -> str:
    """The interpreter with vLLM: ``given``, else ``$AGENTFLOW_VLLM_PYTHON``, else this one if it has vLLM."""
    python = given or os.environ.get(VLLM_PYTHON_VARIABLE)
    fix = (
        f"install vLLM (pip install vllm), name an interpreter that has it with --vllm-python PATH "
        f"(or {VLLM_PYTHON_VARIABLE}), or evaluate in this process with --serve hf"
    )
    if python is None:
        if importlib.util.find_spec("vllm") is None:
            raise UsageError(f"--serve vllm: vLLM is not installed for {sys.executable}; {fix}")
        return sys.executable
    if not Path(python).is_file():
        raise UsageError(f"--serve vllm: no interpreter at {python}; {fix}")
    probe = "import importlib.util, sys; sys.exit(importlib.util.find_spec('vllm') is None)"
    try:
        found = subprocess.run([python, "-c", probe], capture_output=True, timeout=60).returncode == 0
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise UsageError(f"--serve vllm: cannot run {python}: {exc}; {fix}") from None
    if not found:
        raise UsageError(f"--serve vllm: {python} has no vLLM; {fix}")
    return python


def _vllm_rank(rank: int) -> int:
    """The smallest rank vLLM accepts that holds ``rank``."""
    return next((allowed for allowed in VLLM_LORA_RANKS if allowed >= rank), rank)


def _like(
    configured: EngineConfig,
    run: TrainingRun,
    model: str,
    base_url: str | None = None,
    *,
    options: dict[str, str] | None = None,
) -> EngineConfig:
    """``model`` with the sampling and patience the agent config gives the module; an unset
    temperature is the run's own evaluation temperature, so both runs sample alike on any engine."""
    temperature = configured.temperature if configured.temperature is not None else run.eval_temperature
    return EngineConfig(
        model=model,
        base_url=base_url,
        temperature=temperature,
        max_tokens=configured.max_tokens,
        timeout_s=configured.timeout_s,
        max_attempts=configured.max_attempts,
        options=options or {},
    )
