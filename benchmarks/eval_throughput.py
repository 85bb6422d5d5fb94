"""How close does ``agentflow eval`` get to the throughput a slow model allows, and what does it cost?

A scripted OpenAI-compatible server runs in a child process and answers every call after a fixed
delay (an aiohttp server by default; ``--server scripted`` uses the test suite's threaded
``ScriptedOpenAIServer``, which itself becomes the limit at high concurrency on two cores).
Each query is scripted to take the same number of calls (analysis, then ``--max-steps`` turns
of planner, executor, tool and a verifier that always says CONTINUE, then the final answer), so
the best possible rate is
``concurrency / (calls per query * delay)``. The eval loop runs for real (one shared ``Solver``,
``run_tasks``, a results file) and the script reports:

* queries/s and its share of that limit (target: at least 90 % at concurrency 32), and
* framework CPU time per turn: ``time.process_time()`` of this process (the server is elsewhere)
  over the run, divided by the turns taken (target: under 5 ms).

    python benchmarks/eval_throughput.py                     # concurrency 32, delay 0.1 s, 256 queries
    python benchmarks/eval_throughput.py --profile 25        # and the 25 costliest functions
    python benchmarks/eval_throughput.py --in-process        # no HTTP: the framework's own CPU
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import multiprocessing
import pstats
import tempfile
import time
from pathlib import Path
from typing import Any

import agentflow_tools.plugin
from agentflow_core import BenchmarkItem, Completion, Solver, Usage, hookimpl
from agentflow_core.config import config_from_dict
from agentflow_core.plugins import load_registry
from agentflow_core.testing import RecordedRequest, Reply, ScriptedOpenAIServer
from agentflow_rl.benchmarks.qa import score_qa
from agentflow_rl.eval import EvalTask, RunDir, run_tasks


class _Benchmark:
    name, category = "synthetic", "search"

    def load(self, data_dir: Path) -> list[BenchmarkItem]:
        return []

    def score(self, item: BenchmarkItem, answer: str) -> Any:
        return score_qa(item, answer)


def _reply(delay_s: float) -> Any:
    def respond(request: RecordedRequest) -> Reply:
        name = (request.response_format or {}).get("json_schema", {}).get("name")
        if name == "next_step":
            body: Any = {"question": "look it up", "tool": "base_generator"}
        elif name == "verification":
            body = {"analysis": "not yet", "decision": "CONTINUE"}
        else:
            return Reply("Paris is the answer.", delay_s=delay_s)
        return Reply(json.dumps(body), delay_s=delay_s)

    return respond


class _InProcessEngine:
    """The same script without HTTP: separates the framework's CPU from the HTTP client's."""

    def __init__(self, config: Any) -> None:
        self.name, self._delay = config.model, float(config.options["delay_s"])
        self._reply = _reply(0.0)

    async def generate(self, request: Any) -> Any:
        schema = request.json_schema
        fake = RecordedRequest(
            model="m",
            messages=[{"role": m.role, "content": m.content} for m in request.messages],
            response_format={"json_schema": {"name": schema.name}} if schema else None,
            body={},
            headers={},
            path="",
        )
        await asyncio.sleep(self._delay)
        return Completion(self._reply(fake).content, Usage(100, 10))

    async def aclose(self) -> None:
        pass


class _InProcessPlugin:
    @hookimpl
    def register_engines(self, register: Any) -> None:
        register("inprocess", _InProcessEngine, description="scripted, no HTTP")


def _serve(delay_s: float, port: Any, stop: Any, kind: str) -> None:
    if kind == "scripted":
        with ScriptedOpenAIServer() as server:
            server.set_default_responder(_reply(delay_s))
            port.put(server.port)
            stop.wait()
    else:
        asyncio.run(_serve_aiohttp(_reply(delay_s), port, stop))


async def _serve_aiohttp(respond: Any, port: Any, stop: Any) -> None:
    """The same script on an event-loop server, so that a thread per connection is not what limits the run."""
    from aiohttp import web

    async def chat(http: web.Request) -> web.Response:
        body = await http.json()
        recorded = RecordedRequest(
            model=body.get("model", ""),
            messages=body.get("messages", []),
            response_format=body.get("response_format"),
            body=body,
            headers={},
            path=http.path,
        )
        reply = respond(recorded)
        await asyncio.sleep(reply.delay_s)
        completion = {
            "id": "chatcmpl-bench",
            "object": "chat.completion",
            "model": recorded.model,
            "choices": [
                {"index": 0, "message": {"role": "assistant", "content": reply.content}, "finish_reason": "stop"}
            ],
            "usage": {"prompt_tokens": 100, "completion_tokens": 10, "total_tokens": 110},
        }
        return web.json_response(completion)

    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port.put(runner.addresses[0][1])
    await asyncio.get_running_loop().run_in_executor(None, stop.wait)
    await runner.cleanup()


def _config(base_url: str | None, args: argparse.Namespace) -> Any:
    if base_url is None:
        engine: dict[str, Any] = {"model": "inprocess:m", "options": {"delay_s": args.delay}}
    else:
        engine = {"model": "openai:m", "base_url": base_url, "max_attempts": 1, "timeout_s": 60}
    return config_from_dict({"agent": {"max_steps": args.max_steps}, "engines": {"default": engine}})


async def _run(base_url: str | None, args: argparse.Namespace, run_dir: Path) -> tuple[float, float, int]:
    registry = load_registry(entry_points=False, extra=[agentflow_tools.plugin, _InProcessPlugin()])
    items = [
        BenchmarkItem("synthetic", str(i), f"What is the capital of France? (#{i})", ("Paris",))
        for i in range(args.queries)
    ]
    tasks = [EvalTask(_Benchmark(), item) for item in items]
    async with Solver(_config(base_url, args), registry=registry) as solver:
        with RunDir(run_dir / "warm") as warm:  # connections opened, modules imported: not part of the figures
            await run_tasks(solver, tasks[: args.concurrency], warm, concurrency=args.concurrency)
        out = RunDir(run_dir / "run")
        with out:
            wall, cpu = time.perf_counter(), time.process_time()
            await run_tasks(solver, tasks, out, concurrency=args.concurrency)
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    turns = sum(len(r.trajectory.steps) for r in out.read().values() if r.trajectory)
    return wall, cpu, turns


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--delay", type=float, default=0.1, help="seconds the server waits before each reply")
    parser.add_argument("--queries", type=int, default=256)
    parser.add_argument("--max-steps", type=int, default=3)
    parser.add_argument("--in-process", action="store_true", help="a scripted engine without HTTP: framework cost only")
    parser.add_argument(
        "--server",
        choices=("aiohttp", "scripted"),
        default="aiohttp",
        help="the loopback server: an event-loop one (default) or the test suite's threaded ScriptedOpenAIServer",
    )
    parser.add_argument("--profile", type=int, default=0, metavar="N", help="print the N costliest functions")
    args = parser.parse_args()

    context = multiprocessing.get_context("spawn")
    port, stop = context.Queue(), context.Event()
    server = context.Process(target=_serve, args=(args.delay, port, stop, args.server), daemon=True)
    base_url = None
    if not args.in_process:
        server.start()
        base_url = f"http://127.0.0.1:{port.get(timeout=60)}/v1"
    profiler = cProfile.Profile() if args.profile else None
    try:
        with tempfile.TemporaryDirectory() as tmp:
            if profiler:
                profiler.enable()
            wall, cpu, turns = asyncio.run(_run(base_url, args, Path(tmp)))
            if profiler:
                profiler.disable()
    finally:
        stop.set()
        if server.is_alive():
            server.join(timeout=10)
    calls = 1 + 4 * args.max_steps + 1
    limit = args.concurrency / (calls * args.delay)
    rate = args.queries / wall
    transport = "in-process engine" if args.in_process else f"OpenAI engine over loopback HTTP ({args.server} server)"
    print(
        f"{args.queries} queries, {calls} calls each, delay {args.delay * 1000:.0f} ms, "
        f"concurrency {args.concurrency}, {transport}"
    )
    print(f"throughput: {rate:.2f} queries/s of a {limit:.2f} limit = {100 * rate / limit:.1f}% (target >= 90%)")
    print(
        f"framework CPU: {1000 * cpu / turns:.2f} ms per turn ({1000 * cpu / (args.queries * calls):.2f} ms per call; "
        f"{cpu:.2f} s over {turns} turns; target < 5 ms)"
    )
    if profiler:
        pstats.Stats(profiler).sort_stats("tottime").print_stats(args.profile)


if __name__ == "__main__":
    main()
