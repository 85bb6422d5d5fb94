"""Calls ``t.big`` of the tests' MCP server once and reports how much the peak RSS grew meanwhile.

Run by tests/test_mcp_tools.py in a process of its own, so that the high-water mark it reads
(``ru_maxrss``) belongs to this one call and not to whatever the test process did before.
Prints one JSON object: ``{"growth_mb": ..., "chars": ..., "tail": ...}``.
"""

from __future__ import annotations

import asyncio
import json
import resource
import sys

from agentflow_core import Solver
from agentflow_core.config import config_from_dict
from agentflow_core.records import ToolCall, ToolSuccess
from agentflow_core.testing import registry_with


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def main(server_script: str, chars: int) -> None:
    config = config_from_dict(
        {
            "agent": {"tools": ["t.big"]},
            "engines": {"default": {"model": "openai:unused", "base_url": "http://127.0.0.1:9/v1"}},
            "mcp": {"t": {"command": sys.executable, "args": [server_script]}},
        }
    )
    async with Solver(config, registry=registry_with()) as solver:
        await solver.start()
        await solver.toolset.run(ToolCall("t.big", {"chars": 1000}))  # every import and buffer warmed up
        before = peak_mb()
        result = await solver.toolset.run(ToolCall("t.big", {"chars": chars}))
        growth = peak_mb() - before
    assert isinstance(result, ToolSuccess), result
    print(json.dumps({"growth_mb": growth, "chars": len(result.output), "tail": result.output[-200:]}))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2])))
