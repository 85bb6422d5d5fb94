"""The trainer end to end on the tiny policy: parameters move, a killed run resumes, and it learns."""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from agentflow_core.testing import wait_until

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("accelerate")

from agentflow_rl.flow_grpo import trainer  # noqa: E402
from agentflow_rl.flow_grpo.config import (  # noqa: E402
    PolicyConfig,
    bundled_config,
    load_train_config,
)
from agentflow_rl.flow_grpo.model.policy import load_policy  # noqa: E402
from agentflow_rl.flow_grpo.model.tiny_policy import TinyPolicyConfig, build_policy  # noqa: E402
from agentflow_rl.flow_grpo.run.checkpoint import latest_checkpoint  # noqa: E402
from agentflow_rl.flow_grpo.run.export import export_weights  # noqa: E402
from agentflow_rl.flow_grpo.run.tracking import read_metrics  # noqa: E402
from agentflow_rl.flow_grpo.testing import write_config  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def _tiny_config(tmp_path: Path, **run: Any) -> Path:
    return write_config(
        tmp_path / "train.toml",
        {
            "rollout": {"group_size": 4, "questions_per_step": 4, "temperature": 1.0, "max_new_tokens": 8},
            "optim": {"lr": 1e-2, "micro_batch_turns": 16},
            "loss": {"kl_coef": 0.001},
            "run": {"output_dir": str(tmp_path / "run"), "eval_every": 0, "checkpoint_every": 0, "trackers": [], **run},
        },
    )


def test_a_few_steps_change_every_trainable_parameter(tmp_path: Path) -> None:
    config = load_train_config(_tiny_config(tmp_path, max_steps=3))
    session = trainer.start_session(config)
    try:
        before = build_policy(session.tokenizer, TinyPolicyConfig())
        for _ in range(3):
            values = trainer.train_step(session)
        assert values["rollout/logprob_gap_max"] < 1e-4  # the trainer sees what the engine sampled
        changed = {
            name: not torch.equal(param, dict(before.named_parameters())[name])
            for name, param in session.model.named_parameters()
            if param.requires_grad
        }
    finally:
        trainer.close_session(session)
    assert all(changed.values()), [name for name, moved in changed.items() if not moved]


def test_batched_rollouts_record_what_the_trainer_recomputes(tmp_path: Path) -> None:
    config = load_train_config(_tiny_config(tmp_path, max_steps=2), {"rollout.max_batch": 64})
    session = trainer.start_session(config)
    try:
        values = [trainer.train_step(session) for _ in range(2)]
    finally:
        trainer.close_session(session)
    assert all(v["rollout/logprob_gap_max"] < 1e-4 for v in values)  # padded batch decoding, same log-probabilities


