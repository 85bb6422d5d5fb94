"""Per-module LoRA adapters on the embedded model: one loaded model, each module's adapter per request.

The adapters here are random (made in the test, converted by ``agentflow_rl.gguf_lora``), strong
enough that a module with its adapter answers differently from the bare model. What each should
answer comes from llama-cpp-python's own single-adapter path, ``Llama(lora_path=...)``, on a fresh
model: so a switch that left the previous adapter's keys and values in the cache, or the wrong
adapter on, shows up as a different answer.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from agentflow_core import Trajectory
from agentflow_core.config import Config, EnginesConfig, config_from_dict, with_overrides
from agentflow_core.engine import EngineConfig, GenerationRequest, Message
from agentflow_core.engines import adapter_files
from agentflow_core.engines.embedded import smollm2_gguf_path
from agentflow_core.engines.llamacpp_engine import DEFAULT_REPEAT_PENALTY, LlamaCppEngine
from agentflow_core.errors import ConfigError, EngineUnavailable
from agentflow_core.serde import from_json
from agentflow_core.solver import Solver
from tests.lora_support import write_peft_adapter
from tests.test_cli import agentflow

pytest.importorskip("llama_cpp")
pytest.importorskip("gguf")

QUESTION = GenerationRequest(
    (Message("system", "You are a concise assistant."), Message("user", "What is the capital of France?")),
    max_tokens=24,
)


@pytest.fixture(scope="module")
def base() -> Any:
    from agentflow_rl import gguf_lora

    return gguf_lora.read_base(smollm2_gguf_path())


def _adapter_folder(root: Path, base: Any, scale: float) -> Path:
    """A planner and a verifier adapter (no executor, no generator), B drawn with std ``scale``."""
    from agentflow_rl import gguf_lora

    for seed, role in enumerate(("planner", "verifier")):
        peft = write_peft_adapter(root / "peft" / role, base, layers=range(20, 30), rank=8, scale=scale, seed=seed)
        gguf_lora.convert(peft, root / "gguf" / f"{role}.gguf", base)
    return root / "gguf"


@pytest.fixture(scope="module")
def adapters(tmp_path_factory: pytest.TempPathFactory, base: Any) -> Path:
    """Strong enough to change every answer."""
    return _adapter_folder(tmp_path_factory.mktemp("adapters"), base, scale=0.3)


@pytest.fixture(scope="module")
def mild_adapters(tmp_path_factory: pytest.TempPathFactory, base: Any) -> Path:
    """Weak enough that the agent still works as the bare model does, so a solve stays short."""
    return _adapter_folder(tmp_path_factory.mktemp("mild"), base, scale=0.005)


def _reference(adapter: Path | None) -> str:
    """The greedy answer of a fresh model with ``adapter`` loaded the ecosystem's way."""
    from llama_cpp import Llama

    llama = Llama(
        model_path=str(smollm2_gguf_path()), lora_path=str(adapter) if adapter else None, n_ctx=512, verbose=False
    )
    try:
        reply = llama.create_chat_completion(
            messages=[{"role": m.role, "content": m.content} for m in QUESTION.messages],
            temperature=0.0,
            max_tokens=QUESTION.max_tokens,
            repeat_penalty=DEFAULT_REPEAT_PENALTY,
        )
        return str(reply["choices"][0]["message"]["content"])
    finally:
        llama.close()


@pytest.fixture(scope="module")
def expected(adapters: Path) -> dict[str | None, str]:
    answers = {role: _reference(adapters / f"{role}.gguf") for role in ("planner", "verifier")}
    return {None: _reference(None), **answers}


def test_each_module_gets_its_adapter_on_one_model(adapters: Path, expected: dict[str | None, str]) -> None:
    assert len(set(expected.values())) == 3, "the random adapters must change the answer, or nothing is tested"
    engine = LlamaCppEngine(EngineConfig(model="llamacpp:smollm2", options={"adapters": str(adapters)}))
    views = {role: engine.for_module(role) for role in ("planner", "executor", "verifier", "generator")}
    assert views["executor"] is engine and views["generator"] is engine  # no file: the bare model itself
    assert views["planner"].name == "llamacpp:smollm2+planner" and engine.for_module("planner") is views["planner"]

    async def run() -> list[tuple[str | None, str]]:
        order = ["planner", None, "planner", "verifier", "executor", "verifier", "planner"]
        try:
            return [(role, (await views[role or "executor"].generate(QUESTION)).text) for role in order]
        finally:
            await engine.aclose()

    answers = asyncio.run(run())
    assert answers == [(role, expected[None if role == "executor" else role]) for role, _ in answers]
    assert engine._shared.llama is None  # closed once, for every view


def test_concurrent_modules_each_get_their_own_adapter(adapters: Path, expected: dict[str | None, str]) -> None:
    engine = LlamaCppEngine(EngineConfig(model="llamacpp:smollm2", options={"adapters": str(adapters)}))
    roles: list[str | None] = ["planner", "verifier", None] * 2

    async def run() -> list[str]:
        try:
            views = [engine.for_module(role) if role else engine for role in roles]
            return [c.text for c in await asyncio.gather(*(view.generate(QUESTION) for view in views))]
        finally:
            await engine.aclose()

    assert asyncio.run(run()) == [expected[role] for role in roles]


