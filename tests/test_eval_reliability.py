"""Eval runs that are never silently wrong (issue 33): modules that fail, a server that dies, changed
settings, two runs on one directory, damaged results files. Every run is ``agentflow eval`` in a
subprocess against the scripted OpenAI-compatible server on 127.0.0.1."""

from __future__ import annotations

import json
import os
import re
import resource
import shlex
import signal
import subprocess
import threading
import warnings
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import attrs
import pytest

import agentflow_rl.plugin
import agentflow_tools.plugin
from agentflow_core import Score, UsageError
from agentflow_core.config import Config, ToolConfig
from agentflow_core.plugins import load_registry
from agentflow_core.testing import RecordedRequest, Reply, ScriptedOpenAIServer, wait_until
from agentflow_rl.eval import EvalRecord, EvalRequest, Failure, Mode, RunDir, evaluate
from tests.eval_support import agentflow_command, clean_env, flow_responder, run_agentflow
from tests.helpers import config_for

#: Questions with characters of two, three and four bytes in UTF-8, so a cut can land inside one.
QUESTIONS = {f"Q{i}": f"Q{i}: {'é' * 40} — which city is «number {i}» 🏙?" for i in range(20)}
GOLD = {question: f"city {i}" for i, question in enumerate(QUESTIONS.values())}


@pytest.fixture
def server() -> Iterator[ScriptedOpenAIServer]:
    with ScriptedOpenAIServer() as server:
        server.set_default_responder(flow_responder(GOLD))
        yield server


def write_data(folder: Path, n: int, name: str = "bamboogle") -> Path:
    folder.mkdir(exist_ok=True)
    rows = [{"pid": str(i), "question": q, "answer": [GOLD[q]]} for i, q in enumerate(list(QUESTIONS.values())[:n])]
    (folder / f"{name}.json").write_text(json.dumps(rows, ensure_ascii=False), encoding="utf-8")
    return folder


def write_config(path: Path, base_url: str, **models: str) -> Path:
    """Every module on ``openai:m`` unless named; one attempt per call, so failures come fast."""
    lines = ["[engines]"]
    for role, model in {"default": "m", **models}.items():
        lines.append(f'{role} = {{ model = "openai:{model}", base_url = "{base_url}", max_attempts = 1 }}')
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def text_of(request: RecordedRequest) -> str:
    return "\n".join(str(m.get("content")) for m in request.messages)


def items_asked(requests: list[RecordedRequest]) -> set[str]:
    return {tag for r in requests for tag in QUESTIONS if f"{tag}:" in text_of(r)}


def failing_for(tags: set[str], otherwise: Callable[[RecordedRequest], Reply]) -> Callable[[RecordedRequest], Reply]:
    def respond(request: RecordedRequest) -> Reply:
        if any(f"{tag}:" in text_of(request) for tag in tags):
            return Reply(status=500, error_message="the model server is overloaded")
        return otherwise(request)

    return respond


def error_line(result: subprocess.CompletedProcess[str]) -> str:
    [line] = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    return line


def resume_command(error: str) -> list[str]:
    words = shlex.split(error.split("to ask those queries again run: ", 1)[1])
    assert words[:2] == ["agentflow", "eval"] and "--new-run" not in words
    return words[1:]


def with_flag(args: list[str], flag: str, value: str) -> list[str]:
    """``args`` with ``flag``'s value replaced, or the flag added."""
    if flag not in args:
        return [*args, flag, value]
    at = args.index(flag)
    return [*args[:at], flag, value, *args[at + 2 :]]


