"""Rules the test suite keeps about itself: it waits on conditions, not on the clock, and under CI a
missing input fails a test instead of skipping it."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TEST_FILES = sorted([*ROOT.glob("tests/**/*.py"), *ROOT.glob("plugins/*/tests/**/*.py")])

#: Files whose sleeps are the behaviour under test, not synchronisation.
SLEEPS_ON_PURPOSE = {
    # The scripted MCP server's tools that wait, block or linger are what the MCP tests time out and cancel.
    "tests/mcp_server.py": "tools that are slow or stuck by design",
}


def sleeps(path: Path) -> list[int]:
    """Lines calling ``time.sleep``, ``asyncio.sleep`` or a bare ``sleep``."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if name == "sleep":
                lines.append(node.lineno)
    return lines


def test_the_scan_finds_sleeps(tmp_path: Path) -> None:
    sample = tmp_path / "t.py"
    sample.write_text("import time, asyncio\nfrom time import sleep\ntime.sleep(1)\nasyncio.sleep(2)\nsleep(3)\n")
    assert sleeps(sample) == [3, 4, 5]


@pytest.mark.parametrize("path", TEST_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_test_sleeps_to_synchronise(path: Path) -> None:
    relative = str(path.relative_to(ROOT))
    if relative in SLEEPS_ON_PURPOSE:
        return
    found = sleeps(path)
    assert not found, (
        f"{relative}:{found[0]} sleeps; wait for the condition itself with agentflow_core.testing.wait_until"
    )


def test_a_test_that_needs_the_benchmark_files_fails_under_ci_without_them(tmp_path: Path) -> None:
    command = [
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        "tests/test_benchmarks.py",
        "-k",
        "medqa",
    ]
    env = {**os.environ, "AGENTFLOW_DATA": str(tmp_path / "nothing-here")}
    ci = subprocess.run(command, cwd=ROOT, env={**env, "CI": "true"}, capture_output=True, text=True, timeout=120)
    assert ci.returncode == 1 and "CI needs the benchmark files" in ci.stdout, ci.stdout[-2000:]
    env.pop("CI", None)
    local = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert local.returncode == 0 and " skipped" in local.stdout, local.stdout[-2000:]
