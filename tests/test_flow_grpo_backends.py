"""Rollout backends: in-process, and a worker process that must hold exactly the trainer's weights
and must fail a step loudly when it dies or hangs."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("accelerate")

from agentflow_core import ConfigError, EngineConfig, GenerationRequest, Message  # noqa: E402
from agentflow_rl.flow_grpo import trainer  # noqa: E402
from agentflow_rl.flow_grpo.config import load_train_config  # noqa: E402
from agentflow_rl.flow_grpo.model.backends.base import BackendContext, RolloutBackendError  # noqa: E402
from agentflow_rl.flow_grpo.model.backends.inprocess import InProcessBackend  # noqa: E402
from agentflow_rl.flow_grpo.model.backends.worker import WorkerBackend  # noqa: E402
from agentflow_rl.flow_grpo.tasks.choice import tool_schema  # noqa: E402
from agentflow_rl.flow_grpo.testing import write_config  # noqa: E402


def _config(tmp_path: Path, lora: bool, **rollout: Any) -> Path:
    sections: dict[str, Any] = {
        "train": {"modules": ["planner", "verifier"]},
        "task": {"verifier": "synthetic_compact"},
        "rollout": {"group_size": 4, "questions_per_step": 2, "temperature": 1.0, "max_new_tokens": 8, **rollout},
        "optim": {"lr": 5e-2},
        "run": {"output_dir": str(tmp_path / "run"), "eval_every": 0, "checkpoint_every": 0, "trackers": []},
    }
    if lora:
        sections["policy"] = {"lora": {"r": 4, "alpha": 8.0}}
    return write_config(tmp_path / "train.toml", sections)


def _session(tmp_path: Path, lora: bool = True, **rollout: Any) -> Any:
    return trainer.start_session(load_train_config(_config(tmp_path, lora, backend="hf_worker", **rollout)))


REQUEST = GenerationRequest(
    (Message("user", "k3 plus 5 ; done : none"),),
    json_schema=tool_schema(["lookup", "double", "square", "add"]),
    max_tokens=8,
    temperature=0.0,
)


def _generate(backend: Any, name: str) -> Any:
    async def go() -> Any:
        return (await backend.engine(EngineConfig(model=f"policy:{name}", max_tokens=8)).generate(REQUEST)).tokens

    return asyncio.run(go())


@pytest.mark.parametrize("lora", [True, False], ids=["adapters", "full-weights"])
def test_after_a_sync_the_worker_samples_exactly_what_the_trainers_weights_give(tmp_path: Path, lora: bool) -> None:
    session = _session(tmp_path, lora=lora)
    try:
        assert isinstance(session.backend, WorkerBackend)
        for _ in range(2):
            trainer.train_step(session)  # each step syncs first, then trains: the worker is now one step behind
        session.backend.sync(session.progress.step)
        here = InProcessBackend(
            BackendContext(session.config.policy, session.config.rollout, session.modules, session.tokenizer)
        )
        for name in ("planner", "verifier", "base"):
            remote, local = _generate(session.backend, name), _generate(here, name)
            assert remote.completion_ids == local.completion_ids, name
            assert remote.completion_logprobs == pytest.approx(local.completion_logprobs, abs=1e-5), name
            assert remote.grammar == local.grammar
    finally:
        trainer.close_session(session)


def test_a_worker_that_dies_fails_the_next_step_in_one_line(tmp_path: Path) -> None:
    session = _session(tmp_path)
    try:
        trainer.train_step(session)
        pid = session.backend.pid
        os.kill(pid, signal.SIGKILL)
        with pytest.raises(RolloutBackendError, match=rf"rollout worker \(pid {pid}\) exited with code -9"):
            trainer.train_step(session)
    finally:
        trainer.close_session(session)


def test_a_worker_that_hangs_is_stopped_at_its_deadline(tmp_path: Path) -> None:
    # A healthy worker must answer within the short deadline too: it decodes a step's calls in one
    # batch, so that the last of them does not wait for the seven before it on a busy machine.
    session = _session(tmp_path, worker_timeout_s=3.0, max_batch=8)
    try:
        trainer.train_step(session)
        pid = session.backend.pid
        os.kill(pid, signal.SIGSTOP)  # alive, but never answers again
        stuck = rf"rollout worker \(pid {pid}\) did not (take the new weights|answer) within 3 s"
        with pytest.raises(RolloutBackendError, match=stuck):
            trainer.train_step(session)
        assert session.backend._process.exitcode is not None or not session.backend._process.is_alive()
    finally:
        trainer.close_session(session)


def test_an_unknown_backend_is_one_line_naming_the_installed_ones(tmp_path: Path) -> None:
    config = load_train_config(_config(tmp_path, lora=False, backend="vllm-colocate"))
    unknown = r"rollout\.backend: unknown rollout backend 'vllm-colocate'; .*hf, hf_worker"
    with pytest.raises(ConfigError, match=unknown):
        trainer.start_session(config)
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state(reset_partial_state=False)
