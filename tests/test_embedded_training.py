"""What the embedded default's adapters are trained on: the question files, the scorer, the planner's rollouts."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import attrs
import pytest

from agentflow_core import (
    Decision,
    Fit,
    FlowState,
    ModuleContext,
    PlannerDecision,
    Query,
    Solver,
    Step,
    ToolCall,
    ToolFit,
    ToolSuccess,
)
from agentflow_core.config import config_from_dict
from agentflow_core.testing import Reply, ScriptedOpenAIServer, registry_with, scripted_json
from agentflow_rl.flow_grpo.config import bundled_config, load_train_config
from agentflow_rl.flow_grpo.rewards import short_answer
from agentflow_rl.flow_grpo.tasks.embedded_questions import write
from agentflow_rl.flow_grpo.tasks.records import TrainRecord
from agentflow_rl.flow_grpo.tasks.tool_choice import StopVerifier
from tests.helpers import engine_table


def _rows(path: Path) -> list[dict[str, str]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.mark.parametrize(
    "config", ["embedded_planner.toml", "embedded_generator.toml", "embedded_coder.toml", "embedded_coder_found.toml"]
)
def test_the_shipped_question_files_are_what_the_generator_writes(tmp_path: Path, config: str) -> None:
    write(tmp_path)
    task = load_train_config(bundled_config(config)).task
    assert task.train_file is not None and task.eval_file is not None
    for shipped in (Path(task.train_file), Path(task.eval_file)):
        assert (tmp_path / shipped.name).read_text() == shipped.read_text()
    shipped = (
        *("corpus", "train_one_call", "train_arithmetic", "eval_arithmetic", "train_facts", "eval_facts"),
        *("train_expressions", "eval_expressions"),
    )
    for name in (f"embedded_{part}.jsonl" for part in shipped):
        assert (tmp_path / name).read_text() == (Path(task.eval_file).parent / name).read_text()


def test_held_out_questions_share_no_name_number_or_template_with_training(tmp_path: Path) -> None:
    _, train, held_out = write(tmp_path)
    train_rows, eval_rows = _rows(train), _rows(held_out)
    assert {r["kind"] for r in eval_rows} == {"arithmetic", "fact", "two_step"}

    def names(text: str) -> set[str]:
        return set(re.findall(r"\b[A-Z][a-z]+ [A-Z][a-z]+\b|\b[A-Z][a-z]{4,}\b", text))

    def numbers(text: str) -> set[str]:
        return set(re.findall(r"\d{3,}", text))

    def template(text: str) -> str:
        return re.sub(r"\b[A-Z][a-z]+( [A-Z][a-z]+)*\b|[\d.,]+", "_", text[1:])

    seen_names = set().union(*(names(r["question"]) for r in train_rows))
    seen_numbers = set().union(*(numbers(r["question"]) for r in train_rows))
    seen_templates = {template(r["question"]) for r in train_rows}
    for row in eval_rows:
        assert not names(row["question"]) & seen_names, row
        assert not numbers(row["question"]) & seen_numbers, row
        assert template(row["question"]) not in seen_templates, row


def test_every_fact_is_in_exactly_one_passage_of_the_corpus(tmp_path: Path) -> None:
    corpus, train, held_out = write(tmp_path)
    passages = [p["contents"] for p in _rows(corpus)]
    for row in _rows(train)[:60] + _rows(held_out):
        if row["kind"] == "fact":
            [name] = [m for m in re.findall(r"[A-Z][a-z]+(?: [A-Z][a-z]+)*", row["question"][1:])]
            holding = [p for p in passages if p.startswith(f'"{name}"')]
            assert len(holding) == 1, name
            assert any(answer in holding[0].replace(",", "") for answer in row["answers"]), (row, holding)


@pytest.mark.parametrize(
    ("gold", "reply", "correct"),
    [
        ("391", "The sandbox printed 391.\n\nAnswer: 391", True),
        ("391", "The product of the two.\n\nAnswer: 17 * 23", False),
        ("19.308", "Answer: 19.308000000000003", True),  # a float as Python prints it
        ("19.308", "Answer: 19.31", True),  # rounded to cents
        ("19.308", "Answer: 19.4", False),
        ("48117", "Answer: 48,117 people", True),
        ("Corin Keselo", "The passage names the mayor.\n\nAnswer: Corin Keselo", True),
        ("Corin Keselo", "Answer: Keselo", False),
    ],
)
def test_short_answers_are_read_from_the_answer_line(gold: str, reply: str, correct: bool) -> None:
    assert short_answer(TrainRecord("1", "q", (gold,)), reply).correct is correct


def test_a_wrong_name_earns_its_word_overlap_as_the_graded_value() -> None:
    score = short_answer(TrainRecord("1", "q", ("Corin Keselo",)), "Answer: Keselo")
    assert score.value == pytest.approx(2 / 3)


@pytest.fixture
def server() -> Iterator[ScriptedOpenAIServer]:
    with ScriptedOpenAIServer() as server:
        yield server


async def test_the_decisions_only_planner_sends_the_shipped_planners_decision_prompt(
    server: ScriptedOpenAIServer,
) -> None:
    """Training the planner without its analysis call teaches it the very prompt the shipped planner sends."""
    replies = (
        scripted_json({"tool": "base_generator", "question": "What is the capital of Peru?"}),
        scripted_json({"analysis": "It answered.", "decision": "STOP"}),
        scripted_json({"reasoning": "The tool said Lima.", "answer": "Lima"}),
    )
    server.set_responder("t", lambda request: Reply("Lima."))
    prompts = {}
    for planner in ("default", "default_decisions"):
        server.enqueue("m", *(() if planner == "default_decisions" else (Reply("A capital is asked."),)), *replies)
        config = config_from_dict(
            {
                "agent": {"tools": ["base_generator"], "max_steps": 1},
                "modules": {"planner": planner},
                "engines": {"default": engine_table(server, "m")},
                "tools": {"base_generator": {"engine": engine_table(server, "t")}},
            }
        )
        async with Solver(config, registry=registry_with()) as solver:
            trajectory = await solver.asolve("What is the capital of Peru?")
        assert trajectory.error is None and trajectory.answer is not None and trajectory.answer.endswith("Answer: Lima")
        calls = [c for c in trajectory.module_calls() if c.role == "planner"]
        prompts[planner] = [c.messages for c in calls if c.purpose == "next_step"]
        assert [c.purpose for c in calls] == (
            ["next_step"] if planner == "default_decisions" else ["analyze", "next_step"]
        )
    assert prompts["default_decisions"] == prompts["default"]


def test_python_coder_runs_on_the_trained_executor_at_its_temperature() -> None:
    """The expression stage: python_coder's calls are the executor's, sampled as the trained executor is."""
    from agentflow_rl.flow_grpo.tasks.setup import build_task, policy_engine, solver_config

    config = load_train_config(bundled_config("embedded_coder.toml"))
    setup = build_task(config.task)
    assert config.train.roles == ("executor",)
    for evaluation, temperature in ((False, config.rollout.temperature), (True, config.rollout.eval_temperature)):
        agent = solver_config(setup, config.rollout, config.train.roles, evaluation=evaluation)
        assert agent.tool_engine("python_coder") == policy_engine("executor", config.rollout, temperature=temperature)
        assert agent.tool_engine("base_generator").model == "policy:base"  # an untrained tool keeps its engine
        assert agent.tool_settings("python_coder")["writes"] == "expression"


def test_a_tools_calls_are_trained_turns_of_its_module() -> None:
    from agentflow_core.engine import Message, TokenTrace
    from agentflow_core.records import (
        ModuleCall,
        PlannerDecision,
        Query,
        Step,
        StopReason,
        ToolCall,
        ToolSuccess,
        Trajectory,
    )
    from agentflow_rl.flow_grpo.rollout import trained_turns

    def made(role: str, purpose: str, tokens: TokenTrace | None) -> ModuleCall:
        return ModuleCall(role, purpose, "policy:x", (Message("user", "u"),), "r", tokens=tokens)  # type: ignore[arg-type]

    expression = made("executor", "expression", TokenTrace((1, 2), (3, 4), (-0.1, -0.2)))
    step = Step(
        1,
        PlannerDecision("", "30% of 6803", "python_coder", made("planner", "next_step", TokenTrace((1,), (2,), (0,)))),
        ToolCall("python_coder", {"query": "30% of 6803"}),
        ToolSuccess("Output:\n2040.9", value="2040.9", calls=(expression,)),
    )
    trajectory = Trajectory(Query("What is 30% of 6803?"), None, (step,), None, None, StopReason.MAX_STEPS, 1.0)
    assert [t.trace for t in trained_turns(trajectory, ("executor",))] == [expression.tokens]
    assert [t.role for t in trained_turns(trajectory, ("planner", "executor"))] == ["planner", "executor"]


async def test_the_stop_verifier_goes_on_while_a_claim_is_untried() -> None:
    """The second expression stage's two-step questions: after the search, python_coder claims the question."""
    from agentflow_core.modules.toolbox import claims_pending

    claimed = {"python_coder": ToolFit(Fit.CLAIMS, "earlier turns found a number")}
    search = Step(1, PlannerDecision("", "Dov", "local_search"), ToolCall("local_search", {}), ToolSuccess("1928"))
    state = FlowState(query=Query("How old would Dov be in 2030?"), tools=(), steps=(search,), max_steps=2)
    verifier = StopVerifier(ModuleContext(engine=None))  # type: ignore[arg-type]
    assert (await verifier.check(attrs.evolve(state, tool_fits=claimed))).decision is Decision.CONTINUE
    assert (await verifier.check(state)).decision is Decision.STOP
    last_turn = attrs.evolve(state, tool_fits=claimed, max_steps=1)
    assert claims_pending(last_turn) is None and (await verifier.check(last_turn)).decision is Decision.STOP
