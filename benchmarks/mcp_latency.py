"""What an MCP tool costs: starting its server, and one call through the solver's shared session.

The reference ``mcp-server-time`` from PyPI runs over stdio as a solver's tool source. The script
reports the seconds from ``Solver.start()`` to a usable tool (spawn, handshake, ``tools/list``),
then the median and 95th percentile of ``get_current_time`` called through the solver's toolset
(schema check, timeout, the JSON-RPC round trip, the result turned into text), one call at a time
and ``--concurrency`` at once.

    python benchmarks/mcp_latency.py                  # 200 calls, then 200 more 8 at a time
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time

from agentflow_core import Solver, ToolCall, ToolSuccess
from agentflow_core.config import config_from_dict
from agentflow_core.testing import registry_with


def _percentiles(samples: list[float]) -> str:
    ordered = sorted(samples)
    p95 = ordered[int(0.95 * (len(ordered) - 1))]
    return f"median {statistics.median(ordered) * 1000:.1f} ms, p95 {p95 * 1000:.1f} ms"


async def main(calls: int, concurrency: int) -> None:
    server = {"command": sys.executable, "args": ["-m", "mcp_server_time", "--local-timezone", "UTC"]}
    data = {
        "agent": {"tools": ["time.get_current_time"]},
        "engines": {"default": {"model": "openai:unused", "base_url": "http://127.0.0.1:9/v1"}},
        "mcp": {"time": server},
    }
    solver = Solver(config_from_dict(data), registry=registry_with())
    started = time.perf_counter()
    await solver.start()
    print(f"start (spawn, handshake, tools/list): {time.perf_counter() - started:.2f} s")
    call = ToolCall("time.get_current_time", {"timezone": "Europe/Paris"})

    async def timed() -> float:
        began = time.perf_counter()
        result = await solver.toolset.run(call)
        assert isinstance(result, ToolSuccess), result
        return time.perf_counter() - began

    try:
        one_by_one = [await timed() for _ in range(calls)]
        print(f"{calls} calls one at a time: {_percentiles(one_by_one)}")
        gate = asyncio.Semaphore(concurrency)

        async def gated() -> float:
            async with gate:
                return await timed()

        began = time.perf_counter()
        together = await asyncio.gather(*(gated() for _ in range(calls)))
        rate = calls / (time.perf_counter() - began)
        print(f"{calls} calls {concurrency} at a time: {_percentiles(list(together))}, {rate:.0f} calls/s")
    finally:
        await solver.aclose()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    asyncio.run(main(args.calls, args.concurrency))
