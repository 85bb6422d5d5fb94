"""Peak memory and step time of Flow-GRPO on SmolLM2-135M: a LoRA adapter against all weights.

Each variant runs ``--steps`` training steps of ``configs/smollm2.toml`` (8 questions x 8
trajectories, up to 3 planner turns, batched rollouts) in its own process, so that its peak resident
memory is its own; the first step's time is left out of the mean (grammar compilation, warm-up).

    python benchmarks/flow_grpo_memory.py [--steps 3] [--json out.json] [--variant checkpointing ...]
                                          [--shape 360m]

``--variant`` runs only the variants whose names contain one of its words; ``--json`` adds to (or
replaces entries of) the results already in that file. ``--shape 360m`` runs the same steps on a
model of SmolLM2-360M's shape with random weights (only the 135M model's weights are on this
machine; the tokenizer is the family's one): what memory a step takes depends on the shape, not on
the values, as long as replies stay within ``max_new_tokens``, which the grammar sees to. It shows
how the LoRA/all-weights ratio moves once the weights outgrow what every process carries anyway.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

#: ``micro-batch N``: N distinct prompts per pass with shared prompts (the turns sharing one ride
#: along), N turns without.
VARIANTS: dict[str, dict[str, Any]] = {
    "LoRA r=16, micro-batch 8 (smollm2.toml)": {},
    "LoRA r=16, micro-batch 2": {"optim.micro_batch_turns": 2},
    "LoRA r=16, micro-batch 4, prompts not shared": {"optim.micro_batch_turns": 4, "rollout.share_prompts": False},
    "all weights, micro-batch 8": {"policy.lora": None, "optim.lr": 1e-5},
    "all weights, micro-batch 4, prompts not shared": {
        "policy.lora": None,
        "optim.lr": 1e-5,
        "optim.micro_batch_turns": 4,
        "rollout.share_prompts": False,
    },
    # Recomputing activations in the backward pass trades update time for the largest share of the
    # peak; it drops KV caches, so the update forwards every turn in full.
    "LoRA r=16, micro-batch 2, activation checkpointing": {
        "optim.micro_batch_turns": 2,
        "run.gradient_checkpointing": True,
    },
    "all weights, micro-batch 4, activation checkpointing": {
        "policy.lora": None,
        "optim.lr": 1e-5,
        "optim.micro_batch_turns": 4,
        "run.gradient_checkpointing": True,
    },
    "all weights, micro-batch 2, activation checkpointing": {
        "policy.lora": None,
        "optim.lr": 1e-5,
        "optim.micro_batch_turns": 2,
        "run.gradient_checkpointing": True,
    },
    # The frozen base in half precision: half the base's bytes and of the KV caches and activations
    # through it. Slow on CPUs without bf16 instructions; the usual setting on GPUs.
    "LoRA r=16, bfloat16 base, micro-batch 2, activation checkpointing": {
        "policy.dtype": "bfloat16",
        "optim.micro_batch_turns": 2,
        "run.gradient_checkpointing": True,
    },
    # One prompt (and the turns that share it) per pass: the smallest update working set.
    "LoRA r=16, bfloat16 base, micro-batch 1, activation checkpointing": {
        "policy.dtype": "bfloat16",
        "optim.micro_batch_turns": 1,
        "run.gradient_checkpointing": True,
    },
    "all weights, micro-batch 1, activation checkpointing": {
        "policy.lora": None,
        "optim.lr": 1e-5,
        "optim.micro_batch_turns": 1,
        "run.gradient_checkpointing": True,
    },
    # Adapters on the top 15 of SmolLM2's 30 layers: nothing below them keeps activations for a
    # backward pass, so checkpointing has less to save.
    "LoRA r=16 on the last 15 layers, bfloat16 base, micro-batch 1, activation checkpointing": {
        "policy.dtype": "bfloat16",
        "policy.lora": {"r": 16, "alpha": 32, "last_layers": 15},
        "optim.micro_batch_turns": 1,
        "run.gradient_checkpointing": True,
    },
    "LoRA r=16 on the last 15 layers, bfloat16 base, micro-batch 1": {
        "policy.dtype": "bfloat16",
        "policy.lora": {"r": 16, "alpha": 32, "last_layers": 15},
        "optim.micro_batch_turns": 1,
    },
    # Decoding 8 rows at a time instead of 64: the rollout's KV caches set the LoRA peak once the
    # update's own was cut (docs/results.md, "Flow-GRPO: memory"); the leanest LoRA setting measured.
    "LoRA r=16, bfloat16 base, micro-batch 1, activation checkpointing, rollout batch 8": {
        "policy.dtype": "bfloat16",
        "optim.micro_batch_turns": 1,
        "run.gradient_checkpointing": True,
        "rollout.max_batch": 8,
    },
    "all weights, micro-batch 1, activation checkpointing, rollout batch 8": {
        "policy.lora": None,
        "optim.lr": 1e-5,
        "optim.micro_batch_turns": 1,
        "run.gradient_checkpointing": True,
        "rollout.max_batch": 8,
    },
}


#: SmolLM2-360M-Instruct's published shape (its config.json); vocabulary and tokenizer as the 135M's.
SHAPES: dict[str, dict[str, int]] = {
    "360m": {
        "hidden_size": 960,
        "intermediate_size": 2560,
        "num_hidden_layers": 32,
        "num_attention_heads": 15,
        "num_key_value_heads": 5,
    },
}


def random_model(shape: str, dtype: str) -> Path:
    """A folder with a randomly initialised SmolLM2 of ``shape`` in ``dtype``, made once and cached.

    Written in the dtype it is loaded in: loading bfloat16 from float32 files maps every float32
    byte first, which would put a loading peak in the figure."""
    import torch
    import transformers

    from agentflow_core.engines.embedded import smollm2_gguf_path
    from agentflow_rl.flow_grpo.model.policy import converted_gguf

    folder = Path.home() / ".cache" / "agentflow" / "benchmarks" / f"smollm2-{shape}-random-{dtype}"
    if (folder / "config.json").is_file():
        return folder
    small = converted_gguf(smollm2_gguf_path(), dtype)
    config = transformers.AutoConfig.from_pretrained(str(small))
    for key, value in SHAPES[shape].items():
        setattr(config, key, value)
    torch.manual_seed(0)
    model = transformers.AutoModelForCausalLM.from_config(config).to(getattr(torch, dtype))
    model.save_pretrained(str(folder), safe_serialization=True)
    transformers.AutoTokenizer.from_pretrained(str(small)).save_pretrained(str(folder))
    return folder


def measure(overrides: dict[str, Any], steps: int) -> dict[str, Any]:
    from agentflow_rl.flow_grpo import trainer
    from agentflow_rl.flow_grpo.config import bundled_config, load_train_config
    from agentflow_rl.flow_grpo.run.metrics import peak_rss_mib

    with tempfile.TemporaryDirectory() as out:
        base = {
            "run.output_dir": out,
            "run.trackers": [],
            "run.resume": False,
            "run.eval_every": 0,
            "run.release_freed_memory": True,  # the figures below were measured so
        }
        session = trainer.start_session(load_train_config(bundled_config("smollm2.toml"), {**base, **overrides}))
        try:
            times, rows = [], []
            for _ in range(steps):
                started = time.perf_counter()
                rows.append(trainer.train_step(session))
                times.append(time.perf_counter() - started)
        finally:
            trainer.close_session(session)
    measured = times[1:] or times
    return {
        "step_s": sum(measured) / len(measured),
        "rollout_s": sum(r["perf/rollout_s"] for r in rows[1:] or rows) / len(measured),
        "update_s": sum(r["perf/update_s"] for r in rows[1:] or rows) / len(measured),
        "peak_rss_mib": peak_rss_mib(),
    }


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--only", help=argparse.SUPPRESS)
    parser.add_argument("--json")
    parser.add_argument("--variant", action="append", default=[], help="only variants whose name contains this")
    parser.add_argument("--shape", choices=sorted(SHAPES), help="random weights in a larger SmolLM2's shape")
    parser.add_argument("--source", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.only:
        overrides = VARIANTS[args.only] | ({"policy.source": args.source} if args.source else {})
        print(json.dumps(measure(overrides, args.steps)))
        return 0
    chosen = [name for name in VARIANTS if not args.variant or any(word in name for word in args.variant)]
    if not chosen:
        parser.error(f"no variant matches {args.variant}; variants: {'; '.join(VARIANTS)}")
    saved = Path(args.json) if args.json else None
    results: dict[str, Any] = json.loads(saved.read_text()) if saved is not None and saved.exists() else {}
    for name in chosen:
        command = [sys.executable, __file__, "--only", name, "--steps", str(args.steps)]
        if args.shape:
            command += ["--source", str(random_model(args.shape, VARIANTS[name].get("policy.dtype", "float32")))]
        done = subprocess.run(command, capture_output=True, text=True)
        lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
        results[name] = json.loads(lines[-1]) if done.returncode == 0 and lines else f"failed: {done.stderr[-300:]}"
        print(name, results[name], flush=True)
    print("| variant | peak RSS | step (s) | rollout (s) | update (s) |\n| --- | --- | --- | --- | --- |")
    for name, row in results.items():
        if isinstance(row, dict):
            gib = row["peak_rss_mib"] / 1024
            print(f"| {name} | {gib:.2f} GiB | {row['step_s']:.0f} | {row['rollout_s']:.0f} | {row['update_s']:.0f} |")
    if saved is not None:
        saved.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
