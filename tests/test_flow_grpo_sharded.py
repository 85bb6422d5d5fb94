"""FSDP rollouts: generation from an unsharded copy that follows the sharded policy."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("accelerate")

from accelerate.utils import DistributedType  # noqa: E402

from agentflow_core import ConfigError  # noqa: E402
from agentflow_rl.flow_grpo.model.sharded import is_sharded, shards_parameters  # noqa: E402
from agentflow_rl.flow_grpo.testing import tiny_world  # noqa: E402

WORKER = Path(__file__).parent / "workers" / "fsdp_rollout.py"
ROOT = Path(__file__).resolve().parents[1]


def test_fsdp2_policy_rolls_out_from_a_refreshed_copy_on_two_processes(tmp_path: Path) -> None:
    """Two gloo processes on the CPU: each decodes a different length, and the copy scores like the shards."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(WORKER)]
    done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)

    assert done.returncode == 0, done.stderr[-3000:]
    assert "rank 0 ok" in done.stdout and "rank 1 ok" in done.stdout, done.stdout


def test_an_unsharded_policy_generates_with_the_live_model(cpu_accelerator: Any) -> None:
    assert not is_sharded(tiny_world().model)
    assert not shards_parameters(cpu_accelerator)


def _deepspeed(stage: int) -> SimpleNamespace:
    plugin = SimpleNamespace(zero_stage=stage)
    return SimpleNamespace(distributed_type=DistributedType.DEEPSPEED, state=SimpleNamespace(deepspeed_plugin=plugin))


def test_deepspeed_zero3_is_refused_before_training() -> None:
    with pytest.raises(ConfigError, match=r"ZeRO-3 .* use ZeRO-2 .* or FSDP"):
        shards_parameters(_deepspeed(3))
    assert not shards_parameters(_deepspeed(2))
