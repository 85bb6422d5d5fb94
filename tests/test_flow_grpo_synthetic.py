"""The synthetic environment through the real solver, with a scripted planner engine."""

from __future__ import annotations

import attrs
import pytest

from agentflow_core import (
    Decision,
    EngineConfig,
    FlowState,
    ModuleRegistrar,
    Solver,
    StopReason,
    ToolErrorKind,
    ToolFailure,
    Verdict,
    hookimpl,
)
from agentflow_core.plugins import load_registry
from agentflow_rl.flow_grpo.tasks.records import TrainRecord
from agentflow_rl.flow_grpo.tasks.synthetic.plugin import SyntheticPlugin
from agentflow_rl.flow_grpo.tasks.synthetic.world import SyntheticTask, parse_question
from agentflow_rl.flow_grpo.testing import ScriptedPlanner, synthetic_config

TASK = SyntheticTask({"k1": 4, "k2": 7})


async def _solve(question: str, *tools: str, max_turns: int = 3) -> tuple[str | None, list[str], list[object]]:
    scripted = ScriptedPlanner(tools)
    registry = load_registry(entry_points=False, extra=[SyntheticPlugin(TASK), scripted])
    async with Solver(synthetic_config(EngineConfig("scripted:x"), max_turns), registry=registry) as solver:
        trajectory = await solver.asolve(question)
    return trajectory.answer, [s.decision.tool for s in trajectory.steps], [s.result for s in trajectory.steps]


@pytest.mark.parametrize(
    ("question", "plan", "answer"),
    [
        ("twice of 5", ["double"], "10"),
        ("squared of k2", ["lookup", "square"], "49"),
        ("k1 plus k2", ["lookup", "lookup", "add"], "11"),
        ("k1 plus 3", ["lookup", "add"], "7"),
    ],
)
async def test_the_right_plan_answers_correctly(question: str, plan: list[str], answer: str) -> None:
    got, tools, _ = await _solve(question, *plan)
    assert (got, tools) == (answer, plan)
    assert TASK.solve(question) == answer


async def test_arithmetic_before_the_lookup_is_a_tool_error_and_costs_a_turn() -> None:
    answer, tools, results = await _solve("k1 plus k2", "add", "lookup", "lookup")
    assert tools == ["add", "lookup", "lookup"]
    assert isinstance(results[0], ToolFailure) and results[0].kind is ToolErrorKind.BAD_ARGUMENTS
    assert answer == "unknown"  # three turns spent, no arithmetic result


async def test_the_wrong_operation_gives_a_wrong_answer() -> None:
    answer, _, _ = await _solve("twice of k1", "lookup", "square")
    assert answer == "16" != TASK.solve("twice of k1")


async def test_the_verifier_stops_after_the_first_result() -> None:
    scripted = ScriptedPlanner(["double", "double"])
    registry = load_registry(entry_points=False, extra=[SyntheticPlugin(TASK), scripted])
    async with Solver(synthetic_config(EngineConfig("scripted:x")), registry=registry) as solver:
        trajectory = await solver.asolve("twice of 5")
    assert trajectory.stop_reason is StopReason.VERIFIER_STOP
    assert len(trajectory.steps) == 1 and scripted.queue  # the second choice was never asked for


def test_split_has_every_shape_on_both_sides_and_no_overlap() -> None:
    task = SyntheticTask.make()
    train, held_out = task.split()
    assert not {r.question for r in train} & {r.question for r in held_out}
    shapes = {q: shape for shape, qs in task.shapes().items() for q in qs}
    assert {shapes[r.question] for r in held_out} == {shapes[r.question] for r in train} == set(task.shapes())
    assert all(r.answers == (task.solve(r.question),) for r in held_out)


