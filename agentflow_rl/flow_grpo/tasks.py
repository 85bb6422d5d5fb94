"""What a run trains on: questions, a scorer, a reward, the plugins and the agent of the solver.

The synthetic task brings its own tools and fixed modules (a plugin object); a ``records`` task
uses an ``agentflow.toml`` for the tools and the fixed modules, with installed plugins loaded as
the CLI would. Either way each trained module's engine is replaced by the live policy
(``policy:<role>``); the synthetic task's untrained modules that use a model run on the untrained
base (``policy:base``), a records task's keep the engines of its agent config.
"""

from __future__ import annotations

from collections.abc import Sequence

import attrs

from agentflow_core import Config, ConfigError, EngineConfig, load_config
from agentflow_core.config import AgentConfig, EnginesConfig, ModulesConfig
from agentflow_core.plugins import load_registry
from agentflow_core.records import MODULE_ROLES
from agentflow_core.registry import Registry
from agentflow_rl.flow_grpo.config import TaskKind, TrainConfig
from agentflow_rl.flow_grpo.data import TrainRecord, load_records
from agentflow_rl.flow_grpo.rewards import RewardFn, Scorer, exact_match
from agentflow_rl.flow_grpo.rollout import POLICY_PROVIDER
from agentflow_rl.flow_grpo.synthetic import TOOL_NAMES, SyntheticTask
from agentflow_rl.flow_grpo.tool_choice import dry_run
from agentflow_rl.flow_grpo.trained import BASE


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
        rules = {role: task.module(role) or "synthetic" for role in MODULE_ROLES}
        agent = Config(agent=AgentConfig(tools=TOOL_NAMES), modules=ModulesConfig(**rules), source="synthetic task")
        return TaskSetup(train, held_out, world.score, (world.plugin(),), False, agent, tuple(world.vocabulary()))
    if task.train_file is None:
        raise ConfigError("task.kind = 'records' needs task.train_file")
    train = load_records(task.train_file)
    held_out = load_records(task.eval_file) if task.eval_file else []
    agent = load_config(task.agent_config) if task.agent_config else Config()
    chosen = {role: name for role in MODULE_ROLES if (name := task.module(role)) is not None}
    agent = attrs.evolve(agent, modules=attrs.evolve(agent.modules, **chosen))
    if task.reward == "tool_choice":
        _check_gold_tools(train, task.train_file, agent.agent.tools or ())
        _check_gold_tools(held_out, task.eval_file, agent.agent.tools or ())
    return TaskSetup(train, held_out, _scorer(task.scorer), (), True, agent)


def _check_gold_tools(records: Sequence[TrainRecord], path: str | None, enabled: Sequence[str]) -> None:
    """A record the reward can never pay (no gold tool, or one the agent cannot choose) is a data
    error, not a question to train on: it would only add all-fail groups."""
    missing = next((r for r in records if r.tool is None), None)
    if missing is not None:
        raise ConfigError(
            f"{path}: task.reward = 'tool_choice' needs a gold tool on every record; record {missing.id!r} "
            'has none (add "tool": NAME to the row)'
        )
    unknown = next((r for r in records if r.tool not in enabled), None)
    if unknown is not None:
        raise ConfigError(
            f"{path}: record {unknown.id!r} has gold tool {unknown.tool!r}, which the agent does not enable "
            f"(its tools: {', '.join(enabled)}; task.agent_config sets them)"
        )


def _scorer(name: str) -> Scorer:
    if name != "exact_match":
        raise ConfigError(f"task.scorer {name!r} is unknown; the built-in scorer is 'exact_match'")
    return exact_match


def reward_fn(config: TrainConfig, registry: Registry) -> RewardFn:
    """The task's reward from the registry (``register_rewards``); an unknown name lists the installed ones."""
    try:
        return registry.reward(config.task.reward).fn
    except Exception as exc:
        raise ConfigError(f"task.reward: {exc}") from None


def policy_engine(name: str, config: TrainConfig, *, temperature: float) -> EngineConfig:
    return EngineConfig(
        model=f"{POLICY_PROVIDER}:{name}",
        temperature=temperature,
        max_tokens=config.rollout.max_new_tokens,
        options={
            "max_batch": config.rollout.max_batch,
            "share_prompts": config.rollout.share_prompts,
            "jump_forward": config.rollout.jump_forward,
        },
    )


def solver_config(setup: TaskSetup, config: TrainConfig, *, evaluation: bool) -> Config:
    """The task's agent with every trained module on the policy; the others keep their engines.

    Training rollouts sample each module at ``rollout.temperature_of(role)``; evaluation samples
    every module at ``rollout.eval_temperature``.
    """
    rollout = config.rollout

    def temperature(role: str) -> float:
        return rollout.eval_temperature if evaluation else rollout.temperature_of(role)

    trained = {role: policy_engine(role, config, temperature=temperature(role)) for role in config.train.roles}
    if setup.entry_points:
        engines = attrs.evolve(setup.agent.engines, **trained)
    else:  # the synthetic task: untrained model-based modules run on the untrained base
        untrained = {
            role: policy_engine(BASE, config, temperature=temperature(role))
            for role in rollout.module_temperatures
            if role not in trained
        }
        engines = EnginesConfig(
            default=policy_engine(BASE, config, temperature=temperature("")), **trained, **untrained
        )
    agent = attrs.evolve(setup.agent.agent, max_steps=config.rollout.max_turns)
    return attrs.evolve(setup.agent, engines=engines, agent=agent)


def registry_for(setup: TaskSetup, policy_plugin: object, *, dry_run_tools: bool = False) -> Registry:
    """The plugins of the task, the policy's engines and agentflow_rl's own (rewards, modules)."""
    import agentflow_rl.plugin

    extra = (
        [*setup.plugins, policy_plugin] if setup.entry_points else [*setup.plugins, agentflow_rl.plugin, policy_plugin]
    )
    registry = load_registry(entry_points=setup.entry_points, extra=extra)
    return dry_run(registry) if dry_run_tools else registry
