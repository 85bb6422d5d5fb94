"""How long python_coder's sandbox takes: cold start, a warm ``print(1)``, and throughput under load.

    python benchmarks/sandbox_latency.py [--image agentflow-sandbox:local] [--runs 300] [--json]

Cold start is ``start()`` of a one-container pool plus its first run (what the first python_coder
call of a solver pays); warm is one run after another on a started pool (what every later call
pays); throughput is many runs started at once on a pool of ``--pool`` containers. The bare
``docker exec`` is for comparison: the floor of any design that starts each run with an exec.
Prints the load average beside the figures, since the machine may be shared. Builds the local
image when missing. Needs a Docker daemon.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import time
from collections.abc import Awaitable, Callable

from agentflow_tools.sandbox import DEFAULT_TAG, DockerSandbox, DockerSettings
from agentflow_tools.sandbox.container import connect
from agentflow_tools.sandbox.image import resolve_image
from agentflow_tools.sandbox.settings import RUN_USER, container_options

PROGRAM = "print(1)"


def summary(seconds: list[float]) -> dict[str, float]:
    ordered = sorted(seconds)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return {"median_ms": 1000 * statistics.median(ordered), "p95_ms": 1000 * p95, "n": len(ordered)}


async def timed(step: Callable[[], Awaitable[object]]) -> float:
    started = time.perf_counter()
    await step()
    return time.perf_counter() - started


async def cold_starts(settings: DockerSettings, times: int) -> list[float]:
    results = []
    for _ in range(times):
        sandbox = DockerSandbox(settings=settings)

        async def start_and_run(box: DockerSandbox = sandbox) -> None:
            await box.start()
            await box.run(PROGRAM, timeout_s=10)

        results.append(await timed(start_and_run))
        await sandbox.aclose()
    return results


async def warm_runs(settings: DockerSettings, times: int) -> list[float]:
    async with DockerSandbox(settings=settings) as sandbox:
        for _ in range(5):  # not counted: the first runs warm the page cache
            await sandbox.run(PROGRAM, timeout_s=10)
        return [await timed(lambda: sandbox.run(PROGRAM, timeout_s=10)) for _ in range(times)]


def exec_floor(settings: DockerSettings, times: int) -> list[float]:
    """A bare ``docker exec sleep 0`` in the same kind of container: what any exec-based design pays."""
    client = connect()
    container = client.containers.create(**container_options(settings, settings.image or DEFAULT_TAG))
    try:
        container.start()
        results = []
        for _ in range(times):
            started = time.perf_counter()
            exec_id = client.api.exec_create(container.id, ["sleep", "0"], user=RUN_USER)["Id"]
            client.api.exec_start(exec_id)
            results.append(time.perf_counter() - started)
        return results
    finally:
        container.remove(force=True)
        client.close()


async def throughput(settings: DockerSettings, runs: int) -> dict[str, float]:
    async with DockerSandbox(settings=settings) as sandbox:
        latencies: list[float] = []
        await asyncio.gather(*(sandbox.run(PROGRAM) for _ in range(2 * settings.pool_size)))  # warm every container

        async def one() -> None:
            latencies.append(await timed(lambda: sandbox.run(PROGRAM, timeout_s=30)))

        wall = await timed(lambda: asyncio.gather(*(one() for _ in range(runs))))
    return {"runs": runs, "pool_size": settings.pool_size, "runs_per_s": runs / wall, **summary(latencies)}


async def measure(args: argparse.Namespace) -> dict[str, object]:
    single = DockerSettings(image=args.image, pool_size=1)
    return {
        "image": args.image,
        "load_average_before": os.getloadavg(),
        "cold_start": summary(await cold_starts(single, args.cold)),
        "warm_run": summary(await warm_runs(single, args.runs)),
        "exec_floor": summary(exec_floor(single, args.exec_runs)),
        "concurrent": await throughput(DockerSettings(image=args.image, pool_size=args.pool), args.concurrent),
        "load_average_after": os.getloadavg(),
    }


def image_to_measure(configured: str | None) -> str:
    """The named image, else the local one (built first when missing, as python_coder would)."""
    client = connect()
    try:
        return resolve_image(client, configured)
    finally:
        client.close()


def report(found: dict[str, object]) -> None:
    cold, warm, floor, load = (found[k] for k in ("cold_start", "warm_run", "exec_floor", "concurrent"))
    assert isinstance(cold, dict) and isinstance(warm, dict) and isinstance(floor, dict) and isinstance(load, dict)
    before, after = found["load_average_before"], found["load_average_after"]
    assert isinstance(before, tuple) and isinstance(after, tuple)
    print(f"sandbox latency of print(1) in {found['image']}, on {os.cpu_count()} CPUs")
    print(f"  load average (1 min) {before[0]:.1f} before, {after[0]:.1f} after")
    print(f"  cold start (start + first run): median {cold['median_ms']:.0f} ms, p95 {cold['p95_ms']:.0f} ms")
    print(f"  warm run:                        median {warm['median_ms']:.1f} ms, p95 {warm['p95_ms']:.1f} ms")
    print(f"  bare `docker exec sleep 0`:      median {floor['median_ms']:.0f} ms, p95 {floor['p95_ms']:.0f} ms")
    print(
        f"  {load['runs']} concurrent runs on a pool of {load['pool_size']}: {load['runs_per_s']:.1f} runs/s, "
        f"latency (queueing included) median {load['median_ms']:.0f} ms, p95 {load['p95_ms']:.0f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image", help=f"default: {DEFAULT_TAG}, built when missing")
    parser.add_argument("--runs", type=int, default=300, help="warm runs")
    parser.add_argument("--cold", type=int, default=5, help="cold starts")
    parser.add_argument("--pool", type=int, default=4, help="pool size for the concurrent runs")
    parser.add_argument("--concurrent", type=int, default=1000, help="runs started at once")
    parser.add_argument("--exec-runs", type=int, default=30, help="bare docker execs, for comparison")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    args.image = image_to_measure(args.image)
    found = asyncio.run(measure(args))
    if args.json:
        print(json.dumps(found, indent=2))
    else:
        report(found)


if __name__ == "__main__":
    main()
