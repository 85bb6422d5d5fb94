"""Flow-GRPO against TRL's GRPOTrainer on the same single-turn tool-choice task, in one run.

The task (``agentflow_rl.flow_grpo.tasks.tool_choice_questions``): a question that needs exact arithmetic
(``python_coder``) or a fact about a person, place or event (``wikipedia_search``); the prompt lists
both tools with their real descriptions, and the reward is 1 when the first tool the model names is
the right one. Train and held-out questions share no template, number or name.

Both trainers get the same model (SmolLM2-135M-Instruct, float32, all weights trained), the same
prompt, group size (8), prompts per step (4), learning rate, temperature (1.0), no KL term (TRL's
default ``beta = 0``; ``loss.kl_coef = 0`` here) and a 16-token completion budget. Each runs in its
own process and is evaluated greedily on the held-out questions every ``--eval-every`` steps, the
clock running through evaluations. What differs is what each framework is: TRL samples free text and
parses a tool name out of it; Flow-GRPO runs the real solver with the planner's reply constrained to
``{"tool": <enabled tool>}`` and trains under the masked objective.

    python benchmarks/tool_choice_race.py [--minutes 30] [--target 0.97] [--out runs/race]

Writes ``race.json`` (every evaluation: step, minutes, accuracy, peak RSS), ``race.md`` (the table)
and ``race.png`` (held-out accuracy against wall-clock minutes) into ``--out``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

GROUP, PROMPTS, LR, TOKENS, TEMPERATURE = 8, 4, 1e-5, 16, 1.0


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _tool_specs() -> list[Any]:
    from agentflow_tools.python_coder import SPEC as CODER
    from agentflow_tools.wikipedia_search import SPEC as WIKI

    return [CODER, WIKI]


def prompt_messages(question: str) -> list[dict[str, str]]:
    """The planner's own prompt (module ``tool_choice``), so both trainers read the same words."""
    from agentflow_core import FlowState, Query
    from agentflow_rl.flow_grpo.tasks.tool_choice import tool_choice_messages

    state = FlowState(query=Query(question), tools=tuple(_tool_specs()))
    return [{"role": m.role, "content": m.content} for m in tool_choice_messages(state)]


def first_tool(text: str) -> str | None:
    found = [(text.find(name), name) for name in ("python_coder", "wikipedia_search") if name in text]
    return min(found)[1] if found else None


# -- Flow-GRPO --------------------------------------------------------------------------------------


