"""`agentflow view` without a browser: what the readers make of run directories, the HTTP server's
headers and refusals, the static export, and the rollouts the trainer keeps."""

from __future__ import annotations

import json
import socket
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from agentflow_core.serde import to_json
from agentflow_core.testing import wait_until
from agentflow_rl.eval import RunDir, summarize
from agentflow_rl.view.api import NotFound, ViewData, dumps
from agentflow_rl.view.eval_run import EvalRun
from agentflow_rl.view.export import export_site
from agentflow_rl.view.sources import open_source
from agentflow_rl.view.tail import JsonlTail
from agentflow_rl.view.training_run import TrainingRun
from agentflow_rl.view.trajectory_file import TrajectoryFile
from tests.eval_support import run_agentflow
from tests.view_support import XSS_ITEM, FlowScript, make_eval_run, serve, write_data


@pytest.fixture(scope="module")
def run_a(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("view-data")
    script = FlowScript(right={"0", "1", "5"}, two_turns={"1", "3"}, failing_tool={"2"})
    return make_eval_run(root / "run-a", write_data(root / "data"), script)


def test_a_tail_hands_out_complete_lines_only(tmp_path: Path) -> None:
    path = tmp_path / "x.jsonl"
    tail = JsonlTail(path)
    assert tail.read_new() == (False, [])  # not there yet
    path.write_bytes(b'{"a": 1}\n{"b": ')
    assert tail.read_new() == (False, [(0, b'{"a": 1}')])
    assert tail.read_new() == (False, [])  # the cut line waits
    with path.open("ab") as out:
        out.write(b'2}\n\n{"c": 3}\n')
    assert tail.read_new() == (False, [(9, b'{"b": 2}'), (18, b""), (19, b'{"c": 3}')])
    path.write_bytes(b'{"d": 4}\n')  # shorter than before: rewritten, so read again from the start
    assert tail.read_new() == (True, [(0, b'{"d": 4}')])


def test_a_tail_reads_a_file_bigger_than_its_block(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("agentflow_rl.view.tail.BLOCK", 7)
    path = tmp_path / "x.jsonl"
    lines = [json.dumps({"n": n, "pad": "x" * (n % 5)}).encode() for n in range(40)]
    path.write_bytes(b"\n".join(lines) + b"\n" + b'{"half')
    _, got = JsonlTail(path).read_new()
    assert [line for _, line in got] == lines
    assert all(path.read_bytes()[offset:].startswith(line) for offset, line in got)


def test_rows_and_summary_match_what_the_eval_wrote(run_a: Path) -> None:
    run = EvalRun(run_a)
    rows = run.rows_since("0")
    assert rows["reset"] and rows["version"] == "1-6" and rows["skipped"] == 0
    by_id = {row["id"]: row for row in rows["rows"]}
    assert [by_id[i]["correct"] for i in "012345"] == [True, True, False, False, False, True]
    assert (by_id["1"]["turns"], by_id["0"]["turns"]) == (2, 1)
    assert by_id["2"]["tool_errors"] == 1 and by_id["2"]["tools"] == ["base_generator"]
    assert by_id["0"]["gold"] == ["Paris"] and by_id["0"]["tokens"] > 0
    expected = json.loads((run_a / "summary.json").read_text())
    summary = run.summary()
    assert summary["benchmarks"][0]["accuracy"] == expected["benchmarks"][0]["accuracy"] == 0.5
    assert summary["benchmarks"][0]["tools"] == expected["benchmarks"][0]["tools"]
    assert summary["benchmarks"][0]["tokens"] == expected["benchmarks"][0]["tokens"]  # lean records, same counts
    assert summary["benchmarks"][0]["tool_calls"] == 8 and summary["macro_accuracy"] == 0.5
    assert run.rows_since(rows["version"])["rows"] == []


def test_a_record_is_read_again_in_full(run_a: Path) -> None:
    run = EvalRun(run_a)
    index = next(r["i"] for r in run.rows_since("0")["rows"] if r["id"] == XSS_ITEM)
    full = run.record(index)
    stored = RunDir(run_a).read()[("bamboogle", XSS_ITEM)]
    assert full == json.loads(to_json(stored))
    assert full["trajectory"]["steps"][0]["result"]["output"].startswith("<img src=x onerror=")
    assert full["trajectory"]["steps"][0]["decision"]["call"]["messages"]  # prompts are there when opened


def test_a_read_in_progress_does_not_hold_up_the_page(run_a: Path) -> None:
    run = EvalRun(run_a)
    with run._reading:  # as while another thread reads a big file for the first time
        partial = run.rows_since("0")
        summary = run.summary()
    assert partial["reading"] and partial["rows"] == [] and summary["reading"] and summary["benchmarks"] == []
    whole = run.rows_since("0")
    assert not whole["reading"] and len(whole["rows"]) == 6


def test_appended_and_replaced_lines_show_up_and_bad_ones_are_counted(run_a: Path, tmp_path: Path) -> None:
    lines = (run_a / "results.jsonl").read_text().splitlines()
    (tmp_path / "run").mkdir()
    results = tmp_path / "run" / "results.jsonl"
    results.write_text("\n".join(lines[:2]) + "\n")
    run = EvalRun(tmp_path / "run")
    first = run.rows_since("0")
    assert len(first["rows"]) == 2
    again = json.loads(lines[0])
    again["answer"], again["score"]["correct"] = "changed", False
    with results.open("a") as out:
        out.write("not json\n" + json.dumps(again) + "\n" + lines[2] + "\n" + lines[3][:40])
    later = run.rows_since(first["version"])
    assert [(r["i"], r["answer"]) for r in later["rows"]] == [(0, "changed"), (2, json.loads(lines[2])["answer"])]
    assert later["skipped"] == 1 and len(run.rows_since("0")["rows"]) == 3
    assert summarize(run.records()).benchmarks[0].n == 3
    assert run.summary()["skipped_lines"] == 1


def test_each_path_finds_its_reader(run_a: Path, tmp_path: Path) -> None:
    record = next(iter(RunDir(run_a).read().values()))
    trajectory = tmp_path / "t.json"
    trajectory.write_text(to_json(record.trajectory, indent=2))
    assert isinstance(open_source(run_a), EvalRun) and isinstance(open_source(run_a / "results.jsonl"), EvalRun)
    assert isinstance(open_source(trajectory), TrajectoryFile)
    (tmp_path / "train").mkdir()
    (tmp_path / "train" / "metrics.jsonl").write_text('{"step": 1, "train/reward": 0.5, "eval/success": NaN}\n')
    assert isinstance(open_source(tmp_path / "train"), TrainingRun)
    data = ViewData([open_source(run_a), open_source(trajectory), open_source(tmp_path / "train")])
    assert [s["kind"] for s in data.get("sources")] == ["eval", "trajectory", "train"]
    assert data.get("trajectory/1")["trajectory"]["query"]["text"] == record.question
    assert json.loads(dumps(data.get("train/2/metrics/0")))["rows"] == [
        {"step": 1, "train/reward": 0.5, "eval/success": None}  # NaN is no JSON a browser reads
    ]
    for wrong in ("eval/1/summary", "eval/0/record/99", "eval/7/summary", "eval/0/nothing", "train/2/samples/3"):
        with pytest.raises(NotFound):
            data.get(wrong)


def test_paths_that_are_nothing_to_view_fail_with_one_line(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "bad.json").write_text('{"query": 1}')
    for path, words in [
        ("missing", "does not exist"),
        ("empty", "is neither an evaluation run"),
        ("bad.json", "is not a trajectory as `agentflow solve --json` writes one"),
    ]:
        result = run_agentflow("view", path, cwd=tmp_path)
        assert result.returncode == 1 and "Traceback" not in result.stderr
        [line] = result.stderr.strip().splitlines()
        assert line.startswith("Error: ") and words in line, line


def test_a_taken_port_fails_with_one_line(run_a: Path, tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        result = run_agentflow("view", str(run_a), "--port", str(taken.getsockname()[1]), cwd=tmp_path)
    assert result.returncode == 1
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("Error: cannot listen on 127.0.0.1:") and "--port 0" in line


def test_open_hands_the_printed_url_to_the_users_browser(run_a: Path, tmp_path: Path) -> None:
    """``--open`` goes through the standard ``webbrowser`` module, so ``$BROWSER`` picks the browser."""
    opened = tmp_path / "opened.txt"
    browser = tmp_path / "browser"
    browser.write_text(
        f"#!{sys.executable}\nimport sys, pathlib\npathlib.Path({str(opened)!r}).write_text(sys.argv[1])\n"
    )
    browser.chmod(0o755)
    with serve(run_a, cwd=tmp_path, options=["--open"], env={"BROWSER": str(browser)}) as url:
        wait_until(opened.exists, what="the browser to be started")
        wait_until(lambda: opened.read_text() != "", what="the browser to be given the URL")
        assert opened.read_text() == url
        assert _get(url)[0] == 200


def _get(url: str, host: str | None = None) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, headers={"Host": host} if host else {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def test_the_server_sends_a_strict_policy_and_refuses_other_hosts(run_a: Path, tmp_path: Path) -> None:
    with serve(run_a, cwd=tmp_path) as url:
        for path in ("", "static/app.js", "api/sources", "api/eval/0/rows/0", "api/eval/0/record/99"):
            status, headers, _ = _get(url + path)
            assert headers["Content-Security-Policy"].startswith("default-src 'none'; script-src 'self';"), path
            assert headers["X-Content-Type-Options"] == "nosniff"
        status, headers, body = _get(url + "api/eval/0/record/99")
        assert status == 404 and json.loads(body) == {"error": "nothing at 'eval/0/record/99'"}
        status, _, body = _get(url + "api/sources", host="attacker.example:80")
        assert status == 421 and b"does not answer to the host 'attacker.example:80'" in body
        status, _, body = _get(url.replace("127.0.0.1", "localhost") + "api/sources")
        assert status == 200 and json.loads(body)[0]["name"] == "run-a"
        status, _, _ = _get(url + "static/../../view/server.py")
        assert status in (403, 404)


def test_an_export_holds_every_page_as_data_scripts(run_a: Path, tmp_path: Path) -> None:
    site = tmp_path / "site"
    result = run_agentflow("view", str(run_a), "--export", str(site), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    page = (site / "index.html").read_text()
    assert '<meta name="agentflow-mode" content="export">' in page and (site / "static" / "app.js").is_file()
    data = ViewData([EvalRun(run_a)])
    files = sorted(p.relative_to(site / "data").as_posix() for p in (site / "data").rglob("*.js"))
    assert files == sorted(f"{path}.js" for path in data.paths()) and len(files) == 2 + 1 + 6
    text = (site / "data" / "eval" / "0" / "record" / "3.js").read_text()
    prefix = 'AF_DATA("eval/0/record/3", '
    assert text.startswith(prefix) and text.endswith(");\n")
    assert json.loads(text[len(prefix) : -3]) == data.get("eval/0/record/3")
    (site / "stray.txt").write_text("x")  # an earlier export may be written over
    assert run_agentflow("view", str(run_a), "--export", str(site), cwd=tmp_path).returncode == 0
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    refused = run_agentflow("view", str(run_a), "--export", str(tmp_path / "other"), cwd=tmp_path)
    assert refused.returncode == 1 and "not empty and holds no earlier export" in refused.stderr


def test_export_site_counts_what_it_wrote(run_a: Path, tmp_path: Path) -> None:
    assert export_site(ViewData([EvalRun(run_a)]), tmp_path / "out") == 9
