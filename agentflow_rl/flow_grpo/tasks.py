"""What a run trains on: questions, a scorer, the plugins and the agent config of the solver.

The synthetic task brings its own tools and fixed modules (a plugin object); a ``records`` task
uses an ``agentflow.toml`` for the tools and the fixed modules, with installed plugins loaded as
the CLI would. Either way the Planner's engine is replaced by the live policy, registered under
the ``policy`` provider, and the Planner module is ``task.planner``.
"""

from __future__ import annotations

from collections.abc import Sequence

import attrs

from agentflow_core import Config, ConfigError, EngineConfig, load_config
from agentflow_core.config import AgentConfig, EnginesConfig, ModulesConfig
from agentflow_core.plugins import load_registry
from agentflow_core.registry import Registry
from agentflow_rl.flow_grpo.config import TaskKind, TrainConfig
from agentflow_rl.flow_grpo.data import TrainRecord, load_records
from agentflow_rl.flow_grpo.rewards import Scorer, exact_match
from agentflow_rl.flow_grpo.rollout import POLICY_PROVIDER
from agentflow_rl.flow_grpo.synthetic import TOOL_NAMES, SyntheticTask


@attrs.frozen
class TaskSetup:
    train: Sequence[TrainRecord]
    held_out: Sequence[TrainRecord]
    scorer: Scorer
    #: Plugin objects the registry needs besides the built-ins (the policy plugin comes later).
    plugins: tuple[object, ...]
    #: Whether installed entry-point plugins are loaded too.
    entry_points: bool
    agent: Config
    #: Words of the task, for the tiny tokenizer; ``None`` for file-based tasks.
    vocabulary: tuple[str, ...] | None = None


def build_task(config: TrainConfig) -> TaskSetup:
    task = config.task
    if task.kind is TaskKind.SYNTHETIC:
        world = SyntheticTask.make(keys=task.synthetic.keys, seed=task.synthetic.seed)
        train, held_out = world.split(task.synthetic.held_out, task.synthetic.seed, task.synthetic.max_held_out)
        fixed = ModulesConfig(planner=task.planner, executor="synthetic", verifier="synthetic", generator="synthetic")
        agent = Config(agent=AgentConfig(tools=TOOL_NAMES), modules=fixed, source="synthetic task")
        return TaskSetup(train, held_out, world.score, (world.plugin(),), False, agent, tuple(world.vocabulary()))
    if task.train_file is None:
        raise ConfigError("task.kind = 'records' needs task.train_file")
    held_out = load_records(task.eval_file) if task.eval_file else []
    agent = load_config(task.agent_config) if task.agent_config else Config()
    agent = attrs.evolve(agent, modules=attrs.evolve(agent.modules, planner=task.planner))
    return TaskSetup(load_records(task.train_file), held_out, _scorer(task.scorer), (), True, agent)


def _scorer(name: str) -> Scorer:
    if name != "exact_match":
        raise ConfigError(f"task.scorer {name!r} is unknown; the built-in scorer is 'exact_match'")
    return exact_match


def solver_config(setup: TaskSetup, config: TrainConfig, *, temperature: float) -> Config:
    """The task's agent with the Planner on the policy; fixed modules keep their own engines."""
    planner = EngineConfig(
        model=f"{POLICY_PROVIDER}:planner",
        temperature=temperature,
        max_tokens=config.rollout.max_new_tokens,
        options={"max_batch": config.rollout.max_batch},
    )
    # The synthetic modules need no model: every role points at the policy, so nothing else loads.
    engines = EnginesConfig(default=planner)
    if setup.entry_points:
        engines = attrs.evolve(setup.agent.engines, planner=planner)
    agent = attrs.evolve(setup.agent.agent, max_steps=config.rollout.max_turns)
    return attrs.evolve(setup.agent, engines=engines, agent=agent)


def registry_for(setup: TaskSetup, policy_plugin: object) -> Registry:
    return load_registry(entry_points=setup.entry_points, extra=[*setup.plugins, policy_plugin])
