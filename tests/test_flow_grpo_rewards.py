"""Rewards as plugins, records with a gold tool, tool-choice training with dry-run tools, and a run
that says when it goes wrong (deadlines, alerts)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from agentflow_core import (
    Completion,
    ConfigError,
    EngineConfig,
    EngineRegistrar,
    GenerationRequest,
    Solver,
    hookimpl,
)
from agentflow_core.plugins import load_registry, make_plugin_manager
from agentflow_rl.flow_grpo.config import load_train_config
from agentflow_rl.flow_grpo.registry import RewardRegistrar, TrainingRegistry
from agentflow_rl.flow_grpo.rewards import RewardContext, exact_match, outcome, tool_choice
from agentflow_rl.flow_grpo.rollout import rollout_batch
from agentflow_rl.flow_grpo.tasks.records import TrainRecord, load_records
from agentflow_rl.flow_grpo.tasks.setup import TaskSetup
from agentflow_rl.flow_grpo.tasks.synthetic.plugin import SyntheticPlugin
from agentflow_rl.flow_grpo.tasks.synthetic.world import SyntheticTask
from agentflow_rl.flow_grpo.testing import ScriptedPlanner, save_tiny_chat_model, synthetic_config, write_config

TASK = SyntheticTask({"k1": 4, "k2": 7})


class ShortAnswers:
    """A third-party reward plugin."""

    @hookimpl
    def register_rewards(self, register: RewardRegistrar) -> None:
        register("short", lambda context: 1.0 if len(context.answer) < 3 else 0.0, description="brevity")


def test_builtin_rewards_come_through_the_hook_beside_a_third_partys() -> None:
    setup = TaskSetup([], [], exact_match, (ShortAnswers(),), False, synthetic_config(EngineConfig("x:y")))
    training = TrainingRegistry.collect(setup.plugin_manager())
    assert {"outcome", "graded", "tool_choice", "short"} <= set(training.rewards)
    assert "agentflow_rl.flow_grpo.plugin" in training.rewards["outcome"].source
    assert training.reward("short").fn(RewardContext(TrainRecord("1", "q", ("x",)), "ab")) == 1.0
    with pytest.raises(ConfigError, match=r"task\.reward: unknown reward 'lenient'; installed: .*outcome"):
        training.reward("lenient")
    with pytest.raises(ConfigError, match=r"rollout\.backend: unknown rollout backend 'gpu'; installed: hf, hf_worker"):
        training.rollout_backend("gpu")


def test_a_third_partys_training_hook_is_valid_wherever_plugins_load() -> None:
    """The training hooks are declared by agentflow_rl's own entry point, so a plugin implementing
    one passes pluggy's check in any command, not only in a training run."""
    pm = make_plugin_manager(entry_points=False, extra=[ShortAnswers()])
    assert "short" in TrainingRegistry.collect(pm).rewards
    assert "agentflow (built-in agentflow_rl.flow_grpo.plugin)" in pm.sources.values()


def test_records_carry_a_gold_tool_beside_or_instead_of_answers(tmp_path: Path) -> None:
    rows = [
        {"id": "a", "question": "What is 37 * 41?", "answers": ["1517"], "tool": "python_coder"},
        {"question": "Where was Ada Lovelace born?", "gold_tool": "wikipedia_search"},
        {"query": "2+2?", "answer": 4},
    ]
    path = tmp_path / "q.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    records = load_records(path)
    assert [(r.answers, r.tool) for r in records] == [
        (("1517",), "python_coder"),
        ((), "wikipedia_search"),
        (("4",), None),
    ]
    path.write_text(json.dumps({"question": "q"}) + "\n")
    with pytest.raises(ConfigError, match=r"q\.jsonl:1: no gold answer or gold tool"):
        load_records(path)
    path.write_text(json.dumps({"question": "q", "tool": 3}) + "\n")
    with pytest.raises(ConfigError, match=r"q\.jsonl:1: the gold tool must be a tool name"):
        load_records(path)


