"""Starting a module's adapter from a saved PEFT folder (``policy.lora.init``), on the tiny policy."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("accelerate")
peft = pytest.importorskip("peft")

from agentflow_core import ConfigError  # noqa: E402
from agentflow_rl.flow_grpo import trainer  # noqa: E402
from agentflow_rl.flow_grpo.config import load_train_config  # noqa: E402
from agentflow_rl.flow_grpo.model import lora  # noqa: E402
from agentflow_rl.flow_grpo.run.checkpoint import latest_checkpoint  # noqa: E402
from agentflow_rl.flow_grpo.testing import write_config  # noqa: E402

LORA = {"r": 4, "alpha": 8.0}


def _config(tmp_path: Path, name: str, *, modules: list[str], lora: dict[str, Any], **run: Any) -> Path:
    return write_config(
        tmp_path / f"{name}.toml",
        {
            "train": {"modules": modules},
            "policy": {"lora": lora},
            "task": {"verifier": "synthetic_compact"},
            "rollout": {"group_size": 4, "questions_per_step": 4, "temperature": 1.0, "max_new_tokens": 8},
            "optim": {"lr": 1e-2, "micro_batch_turns": 16},
            "loss": {"kl_coef": 0.01},
            "run": {
                "output_dir": str(tmp_path / name),
                "eval_every": 0,
                "checkpoint_every": 0,
                "trackers": [],
                **run,
            },
        },
    )


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The planner adapter a finished two-step run exported: trained, so not the zero no-op."""
    tmp_path = tmp_path_factory.mktemp("lora-saved")
    trainer.train(load_train_config(_config(tmp_path, "first", modules=["planner"], lora=LORA, max_steps=2)))
    folder = tmp_path / "first" / "policy" / "planner"
    assert (folder / "adapter_config.json").is_file()
    return folder


def _adapter(model: Any, name: str) -> dict[str, Any]:
    return {k: v.detach().clone() for k, v in peft.get_peft_model_state_dict(model, adapter_name=name).items()}


def _same(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def _logprobs(model: Any, ids: Any) -> Any:
    with torch.no_grad():
        return torch.log_softmax(model(input_ids=ids).logits.float(), dim=-1)


def test_a_started_module_begins_at_the_saved_adapter_and_keeps_it_as_its_kl_reference(
    saved: Path, tmp_path: Path
) -> None:
    from safetensors.torch import load_file

    init = {"planner": str(saved)}
    path = _config(tmp_path, "second", modules=["planner", "verifier"], lora={**LORA, "init": init}, max_steps=2)
    session = trainer.start_session(load_train_config(path))
    try:
        model = session.modules.unwrapped("planner")
        stored = {k: v for k, v in load_file(str(saved / "adapter_model.safetensors")).items()}
        start = _adapter(model, "planner")
        assert start and _same(start, stored)
        assert _same(_adapter(model, "planner_reference"), stored)
        assert not any(t.abs().sum() for k, t in _adapter(model, "verifier").items() if "lora_B" in k)  # from zero
        optimized = {id(p) for group in session.optimizer.param_groups for p in group["params"]}
        reference = [p for n, p in model.named_parameters() if "_reference." in n]
        assert reference and not any(p.requires_grad or id(p) in optimized for p in reference)

        ids = session.tokenizer("k3 plus 5 ; done : none", return_tensors="pt")["input_ids"]
        with session.modules.training("planner") as policy:
            trained = _logprobs(policy, ids)
        with session.modules.reference_model("planner") as frozen:
            assert torch.equal(_logprobs(frozen, ids), trained)  # the reference is where it started...
        with lora.base_only(model) as base:
            assert not torch.allclose(_logprobs(base, ids), trained, atol=1e-3)  # ...not the bare base
        with session.modules.reference_model("verifier") as frozen:
            verifier_reference = _logprobs(frozen, ids)
        with lora.base_only(model) as base:
            assert torch.equal(verifier_reference, _logprobs(base, ids))  # a module from zero keeps the base

        values = [trainer.train_step(session) for _ in range(2)]
        assert values[0]["module/planner/kl"] < 1e-6  # the first update starts at its reference
        assert not _same(_adapter(model, "planner"), stored)
        assert _same(_adapter(model, "planner_reference"), stored)  # the reference never trains
        with session.modules.training("planner"):
            assert model.active_adapter == "planner"
    finally:
        trainer.close_session(session)


def test_a_started_run_resumes_and_exports_only_its_trained_modules(saved: Path, tmp_path: Path) -> None:
    init = {"planner": str(saved)}
    path = _config(tmp_path, "run", modules=["planner"], lora={**LORA, "init": init}, max_steps=2, checkpoint_every=2)
    trainer.train(load_train_config(path))
    checkpoint = latest_checkpoint(tmp_path / "run")
    assert checkpoint is not None
    assert sorted(p.name for p in (tmp_path / "run" / "policy").iterdir()) == ["planner"]

    resumed = trainer.start_session(load_train_config(path, {"run.max_steps": 3}))
    try:
        assert resumed.progress.step == 2
        model = resumed.modules.unwrapped("planner")
        from safetensors.torch import load_file

        assert not _same(_adapter(model, "planner"), load_file(str(saved / "adapter_model.safetensors")))
        trained = load_file(str(tmp_path / "run" / "policy" / "planner" / "adapter_model.safetensors"))
        assert _same(_adapter(model, "planner"), trained)  # the checkpoint's weights, not the saved start
    finally:
        trainer.close_session(resumed)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"r": 8}, r"policy.lora.init.planner: the saved adapter has r 4 \(this run: 8\)"),
        ({"alpha": 16.0}, r"lora_alpha 8.0 \(this run: 16.0\)"),
        ({"target_modules": ["q_proj"]}, r"target_modules \[.*\] \(this run: \['q_proj'\]\)"),
        ({"last_layers": 1}, r"layers_to_transform None \(this run: \[1\]\)"),
    ],
)
def test_an_adapter_of_another_shape_is_refused_in_one_line(
    saved: Path, tmp_path: Path, change: dict[str, Any], message: str
) -> None:
    path = _config(tmp_path, "x", modules=["planner"], lora={**LORA, **change, "init": {"planner": str(saved)}})
    with pytest.raises(ConfigError, match=message):
        trainer.start_session(load_train_config(path))


