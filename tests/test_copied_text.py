"""The copied-text check finds prompt wording in what a module wrote, and nothing else."""

from __future__ import annotations

import pytest

from agentflow_core import (
    Answer,
    Decision,
    Message,
    ModuleCall,
    PlannerDecision,
    Query,
    QueryAnalysis,
    Step,
    StopReason,
    ToolCall,
    ToolSuccess,
    Trajectory,
    Verdict,
)
from agentflow_core.testing import assert_no_copied_text, copied_prompt_text, registry_with, schema_texts, tool_texts

QUESTION = "What is the capital of France?"
PLAN_PROMPT = f"Question: {QUESTION}\n\nChoose the tool for the next call and write its sub-goal, complete in itself."


def _call(prompt: str, role: str = "planner") -> ModuleCall:
    return ModuleCall(role=role, purpose="p", engine="e", messages=(Message("user", prompt),), response="")  # type: ignore[arg-type]


def trajectory(sub_goal: str, answer: str, *, result: str = "Paris is the capital of France.") -> Trajectory:
    step = Step(
        1,
        PlannerDecision("", sub_goal, "base_generator", call=_call(PLAN_PROMPT)),
        ToolCall("base_generator", {"query": sub_goal}),
        ToolSuccess(result),
        Verdict("enough", Decision.STOP, call=_call(f"Question: {QUESTION}\nDone so far: {sub_goal} {result}")),
    )
    final = Answer(answer, call=_call(f"Question: {QUESTION}\n\nAnswer the question from these results, briefly."))
    return Trajectory(Query(QUESTION), None, (step,), final, None, StopReason.VERIFIER_STOP, 0.0)


def test_quoting_the_question_and_the_tool_is_no_copy() -> None:
    clean = trajectory(QUESTION, "Paris is the capital of France.\n\nAnswer: Paris")
    assert copied_prompt_text(clean) == []
    # "Question: What is the capital..." straddles the prompt's label and the question: still a quote.
    assert copied_prompt_text(trajectory(f"Question: {QUESTION}", "The question: What is the capital of France")) == []


def test_instruction_wording_in_a_sub_goal_argument_or_answer_is_found() -> None:
    copied = trajectory("write its sub-goal, complete in itself", "answer the question from these results")
    found = copied_prompt_text(copied)
    assert [f.where for f in found] == ["step 1 sub_goal", "step 1 argument query", "final answer"]
    assert found[0].copied == "write its sub goal complete in itself"
    assert found[2].copied == "answer the question from these results"
    with pytest.raises(AssertionError, match="step 1 sub_goal copies 'write its sub goal complete in itself'"):
        assert_no_copied_text(copied)


def test_a_copied_run_stays_copied_when_repeated_later() -> None:
    found = copied_prompt_text(trajectory("choose the tool for the next call", "Choose the tool for the next call."))
    assert "final answer" in [f.where for f in found]


def test_schema_and_tool_texts_count_as_instructions() -> None:
    description = "the full question or instruction, with every fact it needs"
    schema = {"type": "object", "properties": {"query": {"type": "string", "description": description}}}
    copied = trajectory(description, "Paris")
    assert copied_prompt_text(copied) == []  # not in any message: only the schema carried it
    assert [f.where for f in copied_prompt_text(copied, schema_texts(schema))][:1] == ["step 1 sub_goal"]
    python_coder = registry_with().tool("python_coder").spec
    assert python_coder.description in list(tool_texts([python_coder]))


def test_reasoning_is_checked_only_on_request() -> None:
    copied = trajectory(QUESTION, "Paris")
    copied = Trajectory(
        copied.query,
        QueryAnalysis("Choose the tool for the next call and write it.", call=_call(PLAN_PROMPT)),
        copied.steps,
        copied.final_answer,
        None,
        StopReason.VERIFIER_STOP,
        0.0,
    )
    assert copied_prompt_text(copied) == []
    assert [f.where for f in copied_prompt_text(copied, reasoning=True)] == ["analysis"]


def test_fewer_words_than_the_threshold_are_no_copy() -> None:
    assert copied_prompt_text(trajectory(QUESTION, "choose the tool")) == []
    assert [f.where for f in copied_prompt_text(trajectory(QUESTION, "choose the tool"), min_words=3)] == [
        "final answer"
    ]