async def test_tool_choice_rewards_the_planners_first_tool_only() -> None:
    scripted = ScriptedPlanner(["lookup", "add", "square", "lookup", "square"])
    registry = load_registry(entry_points=False, extra=[SyntheticPlugin(TASK), scripted])
    async with Solver(synthetic_config(EngineConfig("scripted:x")), registry=registry) as solver:
        first = await solver.asolve("k1 plus 3")  # lookup, add
        second = await solver.asolve("squared of k2")  # square (an error), lookup, square
    record = TrainRecord("1", "k1 plus 3", ("7",), tool="lookup")
    assert tool_choice(RewardContext(record, first.answer or "", first)) == 1.0
    assert tool_choice(RewardContext(record, second.answer or "", second)) == 0.0
    assert tool_choice(RewardContext(TrainRecord("2", "q", ("7",)), "7", first)) == 0.0  # no gold tool
    assert outcome(RewardContext(record, first.answer or "", first)) == 1.0


CORPUS = [
    "You route questions to tools.",
    '{"tool": "python_coder"}',
    '{"tool": "wikipedia_search"}',
    "Question: What is 12 times 7? Where was Marie Curie born?",
]


def _tool_choice_run(tmp_path: Path, **run: Any) -> Path:
    model = save_tiny_chat_model(tmp_path / "model", CORPUS)
    rows = [{"question": f"What is {a} times {b}?", "tool": "python_coder"} for a, b in [(12, 7), (3, 9), (41, 5)]] + [
        {"question": f"Where was {n} born?", "tool": "wikipedia_search"} for n in ["Marie Curie", "Ada Lovelace"]
    ]
    (tmp_path / "train.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    (tmp_path / "agent.toml").write_text(
        '[agent]\ntools = ["python_coder", "wikipedia_search"]\n'
        '[modules]\nexecutor = "first_argument"\nverifier = "stop"\ngenerator = "last_output"\n'
    )
    return write_config(
        tmp_path / "train.toml",
        {
            "policy": {"source": f"hf:{model}"},
            "task": {
                "kind": "records",
                "train_file": "train.jsonl",
                "eval_file": "train.jsonl",
                "agent_config": "agent.toml",
                "planner": "tool_choice",
                "reward": "tool_choice",
                "dry_run_tools": True,
            },
            "rollout": {"group_size": 4, "questions_per_step": 2, "max_turns": 1, "max_new_tokens": 24},
            "optim": {"lr": 1e-3},
            "run": {"output_dir": str(tmp_path / "run"), "eval_every": 1, "checkpoint_every": 0, "trackers": [], **run},
        },
    )


