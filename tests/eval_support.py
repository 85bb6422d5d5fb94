"""Shared by the benchmark and eval tests: where the test sets are, and the CLI in a subprocess."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Callable, Mapping
from pathlib import Path

import pytest

from agentflow_core.testing import RecordedRequest, Reply

#: ``AGENTFLOW_DATA``, else ``shared/benchmarks`` beside the checkout; the files are never copied into the repo.
DATA_DIR = Path(os.environ.get("AGENTFLOW_DATA") or Path(__file__).resolve().parents[2] / "shared" / "benchmarks")

#: The shipped files and their record counts.
COUNTS = {
    "bamboogle": 125,
    "2wiki": 200,
    "hotpotqa": 100,
    "musique": 200,
    "gameof24": 300,
    "aime24": 30,
    "amc23": 40,
    "medqa": 300,
}

#: For tests that read the shipped test sets: skipped without them, except under CI (``CI`` set), where
#: that is a failure, so that CI cannot go green by skipping (the ``benchmark_data`` fixture in conftest.py).
needs_data = pytest.mark.usefixtures("benchmark_data")


def data_missing() -> str | None:
    """Why the shipped benchmark files cannot be read, or ``None`` when they can."""
    missing = [name for name in COUNTS if not (DATA_DIR / f"{name}.json").is_file()]
    if not missing:
        return None
    return (
        f"benchmark files not found in {DATA_DIR} ({', '.join(missing)}); set AGENTFLOW_DATA to the folder, "
        "or put shared/benchmarks beside the checkout"
    )


def clean_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The test process's environment without keys or AgentFlow settings, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "AGENTFLOW_", "HF_"))}
    return {**env, **(extra or {})}


def agentflow_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "agentflow_core", *args]


def run_agentflow(
    *args: str, cwd: Path, env: Mapping[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        agentflow_command(*args),
        cwd=cwd,
        env=clean_env(env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def flow_responder(gold: Mapping[str, str], delay_s: float = 0.0) -> Callable[[RecordedRequest], Reply]:
    """One turn per query; free-text calls answer the gold of bamboogle items, "0" for anything else."""

    def respond(request: RecordedRequest) -> Reply:
        name = (request.response_format or {}).get("json_schema", {}).get("name")
        if name == "next_step":
            return Reply(json.dumps({"tool": "base_generator", "question": "look it up"}), delay_s=delay_s)
        if name == "verification":
            return Reply(json.dumps({"analysis": "enough", "decision": "STOP"}), delay_s=delay_s)
        prompt = "\n".join(str(m.get("content")) for m in request.messages)
        found = re.search(r"^Question: (.*)$", prompt, re.M)
        question = found.group(1).strip() if found else ""
        answer = next((g for q, g in gold.items() if q.startswith(question) and question), "0")
        if name == "answer":  # the generator: its reasoning, then the short answer
            return Reply(json.dumps({"reasoning": "The tool said so.", "answer": answer}), delay_s=delay_s)
        return Reply(answer, delay_s=delay_s)

    return respond
