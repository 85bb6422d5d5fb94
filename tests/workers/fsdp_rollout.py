"""One process of the FSDP rollout check (run by tests/test_flow_grpo_sharded.py under torchrun).

Shards a tiny policy with FSDP2 over gloo, trains it a step, refreshes the rollout copy, then has
each process generate a different number of tokens from the copy through the rollout engine (which
would hang if it generated from the sharded model) and checks that the copy scores a sequence
exactly as the sharded model does.
"""

from __future__ import annotations

import asyncio
import sys

import torch
import torch.distributed as dist
from torch.distributed.device_mesh import init_device_mesh
from torch.distributed.fsdp import fully_shard

from agentflow_core import EngineConfig, GenerationRequest, Message
from agentflow_rl.flow_grpo.model.sharded import RolloutCopy, is_sharded
from agentflow_rl.flow_grpo.model.tiny_policy import TinyPolicyConfig, build_policy, build_tokenizer
from agentflow_rl.flow_grpo.rollout import PolicyEngines
from agentflow_rl.flow_grpo.tasks.synthetic.world import SyntheticTask


def token_logprobs(model: torch.nn.Module, ids: torch.Tensor) -> torch.Tensor:
    logits = model(input_ids=ids).logits[:, :-1].float()
    return torch.log_softmax(logits, -1).gather(-1, ids[:, 1:, None]).squeeze(-1)


def main() -> None:
    dist.init_process_group("gloo")
    rank = dist.get_rank()
    torch.manual_seed(0)
    tokenizer = build_tokenizer(SyntheticTask.make().vocabulary())
    model = build_policy(tokenizer, TinyPolicyConfig())
    initial = {k: v.clone() for k, v in model.state_dict().items()}
    copy = RolloutCopy.of(model, "cpu")

    mesh = init_device_mesh("cpu", (dist.get_world_size(),))
    for layer in model.model.layers:
        fully_shard(layer, mesh=mesh)
    fully_shard(model, mesh=mesh)
    assert is_sharded(model) and not is_sharded(copy.model)

    optimizer = torch.optim.AdamW(model.parameters(), lr=0.05)
    ids = torch.randint(3, len(tokenizer), (4, 12), generator=torch.Generator().manual_seed(1))
    model(input_ids=ids, labels=ids).loss.backward()
    optimizer.step()

    copy.refresh(model)
    moved = [k for k, v in copy.model.state_dict().items() if not torch.equal(v, initial[k])]
    assert moved, "the copy still holds the initial weights"

    with torch.no_grad():
        sharded = token_logprobs(model, ids)  # collective: both processes, same input
        copied = token_logprobs(copy.model, ids)
    gap = float((sharded - copied).abs().max())
    assert gap < 1e-5, f"copy and sharded model disagree by {gap}"

    engines = PolicyEngines.for_model(copy.model, tokenizer)
    engine = engines.make(EngineConfig(model="policy:planner", temperature=1.0))
    request = GenerationRequest((Message("user", "k1 plus 3"),), max_tokens=2 + 7 * rank)
    completion = asyncio.run(engine.generate(request))
    assert completion.tokens is not None and len(completion.tokens.completion_ids) >= 1

    dist.barrier()
    print(f"rank {rank} ok: {len(moved)} tensors moved, gap {gap:.1e}, {completion.usage.completion_tokens} tokens")
    dist.destroy_process_group()


if __name__ == "__main__":
    sys.exit(main())
