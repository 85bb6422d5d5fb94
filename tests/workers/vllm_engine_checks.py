"""The ``vllm:`` engine on SmolLM2, run inside vLLM's CPU venv by tests/test_engine_vllm_cpu.py.

vLLM pins its own libraries, so it cannot live in the test venv; this script runs under that venv's
interpreter with the repository on ``PYTHONPATH`` and writes what it saw as JSON, for the test to
judge. One ``vllm.LLM`` serves everything (a start costs minutes on a shared CPU): a solve through
the real ``Solver``, then direct requests on the planner's engine. transformers (in vLLM's venv
too) recomputes every log-probability the engine reports, through this project's grammar replay
where a schema constrained the reply.

    python tests/workers/vllm_engine_checks.py MODEL_DIR OUT.json
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from agentflow_core import Completion, GenerationRequest, JsonSchema, Message, Solver, TokenTrace
from agentflow_core.config import config_from_dict
from agentflow_core.errors import AgentFlowError
from agentflow_core.plugins import load_registry

MAX_MODEL_LEN = 512
SCHEMA = JsonSchema(
    "answer",
    {
        "type": "object",
        "properties": {"city": {"type": "string", "maxLength": 24}, "sure": {"type": "boolean"}},
        "required": ["city", "sure"],
    },
)


def ask(text: str, **kwargs: Any) -> GenerationRequest:
    return GenerationRequest((Message("user", text),), **kwargs)


def engine_table(model_dir: str) -> dict[str, Any]:
    """As a user writes it in agentflow.toml: every option goes to ``vllm.LLM`` untouched."""
    return {
        "model": f"vllm:{model_dir}",
        "options": {"dtype": "float32", "max_model_len": MAX_MODEL_LEN, "enforce_eager": True, "seed": 0},
    }


async def checks(model_dir: str) -> dict[str, Any]:
    import agentflow_tools.plugin
    from tests.helpers import TestTools

    # "upper" takes a text the executor must write (a request tool such as base_generator needs no
    # executor call), so every module of the loop generates on the vLLM engine.
    config = config_from_dict(
        {"agent": {"tools": ["upper"], "max_steps": 1}, "engines": {"default": engine_table(model_dir)}}
    )
    plugins = [agentflow_tools.plugin, TestTools()]
    solver = Solver(config, registry=load_registry(entry_points=False, bundled=False, extra=plugins))
    results: dict[str, Any] = {}
    try:
        trajectory = await solver.asolve("Write the name of the capital of France in capital letters.")
        results["solve"] = {
            "error": trajectory.error,
            "engines": sorted(set(trajectory.engines.values())),
            "answer": trajectory.final_answer.text if trajectory.final_answer else None,
            "calls": [
                {
                    "role": c.role,
                    "purpose": c.purpose,
                    "parse_error": c.parse_error,
                    "tokens": c.usage.completion_tokens,
                }
                for c in trajectory.module_calls()
            ],
        }
        engine = solver.planner.engine
        greedy = [await engine.generate(ask("Name three colours.", temperature=0.0, max_tokens=12)) for _ in range(2)]
        results["greedy"] = [described(c) for c in greedy]
        schema = await engine.generate(ask("Capital of France? Answer in JSON.", json_schema=SCHEMA, temperature=0.8))
        results["schema"] = described(schema)
        results["short"] = described(await engine.generate(ask("Tell me a long story.", max_tokens=5)))
        try:
            await engine.generate(ask("word " * (2 * MAX_MODEL_LEN), max_tokens=4))
            results["too_long"] = None
        except AgentFlowError as exc:
            results["too_long"] = {"type": type(exc).__name__, "message": str(exc)}
        results["gaps"] = {
            "greedy": logprob_gap(model_dir, greedy[0].tokens),
            "schema": logprob_gap(model_dir, schema.tokens),
        }
    finally:
        await solver.aclose()
    return results


def described(completion: Completion) -> dict[str, Any]:
    trace = completion.tokens
    return {
        "text": completion.text,
        "finish_reason": completion.finish_reason,
        "usage": [completion.usage.prompt_tokens, completion.usage.completion_tokens],
        "trace": None
        if trace is None
        else {
            "completion_ids": list(trace.completion_ids),
            "logprobs": list(trace.completion_logprobs),
            "temperature": trace.temperature,
            "grammar": None if trace.grammar is None else [trace.grammar.backend, trace.grammar.schema],
        },
    }


def logprob_gap(model_dir: str, trace: TokenTrace | None) -> float | str | None:
    """Largest |engine - transformers| over the completion, scored as the trace says it was sampled:
    at its temperature, restricted to what its grammar allowed (replayed by our own grammar code)."""
    if trace is None:
        return None
    try:
        return _largest_gap(model_dir, trace)
    except AgentFlowError as exc:  # the replay refused a token: the test shows why
        return f"{type(exc).__name__}: {exc}"


def _largest_gap(model_dir: str, trace: TokenTrace) -> float:
    import torch
    import transformers

    from agentflow_core.engines.grammar import GrammarFactory, unpack

    tokenizer = transformers.AutoTokenizer.from_pretrained(model_dir)
    model = transformers.AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    ids = torch.tensor([[*trace.prompt_ids, *trace.completion_ids]])
    with torch.no_grad():
        logits = model(ids).logits[0, len(trace.prompt_ids) - 1 : -1].float() / trace.temperature
    if trace.grammar is not None:
        vocab = model.config.vocab_size
        factory = GrammarFactory(tokenizer, vocab, [tokenizer.eos_token_id])
        allowed = unpack(factory.replay(trace.grammar, trace.completion_ids), vocab)
        logits = logits.masked_fill(~allowed, float("-inf"))
    ours = torch.log_softmax(logits, -1).gather(1, torch.tensor(trace.completion_ids)[:, None])[:, 0]
    return float((ours - torch.tensor(trace.completion_logprobs)).abs().max())


if __name__ == "__main__":  # vLLM starts its engine in a spawned process, which imports this file again
    model_dir, out = sys.argv[1], sys.argv[2]
    Path(out).write_text(json.dumps(asyncio.run(checks(model_dir)), indent=1))
