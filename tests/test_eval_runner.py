"""`agentflow eval` end to end over real HTTP: resuming after SIGKILL, base mode, the judge, summaries."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import attrs
import pytest

import agentflow_rl.plugin
import agentflow_tools.plugin
from agentflow_core import (
    Answer,
    ModuleCall,
    PlannerDecision,
    Query,
    Score,
    Step,
    StopReason,
    ToolCall,
    ToolErrorKind,
    ToolFailure,
    ToolSuccess,
    Trajectory,
    Usage,
    UsageError,
)
from agentflow_core.config import ModulesConfig
from agentflow_core.errors import StorageError
from agentflow_core.plugins import load_registry
from agentflow_core.serde import from_json
from agentflow_core.testing import Reply, ScriptedOpenAIServer, registry_with, wait_until
from agentflow_rl.eval import EvalRecord, EvalRequest, Failure, Mode, RunDir, RunInfo, evaluate, finish, load_tasks
from tests.eval_support import DATA_DIR, agentflow_command, clean_env, flow_responder, needs_data, run_agentflow
from tests.helpers import BrokenModules, config_for


def _gold_by_question() -> dict[str, str]:
    registry = load_registry(entry_points=False, extra=[agentflow_rl.plugin])
    items = registry.benchmark("bamboogle").factory().load(DATA_DIR)
    return {item.question: item.answers[0] for item in items}


@pytest.fixture
def server():
    with ScriptedOpenAIServer() as server:
        yield server


def _lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.is_file() else []


def _eval_command(launcher: str, args: list[str]) -> list[str]:
    """``agentflow eval ...`` itself, or the README's ``nox -s eval -- ...`` (in this environment: ``--no-venv``)."""
    if launcher == "agentflow":
        return agentflow_command("eval", *args)
    noxfile = str(Path(__file__).resolve().parents[1] / "noxfile.py")
    return [sys.executable, "-m", "nox", "-f", noxfile, "--no-venv", "-s", "eval", "--", *args]


@needs_data
@pytest.mark.parametrize("launcher", ["agentflow", "nox"])
def test_killed_run_resumes_and_runs_each_query_once(
    tmp_path: Path, server: ScriptedOpenAIServer, launcher: str
) -> None:
    server.set_default_responder(flow_responder(_gold_by_question(), delay_s=0.05))
    run_dir = tmp_path / "run"
    args = ["--benchmarks", "bamboogle,hotpotqa", "--limit", "6", "--seed", "7", "--concurrency", "2"]
    args += ["--engine", "openai:m", "--base-url", server.base_url, "--run-dir", str(run_dir)]
    args += ["--data-dir", str(DATA_DIR)]
    results = run_dir / "results.jsonl"
    # nox runs the `agentflow` on PATH: this interpreter's.
    env = clean_env({"PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"})
    command = _eval_command(launcher, args)
    process = subprocess.Popen(
        command, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True
    )
    wait_until(lambda: len(_lines(results)) >= 4 or process.poll() is not None, timeout_s=90, what="4 results")
    os.killpg(process.pid, signal.SIGKILL)  # the whole group, as a closed terminal would: nox and its child
    process.communicate(timeout=30)
    before = {(r["benchmark"], r["item_id"]) for r in map(json.loads, _lines(results)[:4])}
    assert 4 <= len(_lines(results)) < 12, "the kill came too late to test anything"
    asked_before = len(server.requests)

    resumed = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=180)
    assert resumed.returncode == 0, resumed.stderr
    keys = Counter((r["benchmark"], r["item_id"]) for r in map(json.loads, _lines(results)))
    assert len(keys) == 12 and set(keys.values()) == {1}  # every sampled query exactly once
    later_questions = {m["content"] for r in server.requests[asked_before:] for m in r.messages}
    records = RunDir(run_dir).read()
    for key in before:  # what was on disk before the kill was not asked again
        assert not any(records[key].question in text for text in later_questions), key
    summary = json.loads((run_dir / "summary.json").read_text())
    accuracy = {b["benchmark"]: b["accuracy"] for b in summary["benchmarks"]}
    assert accuracy == {"bamboogle": 1.0, "hotpotqa": 0.0}  # the responder knows bamboogle's golds only
    assert (run_dir / "summary.md").is_file() and (run_dir / "accuracy.png").stat().st_size > 1000
    assert "| bamboogle | 6 | 100.0 |" in resumed.stdout