def test_an_adapter_of_another_base_model_is_refused_in_one_line(saved: Path, tmp_path: Path) -> None:
    other = tmp_path / "other"
    other.mkdir()
    for item in saved.iterdir():
        (other / item.name).write_bytes(item.read_bytes())
    from safetensors.torch import load_file, save_file

    weights = load_file(str(other / "adapter_model.safetensors"))
    save_file(
        {k: torch.zeros(v.shape[0] + 1, *v.shape[1:]) for k, v in weights.items()}, other / "adapter_model.safetensors"
    )
    path = _config(tmp_path, "x", modules=["planner"], lora={**LORA, "init": {"planner": str(other)}})
    with pytest.raises(ConfigError, match=r"policy.lora.init.planner: cannot load the adapter in .*size mismatch"):
        trainer.start_session(load_train_config(path))


def test_a_folder_without_an_adapter_is_refused_in_one_line(tmp_path: Path) -> None:
    path = _config(tmp_path, "x", modules=["planner"], lora={**LORA, "init": {"planner": str(tmp_path / "nope")}})
    with pytest.raises(ConfigError, match=r"policy.lora.init.planner: .*nope is not a PEFT adapter folder"):
        trainer.start_session(load_train_config(path))
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "adapter_config.json").write_text("{not json", encoding="utf-8")
    path = _config(tmp_path, "y", modules=["planner"], lora={**LORA, "init": {"planner": str(tmp_path / "broken")}})
    with pytest.raises(ConfigError, match=r"adapter_config.json is not readable JSON"):
        trainer.start_session(load_train_config(path))


@pytest.mark.parametrize(
    ("init", "message"),
    [
        ({"critic": "x"}, r"policy.lora.init: 'critic' is not one of"),
        ({"verifier": "x"}, r"policy.lora.init.verifier: verifier is not trained \(train.modules = \['planner'\]\)"),
    ],
)
def test_starting_a_module_that_is_not_trained_fails_at_load(tmp_path: Path, init: Any, message: str) -> None:
    path = _config(tmp_path, "x", modules=["planner"], lora={**LORA, "init": init})
    with pytest.raises(ConfigError, match=message):
        load_train_config(path)


def test_the_saved_config_shape_is_what_peft_itself_writes(saved: Path) -> None:
    """The shape check reads the fields peft writes; if peft renamed them, every start would fail."""
    settings = json.loads((saved / "adapter_config.json").read_text())
    assert {"r", "lora_alpha", "target_modules", "layers_to_transform", "peft_type"} <= settings.keys()


def test_a_rollout_worker_starts_from_the_same_adapter_and_follows_the_trainer(saved: Path, tmp_path: Path) -> None:
    """The worker process builds its modules from the same config, so it loads the same start."""
    from agentflow_core import EngineConfig, GenerationRequest, Message
    from agentflow_rl.flow_grpo.model.backends.base import BackendContext
    from agentflow_rl.flow_grpo.model.backends.inprocess import InProcessBackend
    from agentflow_rl.flow_grpo.model.backends.worker import WorkerBackend

    path = _config(tmp_path, "worker", modules=["planner"], lora={**LORA, "init": {"planner": str(saved)}})
    session = trainer.start_session(load_train_config(path, {"rollout.backend": "hf_worker"}))
    request = GenerationRequest((Message("user", "k3 plus 5 ; done : none"),), max_tokens=8, temperature=0.0)

    def tokens(backend: Any) -> Any:
        engine = backend.engine(EngineConfig(model="policy:planner", max_tokens=8))
        return asyncio.run(engine.generate(request)).tokens

    try:
        assert isinstance(session.backend, WorkerBackend)
        for _ in range(2):
            trainer.train_step(session)
        session.backend.sync(session.progress.step)
        remote = tokens(session.backend)
        local = tokens(
            InProcessBackend(
                BackendContext(session.config.policy, session.config.rollout, session.modules, session.tokenizer)
            )
        )
        assert remote.completion_ids == local.completion_ids
        assert remote.completion_logprobs == pytest.approx(local.completion_logprobs, abs=1e-5)
    finally:
        trainer.close_session(session)
