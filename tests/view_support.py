"""Runs for the viewer tests, made the way a user makes them, and `agentflow view` as a real server.

``make_eval_run`` answers a small QA set through the real eval runner, with every module and the
``base_generator`` tool on a scripted OpenAI-compatible server over HTTP: which items are right,
how many turns each takes, which tool call fails and what the tool says are chosen per run.
"""

from __future__ import annotations

import json
import re
import subprocess
import threading
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

import agentflow_rl.plugin
import agentflow_tools.plugin
from agentflow_core.plugins import load_registry
from agentflow_core.testing import RecordedRequest, Reply, ScriptedOpenAIServer
from agentflow_rl.eval import EvalRequest, evaluate
from tests.eval_support import agentflow_command, clean_env
from tests.helpers import config_for

#: A tool result that would run script if the page ever treated data as markup.
XSS_PAYLOAD = (
    "<img src=x onerror=\"window.__pwned=1;document.title='pwned'\">"
    "<script>window.__pwned=2;document.title='pwned'</script>"
    '<a href="javascript:window.__pwned=3">click</a>'
)

#: (question, gold); item ids are the row numbers.
ITEMS = [
    ("What is the capital of France?", "Paris"),
    ("Who wrote Dune?", "Frank Herbert"),
    ("What is the largest planet?", "Jupiter"),
    ("What metal has the symbol Fe?", "Iron"),
    ("What is the capital of Atlantis?", "Poseidonia"),
    ("How many legs does a spider have?", "8"),
]
XSS_ITEM = "4"

T = TypeVar("T")


def write_data(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    records = [{"pid": str(i), "question": q, "answer": [gold]} for i, (q, gold) in enumerate(ITEMS)]
    (folder / "bamboogle.json").write_text(json.dumps(records), encoding="utf-8")
    return folder


class FlowScript:
    """Answers the four modules and the tool for one run.

    ``right``: item ids answered with their gold; ``two_turns``: ids whose verifier says CONTINUE
    once; ``failing_tool``: ids whose tool call gets HTTP 500 (a visible tool error).
    """

    def __init__(self, right: set[str], two_turns: set[str] = frozenset(), failing_tool: set[str] = frozenset()):
        self.right, self.two_turns, self.failing_tool = right, two_turns, failing_tool
        self._verified: Counter[str] = Counter()
        self._lock = threading.Lock()

    def item(self, request: RecordedRequest) -> str:
        text = "\n".join(str(m.get("content")) for m in request.messages)
        found = re.search(r"^Question: (.*)$", text, re.M)
        question = found.group(1).strip() if found else text
        return next((str(i) for i, (q, _) in enumerate(ITEMS) if q in question), "?")

    def modules(self, request: RecordedRequest) -> Reply:
        item = self.item(request)
        name = (request.response_format or {}).get("json_schema", {}).get("name")
        if name == "next_step":  # the sub-goal is base_generator's query: the item's question
            return Reply(json.dumps({"tool": "base_generator", "question": ITEMS[int(item)][0]}))
        if name == "verification":
            with self._lock:
                self._verified[item] += 1
                again = item in self.two_turns and self._verified[item] == 1
            verdict = {"analysis": "needs one more look" if again else "enough to answer", "decision": "STOP"}
            return Reply(json.dumps({**verdict, "decision": "CONTINUE" if again else "STOP"}))
        if name == "answer":
            answer = ITEMS[int(item)][1] if item in self.right else "I do not know"
            return Reply(json.dumps({"reasoning": "The tool's answer.", "answer": answer}))
        return Reply(f"Item {item} asks for a short fact; base_generator can answer it.")

    def tool(self, request: RecordedRequest) -> Reply:
        item = self.item(request)
        if item in self.failing_tool:
            return Reply(status=500, error_message="the tool model is down")
        if item == XSS_ITEM:
            return Reply(XSS_PAYLOAD)
        return Reply(f"The answer is probably {ITEMS[int(item)][1]}.")


def make_eval_run(run_dir: Path, data_dir: Path, script: FlowScript) -> Path:
    """A finished run directory (results.jsonl, run.json, summaries) made by ``agentflow_rl.eval.evaluate``."""
    with ScriptedOpenAIServer() as server:
        server.set_responder("m", script.modules)
        server.set_responder("tool", script.tool)
        registry = load_registry(entry_points=False, extra=[agentflow_tools.plugin, agentflow_rl.plugin])
        config = config_for(server, default="m", tool="tool", agent={"max_steps": 3})
        request = EvalRequest(benchmarks=("bamboogle",), data_dir=data_dir, run_dir=run_dir, concurrency=2)
        with open("/dev/null", "w") as quiet:
            evaluate(config, request, registry, stream=quiet)
    return run_dir


def off_the_loop(work: Callable[[], T]) -> T:
    """``work()`` on a thread of its own: Playwright's sync API keeps an event loop running on this one,
    and the eval runner and the trainer start theirs with ``asyncio.run``."""
    result: list[T] = []
    failure: list[BaseException] = []

    def run() -> None:
        try:
            result.append(work())
        except BaseException as exc:
            failure.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    if failure:
        raise failure[0]
    return result[0]


@contextmanager
def serve(*paths: Path, cwd: Path, options: Sequence[str] = (), env: Mapping[str, str] | None = None) -> Iterator[str]:
    """``agentflow view PATHS --port 0 [OPTIONS]`` in a subprocess; yields the URL it printed (with its
    ``?token=`` when it made one)."""
    process = subprocess.Popen(
        agentflow_command("view", *map(str, paths), "--port", "0", *options),
        cwd=cwd,
        env=clean_env(env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = process.stdout.readline() if process.stdout else ""
        found = re.search(r"http://\S+", line)
        if not found:
            process.kill()
            raise AssertionError(f"agentflow view printed no URL: {line!r} {process.communicate()[1]!r}")
        yield found.group(0)
    finally:
        process.terminate()
        process.communicate(timeout=30)