@pytest.fixture
def shipped(adapters: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The test's adapters standing in for the shipped ones, through the documented override."""
    monkeypatch.setenv(adapter_files.ENV_OVERRIDE, str(adapters))
    return adapters


ROLES = ("planner", "executor", "verifier", "generator")
#: The shipped adapters' views: a module without its own adapter file runs on the bare model.
MODULE_ENGINES = {
    "planner": "llamacpp:smollm2+planner",
    "executor": "llamacpp:smollm2",
    "verifier": "llamacpp:smollm2+verifier",
    "generator": "llamacpp:smollm2",
}


def test_the_default_agent_uses_the_adapters_unless_switched_off(shipped: Path) -> None:
    """The solver asks the pool for each module's view; ``adapters = false`` or the flag asks for none."""
    with Solver() as solver:
        # python_coder joins the default tools where Docker and the sandbox image are there: the tools vary.
        tools = {name: engine for name, engine in solver.engines.items() if name.startswith("tool:")}
        assert "tool:base_generator" in tools and set(tools.values()) == {"llamacpp:smollm2"}  # tools: the bare model
        assert {role: solver.engines[role] for role in ROLES} == MODULE_ENGINES
        modules = (solver.planner, solver.executor, solver.verifier, solver.generator)
        assert {m.engine.name: m.engine for m in modules}["llamacpp:smollm2+planner"].module == "planner"  # type: ignore[attr-defined]
    for config in (with_overrides(Config(), no_adapters=True), config_from_dict({"engines": {"adapters": False}})):
        with Solver(config) as solver:
            assert set(solver.engines.values()) == {"llamacpp:smollm2"}
            assert solver.planner.engine is solver.verifier.engine  # type: ignore[attr-defined]


def test_python_coder_writes_with_the_executors_adapter(
    adapters: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its program or expression is the executor's work (``ToolSpec.engine_role``), so it gets the executor's view."""
    import shutil

    folder = tmp_path / "with-executor"
    folder.mkdir()
    shutil.copy(adapters / "planner.gguf", folder / "executor.gguf")
    monkeypatch.setenv(adapter_files.ENV_OVERRIDE, str(folder))
    tools = {"agent": {"tools": ["python_coder", "base_generator"]}}
    with Solver(config_from_dict(tools)) as solver:
        assert solver.engines["tool:python_coder"] == "llamacpp:smollm2+executor" == solver.engines["executor"]
        assert solver.engines["tool:base_generator"] == "llamacpp:smollm2"  # no engine_role: the bare model
    with Solver(config_from_dict({**tools, "engines": {"adapters": False}})) as solver:
        assert solver.engines["tool:python_coder"] == "llamacpp:smollm2"


@pytest.mark.slow
def test_the_cli_uses_the_adapters_and_no_adapters_turns_them_off(mild_adapters: Path, tmp_path: Path) -> None:
    question = ("solve", "What is the capital of France?", "--max-steps", "1", "--json")
    env = {adapter_files.ENV_OVERRIDE: str(mild_adapters)}  # where the shipped adapters would be read
    engines = {}
    for name, flags in {"adapters": (), "off": ("--no-adapters",)}.items():
        result = agentflow(*question, *flags, cwd=tmp_path, timeout=600, env=env)
        assert result.returncode == 0, result.stderr
        engines[name] = {call.role: call.engine for call in from_json(result.stdout, Trajectory).module_calls()}
    # The executor is asked only for a tool that takes arguments, not for a request tool.
    assert {"planner", "verifier", "generator"} <= engines["adapters"].keys() <= set(ROLES)
    assert engines["adapters"] == {role: MODULE_ENGINES[role] for role in engines["adapters"]}
    assert set(engines["off"].values()) == {"llamacpp:smollm2"}


@pytest.mark.parametrize("command", ["solve", "eval"])
@pytest.mark.parametrize(("argv", "env", "off"), [((), None, False), (("--no-adapters",), None, True), ((), "1", True)])
def test_the_flag_and_its_environment_variable(
    monkeypatch: pytest.MonkeyPatch, command: str, argv: tuple[str, ...], env: str | None, off: bool
) -> None:
    from agentflow_core.cli.solve import solve
    from agentflow_rl.cli import eval_command

    if env is not None:
        monkeypatch.setenv("AGENTFLOW_NO_ADAPTERS", env)
    chosen = {"solve": solve, "eval": eval_command}[command]
    args = [*argv, "What?"] if command == "solve" else list(argv)
    assert chosen.make_context(command, args).params["no_adapters"] is off


def test_no_adapter_files_is_the_bare_engine_exactly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    engine = LlamaCppEngine(EngineConfig(model="llamacpp:smollm2", options={"adapters": str(tmp_path)}))
    assert all(engine.for_module(role) is engine for role in ("planner", "executor", "verifier", "generator"))
    monkeypatch.setenv(adapter_files.ENV_OVERRIDE, str(tmp_path))  # an empty folder where the shipped one is read
    with Solver() as solver:
        modules = (solver.planner, solver.executor, solver.verifier, solver.generator)
        assert len({id(m.engine) for m in modules}) == 1  # type: ignore[attr-defined]
        assert set(solver.engines.values()) == {"llamacpp:smollm2"}


def test_the_embedded_model_reads_the_packaged_folder(monkeypatch: pytest.MonkeyPatch) -> None:
    """With nothing set, the shipped folder; every file in it must be a module's adapter that loads."""
    monkeypatch.delenv(adapter_files.ENV_OVERRIDE, raising=False)
    embedded = EngineConfig(model="llamacpp:smollm2")
    folder = adapter_files.adapter_folder(embedded)
    assert folder == adapter_files.shipped_folder() and (folder / "README.md").is_file()
    assert folder.resolve().is_relative_to(Path(adapter_files.__file__).resolve().parents[1])
    assert adapter_files.adapter_folder(EngineConfig(model="llamacpp:/models/other.gguf")) is None
    files = sorted(p.name for p in folder.iterdir() if p.suffix == ".gguf")
    assert files == sorted(f"{role}.gguf" for role in adapter_files.module_adapters(embedded))
    engine = LlamaCppEngine(embedded)

    async def load_each() -> None:
        try:
            for role in adapter_files.module_adapters(embedded):
                await engine.for_module(role).generate(GenerationRequest((Message("user", "Hi"),), max_tokens=2))
        finally:
            await engine.aclose()

    asyncio.run(load_each())


def test_a_file_that_is_no_adapter_fails_the_call_in_one_line(tmp_path: Path) -> None:
    (tmp_path / "planner.gguf").write_text("not a gguf file")
    engine = LlamaCppEngine(EngineConfig(model="llamacpp:smollm2", options={"adapters": str(tmp_path)}))

    async def run() -> None:
        try:
            with pytest.raises(EngineUnavailable) as info:
                await engine.for_module("planner").generate(QUESTION)
            message = str(info.value)
            assert "\n" not in message and "planner adapter" in message and "--no-adapters" in message
            assert (await engine.generate(QUESTION)).text  # the bare model still answers
        finally:
            await engine.aclose()

    asyncio.run(run())


@pytest.mark.parametrize(
    ("options", "env", "error", "expected"),
    [
        ({"adapters": "/nonexistent/a"}, None, ConfigError, "option adapters: no adapter folder at /nonexistent/a"),
        ({"adapters": 3}, None, ConfigError, "option adapters must be a folder or false, got 3"),
        ({}, "/nonexistent/b", EngineUnavailable, "AGENTFLOW_SMOLLM2_ADAPTERS=/nonexistent/b is not a folder"),
    ],
)
def test_a_bad_adapter_setting_is_one_line(
    monkeypatch: pytest.MonkeyPatch, options: dict[str, Any], env: str | None, error: type, expected: str
) -> None:
    if env:
        monkeypatch.setenv(adapter_files.ENV_OVERRIDE, env)
    engine = LlamaCppEngine(EngineConfig(model="llamacpp:smollm2", options=options))  # looks at nothing yet
    with pytest.raises(error, match=expected):
        engine.for_module("planner")


def test_a_missing_adapter_folder_stops_the_cli_before_any_model_loads(tmp_path: Path) -> None:
    result = agentflow("solve", "Hi", cwd=tmp_path, env={adapter_files.ENV_OVERRIDE: "/nonexistent/adapters"})
    assert result.returncode == 1
    expected = (
        "AGENTFLOW_SMOLLM2_ADAPTERS=/nonexistent/adapters is not a folder (of <module>.gguf files); fix or unset it"
    )
    assert result.stderr.strip() == f"Error: {expected}"


def test_adapters_false_wins_over_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / "planner.gguf").write_bytes(b"")
    monkeypatch.setenv(adapter_files.ENV_OVERRIDE, str(tmp_path))
    assert adapter_files.module_adapters(EngineConfig(model="llamacpp:smollm2")) == {
        "planner": tmp_path / "planner.gguf"
    }
    assert adapter_files.module_adapters(EngineConfig(model="llamacpp:smollm2", options={"adapters": False})) == {}


def test_the_config_key_and_the_flag() -> None:
    assert EnginesConfig().adapters is True
    assert config_from_dict({"engines": {"adapters": False}}).engines.adapters is False
    with pytest.raises(ConfigError, match=r"engines.adapters: expected true or false"):
        config_from_dict({"engines": {"adapters": "no"}}, source="agentflow.toml")
    flagged = with_overrides(Config(), no_adapters=True)
    assert flagged.engines.adapters is False and flagged.where("engines.adapters") == "--no-adapters"
    assert with_overrides(Config()).engines.adapters is True


@pytest.fixture(autouse=True)
def _no_stray_switch(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AGENTFLOW_NO_ADAPTERS", raising=False)
