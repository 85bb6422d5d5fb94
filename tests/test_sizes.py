"""What the solver does to a module's output before anything keeps it: texts cut, with a marker."""

from __future__ import annotations

from agentflow_core.records import Answer, Decision, ModuleCall, PlannerDecision, ToolCall, Verdict
from agentflow_core.sizes import ARGUMENTS_CUT_KEY, capped, clip


def test_clip_keeps_short_text_itself_and_marks_a_cut() -> None:
    text = "short"
    assert clip(text, 5) is text
    assert clip("abcdefgh", 3) == "abc … [cut: 5 of 8 characters not shown]"


def test_every_text_of_a_record_is_cut_but_not_the_prompts() -> None:
    call = ModuleCall(role="verifier", purpose="check", engine="e", messages=(), response="r" * 500)
    verdict = capped(Verdict(analysis="a" * 500, decision=Decision.STOP, call=call), 100)
    assert verdict.analysis.startswith("a" * 100 + " … [cut: 400 of 500")
    assert verdict.call is not None and verdict.call.response.startswith("r" * 100 + " … [cut")
    assert verdict.decision is Decision.STOP
    small = Answer("fine")
    assert capped(small, 100) is small  # nothing to cut: the same record


def test_the_texts_of_tool_arguments_share_the_room() -> None:
    call = capped(ToolCall("t", {"a": "x" * 800, "b": ["y" * 800, 7], "c": {"d": "z" * 800}}), 1000)
    assert call.arguments["a"] == "x" * 800
    assert call.arguments["b"][0] == "y" * 200 + " … [cut: 600 of 800 characters not shown]"
    assert call.arguments["b"][1] == 7
    assert call.arguments["c"]["d"] == " … [cut: 800 of 800 characters not shown]"


def test_arguments_too_large_even_when_cut_are_replaced_by_a_note() -> None:
    call = capped(ToolCall("t", {f"k{i}": i for i in range(10_000)}), 100)
    assert list(call.arguments) == [ARGUMENTS_CUT_KEY]
    assert "more than 100 characters" in call.arguments[ARGUMENTS_CUT_KEY]


def test_a_decision_keeps_its_tool_name_when_it_fits() -> None:
    decision = capped(PlannerDecision(context="c" * 300, sub_goal="s", tool="base_generator"), 100)
    assert (decision.tool, decision.sub_goal) == ("base_generator", "s") and decision.context.endswith("shown]")