def lines_of(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines() if path.is_file() else []


def summary_of(run: Path, *keys: str) -> dict[str, object]:
    """These figures of the run's (only) set in ``summary.json``."""
    [bench] = json.loads((run / "summary.json").read_text())["benchmarks"]
    return {key: bench[key] for key in keys}


# -- 1. a record is final only when every module it depends on succeeded ---------------------------


@pytest.mark.parametrize("role", ["planner", "verifier"])
def test_queries_a_module_failed_are_asked_again_and_the_run_exits_non_zero(
    tmp_path: Path, server: ScriptedOpenAIServer, role: str
) -> None:
    data = write_data(tmp_path / "data", 6)
    config = write_config(tmp_path / "agentflow.toml", server.base_url, **{role: role})
    server.set_responder(role, failing_for({"Q1", "Q4"}, flow_responder(GOLD)))
    args = ["eval", "--benchmarks", "bamboogle", "--data-dir", str(data), "--config", str(config), "--run-dir", "run"]
    first = run_agentflow(*args, "--concurrency", "2", cwd=tmp_path)

    assert first.returncode == 1, first.stderr  # the generator still answered, but without a working module
    error = error_line(first)
    assert "2 of 6 queries have no usable result: 2 engine errors (e.g. " in error and "HTTP 500" in error
    records = RunDir(tmp_path / "run").read()
    assert {key[1] for key, record in records.items() if not record.final} == {"1", "4"}
    assert {records["bamboogle", i].failure for i in ("1", "4")} == {Failure.ENGINE}
    assert summary_of(tmp_path / "run", "n", "accuracy", "errors") == {"n": 4, "accuracy": 1.0, "errors": 2}
    assert "**2 queries have no usable result yet** (2 engine errors)" in (tmp_path / "run" / "summary.md").read_text()

    server.set_responder(role, flow_responder(GOLD))  # the server is well again
    asked = len(server.requests)
    again = run_agentflow(*resume_command(error), cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert items_asked(server.requests[asked:]) == {"Q1", "Q4"}
    assert summary_of(tmp_path / "run", "n", "accuracy", "errors") == {"n": 6, "accuracy": 1.0, "errors": 0}
    assert "0 of 6 queries to answer" in run_agentflow(*resume_command(error), cwd=tmp_path).stderr


def test_a_server_that_dies_mid_run_stops_it_and_the_printed_command_resumes_it(tmp_path: Path) -> None:
    data = write_data(tmp_path / "data", 20)
    results = tmp_path / "run" / "results.jsonl"
    with ScriptedOpenAIServer() as dying:
        dying.set_default_responder(flow_responder(GOLD, delay_s=0.05))
        config = write_config(tmp_path / "agentflow.toml", dying.base_url)
        args = ["eval", "--benchmarks", "bamboogle", "--data-dir", str(data), "--config", str(config)]
        process = subprocess.Popen(
            agentflow_command(*args, "--run-dir", "run", "--concurrency", "2"),
            cwd=tmp_path,
            env=clean_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        wait_until(lambda: len(lines_of(results)) >= 3 or process.poll() is not None, timeout_s=90, what="3 results")
    _, stderr = process.communicate(timeout=120)  # the server is gone: every query from now on fails

    assert process.returncode == 1, stderr
    [error] = [line for line in stderr.splitlines() if line.startswith("Error:")]
    assert "stopped early: 8 queries in a row failed (--stop-after-failures 8)" in error
    assert "engine errors" in error and "not run" in error and "cannot reach" in error
    kept = {key for key, record in RunDir(tmp_path / "run").read().items() if record.final}
    assert len(kept) >= 3

    with ScriptedOpenAIServer() as revived:  # on another port: where the server is does not change results
        revived.set_default_responder(flow_responder(GOLD))
        write_config(tmp_path / "agentflow.toml", revived.base_url)
        resumed = run_agentflow(*resume_command(error), cwd=tmp_path, timeout=180)
        assert resumed.returncode == 0, resumed.stderr
        assert not items_asked(revived.requests) & {f"Q{key[1]}" for key in kept}  # nothing final asked again
    records = RunDir(tmp_path / "run").read()
    assert len(records) == 20 and all(record.final for record in records.values())


def test_a_judge_that_failed_is_asked_again_without_asking_the_agent(
    tmp_path: Path, server: ScriptedOpenAIServer
) -> None:
    data = write_data(tmp_path / "data", 3)
    server.set_responder("judge", lambda r: Reply(status=500, error_message="judge is down"))
    args = ["eval", "--benchmarks", "bamboogle", "--data-dir", str(data), "--run-dir", "run"]
    args += ["--engine", "openai:m", "--base-url", server.base_url, "--judge-engine", "openai:judge"]
    first = run_agentflow(*args, cwd=tmp_path, timeout=180)
    assert first.returncode == 1 and "3 of 3 queries have no usable result: 3 judge errors" in error_line(first)

    server.set_responder("judge", lambda r: Reply(json.dumps({"analysis": "fine", "correct": True})))
    asked = len(server.requests)
    again = run_agentflow(*args, cwd=tmp_path, timeout=180)
    assert again.returncode == 0, again.stderr
    assert [r.model for r in server.requests[asked:]] == ["judge"] * 3  # the replies on disk were judged again
    assert summary_of(tmp_path / "run", "n", "judge_accuracy", "errors") == {"n": 3, "judge_accuracy": 1.0, "errors": 0}


# -- 2. a run directory remembers the settings that made it --------------------------------------


def test_a_run_dir_refuses_other_settings_in_one_line_naming_them(tmp_path: Path, server: ScriptedOpenAIServer) -> None:
    data = write_data(tmp_path / "data", 4)
    run = tmp_path / "run"
    base = ["eval", "--benchmarks", "bamboogle", "--limit", "3", "--max-steps", "2", "--data-dir", str(data)]
    base += ["--engine", "openai:m", "--base-url", server.base_url, "--run-dir", "run"]
    assert run_agentflow(*base, cwd=tmp_path).returncode == 0
    before = {name: (run / name).read_bytes() for name in ("run.json", "results.jsonl")}
    asked = len(server.requests)

    changes = {
        ("--max-steps", "3"): "agent.max_steps 2 (now 3)",
        ("--planner-engine", "openai:other"): "planner.engine openai:m (now openai:other)",
        ("--limit", "2"): "limit 3 (now 2)",
        ("--seed", "5"): "seed 0 (now 5)",
        ("--judge-engine", "openai:judge"): "judge.engine unset (now openai:judge)",
    }
    for (flag, value), expected in changes.items():
        result = run_agentflow(*with_flag(base, flag, value), cwd=tmp_path)
        assert result.returncode == 1, (flag, result.stderr)
        error = error_line(result)
        assert f"{run.name} was run with other settings: {expected};" in error and "--new-run" in error, error
    assert {name: (run / name).read_bytes() for name in before} == before and len(server.requests) == asked

    with ScriptedOpenAIServer() as elsewhere:  # harmless: where the server is, how many queries in flight
        moved = with_flag(with_flag(base, "--base-url", elsewhere.base_url), "--concurrency", "1")
        same = run_agentflow(*moved, cwd=tmp_path)
        assert same.returncode == 0 and "0 of 3 queries to answer" in same.stderr and not elsewhere.requests

    fresh = run_agentflow(*with_flag(base, "--max-steps", "3"), "--new-run", cwd=tmp_path)
    assert fresh.returncode == 0, fresh.stderr
    assert "run dir run-2: 3 of 3 queries to answer; to resume: agentflow eval " in fresh.stderr
    assert "--run-dir run-2" in fresh.stderr and "--new-run" not in fresh.stderr.split("to resume:")[1]
    assert json.loads((tmp_path / "run-2" / "run.json").read_text())["settings"]["agent.max_steps"] == "3"
    assert {name: (run / name).read_bytes() for name in before} == before


def test_what_changes_results_is_refused_and_what_does_not_is_not(tmp_path: Path, server: ScriptedOpenAIServer) -> None:
    data = write_data(tmp_path / "data", 2)
    registry = load_registry(entry_points=False, extra=[agentflow_tools.plugin, agentflow_rl.plugin])
    request = EvalRequest(benchmarks=("bamboogle",), data_dir=data, run_dir=tmp_path / "run", limit=1)
    config = config_for(server, default="m")
    with open(os.devnull, "w") as quiet:
        assert evaluate(config, request, registry, stream=quiet).complete
    asked = len(server.requests)

    def engine(**changes: object) -> Config:
        return attrs.evolve(
            config, engines=attrs.evolve(config.engines, default=attrs.evolve(config.engines.default, **changes))
        )

    refused = {
        "planner.temperature default (now 0.7)": engine(temperature=0.7),
        "generator.max_tokens default (now 64)": engine(max_tokens=64),
        "verifier.options unset (now sha256:": engine(options={"top_p": 0.5}),
        "agent.max_time_s 300.0 (now 30.0)": attrs.evolve(config, agent=attrs.evolve(config.agent, max_time_s=30.0)),
        "tools.base_generator.settings unset (now sha256:": attrs.evolve(
            config, tools={"base_generator": ToolConfig(settings={"max_tokens": 9})}
        ),
    }
    tools = attrs.evolve(config, agent=attrs.evolve(config.agent, tools=("base_generator", "wikipedia_search")))
    refused["agent.tools base_generator (now base_generator,wikipedia_search)"] = tools
    for expected, changed in refused.items():
        with pytest.raises(UsageError, match=re.escape(expected)):
            evaluate(changed, request, registry)
    write_data(data, 2, name="hotpotqa")
    with pytest.raises(UsageError, match=re.escape("settings: benchmarks bamboogle (now bamboogle,hotpotqa);")):
        evaluate(config, attrs.evolve(request, benchmarks=("bamboogle", "hotpotqa")), registry)
    changed_data = tmp_path / "changed"  # the same ids, other questions: a data file that was replaced
    changed_data.mkdir()
    rows = json.loads((data / "bamboogle.json").read_text(encoding="utf-8"))
    rows = [{**row, "question": row["question"] + " (revised)"} for row in rows]
    (changed_data / "bamboogle.json").write_text(json.dumps(rows), encoding="utf-8")
    with pytest.raises(UsageError, match=re.escape("the sampled items (the data files changed)")):
        evaluate(config, attrs.evolve(request, data_dir=changed_data), registry)
    quicker = {**config.engines.default.options, "retry_base_s": 0.02, "headers": {"X-Team": "a"}}
    harmless = engine(timeout_s=5.0, max_attempts=1, base_url=server.base_url + "/", options=quicker)
    with open(os.devnull, "w") as quiet:
        assert evaluate(harmless, attrs.evolve(request, concurrency=1), registry, stream=quiet).complete
    assert len(server.requests) == asked


def test_a_run_json_without_settings_is_held_to_what_it_says(tmp_path: Path, server: ScriptedOpenAIServer) -> None:
    data = write_data(tmp_path / "data", 2)
    registry = load_registry(entry_points=False, extra=[agentflow_tools.plugin, agentflow_rl.plugin])
    request = EvalRequest(benchmarks=("bamboogle",), data_dir=data, run_dir=tmp_path / "run", limit=1)
    config = config_for(server, default="m", agent={"max_steps": 2})
    with open(os.devnull, "w") as quiet:
        evaluate(config, request, registry, stream=quiet)
    info = tmp_path / "run" / "run.json"
    older = {key: value for key, value in json.loads(info.read_text()).items() if key != "settings"}
    info.write_text(json.dumps(older))  # as written before run.json had settings

    with pytest.raises(UsageError, match=re.escape("settings: agent.max_steps 2 (now 3);")):
        evaluate(attrs.evolve(config, agent=attrs.evolve(config.agent, max_steps=3)), request, registry)
    hotter = config_for(server, default="m", agent={"max_steps": 2})
    hotter = attrs.evolve(
        hotter, engines=attrs.evolve(hotter.engines, default=attrs.evolve(hotter.engines.default, temperature=0.9))
    )
    with open(os.devnull, "w") as quiet:  # what the old file does not name cannot be checked
        assert evaluate(hotter, request, registry, stream=quiet).complete
    assert json.loads(info.read_text()) == older  # and is not claimed afterwards either

    info.write_bytes(b'{"mode": "agent", "bench\xff')
    with pytest.raises(UsageError, match=r"run\.json is not readable \(invalid UTF-8 at byte 24\); pass another"):
        evaluate(config, request, registry)
    info.unlink()
    with pytest.raises(UsageError, match=re.escape("holds results but no run.json, so what made them is unknown")):
        evaluate(config, request, registry)


def test_a_second_eval_on_a_run_dir_is_refused_at_once_and_a_kill_frees_it(
    tmp_path: Path, server: ScriptedOpenAIServer
) -> None:
    release = threading.Event()
    flow = flow_responder(GOLD)

    def held_at_q1(request: RecordedRequest) -> Reply:  # the first eval stays busy until the test is done
        if "Q1:" in text_of(request):
            release.wait(timeout=120)
        return flow(request)

    server.set_default_responder(held_at_q1)
    data = write_data(tmp_path / "data", 4)
    args = ["eval", "--benchmarks", "bamboogle", "--data-dir", str(data), "--concurrency", "1"]
    args += ["--engine", "openai:m", "--base-url", server.base_url, "--run-dir", "run"]
    results = tmp_path / "run" / "results.jsonl"
    first = subprocess.Popen(agentflow_command(*args), cwd=tmp_path, env=clean_env(), stderr=subprocess.DEVNULL)
    try:
        wait_until(lambda: lines_of(results) or first.poll() is not None, timeout_s=90, what="a first result")
        second = run_agentflow(*args, cwd=tmp_path, timeout=60)
        assert second.returncode == 1, second.stderr
        assert f"run is in use by another agentflow eval (pid {first.pid})" in error_line(second)
        assert first.poll() is None and len(lines_of(results)) == 1  # the second asked nothing, wrote nothing
    finally:
        os.kill(first.pid, signal.SIGKILL)
        first.wait(timeout=30)
        release.set()
    third = run_agentflow(*args, cwd=tmp_path, timeout=120)  # the kernel dropped the killed process's lock
    assert third.returncode == 0, third.stderr
    assert Counter(json.loads(line)["item_id"] for line in lines_of(results)) == dict.fromkeys("0123", 1)


# -- 3. damaged results files ---------------------------------------------------------------------


def test_a_write_cut_inside_a_multibyte_character_is_dropped_and_asked_again(
    tmp_path: Path, server: ScriptedOpenAIServer
) -> None:
    data = write_data(tmp_path / "data", 4)
    config = write_config(tmp_path / "agentflow.toml", server.base_url, verifier="v")
    server.set_responder("v", failing_for({"Q3"}, flow_responder(GOLD)))
    args = ["eval", "--benchmarks", "bamboogle", "--data-dir", str(data), "--config", str(config), "--run-dir", "run"]
    assert run_agentflow(*args, cwd=tmp_path).returncode == 1  # Q3 is left to do
    results = tmp_path / "run" / "results.jsonl"
    size = results.stat().st_size

    # The next run appends Q3's record; the file-size limit stops that write one byte into an "é",
    # which is what a kill -9 in the middle of the write leaves on disk.
    server.set_responder("v", flow_responder(GOLD))
    head = b'{"benchmark": "bamboogle", "item_id": "3", "question": "Q3: '
    limit = size + len(head) + 1

    def limited() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))

    cut = subprocess.run(
        agentflow_command(*args), cwd=tmp_path, env=clean_env(), capture_output=True, text=True, preexec_fn=limited
    )
    assert cut.returncode == 1 and "cannot write" in error_line(cut) and "results so far are kept" in error_line(cut)
    assert results.read_bytes()[size:] == head + "é".encode()[:1]

    summary = run_agentflow("eval", "summary", "run", cwd=tmp_path)
    assert summary.returncode == 0, summary.stderr
    assert "warning" not in summary.stderr  # a torn last line is expected after a kill, and says nothing
    assert "| bamboogle | 3 | 100.0 |" in summary.stdout

    asked = len(server.requests)
    resumed = run_agentflow(*args, cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert items_asked(server.requests[asked:]) == {"Q3"}
    assert all(json.loads(line.decode("utf-8")) for line in lines_of(results))
    assert summary_of(tmp_path / "run", "n", "accuracy", "errors") == {"n": 4, "accuracy": 1.0, "errors": 0}


def test_damaged_lines_are_named_skipped_and_their_queries_asked_again(
    tmp_path: Path, server: ScriptedOpenAIServer
) -> None:
    data = write_data(tmp_path / "data", 5)
    args = ["eval", "--benchmarks", "bamboogle", "--data-dir", str(data), "--run-dir", "run", "--concurrency", "1"]
    args += ["--engine", "openai:m", "--base-url", server.base_url]
    assert run_agentflow(*args, cwd=tmp_path).returncode == 0
    results = tmp_path / "run" / "results.jsonl"
    lines = lines_of(results)
    item = {n: json.loads(line)["item_id"] for n, line in enumerate(lines, start=1)}
    bad_byte = lines[1].replace("é".encode(), b"\xff", 1)  # line 2: one byte that is no UTF-8
    results.write_bytes(b"\n".join([lines[0], bad_byte, b"\x00\x00garbage{", *lines[2:], lines[4][:77]]))

    summary = run_agentflow("eval", "summary", "run", cwd=tmp_path)
    assert summary.returncode == 0, summary.stderr
    warned = [line for line in summary.stderr.splitlines() if line.startswith("warning:")]
    assert len(warned) == 2 and "line 2 is not a result (invalid UTF-8 at byte" in warned[0]
    assert "line 3 is not a result" in warned[1]
    assert "| bamboogle | 4 | 100.0 |" in summary.stdout

    asked = len(server.requests)
    resumed = run_agentflow(*args, cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert items_asked(server.requests[asked:]) == {f"Q{item[2]}"}
    with pytest.warns(UserWarning, match="is not a result"):  # the damaged lines stay in the file
        assert len(RunDir(tmp_path / "run").read()) == 5


def test_every_cut_of_the_last_line_drops_it_and_nothing_before_it(tmp_path: Path) -> None:
    run = RunDir(tmp_path / "run")
    records = [
        EvalRecord("bamboogle", str(i), question, (GOLD[question],), f"«{GOLD[question]}» 🏙", score, Mode.AGENT, 0.5)
        for i, question in enumerate(list(QUESTIONS.values())[:3])
        for score in [Score(True, 1.0, "exact_match", GOLD[question])]
    ]
    with run:
        for record in records:
            run.append(record)
    *kept, last = run.results.read_bytes().splitlines(keepends=True)
    expected = {record.key: record for record in records[:2]}
    assert sum(byte >= 0x80 for byte in last) > 80  # cuts land inside characters of 2, 3 and 4 bytes
    for cut in range(len(last)):  # byte by byte, as a kill may leave it
        run.results.write_bytes(b"".join(kept) + last[:cut])
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # a torn last line is no news
            assert run.read() == expected, cut
    with run:  # appending starts on a fresh line
        run.append(records[2])
    assert run.results.read_bytes() == b"".join([*kept, last]) and run.read() == {r.key: r for r in records}
