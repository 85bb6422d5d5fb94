"""Does ``agentflow view`` stay quick on a run of 10,000 queries? Open, filter, sort, scroll, open one, grow.

Writes a run directory of ``--queries`` records (1 to 3 turns each, full prompts and responses,
some tool errors, eight benchmarks) through the core's converter, serves it with the real
``agentflow view`` in a child process and drives Debian's Chromium headless with Playwright:

* open: from ``page.goto`` (right after the server printed its URL) until the first rows are on
  screen, until the list says "10,000 of 10,000" (the server's first read of ``results.jsonl``,
  which the page shows as it goes), and once more with the server warm;
* filter / search / sort: the time the page spends on one click or keystroke (it filters in the
  browser, synchronously, so the click's duration is all of it);
* scroll: 60 jumps across the list: the time spent drawing the rows in view, and from the jump to
  two frames later (at 60 frames a second two frames take 33 ms whatever the page does);
* open one query: from the click until its turns are on screen;
* live: 100 more rows appended to ``results.jsonl`` until the page counts them.

    python benchmarks/view_big_run.py                    # 10,000 queries
    python benchmarks/view_big_run.py --queries 2000 --keep /tmp/run   # keep the run to look at
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from agentflow_core import (
    Answer,
    Message,
    ModuleCall,
    PlannerDecision,
    Query,
    QueryAnalysis,
    Score,
    Step,
    StopReason,
    ToolCall,
    ToolErrorKind,
    ToolFailure,
    ToolSuccess,
    Trajectory,
    Usage,
    Verdict,
)
from agentflow_core.records import Decision
from agentflow_core.serde import to_json
from agentflow_rl.eval import EvalRecord, Mode, RunDir, RunInfo

CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking"]
BENCHMARKS = ("bamboogle", "2wiki", "hotpotqa", "musique", "gameof24", "aime24", "amc23", "medqa")
TOOLS = ("base_generator", "python_coder", "wikipedia_search", "google_search")
#: About what the default prompts weigh: tool menu, memory and instructions.
PROMPT = "You are the planner of an assistant that answers questions by calling tools. " * 4
MENU = "\n".join(f"- {t}: a tool that does one thing well, with inputs and limits described here" for t in TOOLS) * 3


def _call(role: str, purpose: str, question: str, response: str, seconds: float) -> ModuleCall:
    messages = (Message("system", PROMPT), Message("user", f"Question: {question}\n\nTools:\n{MENU}"))
    return ModuleCall(role, purpose, "openai:qwen2.5-7b", messages, response, Usage(620, 48), seconds)


def record(n: int) -> EvalRecord:
    bench = BENCHMARKS[n % len(BENCHMARKS)]
    question = f"Question {n} of {bench}: which city hosted event {n * 7 % 997} in year {1900 + n % 120}?"
    gold = f"city {n % 311}"
    turns = 1 + n % 3
    steps = []
    for k in range(1, turns + 1):
        tool = TOOLS[(n + k) % len(TOOLS)]
        failed = (n + k) % 9 == 0
        result = (
            ToolFailure(ToolErrorKind.TIMEOUT, "the search backend did not answer within 20 s", 20.0)
            if failed
            else ToolSuccess(f"Passage about event {n}: it took place in city {n % 311}. " * 6, 0.8)
        )
        steps.append(
            Step(
                k,
                PlannerDecision("", f"event {n}", tool, _call("planner", "next_step", question, "{}", 0.6)),
                ToolCall(tool, {"query": question}, "search", _call("executor", "command", question, "{}", 0.4)),
                result,
                Verdict("enough", Decision.STOP, _call("verifier", "check", question, "STOP", 0.3)),
            )
        )
    correct = n % 5 < 2
    answer = gold if correct else f"city {n % 17}"
    trajectory = Trajectory(
        Query(question, id=f"{bench}/{n}"),
        QueryAnalysis("The question asks for a city.", _call("planner", "analyze", question, "a city", 0.7)),
        tuple(steps),
        Answer(answer, _call("generator", "final_answer", question, answer, 0.5)),
        None,
        StopReason.VERIFIER_STOP,
        1.0 + 2.1 * turns,
        engines={"planner": "openai:qwen2.5-7b"},
    )
    score = Score(correct, float(correct), "exact_match", answer)
    error = "engine timed out" if n % 97 == 0 else None
    elapsed = trajectory.elapsed_s
    return EvalRecord(bench, str(n), question, (gold,), answer, score, Mode.AGENT, elapsed, None, trajectory, error)


def write_run(path: Path, queries: int) -> float:
    run = RunDir(path)
    run.start(RunInfo(Mode.AGENT, BENCHMARKS, None, 0, tools=TOOLS, max_steps=3))
    started = time.perf_counter()
    with run:
        for n in range(queries):
            run.append(record(n))
    return time.perf_counter() - started


def _page_ms(page: object, script: str) -> float:
    return float(page.evaluate(script))  # type: ignore[attr-defined]


CLICK = """(selector) => { const t0 = performance.now(); document.querySelector(selector).click();
  return performance.now() - t0; }"""
TYPE = """(text) => { const box = document.querySelector("input[name='q']"); const t0 = performance.now();
  box.value = text; box.dispatchEvent(new Event("input")); return performance.now() - t0; }"""
SELECT = """([name, value]) => { const box = document.querySelector(`select[name='${name}']`);
  const t0 = performance.now(); box.value = value; box.dispatchEvent(new Event("change"));
  return performance.now() - t0; }"""
SCROLL = """async () => { const list = document.querySelector(".vlist"); const out = [];
  const frame = () => new Promise((done) => requestAnimationFrame(() => done()));
  for (let k = 0; k < 60; k++) {
    const t0 = performance.now();
    list.scrollTop = ((k * 7919) % 60) / 60 * list.scrollHeight;
    await frame(); await frame();
    out.push([performance.now() - t0, Number(list.dataset.drawMs)]);
  }
  return out; }"""


def measure(run_dir: Path, queries: int) -> dict[str, float]:
    from playwright.sync_api import sync_playwright

    figures: dict[str, float] = {}
    command = [sys.executable, "-m", "agentflow_core", "view", str(run_dir), "--port", "0"]
    started = time.perf_counter()
    server = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    try:
        line = server.stdout.readline() if server.stdout else ""
        figures["server up (s)"] = time.perf_counter() - started
        url = re.search(r"http://\S+/", line).group(0)  # type: ignore[union-attr]
        full = f"{queries:,} of {queries:,} queries"
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(120_000)
            started = time.perf_counter()
            page.goto(url + "#/eval/0")
            page.wait_for_selector(".vlist .qrow")
            figures["open: first rows on screen (s)"] = time.perf_counter() - started
            page.wait_for_function(f"() => document.querySelector('.count')?.textContent === {full!r}")
            figures["open: all rows read and listed (s)"] = time.perf_counter() - started
            page.goto("about:blank")
            started = time.perf_counter()
            page.goto(url + "#/eval/0")
            page.wait_for_function(f"() => document.querySelector('.count')?.textContent === {full!r}")
            figures["open again, server warm (s)"] = time.perf_counter() - started
            page.goto("about:blank")
            page.goto(url + "#/eval/0")
            page.wait_for_function(f"() => document.querySelector('.count')?.textContent === {full!r}")
            figures["filter: wrong answers (ms)"] = page.evaluate(CLICK, ".chip[data-outcome='wrong']")
            figures["filter: benchmark (ms)"] = page.evaluate(SELECT, ["benchmark", "hotpotqa"])
            figures["filter: turns (ms)"] = page.evaluate(SELECT, ["turns", "2"])
            figures["filter: back to all (ms)"] = page.evaluate(CLICK, ".chip[data-outcome='all']")
            page.evaluate(SELECT, ["benchmark", ""])
            page.evaluate(SELECT, ["turns", ""])
            figures["search: one keystroke (ms)"] = page.evaluate(TYPE, "event 4")
            figures["search: cleared (ms)"] = page.evaluate(TYPE, "")
            figures["sort by tokens (ms)"] = page.evaluate(SELECT, ["sort", "tokens"])
            scrolls = page.evaluate(SCROLL)
            figures["scroll: drawing the rows, median (ms)"] = statistics.median(draw for _, draw in scrolls)
            figures["scroll: drawing the rows, slowest (ms)"] = max(draw for _, draw in scrolls)
            figures["scroll: jump to two frames later, median (ms)"] = statistics.median(t for t, _ in scrolls)
            started = time.perf_counter()
            page.click(".vlist .qrow >> nth=5")
            page.wait_for_selector(".turn")
            figures["open one query (s)"] = time.perf_counter() - started
            page.go_back()
            page.wait_for_function(f"() => document.querySelector('.count')?.textContent === {full!r}")
            with (run_dir / "results.jsonl").open("a", encoding="utf-8") as out:
                started = time.perf_counter()
                out.write("".join(to_json(record(queries + n)) + "\n" for n in range(100)))
            grown = f"{queries + 100:,} of {queries + 100:,} queries"
            page.wait_for_function(f"() => document.querySelector('.count')?.textContent === {grown!r}")
            figures["live: 100 rows appended, shown after (s)"] = time.perf_counter() - started
            browser.close()
    finally:
        server.terminate()
        server.communicate(timeout=30)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queries", type=int, default=10_000)
    parser.add_argument("--keep", type=Path, help="Write the run here and leave it (default: a temporary folder).")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        run_dir = args.keep or Path(scratch) / "big-run"
        written = write_run(run_dir, args.queries)
        size = (run_dir / "results.jsonl").stat().st_size
        print(f"wrote {args.queries:,} queries, {size / 2**20:.0f} MiB of results.jsonl, in {written:.1f} s")
        figures = measure(run_dir, args.queries)
    print("| what | time |\n| --- | --- |")
    for label, value in figures.items():
        print(f"| {label} | {value:.3f} |" if "(s)" in label else f"| {label} | {value:.1f} |")


if __name__ == "__main__":
    main()
