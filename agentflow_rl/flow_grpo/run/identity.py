"""The settings a checkpoint can be resumed with only as they were: what its tensors and its task are.

Most settings may change when a run resumes (``--set rollout.temperature=1.5``, a new learning
rate, more steps): the run goes on from the checkpoint under the new ones. A few cannot, because
the checkpoint means nothing under others: the model (``policy.*``: its source, the tiny model's
shape, LoRA or not and the adapters' shape and starting point, the dtype), which modules are
trained (``train.modules``: one adapter or model each), and the task's world (``task.kind``,
``task.synthetic.*``: the questions, the split and the vocabulary the embeddings were sized for).
Resuming with one of those changed used to fail deep in loading with a size mismatch or a missing
file, or not at all; now it is refused in one line naming each difference.

>>> from agentflow_rl.flow_grpo.config import TrainConfig
>>> identity(TrainConfig())["train.modules"]
'planner'
>>> differences({"policy.source": "tiny"}, {"policy.source": "hf:smollm2"})
['policy.source tiny (now hf:smollm2)']
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from agentflow_rl.flow_grpo.config import TrainConfig
from agentflow_rl.flow_grpo.run.metrics import flat_config

#: Under ``policy``, what only regularises training and may change: LoRA's dropout.
_HARMLESS = frozenset({"policy.lora.dropout"})


def identity(config: TrainConfig) -> dict[str, str]:
    """The identity settings of ``config``, as ``section.key`` text."""
    policy = _flat("policy", config.policy)
    if config.policy.source != "tiny":  # the tiny model's shape means nothing then
        policy = {key: value for key, value in policy.items() if not key.startswith("policy.tiny.")}
    return {
        **{key: value for key, value in policy.items() if key not in _HARMLESS},
        "train.modules": ",".join(config.train.modules),
        "task.kind": config.task.kind.value,
        **_flat("task.synthetic", config.task.synthetic),
    }


def differences(old: Mapping[str, str], new: Mapping[str, str]) -> list[str]:
    """``key value (now other)`` for each setting that differs; empty when they match."""
    keys = dict.fromkeys([*old, *new])
    return [
        f"{key} {old.get(key, 'unset')} (now {new.get(key, 'unset')})" for key in keys if old.get(key) != new.get(key)
    ]


def _flat(prefix: str, section: Any) -> dict[str, str]:
    return {f"{prefix}.{key}": str(value) for key, value in flat_config(section).items()}
