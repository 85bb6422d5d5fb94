"""Flow-GRPO: train the Planner inside the live AgentFlow loop (experimental; the API may change).

Importing this package is cheap; torch, transformers and accelerate load with the trainer::

    from agentflow_rl.flow_grpo import load_train_config
    from agentflow_rl.flow_grpo.trainer import FlowGRPOTrainer

    result = FlowGRPOTrainer(load_train_config("train.toml")).train()

See ``docs/flow-grpo.md``. One module per job: ``config``, ``data``, ``rollout``, ``rewards``,
``advantages``, ``loss``, ``batching``, ``update``, ``trainer``; ``synthetic`` and ``tiny_policy``
are the CPU-sized proof.
"""

from agentflow_rl.flow_grpo.advantages import AdvantageMode, advantages
from agentflow_rl.flow_grpo.config import TrainConfig, load_train_config
from agentflow_rl.flow_grpo.data import TrainRecord, load_records
from agentflow_rl.flow_grpo.loss import AGGREGATIONS, ClipSettings, LossType
from agentflow_rl.flow_grpo.rewards import RewardContext, RewardFn, exact_match, outcome_reward

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
    "exact_match",
    "load_records",
    "load_train_config",
    "outcome_reward",
]