def test_a_records_task_trains_tool_choice_without_running_a_tool(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    from agentflow_rl.flow_grpo import trainer
    from agentflow_rl.flow_grpo.run.tracking import read_metrics
    from agentflow_rl.flow_grpo.tasks.tool_choice import DRY_RUN_OUTPUT

    session = trainer.start_session(load_train_config(_tool_choice_run(tmp_path)))
    try:
        values = trainer.train_step(session)
        batch = trainer._rollouts(session, session.eval_solver, session.task.held_out, 1)
    finally:
        trainer.close_session(session)
    assert 0.0 <= values["train/reward"] <= 1.0 and values["module/planner/turns"] == 1.0
    for rollout in batch.rollouts:
        [step] = rollout.trajectory.steps
        assert step.decision.tool in ("python_coder", "wikipedia_search")
        assert step.result.output == DRY_RUN_OUTPUT  # type: ignore[union-attr]  # described, never run
    # held-out success is the mean reward: the share of first tools that were right
    result = trainer.train(load_train_config(_tool_choice_run(tmp_path), {"run.max_steps": 1}))
    evals = [row["eval/success"] for row in read_metrics(result.output_dir) if "eval/success" in row]
    assert evals and all(0.0 <= e <= 1.0 for e in evals)


def test_tool_choice_needs_a_gold_tool_on_every_record(tmp_path: Path) -> None:
    from agentflow_rl.flow_grpo.tasks.setup import build_task

    path = _tool_choice_run(tmp_path)
    (tmp_path / "train.jsonl").write_text(json.dumps({"id": "q7", "question": "q", "answer": "4"}) + "\n")
    with pytest.raises(ConfigError, match=r"train\.jsonl: task\.reward = 'tool_choice' needs a gold tool .* 'q7'"):
        build_task(load_train_config(path).task)


def test_a_gold_tool_the_agent_does_not_enable_is_named_at_load(tmp_path: Path) -> None:
    from agentflow_rl.flow_grpo.tasks.setup import build_task

    path = _tool_choice_run(tmp_path)
    rows = [{"question": "3 * 7?", "tool": "python_coder"}, {"id": "q2", "question": "2 + 2?", "tool": "calculator"}]
    (tmp_path / "train.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    with pytest.raises(ConfigError, match=r"train\.jsonl: record 'q2' has gold tool 'calculator'.*python_coder, wiki"):
        build_task(load_train_config(path).task)


class _Hanging:
    """An engine provider whose calls never return: a module stuck on a dead server."""

    @hookimpl
    def register_engines(self, register: EngineRegistrar) -> None:
        register("hang", lambda config: self)

    name = "hang:x"

    async def generate(self, request: GenerationRequest) -> Completion:
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    async def aclose(self) -> None:
        pass


async def test_a_group_that_hangs_is_cut_at_the_deadline_and_counted() -> None:
    registry = load_registry(entry_points=False, extra=[SyntheticPlugin(TASK), _Hanging()])
    records = [TrainRecord("1", "k1 plus 3", ("7",)), TrainRecord("2", "twice of 4", ("8",))]
    async with Solver(synthetic_config(EngineConfig("hang:x")), registry=registry) as solver:
        batch = await asyncio.wait_for(rollout_batch(solver, records, 2, timeout_s=0.2), timeout=30)
    assert (batch.rollouts, batch.timed_out) == ([], 2)


def test_alerts_name_the_module_the_value_and_the_setting() -> None:
    from agentflow_rl.flow_grpo.config import AlertsConfig
    from agentflow_rl.flow_grpo.run.alerts import crossed

    values = {
        "module/planner/parse_error_rate": 0.75,
        "module/planner/tool_error_rate": 0.2,
        "module/verifier/kl": 2.0,
        "train/timed_out_groups": 3.0,
    }
    lines = crossed(values, AlertsConfig(parse_error_rate=0.5, tool_error_rate=0.9, kl=1.0), ["planner", "verifier"])
    assert lines == [
        "3 question group(s) ran past rollout.timeout_s and were left out of the step",
        "planner: reply parse-error rate 0.75 > 0.5 (alerts.parse_error_rate)",
        "verifier: KL to the reference 2 per token > 1 (alerts.kl)",
    ]
    assert crossed(values, AlertsConfig(parse_error_rate=0, tool_error_rate=0, kl=0), ["planner"]) == [
        "3 question group(s) ran past rollout.timeout_s and were left out of the step"
    ]


def test_the_trainer_prints_an_alert_at_the_step_it_happens(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("torch")
    from agentflow_rl.flow_grpo import trainer

    path = write_config(
        tmp_path / "train.toml",
        {
            "rollout": {"group_size": 4, "questions_per_step": 4, "temperature": 1.0, "max_new_tokens": 8},
            "optim": {"lr": 5e-2},
            "loss": {"kl_coef": 0.01},
            "alerts": {"kl": 1e-12, "tool_error_rate": 0.0, "parse_error_rate": 0.0},
            "run": {"output_dir": str(tmp_path / "run"), "eval_every": 0, "checkpoint_every": 0, "trackers": []},
        },
    )
    session = trainer.start_session(load_train_config(path))
    try:
        trainer.train_step(session)
        trainer.train_step(session)  # the first step's KL is 0: the policy was the reference
    finally:
        trainer.close_session(session)
    assert "step 2: planner: KL to the reference" in capsys.readouterr().out


def test_the_shipped_tool_choice_questions_are_what_their_generator_writes(tmp_path: Path) -> None:
    """``tasks/data/tool_choice_*.jsonl`` come from ``tool_choice_questions`` (400 and 100 rows, seed 0), so
    ``benchmarks/tool_choice_race.py``, which writes them afresh, races on the questions the config trains on."""
    from agentflow_rl.flow_grpo.config import bundled_config
    from agentflow_rl.flow_grpo.tasks.tool_choice_questions import write

    train, held_out = write(tmp_path)
    task = load_train_config(bundled_config("tool_choice.toml")).task
    assert task.train_file is not None and task.eval_file is not None
    assert train.read_text() == Path(task.train_file).read_text()
    assert held_out.read_text() == Path(task.eval_file).read_text()
