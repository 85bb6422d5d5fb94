"""What a run trains on: questions, a scorer, the task's plugins and the agent the solver runs.

The synthetic task brings its own tools and fixed modules (a plugin object); a ``records`` task
uses an ``agentflow.toml`` for the tools and the fixed modules, with installed plugins loaded as
the CLI would. Either way each trained module's engine is replaced by the live policy
(``policy:<role>``); the synthetic task's untrained modules that use a model run on the untrained
base (``policy:base``), a records task's keep the engines of its agent config.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence

import attrs

from agentflow_core import Config, ConfigError, EngineConfig, load_config
from agentflow_core.config import AgentConfig, EnginesConfig, ModulesConfig, ToolConfig
from agentflow_core.plugins import AgentFlowPluginManager, make_plugin_manager
from agentflow_core.records import MODULE_ROLES, ModuleRole
from agentflow_rl.flow_grpo.config import RolloutConfig, TaskConfig, TaskKind
from agentflow_rl.flow_grpo.model.trained import BASE
from agentflow_rl.flow_grpo.rewards import SCORERS, Scorer
from agentflow_rl.flow_grpo.rollout import POLICY_PROVIDER
from agentflow_rl.flow_grpo.tasks.records import TrainRecord, load_records
from agentflow_rl.flow_grpo.tasks.synthetic.plugin import SyntheticPlugin
from agentflow_rl.flow_grpo.tasks.synthetic.world import TOOL_NAMES, SyntheticTask


@attrs.frozen
class TaskSetup:
    train: Sequence[TrainRecord]
    held_out: Sequence[TrainRecord]
    scorer: Scorer
    #: Plugin objects the registry needs besides the built-ins and training's own.
    plugins: tuple[object, ...]
    #: Whether installed entry-point plugins are loaded too.
    entry_points: bool
    agent: Config
    #: Words of the task, for the tiny tokenizer; ``None`` for file-based tasks.
    vocabulary: tuple[str, ...] | None = None

    def plugin_manager(self) -> AgentFlowPluginManager:
        """The run's plugins: the built-ins, training's own, the task's, and for a task that solves with
        an ``agentflow.toml`` the installed third-party ones too, as the CLI would load them."""
        from agentflow_rl.flow_grpo import plugin

        return make_plugin_manager(entry_points=self.entry_points, extra=[plugin, *self.plugins])


def build_task(task: TaskConfig) -> TaskSetup:
    if task.kind is TaskKind.SYNTHETIC:
        world = SyntheticTask.make(keys=task.synthetic.keys, seed=task.synthetic.seed)
        train, held_out = world.split(task.synthetic.held_out, task.synthetic.seed, task.synthetic.max_held_out)
        rules = {role: task.module(role) or "synthetic" for role in MODULE_ROLES}
        agent = Config(agent=AgentConfig(tools=TOOL_NAMES), modules=ModulesConfig(**rules), source="synthetic task")
        return TaskSetup(
            train, held_out, world.score, (SyntheticPlugin(world),), False, agent, tuple(world.vocabulary())
        )
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
    if name not in SCORERS:
        raise ConfigError(f"task.scorer {name!r} is unknown; the built-in scorers are {', '.join(map(repr, SCORERS))}")
    return SCORERS[name]


def policy_engine(name: str, rollout: RolloutConfig, *, temperature: float) -> EngineConfig:
    return EngineConfig(
        model=f"{POLICY_PROVIDER}:{name}",
        temperature=temperature,
        max_tokens=rollout.max_new_tokens,
        options={
            "max_batch": rollout.max_batch,
            "share_prompts": rollout.share_prompts,
            "jump_forward": rollout.jump_forward,
        },
    )


def solver_config(
    setup: TaskSetup, rollout: RolloutConfig, trained_roles: Collection[ModuleRole], *, evaluation: bool
) -> Config:
    """The task's agent with every trained module on the policy; the others keep their engines.

    Training rollouts sample each module at ``rollout.temperature_of(role)``; evaluation samples
    every module at ``rollout.eval_temperature``.
    """

    def temperature(role: str) -> float:
        return rollout.eval_temperature if evaluation else rollout.temperature_of(role)

    trained = {role: policy_engine(role, rollout, temperature=temperature(role)) for role in trained_roles}
    if setup.entry_points:
        engines = setup.agent.engines.replacing(trained)
    else:  # the synthetic task: untrained model-based modules run on the untrained base
        untrained = {
            role: policy_engine(BASE, rollout, temperature=temperature(role))
            for role in rollout.module_temperatures
            if role not in trained
        }
        base = EnginesConfig(default=policy_engine(BASE, rollout, temperature=temperature("")))
        engines = base.replacing(untrained).replacing(trained)
    agent = attrs.evolve(setup.agent.agent, max_steps=rollout.max_turns)
    return attrs.evolve(setup.agent, engines=engines, agent=agent, tools=_tools_on_policy(setup.agent, trained))


def _tools_on_policy(agent: Config, trained: Mapping[ModuleRole, EngineConfig]) -> dict[str, ToolConfig]:
    """A tool whose engine is a trained module's (``policy:executor``) samples as that module does.

    Such a tool makes that module's calls (``ToolSpec.engine_role``: python_coder's expressions are
    the executor's); the agent config names the engine, and here it gets the module's temperature,
    so a training rollout explores and an evaluation is greedy.
    """
    tools = dict(agent.tools)
    for name, table in tools.items():
        for role, engine in trained.items():
            if table.engine is not None and table.engine.model == f"{POLICY_PROVIDER}:{role}":
                tools[name] = attrs.evolve(table, engine=engine)
    return tools