@needs_data
def test_base_mode_asks_the_generator_alone(tmp_path: Path, server: ScriptedOpenAIServer) -> None:
    server.set_default_responder(flow_responder(_gold_by_question()))
    args = ["eval", "--mode", "base", "--benchmarks", "bamboogle", "--limit", "3", "--data-dir", str(DATA_DIR)]
    args += ["--engine", "openai:m", "--generator-engine", "openai:g", "--base-url", server.base_url]
    result = run_agentflow(*args, "--run-dir", "base", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert [r.model for r in server.requests] == ["g", "g", "g"]
    assert all(r.response_format["json_schema"]["name"] == "answer" for r in server.requests)
    records = list(RunDir(tmp_path / "base").read().values())
    assert all(r.mode is Mode.BASE and r.trajectory is not None and r.trajectory.steps == () for r in records)
    assert [r.score.correct for r in records] == [True, True, True]
    info = RunDir(tmp_path / "base").read_info()
    assert info is not None and info.engines == {"generator": "openai:g"} and info.max_steps == 0
    with pytest.raises(UsageError, match="holds a --mode base run; pass another --run-dir"):
        RunDir(tmp_path / "base").start(attrs.evolve(info, mode=Mode.AGENT))


@needs_data
def test_judge_verdicts_are_recorded_beside_the_scorer(tmp_path: Path, server: ScriptedOpenAIServer) -> None:
    server.set_default_responder(flow_responder(_gold_by_question()))
    server.set_responder("judge", lambda r: Reply(json.dumps({"analysis": "too terse", "correct": False})))
    registry = load_registry(entry_points=False, extra=[agentflow_tools.plugin, agentflow_rl.plugin])
    request = EvalRequest(
        benchmarks=("bamboogle",),
        data_dir=DATA_DIR,
        run_dir=tmp_path / "judged",
        limit=2,
        judge=config_for(server, default="judge").engines.default,
    )
    outcome = evaluate(config_for(server, default="m"), request, registry, stream=open("/dev/null", "w"))  # noqa: SIM115
    [bench] = outcome.summary.benchmarks
    assert (bench.accuracy, bench.judge_accuracy) == (1.0, 0.0)
    records = list(RunDir(tmp_path / "judged").read().values())
    prompts = [request.messages[-1]["content"] for request in server.requests_for("judge")]
    assert len(records) == len(prompts) == 2
    for record in records:  # the two are judged concurrently: pair each with its own prompt
        assert record.judge == Score(False, 0.0, "llm_judge", "too terse")
        [prompt] = [p for p in prompts if record.question in p]
        assert record.answer in prompt and "too terse" not in prompt
    assert "judge %" in (tmp_path / "judged" / "summary.md").read_text()


@needs_data
def test_samples_are_interleaved_so_a_stopped_run_covers_every_set() -> None:
    registry = load_registry(entry_points=False, extra=[agentflow_rl.plugin])
    sets = [registry.benchmark(name).factory() for name in ("bamboogle", "aime24", "medqa")]
    tasks = load_tasks(sets, DATA_DIR, 3, seed=0)
    assert [t.item.benchmark for t in tasks[:3]] == ["bamboogle", "aime24", "medqa"]
    assert [t.key for t in tasks] == [t.key for t in load_tasks(sets, DATA_DIR, 3, seed=0)]
    assert len(load_tasks(sets, DATA_DIR, 40, seed=0)) == 40 + 30 + 40  # aime24 has only 30


def test_an_unreachable_engine_stops_the_run_with_one_line(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "amc23.json").write_text(json.dumps([{"question": f"q{i}", "answer": i} for i in range(20)]))
    config = tmp_path / "agentflow.toml"  # one attempt per call: retrying a closed port only slows the test
    config.write_text(
        '[engines]\ndefault = { model = "openai:m", base_url = "http://127.0.0.1:9/v1", max_attempts = 1 }\n'
    )
    args = ["eval", "--benchmarks", "amc23", "--data-dir", str(data), "--run-dir", "r", "--mode", "base"]
    result = run_agentflow(*args, "--config", str(config), cwd=tmp_path)
    assert result.returncode == 1
    [error] = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert "the first 8 queries all failed" in error and "cannot reach http://127.0.0.1:9/v1" in error
    assert all(not r.final for r in RunDir(tmp_path / "r").read().values())  # retried on the next run
    missing = run_agentflow("eval", "--benchmarks", "bamboogle", "--data-dir", str(data), cwd=tmp_path)
    assert missing.returncode == 1 and "bamboogle.json not found" in missing.stderr
    assert "agentflow data download" in missing.stderr


@pytest.mark.parametrize("role", ["verifier", "generator"])
def test_a_crashing_module_is_recorded_like_any_failed_query(
    tmp_path: Path, server: ScriptedOpenAIServer, role: str
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "amc23.json").write_text(json.dumps([{"question": f"What is {i} + 0?", "answer": i} for i in range(3)]))
    server.set_default_responder(flow_responder({}))  # answers "0" to every free-text call
    config = attrs.evolve(config_for(server, default="m"), modules=ModulesConfig(**{role: "broken"}))
    request = EvalRequest(benchmarks=("amc23",), data_dir=data, run_dir=tmp_path / "run", concurrency=1)
    outcome = evaluate(config, request, registry_with(BrokenModules()), stream=open(os.devnull, "w"))  # noqa: SIM115

    records = sorted(RunDir(tmp_path / "run").read().values(), key=lambda r: r.item_id)
    assert [r.item_id for r in records] == ["0", "1", "2"]
    for record in records:
        assert record.error is not None and record.error.startswith(f"{role} module 'broken' (tests.helpers.")
        assert record.trajectory is not None and record.trajectory.stop_reason is StopReason.MODULE_ERROR
        assert len(record.trajectory.steps) == 1  # the turn the module broke on (or after) is kept
    # A broken verifier still lets the generator answer, but an answer made without a working module is
    # no result: every record is asked again on the next run, and the run says so.
    assert [r.final for r in records] == [False] * 3 and {r.failure for r in records} == {Failure.MODULE}
    assert [r.score.correct for r in records] == [role == "verifier", False, False]  # "0" is right for item 0 only
    [bench] = outcome.summary.benchmarks
    assert (bench.n, bench.errors, bench.failures) == (0, 3, {"module error": 3})
    assert outcome.shortfall() == (f"3 of 3 queries have no usable result: 3 module errors (e.g. {records[0].error})")


# -- summaries from a hand-made run directory -----------------------------------------------------


def _call(role: str, prompt: int, completion: int) -> ModuleCall:
    return ModuleCall(
        role=role, purpose="x", engine="openai:m", messages=(), response="", usage=Usage(prompt, completion)
    )


def _step(index: int, tool: str, ok: bool) -> Step:
    result = ToolSuccess("fine") if ok else ToolFailure(ToolErrorKind.TIMEOUT, "slow")
    return Step(index, PlannerDecision("", "goal", tool, _call("planner", 10, 1)), ToolCall(tool, {}), result)


def _record(bench: str, item: str, correct: bool, steps: tuple[Step, ...], elapsed: float, **kw: object) -> EvalRecord:
    trajectory = Trajectory(
        Query("q"), None, steps, Answer("a", _call("generator", 100, 5)), None, StopReason.VERIFIER_STOP, elapsed
    )
    score = Score(correct, float(correct), "exact_match", "a")
    return EvalRecord(bench, item, "q", ("a",), "a", score, Mode.AGENT, elapsed, trajectory=trajectory, **kw)  # type: ignore[arg-type]


def _hand_made_run(path: Path, accuracies: tuple[bool, ...]) -> RunDir:
    run = RunDir(path)
    run.start(RunInfo(Mode.AGENT, ("bamboogle",), None, 0))
    with run:
        for i, correct in enumerate(accuracies):
            steps = tuple(_step(k + 1, "search" if k % 2 else "base_generator", ok=k != 1) for k in range(i))
            run.append(_record("bamboogle", str(i), correct, steps, elapsed=float(i + 1)))
        run.append(_record("medqa", "0", True, (), elapsed=2.0))
        run.append(_record("medqa", "1", True, (), elapsed=2.0, error="engine said no"))  # not final: left out
    return run


def test_summary_numbers_of_a_hand_made_run(tmp_path: Path) -> None:
    run = _hand_made_run(tmp_path / "a", (True, False, True, True))  # 0, 1, 2 and 3 turns
    summary = finish(run)
    bamboogle, medqa = summary.benchmarks
    assert (bamboogle.benchmark, bamboogle.n, bamboogle.accuracy, bamboogle.mean_turns) == ("bamboogle", 4, 0.75, 1.5)
    assert bamboogle.tools["base_generator"].calls == 4 and bamboogle.tools["base_generator"].errors == 0
    assert bamboogle.tools["search"].calls == 2 and bamboogle.tools["search"].error_rate == 1.0  # step 2 fails
    assert bamboogle.tool_calls == 6 and bamboogle.tool_error_rate == pytest.approx(2 / 6)
    assert bamboogle.tokens["planner"].prompt == 10 * 6 / 4 and bamboogle.tokens["generator"].completion == 5
    assert (bamboogle.latency_p50_s, bamboogle.latency_p95_s) == (2.5, pytest.approx(3.85))
    assert bamboogle.stop_reasons == {"verifier_stop": 4} and bamboogle.errors == 0
    assert (medqa.n, medqa.accuracy, medqa.errors, medqa.failures) == (1, 1.0, 1, {"engine error": 1})
    assert summary.macro_accuracy == pytest.approx(0.875)
    stored = json.loads((tmp_path / "a" / "summary.json").read_text())
    assert stored["benchmarks"][0]["tools"]["search"] == {"calls": 2, "errors": 2}
    assert "| bamboogle | 4 | 75.0 | 0.750 | 1.50 | 1.50 | 33.3 |" in (tmp_path / "a" / "summary.md").read_text()


def test_reading_skips_a_cut_line_and_appending_starts_fresh(tmp_path: Path) -> None:
    run = _hand_made_run(tmp_path / "a", (True, False))
    text = run.results.read_text()
    run.results.write_text(text + text.splitlines()[0][:50])  # a write cut short by SIGKILL
    assert len(run.read()) == 4
    with run:
        run.append(_record("bamboogle", "9", True, (), elapsed=1.0))
    assert len(run.read()) == 5
    assert all(json.loads(line) for line in run.results.read_text().splitlines())
    duplicate = _record("bamboogle", "0", False, (), elapsed=1.0)
    with run:
        run.append(duplicate)
    assert run.read()[("bamboogle", "0")] == duplicate and len(run.read()) == 5  # later lines win
    assert from_json(run.results.read_text().splitlines()[-1], EvalRecord) == duplicate


def test_compare_prints_the_difference_and_plots_it(tmp_path: Path) -> None:
    _hand_made_run(tmp_path / "base", (False, False, True, False))
    _hand_made_run(tmp_path / "agent", (True, False, True, True))
    result = run_agentflow("eval", "compare", "base", "agent", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "| bamboogle | 25.0 | 75.0 | +50.0 |" in result.stdout
    assert "| macro | 62.5 | 87.5 | +25.0 |" in result.stdout
    assert (
        "| bamboogle | 25.0 | 75.0 | +50.0 | 4 / 4 | 1.50 / 1.50 | 1.50 / 1.50 | 33.3 / 33.3 | 2.5 / 2.5 |"
        in result.stdout
    )
    assert (tmp_path / "agent" / "compare.png").stat().st_size > 1000


def test_a_full_disk_names_the_results_file(tmp_path: Path) -> None:
    run = RunDir(tmp_path / "full")
    run.path.mkdir()
    run.results.symlink_to("/dev/full")  # every write fails with ENOSPC, as on a full disk
    with pytest.raises(StorageError) as info, run:
        run.append(_record("bamboogle", "0", True, (), elapsed=1.0))
    assert str(info.value).startswith(f"cannot write {run.results}: No space left on device; results so far are kept")
