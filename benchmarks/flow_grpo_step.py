"""Throughput and peak memory of one Flow-GRPO step on the tiny policy, on the CPU.

A step is: 16 questions x 8 trajectories through the real solver (the Planner sampling from the
policy under constrained decoding), rewards, advantages, and ``updates_per_batch`` optimizer steps
over every planner turn (``configs/synthetic.toml``). Reported: tokens per second of the whole step,
of the rollout and of the update alone (prompt + completion tokens of every planner turn; the
update counts them once per pass), and the process's peak resident memory. ``--updates 4`` is the
proof's setting; the default, 1, matches TRL's one optimizer step per generation batch.

If ``trl`` is importable, TRL's ``GRPOTrainer`` runs one step on the same tiny model, tokenizer and
batch shape (16 prompts x 8 generations, the first-turn prompts, 4-token completions) in its own
process, and the ratio is printed. TRL is single-turn: it has no tool loop, so its step does less
work per token; read the ratio as "overhead of running the real multi-turn system", not a race.

    python benchmarks/flow_grpo_step.py [--steps 3] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure_ours(steps: int, updates: int, max_batch: int = 1) -> dict[str, Any]:
    from agentflow_rl.flow_grpo import trainer
    from agentflow_rl.flow_grpo.config import bundled_config, load_train_config

    with tempfile.TemporaryDirectory() as out:
        config = load_train_config(
            bundled_config("synthetic.toml"),
            {
                "run.output_dir": out,
                "run.trackers": [],
                "run.resume": False,
                "run.eval_every": 0,
                "optim.updates_per_batch": updates,
                "rollout.max_batch": max_batch,
            },
        )
        session = trainer.start_session(config)
        try:
            trainer.train_step(session)  # warm-up: grammar compilation, allocator
            rows = []
            for _ in range(steps):
                started = time.perf_counter()
                values = trainer.train_step(session)
                rows.append((time.perf_counter() - started, values))
        finally:
            trainer.close_session(session)
    wall = sum(r[0] for r in rows)
    rollout_s = sum(v["perf/rollout_s"] for _, v in rows)
    update_s = sum(v["perf/update_s"] for _, v in rows)
    tokens = sum(v["perf/rollout_tokens"] for _, v in rows)
    return {
        "what": f"Flow-GRPO step (multi-turn solver, 16x8 trajectories, {updates} update pass(es))",
        "step_s": wall / steps,
        "tokens_per_step": tokens / steps,
        "step_tokens_per_s": tokens / wall,
        "rollout_s": rollout_s / steps,
        "update_s": update_s / steps,
        "rollout_tokens_per_s": tokens / rollout_s,
        "update_tokens_per_s": sum(v["perf/update_tokens_per_s"] * v["perf/update_s"] for _, v in rows) / update_s,
        "update_passes": config.optim.updates_per_batch,
        "peak_rss_mib": peak_rss_mib(),
    }


def measure_trl(steps: int) -> dict[str, Any]:
    import torch
    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer

    from agentflow_rl.flow_grpo.model.tiny_policy import build_policy, build_tokenizer
    from agentflow_rl.flow_grpo.tasks.synthetic.world import SyntheticTask

    task = SyntheticTask.make()
    tokenizer = build_tokenizer(task.vocabulary())
    model = build_policy(tokenizer)
    train, _ = task.split()
    prompts = [[{"role": "user", "content": f"{r.question} ; done : none"}] for r in train[: 16 * (steps + 1)]]
    timings: list[float] = []

    def reward(completions: list[Any], **_: Any) -> list[float]:
        return [float(torch.rand(()) < 0.5) for _ in completions]

    from transformers import TrainerCallback

    class Clock(TrainerCallback):
        def on_step_begin(self, *args: Any, **kwargs: Any) -> None:
            self.started = time.perf_counter()

        def on_step_end(self, *args: Any, **kwargs: Any) -> None:
            timings.append(time.perf_counter() - self.started)

    with tempfile.TemporaryDirectory() as out:
        # TRL rebuilds its reference model from the policy's path, so the policy must have one.
        model.save_pretrained(f"{out}/policy")
        args = GRPOConfig(
            output_dir=out,
            per_device_train_batch_size=128,
            num_generations=8,
            max_completion_length=4,
            learning_rate=5e-4,
            beta=0.001,
            epsilon=0.2,
            epsilon_high=0.3,
            temperature=0.7,
            max_steps=steps + 1,
            logging_steps=1,
            report_to="none",
            use_cpu=True,
            save_strategy="no",
            bf16=False,
        )
        grpo = GRPOTrainer(
            model=f"{out}/policy",
            reward_funcs=reward,
            args=args,
            train_dataset=Dataset.from_list([{"prompt": p} for p in prompts]),
            processing_class=tokenizer,
            callbacks=[Clock()],
        )
        grpo.train()
    # TRL's own count of prompt + completion tokens, cumulative; the first step is warm-up.
    counts = [float(row["num_tokens"]) for row in grpo.state.log_history if "num_tokens" in row]
    tokens = (counts[-1] - counts[0]) / (len(counts) - 1)
    measured = timings[1:]
    return {
        "what": "TRL GRPOTrainer step (single turn, 16x8 completions)",
        "step_s": sum(measured) / len(measured),
        "tokens_per_step": tokens,
        "step_tokens_per_s": tokens * len(measured) / sum(measured),
        "peak_rss_mib": peak_rss_mib(),
    }


def run_child(which: str, steps: int, updates: int, max_batch: int = 1) -> dict[str, Any] | str:
    """Each measurement in its own process, so peak memory is its own."""
    command = [sys.executable, __file__, "--only", which, "--steps", str(steps), "--updates", str(updates)]
    command += ["--max-batch", str(max_batch)]
    done = subprocess.run(command, capture_output=True, text=True)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode or not lines:
        return f"failed (exit {done.returncode}): {done.stderr.strip().splitlines()[-1] if done.stderr else ''}"
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--only", choices=["ours", "trl"])
    parser.add_argument("--updates", type=int, default=1, help="optimizer passes per rollout batch (TRL: 1)")
    parser.add_argument("--max-batch", type=int, default=1, help="planner calls decoded together (rollout.max_batch)")
    parser.add_argument("--json")
    args = parser.parse_args()
    try:
        import accelerate  # noqa: F401
        import torch  # noqa: F401
    except ImportError:
        print("skipped: needs the rl extra (pip install -e '.[rl]')")
        return 0
    if args.only:
        ours = args.only == "ours"
        result = measure_ours(args.steps, args.updates, args.max_batch) if ours else measure_trl(args.steps)
        print(json.dumps(result))
        return 0
    import importlib.util

    results: dict[str, Any] = {"ours": run_child("ours", args.steps, args.updates, args.max_batch)}
    has_trl = importlib.util.find_spec("trl") is not None
    missing = "not installed (pip install trl --no-deps; pip install datasets)"
    results["trl"] = run_child("trl", args.steps, 1) if has_trl else missing
    for name, value in results.items():
        print(f"{name}: {json.dumps(value, indent=2) if isinstance(value, dict) else value}")
    if isinstance(results["ours"], dict) and isinstance(results["trl"], dict):
        ratio = results["ours"]["step_tokens_per_s"] / results["trl"]["step_tokens_per_s"]
        print(f"tokens/s, Flow-GRPO step / TRL GRPO step: {ratio:.2f}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
