"""Generating from a sharded policy: a full copy for rollouts, refreshed before each batch.

Under DDP or DeepSpeed ZeRO-2 every process holds every parameter, and the rollout engine generates
with the live model. FSDP (version 1 or 2) leaves each process one shard and gathers the rest
inside every forward pass, collectively. That suits a training step, where all processes run the
same passes in step; generation does not: each process decodes its own questions for a different
number of steps, and the gathers would wait on each other for ever. So a sharded run keeps a plain,
unsharded copy of the policy for generation and loads the gathered weights into it before every
rollout batch and evaluation, with all processes taking part in the gather.

The copy costs one full model per process in the training dtype, on top of the shards; for a
7B Planner in bf16 that is about 15 GB a GPU. DeepSpeed ZeRO-3 shards parameters too, but its
gather has another API, and it is refused with a clear error rather than half supported.
"""

from __future__ import annotations

from typing import Any

from agentflow_core import ConfigError
from agentflow_rl.flow_grpo.model.trained import frozen_copy


class RolloutCopy:
    """An unsharded twin of the policy that the rollout engine generates with."""

    def __init__(self, model: Any) -> None:
        self.model = model

    @classmethod
    def of(cls, model: Any, device: Any) -> RolloutCopy:
        """Copy ``model`` before it is sharded (sharding rewrites the module in place)."""
        return cls(frozen_copy(model).to(device))

    def refresh(self, sharded: Any) -> None:
        """Load the current full weights of ``sharded`` into the copy. Every process must call it."""
        import torch
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

        full = get_model_state_dict(sharded, options=StateDictOptions(full_state_dict=True))
        with torch.no_grad():
            own = self.model.state_dict()
            for name, tensor in full.items():
                own[name].copy_(tensor)


def is_sharded(model: Any) -> bool:
    """Whether any parameter lives in shards: FSDP2's DTensors, or a module wrapped by FSDP1."""
    from torch.distributed.fsdp import FullyShardedDataParallel
    from torch.distributed.tensor import DTensor

    return any(isinstance(p, DTensor) for p in model.parameters()) or any(
        isinstance(m, FullyShardedDataParallel) for m in model.modules()
    )


def shards_parameters(accelerator: Any) -> bool:
    """Whether this accelerate setup will shard the policy's parameters (decided before ``prepare``)."""
    from accelerate.utils import DistributedType

    kind = accelerator.distributed_type
    if kind == DistributedType.DEEPSPEED:
        plugin = accelerator.state.deepspeed_plugin
        if plugin is not None and plugin.zero_stage == 3:
            raise ConfigError(
                "DeepSpeed ZeRO-3 shards the policy's parameters and Flow-GRPO cannot generate from them; "
                "use ZeRO-2 (configs/accelerate/deepspeed_zero2.yaml) or FSDP (configs/accelerate/fsdp.yaml)"
            )
    return bool(kind == DistributedType.FSDP)
