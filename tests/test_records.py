from __future__ import annotations

import json

import cattrs
import pytest

from agentflow_core.engine import EngineConfig, GenerationRequest, Message, TokenTrace, Usage
from agentflow_core.records import (
    Answer,
    Decision,
    ModuleCall,
    PlannerDecision,
    Query,
    QueryAnalysis,
    Step,
    StopReason,
    ToolCall,
    ToolErrorKind,
    ToolFailure,
    ToolSuccess,
    Trajectory,
    Verdict,
)
from agentflow_core.serde import from_json, to_dict, to_json


def call(role: str, purpose: str, prompt: int, completion: int, **extra: object) -> ModuleCall:
    return ModuleCall(
        role=role,  # type: ignore[arg-type]
        purpose=purpose,
        engine="openai:m",
        messages=(Message("system", "s"), Message("user", "ü ✓")),
        response="r",
        usage=Usage(prompt, completion),
        latency_s=0.25,
        **extra,  # type: ignore[arg-type]
    )


def sample() -> Trajectory:
    ok = Step(
        1,
        PlannerDecision(
            "ctx",
            "find x",
            "base_generator",
            call("planner", "next_step", 10, 5, tokens=TokenTrace((1, 2), (3,), (-0.5,))),
        ),
        ToolCall(
            "base_generator", {"query": "x?", "nested": {"a": [1, 2.5, None]}}, "why", call("executor", "command", 7, 3)
        ),
        ToolSuccess("x is 4", 0.1, value="4", calls=(call("executor", "program", 9, 8),)),
        Verdict("need more", Decision.CONTINUE, call("verifier", "check", 4, 2)),
    )
    bad = Step(
        2,
        PlannerDecision("", "compute", "nope", call("planner", "next_step", 1, 1, parse_error="missing tool")),
        ToolCall("nope", {}),
        ToolFailure(ToolErrorKind.FAILED, "no expression", 0.0, calls=(call("executor", "expression", 6, 4),)),
        Verdict("done", Decision.STOP, call("verifier", "check", 1, 1)),
    )
    return Trajectory(
        query=Query("what is x?", id="q1"),
        analysis=QueryAnalysis("easy", call("planner", "analyze", 3, 3)),
        steps=(ok, bad),
        final_answer=Answer("4", call("generator", "final_answer", 20, 1)),
        direct_answer=None,
        stop_reason=StopReason.VERIFIER_STOP,
        elapsed_s=1.5,
        engines={"planner": "openai:m"},
    )


def test_trajectory_round_trips_through_json_losslessly() -> None:
    trajectory = sample()
    text = to_json(trajectory)
    assert from_json(text, Trajectory) == trajectory
    data = json.loads(text)
    assert data["steps"][0]["result"]["_type"] == "ToolSuccess"
    assert data["steps"][1]["result"]["_type"] == "ToolFailure"
    assert data["steps"][1]["result"]["kind"] == "failed"
    assert data["steps"][0]["result"]["calls"][0]["purpose"] == "program"
    assert data["stop_reason"] == "verifier_stop"


def test_module_calls_cover_every_module_in_order() -> None:
    calls = list(sample().module_calls())
    assert [(c.role, c.purpose) for c in calls] == [
        ("planner", "analyze"),
        ("planner", "next_step"),
        ("executor", "command"),
        ("executor", "program"),  # the tool's own call, after the executor's and before the verdict
        ("verifier", "check"),
        ("planner", "next_step"),
        ("executor", "expression"),  # a failed tool's calls are kept too
        ("verifier", "check"),
        ("generator", "final_answer"),
    ]


def test_usage_is_summed_per_module() -> None:
    trajectory = sample()
    usage = trajectory.usage_by_module()
    assert usage["planner"] == Usage(14, 9)
    assert usage["executor"] == Usage(7 + 9 + 6, 3 + 8 + 4)  # its own call and the tools' (python_coder's program)
    assert usage["verifier"] == Usage(5, 3)
    assert usage["generator"] == Usage(20, 1)
    assert trajectory.usage.total_tokens == 89


def test_unknown_keys_are_rejected_when_reading() -> None:
    data = to_dict(sample())
    data["surprise"] = 1
    with pytest.raises(cattrs.ClassValidationError) as info:
        from_json(json.dumps(data), Trajectory)
    assert "extra fields found (surprise)" in " ".join(cattrs.transform_error(info.value))


def test_a_request_samples_with_its_own_settings_where_it_has_them_else_the_engines() -> None:
    hello = (Message("user", "hi"),)
    config = EngineConfig("openai:m", temperature=0.7, max_tokens=99)
    assert GenerationRequest(hello, temperature=0.2).sampling(config) == (0.2, 99)
    assert GenerationRequest(hello, max_tokens=5, temperature=0.0).sampling(config) == (0.0, 5)
    assert GenerationRequest(hello).sampling(EngineConfig("openai:m")) == (None, None)