def test_any_first_held_out_questions_take_the_shapes_in_turn() -> None:
    # ``run.eval_questions`` scores the first N: with the shapes one after another, the first 40 of
    # this split once held no two-key question.
    task = SyntheticTask.make()
    _, held_out = task.split()
    shapes = {q: shape for shape, qs in task.shapes().items() for q in qs}
    order = [shapes[r.question] for r in held_out]
    assert sorted(order[:5]) == sorted(task.shapes())
    counts = {shape: order[:40].count(shape) for shape in task.shapes()}
    assert counts == {"un": 4, "uk": 6, "nn": 10, "kn": 10, "kk": 10}  # "un" has only 4 to give


def test_scoring_and_parsing() -> None:
    record = TrainRecord("1", "k1 plus 3", ("7",))
    assert TASK.score(record, " 7").correct and not TASK.score(record, "8").correct
    assert parse_question("squared of k3") == ("square", ["k3"])
    with pytest.raises(ValueError, match="not a synthetic question"):
        parse_question("what is love")


async def test_the_english_planner_states_the_keys_still_to_look_up() -> None:
    scripted = ScriptedPlanner(["lookup", "add", "lookup", "add"])
    registry = load_registry(entry_points=False, extra=[SyntheticPlugin(TASK), scripted])
    config = synthetic_config(EngineConfig("scripted:x"), 4, planner="synthetic_chat")
    async with Solver(config, registry=registry) as solver:
        trajectory = await solver.asolve("k1 plus k2")
    prompts = [s.decision.call.messages[-1].content for s in trajectory.steps if s.decision.call is not None]
    notes = [p.splitlines()[-1] for p in prompts]
    # the premature add (a tool error) fetched nothing, so k2 is still missing after it
    assert notes == [f"Keys still to look up: {keys}" for keys in ("k1, k2", "k2", "k2", "none")]
    assert trajectory.answer == "11"
    opening = prompts[0].split("Question:")[0]
    assert len(opening) > 100 and all(p.startswith(opening) for p in prompts)  # what a batch forwards once


class _FixedVerifiers:
    """Verifiers that say the same thing in every state, as a collapsed trained one does."""

    @hookimpl
    def register_modules(self, register: ModuleRegistrar) -> None:
        for decision in Decision:
            register("verifier", f"always_{decision.value.lower()}", lambda context, d=decision: _Fixed(d))


class _Fixed:
    def __init__(self, decision: Decision) -> None:
        self.decision = decision

    async def check(self, state: FlowState) -> Verdict:
        return Verdict("fixed", self.decision)


async def _solve_stopped(
    question: str, verifier: str, *tools: str, generator: str = "synthetic_stopped"
) -> tuple[str | None, StopReason]:
    registry = load_registry(
        entry_points=False, extra=[SyntheticPlugin(TASK), ScriptedPlanner(tools), _FixedVerifiers()]
    )
    config = synthetic_config(EngineConfig("scripted:x"), 3)
    config = attrs.evolve(config, modules=attrs.evolve(config.modules, verifier=verifier, generator=generator))
    async with Solver(config, registry=registry) as solver:
        trajectory = await solver.asolve(question)
    return trajectory.answer, trajectory.stop_reason


async def test_the_stopped_generator_answers_only_when_the_verifier_said_stop() -> None:
    # Repeating the arithmetic repeats the answer: with the rule generator, never stopping costs nothing.
    never_stops = ("twice of 5", "always_continue", "double", "double", "double")
    assert await _solve_stopped(*never_stops, generator="synthetic") == ("10", StopReason.MAX_STEPS)
    assert await _solve_stopped("twice of 5", "always_stop", "double") == ("10", StopReason.VERIFIER_STOP)
    assert await _solve_stopped(*never_stops) == ("unknown", StopReason.MAX_STEPS)
    assert await _solve_stopped("twice of k1", "always_stop", "lookup") == ("unknown", StopReason.VERIFIER_STOP)
    assert await _solve_stopped("twice of k1", "synthetic", "lookup", "double") == ("8", StopReason.VERIFIER_STOP)
