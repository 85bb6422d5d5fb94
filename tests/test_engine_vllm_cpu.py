"""The ``vllm:`` engine for real: vLLM's CPU build generating on SmolLM2-135M-Instruct.

vLLM lives in a venv of its own (tests/vllm_support.py), so the engine runs there, in
``tests/workers/vllm_engine_checks.py``, with this checkout on ``PYTHONPATH``; the worker starts
one ``vllm.LLM`` (minutes on a shared CPU), runs a solve and direct requests on it, and reports
what it saw. It also scores every reported log-probability with transformers in float32, through
this project's grammar replay where a schema constrained the reply, so a trace that a trainer
could not use shows up here as a gap.
"""

from __future__ import annotations

import json
import subprocess
from typing import Any

import jsonschema
import pytest

from tests.vllm_support import ROOT, smollm2_folder, vllm_env, vllm_python

pytestmark = pytest.mark.slow

WORKER = ROOT / "tests" / "workers" / "vllm_engine_checks.py"
#: float32 on both sides; 1.1e-5 measured.
GAP = 1e-3


@pytest.fixture(scope="module")
def seen(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    python = vllm_python()
    model = smollm2_folder()
    out = tmp_path_factory.mktemp("vllm-engine") / "checks.json"
    log = out.with_suffix(".log")
    with log.open("wb") as sink:
        done = subprocess.run(
            [python, str(WORKER), str(model), str(out)],
            stdout=sink,
            stderr=subprocess.STDOUT,
            env=vllm_env(),
            timeout=1500,
        )
    assert done.returncode == 0, log.read_text(errors="replace")[-4000:]
    return dict(json.loads(out.read_text()))


def test_a_solve_runs_every_module_on_the_vllm_engine(seen: dict[str, Any]) -> None:
    solve = seen["solve"]
    assert solve["error"] is None
    assert len(solve["engines"]) == 1 and solve["engines"][0].startswith("vllm:")
    assert [c["role"] for c in solve["calls"]] == ["planner", "planner", "executor", "verifier", "generator"]
    assert all(c["parse_error"] is None and c["tokens"] > 0 for c in solve["calls"]), solve["calls"]
    assert solve["answer"]


def test_greedy_replies_are_repeatable_and_score_as_transformers_does(seen: dict[str, Any]) -> None:
    first, second = seen["greedy"]
    assert first == second
    assert first["finish_reason"] == "length" and first["usage"][1] == 12  # the request's max_tokens
    trace = first["trace"]
    assert trace["temperature"] == 1.0 and trace["grammar"] is None
    assert len(trace["logprobs"]) == len(trace["completion_ids"]) == 12
    assert seen["gaps"]["greedy"] < GAP


def test_a_schema_constrained_sample_is_compact_json_with_a_grammar_a_trainer_replays(seen: dict[str, Any]) -> None:
    reply = seen["schema"]
    schema = {
        "type": "object",
        "properties": {"city": {"type": "string", "maxLength": 24}, "sure": {"type": "boolean"}},
        "required": ["city", "sure"],
    }
    jsonschema.validate(json.loads(reply["text"]), schema)
    assert "\n" not in reply["text"] and reply["finish_reason"] == "stop"
    trace = reply["trace"]
    assert trace["temperature"] == 0.8  # vLLM's processed log-probabilities: at the sampling temperature
    assert trace["grammar"][0] == "xgrammar"
    assert json.loads(trace["grammar"][1])["additionalProperties"] is False  # the schema as sent, budget-fitted
    gap = seen["gaps"]["schema"]
    assert isinstance(gap, float) and gap < GAP, gap  # a string here is the replay refusing a token


def test_max_tokens_and_options_reach_vllm(seen: dict[str, Any]) -> None:
    assert seen["short"]["finish_reason"] == "length" and seen["short"]["usage"][1] == 5
    refused = seen["too_long"]  # options.max_model_len = 512 reached vllm.LLM
    assert refused is not None and refused["type"] == "EngineError"
    assert "512" in refused["message"] and "\n" not in refused["message"]
