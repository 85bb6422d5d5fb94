"""Flow-GRPO: train an agent's modules (Planner, Executor, Verifier, Generator) inside the live AgentFlow loop.

Experimental: the API may change. ``agentflow train CONFIG`` is the way in (``docs/flow-grpo.md``);
from Python, the same run is::

    from agentflow_rl.flow_grpo.config import load_train_config
    from agentflow_rl.flow_grpo.trainer import train

    result = train(load_train_config("train.toml"))

The algorithm sits here, in the order a step runs it:

    trainer        the loop: rollout, reward, advantage, update; evaluation and checkpoints
    config         the training TOML as attrs classes, one per table
    rollout        G trajectories per question through the real Solver, trained modules on the policy
    rewards        small pure reward functions, one number per trajectory, registered by name
    advantages     group-relative advantages, carried to every turn of a trajectory
    masking        which tokens of a completion the policy chose, replaying the grammar
    collation      trained turns as samples, samples as padded micro-batches
    logprobs       the policy's log-probabilities and entropy of what it sampled, with gradients
    loss           the clipped objective, the k3 KL and how token terms are averaged
    update         one optimizer step over micro-batches

How training plugs in, and how a run starts:

    hookspecs      the training hooks: register_rewards, register_rollout_backends
    registry       what training plugins registered: rewards and rollout backends
    plugin         training's own plugin (entry point ``flow_grpo``)
    launch         train_from_file, which every command calls
    cli            ``agentflow train`` and ``python -m agentflow_rl.flow_grpo {train,smoke,real,plot,reference}``
    reference      the training TOML's reference page (docs/training-config-reference.md), from config
    proofs         the synthetic and the SmolLM2 proof (``nox -s train_smoke``, ``nox -s train_real``)
    testing        public test helpers: a tiny world, a scripted planner, a TOML writer

The rooms, each with its own map:

    model/         the model being trained: policy, tiny_policy, trained, lora, sharded, backends/
    run/           running a job: checkpoint, manifest, identity, resume, logs, storage, export,
                   metrics, tracking, alerts, kept_rollouts, memory
    tasks/         what a run trains on: setup, records, data/, choice, tool_choice,
                   tool_choice_questions, synthetic/
    fleet/         rollouts from vLLM servers: launcher, watchdog, servers, publisher, weights, versions, client
    configs/       the bundled training TOMLs and accelerate configs

Importing this package is cheap: torch, transformers and accelerate load with the trainer.
"""

from agentflow_rl.flow_grpo.advantages import AdvantageMode, advantages
from agentflow_rl.flow_grpo.config import TrainConfig, bundled_config, load_train_config
from agentflow_rl.flow_grpo.loss import AGGREGATIONS, ClipSettings, LossType
from agentflow_rl.flow_grpo.rewards import RewardContext, RewardFn, exact_match, outcome_reward
from agentflow_rl.flow_grpo.tasks.records import TrainRecord, load_records

__all__ = [
    "AGGREGATIONS",
    "AdvantageMode",
    "ClipSettings",
    "LossType",
    "RewardContext",
    "RewardFn",
    "TrainConfig",
    "TrainRecord",
    "advantages",
    "bundled_config",
    "exact_match",
    "load_records",
    "load_train_config",
    "outcome_reward",
]