def run_flow_grpo(data: Path, out: Path, minutes: float, target: float, eval_every: int) -> list[dict[str, Any]]:
    from agentflow_rl.flow_grpo.config import bundled_config

    overrides = {
        "task.train_file": str(data / "train.jsonl"),
        "task.eval_file": str(data / "eval.jsonl"),
        "rollout.group_size": GROUP,
        "rollout.questions_per_step": PROMPTS,
        "rollout.temperature": TEMPERATURE,
        "rollout.max_new_tokens": TOKENS,
        "optim.lr": LR,
        "loss.kl_coef": 0.0,
        "run.output_dir": str(out / "flow-grpo"),
        "run.max_minutes": minutes,
        "run.target_success": target,
        "run.eval_every": eval_every,
        "run.resume": False,
        "run.trackers": [],
        "run.checkpoint_every": 0,
    }
    command = [sys.executable, "-m", "agentflow_rl.flow_grpo", "train", str(bundled_config("tool_choice.toml"))]
    for key, value in overrides.items():
        command += ["--set", f"{key}={json.dumps(value)}"]
    subprocess.run(command, check=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    rows = [json.loads(line) for line in (out / "flow-grpo" / "metrics.jsonl").read_text().splitlines()]
    peak = 0.0
    evals = []
    for row in rows:
        peak = max(peak, row.get("perf/peak_rss_mib", 0.0))
        if "eval/success" in row:
            evals.append({"step": row["step"], "minutes": row["train/minutes"], "accuracy": row["eval/success"]})
    for row in evals:
        row["peak_rss_mib"] = peak
    return evals


# -- TRL --------------------------------------------------------------------------------------------


def run_trl(data: Path, out: Path, minutes: float, target: float, eval_every: int) -> list[dict[str, Any]]:
    log = out / "trl.jsonl"
    log.unlink(missing_ok=True)
    command = [
        sys.executable,
        __file__,
        "--trl-worker",
        str(data),
        str(log),
        str(minutes),
        str(target),
        str(eval_every),
    ]
    subprocess.run(command, check=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    return [json.loads(line) for line in log.read_text().splitlines()]


def trl_worker(data: Path, log: Path, minutes: float, target: float, eval_every: int) -> None:
    import torch
    from datasets import Dataset
    from transformers import TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    from agentflow_rl.flow_grpo.config import PolicyConfig
    from agentflow_rl.flow_grpo.model.policy import load_policy

    def rows(name: str) -> list[dict[str, Any]]:
        return [json.loads(line) for line in (data / name).read_text().splitlines() if line.strip()]

    model, tokenizer = load_policy(PolicyConfig(source="hf:smollm2"))  # the same float32 weights
    tokenizer.padding_side = "left"
    train = Dataset.from_list(
        [{"prompt": prompt_messages(r["question"]), "tool": r["tool"]} for r in rows("train.jsonl")]
    )
    held_out = rows("eval.jsonl")
    started = time.perf_counter()

    def reward(completions: list[Any], tool: list[str], **_: Any) -> list[float]:
        texts = [c[-1]["content"] if isinstance(c, list) else c for c in completions]
        return [1.0 if first_tool(text) == gold else 0.0 for text, gold in zip(texts, tool, strict=True)]

    def evaluate(step: int) -> float:
        model.eval()
        prompts = [
            tokenizer.apply_chat_template(prompt_messages(r["question"]), tokenize=False, add_generation_prompt=True)
            for r in held_out
        ]
        right = 0
        for start in range(0, len(prompts), 25):
            batch = tokenizer(prompts[start : start + 25], return_tensors="pt", padding=True, add_special_tokens=False)
            with torch.no_grad():
                out = model.generate(**batch, max_new_tokens=TOKENS, do_sample=False)
            texts = tokenizer.batch_decode(out[:, batch["input_ids"].shape[1] :], skip_special_tokens=True)
            right += sum(first_tool(t) == r["tool"] for t, r in zip(texts, held_out[start : start + 25], strict=True))
        model.train()
        accuracy = right / len(held_out)
        row = {"step": step, "minutes": (time.perf_counter() - started) / 60, "accuracy": accuracy}
        with log.open("a") as f:
            f.write(json.dumps({**row, "peak_rss_mib": peak_rss_mib()}) + "\n")
        return accuracy

    class Clock(TrainerCallback):
        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
            if state.global_step % eval_every == 0 and evaluate(state.global_step) >= target:
                control.should_training_stop = True
            if (time.perf_counter() - started) / 60 >= minutes:
                control.should_training_stop = True
            return control

    config = GRPOConfig(
        output_dir=str(log.parent / "trl"),
        learning_rate=LR,
        per_device_train_batch_size=GROUP * PROMPTS,
        num_generations=GROUP,
        max_completion_length=TOKENS,
        temperature=TEMPERATURE,
        beta=0.0,
        max_steps=10_000,
        logging_steps=1,
        save_strategy="no",
        report_to=[],
        use_cpu=True,
        bf16=False,
        seed=0,
    )
    evaluate(0)
    GRPOTrainer(
        model=model,
        processing_class=tokenizer,
        reward_funcs=reward,
        args=config,
        train_dataset=train,
        callbacks=[Clock()],
    ).train()


# -- report -----------------------------------------------------------------------------------------


def first_reaching(evals: list[dict[str, Any]], target: float) -> dict[str, Any] | None:
    return next((e for e in evals if e["accuracy"] >= target), None)


def report(results: dict[str, list[dict[str, Any]]], target: float, out: Path) -> str:
    lines = [
        f"| trainer | held-out at start | best held-out | reached {target:.0%} at | peak RSS |",
        "| --- | --- | --- | --- | --- |",
    ]
    for name, evals in results.items():
        hit = first_reaching(evals, target)
        best = max(evals, key=lambda e: e["accuracy"])
        when = f"step {hit['step']}, {hit['minutes']:.1f} min" if hit else "not reached"
        peak = max(e["peak_rss_mib"] for e in evals) / 1024
        lines.append(
            f"| {name} | {evals[0]['accuracy']:.0%} | {best['accuracy']:.0%} (step {best['step']}, "
            f"{best['minutes']:.1f} min) | {when} | {peak:.2f} GiB |"
        )
    table = "\n".join(lines) + "\n"
    (out / "race.md").write_text(table)
    (out / "race.json").write_text(json.dumps(results, indent=2) + "\n")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(6, 3.5))
    for name, evals in results.items():
        axis.plot([e["minutes"] for e in evals], [e["accuracy"] for e in evals], marker="o", label=name)
    axis.axhline(target, color="grey", linestyle=":", linewidth=1)
    axis.set(xlabel="wall-clock minutes (2 CPU cores)", ylabel="held-out accuracy", ylim=(0, 1.02))
    axis.set_title("Tool choice, SmolLM2-135M-Instruct")
    axis.legend()
    figure.tight_layout()
    figure.savefig(out / "race.png", dpi=120)
    return table


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--trl-worker":
        data, log, minutes, target, every = sys.argv[2:7]
        trl_worker(Path(data), Path(log), float(minutes), float(target), int(every))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=30.0, help="wall-clock budget of each trainer")
    parser.add_argument("--target", type=float, default=0.97)
    parser.add_argument("--eval-every", type=int, default=2)
    parser.add_argument("--out", default="runs/race")
    parser.add_argument("--only", choices=["flow-grpo", "trl"], default=None)
    args = parser.parse_args()
    import importlib.util

    if args.only != "flow-grpo" and importlib.util.find_spec("trl") is None:
        print("skipped: the race needs TRL (pip install trl datasets), or --only flow-grpo")
        return
    from agentflow_rl.flow_grpo.tasks.tool_choice_questions import write

    out = Path(args.out)
    data = out / "data"
    write(data)
    results = {}
    if args.only in (None, "flow-grpo"):
        results["Flow-GRPO"] = run_flow_grpo(data, out, args.minutes, args.target, args.eval_every)
    if args.only in (None, "trl"):
        results["TRL GRPOTrainer"] = run_trl(data, out, args.minutes, args.target, args.eval_every)
    print(report(results, args.target, out))


if __name__ == "__main__":
    main()