def test_a_run_stopped_by_the_clock_ends_with_a_held_out_figure(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each step 'takes' a minute; a 2-minute budget stops after step 2, between scheduled evaluations."""
    monkeypatch.setattr(trainer._Session, "minutes", lambda session: float(session.progress.step))
    path = _tiny_config(tmp_path, max_steps=10, max_minutes=2, eval_every=5, eval_questions=8, checkpoint_every=1)
    config = load_train_config(path)

    result = trainer.train(config)

    assert (result.steps, result.stopped) == (2, "max_minutes")
    evals = [row for row in read_metrics(config.run.output_dir) if "eval/success" in row]
    assert [row["step"] for row in evals] == [0, 2]
    assert result.last_success == evals[-1]["eval/success"]

    # Given a minute more, the resumed run takes one step and still reports where it started.
    resumed = trainer.train(load_train_config(path, {"run.max_minutes": 3}))
    assert (resumed.steps, resumed.stopped) == (3, "max_minutes")
    assert resumed.first_success == evals[0]["eval/success"]


def test_a_finished_run_leaves_its_planner_loadable_by_the_hf_engine(tmp_path: Path) -> None:
    import asyncio

    from agentflow_core import EngineConfig, GenerationRequest, Message
    from agentflow_core.testing import registry_with

    config = load_train_config(_tiny_config(tmp_path, max_steps=1, checkpoint_every=1))
    result = trainer.train(config)
    folder = result.output_dir / "policy" / "planner"
    trained = latest_checkpoint(config.run.output_dir)
    assert trained is not None

    exported, _ = load_policy(PolicyConfig(source=f"hf:{folder}"))
    from safetensors.torch import load_file

    checkpointed = load_file(trained / "model.safetensors")
    for name, tensor in exported.state_dict().items():
        assert torch.equal(tensor, checkpointed[name]), name

    engine = registry_with().engine("hf").factory(EngineConfig(model=f"hf:{folder}", max_tokens=4))

    async def ask() -> Any:
        try:
            return await engine.generate(GenerationRequest(messages=(Message("user", "k1 plus 3"),)))
        finally:
            await engine.aclose()

    completion = asyncio.run(ask())
    assert completion.usage.completion_tokens > 0


def test_exported_policy_keeps_tied_embeddings_tied(tmp_path: Path, cpu_accelerator: Any) -> None:
    """SmolLM2 ties its output layer to its embeddings; an export must not untie or duplicate them."""
    from transformers import AutoModelForCausalLM, LlamaConfig, LlamaForCausalLM

    from agentflow_rl.flow_grpo.model.tiny_policy import build_tokenizer

    tokenizer = build_tokenizer(["a", "b"])
    shape = {"hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2}
    model = LlamaForCausalLM(LlamaConfig(vocab_size=len(tokenizer), tie_word_embeddings=True, **shape))
    with torch.no_grad():
        model.model.embed_tokens.weight.add_(1.0)  # a "trained" change, seen through both ends

    folder = export_weights(cpu_accelerator, model, tokenizer, tmp_path / "planner")
    loaded = AutoModelForCausalLM.from_pretrained(folder)

    assert loaded.lm_head.weight.data_ptr() == loaded.model.embed_tokens.weight.data_ptr()
    assert torch.equal(loaded.lm_head.weight, model.lm_head.weight)


def test_bf16_activation_checkpointing_and_micro_batches_train(tmp_path: Path) -> None:
    path = _tiny_config(tmp_path, max_steps=1, bf16=True, gradient_checkpointing=True)
    config = load_train_config(path, {"optim.updates_per_batch": 2, "optim.micro_batch_turns": 5})
    session = trainer.start_session(config)
    try:
        values = trainer.train_step(session)
    finally:
        trainer.close_session(session)
    assert all(math.isfinite(v) for v in values.values())
    assert 0 <= values["rollout/logprob_gap_max"] < 0.05  # a bf16 update against fp32 rollouts: close


def test_a_memory_budgeted_step_trims_the_heaps_after_the_rollouts_and_each_micro_batch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from agentflow_rl.flow_grpo import update
    from agentflow_rl.flow_grpo.run import memory

    calls: list[str] = []
    micro_step = update._micro_step
    monkeypatch.setattr(memory, "return_freed_memory", lambda: True)  # leave this process's malloc alone
    monkeypatch.setattr(memory, "trim", lambda: calls.append("trim") or True)
    monkeypatch.setattr(update, "_micro_step", lambda *a: calls.append("micro") or micro_step(*a))
    path = _tiny_config(tmp_path, max_steps=1, release_freed_memory=True)
    session = trainer.start_session(load_train_config(path, {"optim.micro_batch_turns": 2}))
    try:
        trainer.train_step(session)
    finally:
        trainer.close_session(session)
    assert calls[0] == "trim" and calls.count("micro") >= 2
    assert calls[1:] == ["micro", "trim"] * calls.count("micro")


def test_a_killed_run_resumes_with_the_same_step_count_and_optimizer_state(tmp_path: Path) -> None:
    path = _tiny_config(tmp_path, max_steps=1000, checkpoint_every=1, keep_checkpoints=50)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen(
        [sys.executable, "-m", "agentflow_rl.flow_grpo", "train", str(path)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )

    def checkpointed_twice() -> bool:
        assert process.poll() is None, "the training run died"
        saved = latest_checkpoint(tmp_path / "run")
        return saved is not None and saved.name >= "step-0000002"

    try:
        wait_until(checkpointed_twice, timeout_s=120, what="the run to write its second checkpoint")
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    saved = latest_checkpoint(tmp_path / "run")
    assert saved is not None
    step = int(saved.name.removeprefix("step-"))
    saved_optimizer = torch.load(saved / "optimizer.bin", weights_only=False)

    config = load_train_config(path, {"run.max_steps": step + 1})
    session = trainer.start_session(config)
    try:
        assert session.progress.step == step
        assert session.stream.position == step * 4
        _assert_same_optimizer_state(session.optimizer.state_dict(), saved_optimizer)
        result = trainer._loop(session)
    finally:
        trainer.close_session(session)
    assert result.steps == step + 1
    assert latest_checkpoint(tmp_path / "run").name == f"step-{step + 1:07d}"
    logged = [row["step"] for row in read_metrics(tmp_path / "run") if "train/reward" in row]
    assert logged[:step] == list(range(1, step + 1)) and logged[-1] == step + 1


def test_a_tied_policy_resumes_tied_with_its_trained_weights(tmp_path: Path) -> None:
    """SmolLM2 ties lm_head to the embeddings; checkpoints store the shared tensor once and must re-tie it."""
    path = _tiny_config(tmp_path, max_steps=2, checkpoint_every=1)
    tied = {"policy.tiny.tie_embeddings": True}
    first = trainer.start_session(load_train_config(path, tied))
    try:
        trainer._loop(first)
        trained = {name: p.detach().clone() for name, p in first.model.named_parameters()}
    finally:
        trainer.close_session(first)

    second = trainer.start_session(load_train_config(path, {**tied, "run.max_steps": 3}))
    try:
        model = second.model
        assert second.progress.step == 2
        assert model.lm_head.weight is model.model.embed_tokens.weight
        for name, param in model.named_parameters():
            assert torch.equal(param, trained[name]), name
        trainer.train_step(second)  # and it trains on, still tied
        assert model.lm_head.weight is model.model.embed_tokens.weight
    finally:
        trainer.close_session(second)


def _assert_same_optimizer_state(got: dict[str, Any], saved: dict[str, Any]) -> None:
    assert got["param_groups"] == saved["param_groups"]
    assert got["state"].keys() == saved["state"].keys() and got["state"]
    for key, state in saved["state"].items():
        for name, value in state.items():
            assert torch.equal(got["state"][key][name], value), (key, name)


@pytest.mark.slow
def test_flow_grpo_lifts_held_out_success_on_the_synthetic_task(tmp_path: Path) -> None:
    """The short version of ``nox -s train_smoke``: a couple of minutes at most."""
    config = load_train_config(
        bundled_config("synthetic.toml"),
        {
            "run.output_dir": str(tmp_path / "run"),
            "run.max_steps": 30,
            "run.max_minutes": 2.5,
            "run.target_success": 0.8,
            "run.checkpoint_every": 0,
            "run.trackers": [],
            "run.resume": False,
        },
    )
    result = trainer.train(config)
    assert result.first_success is not None and result.last_success is not None
    assert result.last_success >= result.first_success + 0.3, result
