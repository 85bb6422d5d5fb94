"""Flow-GRPO with rollouts from the trainer (``hf``) against rollouts from vLLM servers (``vllm``), in one run.

Two bundled configs, each trained for ``--minutes`` per arm, one arm after the other on the same machine:

* ``tool_choice.toml``: SmolLM2's Planner choosing a tool, all weights trained (so the ``vllm`` arms
  reload full weights on their servers after each step). vLLM's reload keeps the old output head of a
  model that ties it to its embeddings, as SmolLM2 does, so every arm of this config trains a copy
  with an output head of its own (``untied_copy``: the same numbers, the head then trained apart);
* ``smollm2.toml``: SmolLM2's Planner on the multi-turn synthetic task, a LoRA adapter.

Arms: ``hf`` (the config as shipped), ``vllm1`` (one server the trainer launches) and ``vllm2`` (two).
The ``vllm`` arms set ``rollout.jump_forward = false`` (vLLM has none); everything else is the config's.
Per arm, from its ``metrics.jsonl``: the held-out curve (``eval/success`` against minutes), rollout
tokens per second and step time (means over steps), the trainer's peak RSS, the log-probability gap
between the rollout's numbers and the trainer's (mean of the steps' means, the worst step's p99, the
largest), and for the ``vllm`` arms the servers' peak memory: the largest sum, sampled every two
seconds, of the resident memory of every process in the servers' process groups (API server and
engine processes; memory they share is counted in each, so this is an upper bound).

    python benchmarks/vllm_training.py [--minutes 10] [--configs tool_choice smollm2] \\
        [--arms hf vllm1 vllm2] [--max-steps N] [--eval-questions N] [--out runs/vllm-race]

Writes ``results.json`` and ``results.md`` into ``--out``. ``--max-steps 2 --eval-questions 4`` checks
the script in a few minutes an arm; the comparison needs the clock.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CONFIGS = {"tool_choice": "tool_choice.toml", "smollm2": "smollm2.toml"}
ARMS = {"hf": 0, "vllm1": 1, "vllm2": 2}
#: What every test server on a CPU runs with; ``--server-arg`` adds more.
SERVER_ARGS = ["--max-model-len", "4096", "--enforce-eager"]
SERVER_ENV = {"VLLM_CPU_KVCACHE_SPACE": "2", "VLLM_TARGET_DEVICE": "cpu"}


def overrides(arm: str, out: Path, args: argparse.Namespace, source: str | None) -> dict[str, Any]:
    settings: dict[str, Any] = {
        "run.output_dir": str(out),
        "run.max_minutes": args.minutes,
        "run.resume": False,
        "run.trackers": [],
        "run.checkpoint_every": 0,
        "run.target_success": 0.0,
    }
    if source is not None:
        settings["policy.source"] = source
    if args.max_steps:
        settings["run.max_steps"] = args.max_steps
        settings["run.eval_every"] = args.max_steps
    if args.eval_questions:
        settings["run.eval_questions"] = args.eval_questions
    if ARMS[arm]:
        launch = {
            "python": args.vllm_python,
            "count": ARMS[arm],
            "args": [*SERVER_ARGS, *args.server_arg],
            "env": SERVER_ENV,
        }
        settings |= {"rollout.backend": "vllm", "rollout.jump_forward": False, "rollout.vllm": {"launch": launch}}
    return settings


class ServerMemory:
    """Samples, every two seconds, the summed RSS of the process groups of the fleet's watchdogs."""

    def __init__(self) -> None:
        self.peak_mib = 0.0
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def __enter__(self) -> ServerMemory:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._done.set()
        self._thread.join()

    def _watch(self) -> None:
        while not self._done.wait(2.0):
            self.peak_mib = max(self.peak_mib, _fleet_rss_mib())


def _fleet_rss_mib() -> float:
    stats = {}
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            cmdline = (proc / "cmdline").read_bytes()
            fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
            rss_pages = int((proc / "statm").read_text().split()[1])
        except (OSError, IndexError, ValueError):
            continue
        stats[proc.name] = (b"agentflow_rl.flow_grpo.fleet.watchdog" in cmdline, int(fields[2]), rss_pages)
    groups = {pid for pid, (watchdog, _, _) in stats.items() if watchdog}
    pages = sum(rss for _, pgrp, rss in stats.values() if str(pgrp) in groups)
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def untied_smollm2(out: Path) -> str:
    """SmolLM2 with an output head of its own, made once under ``out``."""
    from agentflow_core.engines.embedded import smollm2_gguf_path
    from agentflow_rl.flow_grpo.model.policy import converted_gguf, untied_copy

    folder = out / "smollm2-untied"
    if not (folder / "config.json").is_file():
        untied_copy(converted_gguf(smollm2_gguf_path()), folder)
    return str(folder.resolve())


def run_arm(config: str, arm: str, out: Path, args: argparse.Namespace) -> dict[str, Any]:
    from agentflow_rl.flow_grpo.config import bundled_config, load_train_config

    path = bundled_config(CONFIGS[config])
    source = untied_smollm2(args.out) if load_train_config(path).policy.lora is None else None
    command = [sys.executable, "-m", "agentflow_rl.flow_grpo", "train", str(path)]
    for key, value in overrides(arm, out, args, source).items():
        command += ["--set", f"{key}={json.dumps(value)}"]
    started = time.perf_counter()
    with ServerMemory() as servers:
        subprocess.run(command, check=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    summary = summarise([json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()])
    summary |= {"wall_minutes": (time.perf_counter() - started) / 60, "servers_peak_mib": servers.peak_mib}
    return summary


def summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    steps = [row for row in rows if "perf/rollout_s" in row]

    def mean(key: str) -> float:
        values = [row[key] for row in steps if key in row]
        return sum(values) / len(values) if values else float("nan")

    def worst(key: str) -> float:
        return max((row[key] for row in steps if key in row), default=float("nan"))

    return {
        "steps": len(steps),
        "held_out": [
            {"step": row["step"], "minutes": round(row["train/minutes"], 2), "success": row["eval/success"]}
            for row in rows
            if "eval/success" in row
        ],
        "rollout_tokens_per_s": mean("perf/rollout_tokens_per_s"),
        "step_s": mean("perf/rollout_s") + mean("perf/update_s"),
        "rollout_s": mean("perf/rollout_s"),
        "trainer_peak_mib": worst("perf/peak_rss_mib"),
        "logprob_gap": {
            "mean": mean("rollout/logprob_gap_mean"),
            "p99": worst("rollout/logprob_gap_p99"),
            "max": worst("rollout/logprob_gap_max"),
        },
    }


def report(results: dict[str, dict[str, dict[str, Any]]]) -> str:
    lines = [
        "| config | arm | steps | held-out (first → last) | rollout tok/s | step s | trainer MiB | servers MiB "
        "| gap mean / p99 / max |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for config, arms in results.items():
        for arm, r in arms.items():
            curve = r["held_out"]
            held = f"{curve[0]['success']:.3f} → {curve[-1]['success']:.3f}" if curve else "-"
            gap = r["logprob_gap"]
            lines.append(
                f"| {config} | {arm} | {r['steps']} | {held} | {r['rollout_tokens_per_s']:.1f} | {r['step_s']:.1f} "
                f"| {r['trainer_peak_mib']:.0f} | {r['servers_peak_mib']:.0f} "
                f"| {gap['mean']:.1e} / {gap['p99']:.1e} / {gap['max']:.1e} |"
            )
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_python = os.environ.get("AGENTFLOW_TEST_VLLM_PYTHON") or str(ROOT / ".nox" / "vllm-cpu" / "bin" / "python")
    parser.add_argument("--vllm-python", default=default_python, help="an interpreter with vLLM")
    parser.add_argument("--minutes", type=float, default=10.0, help="wall-clock budget of each arm")
    parser.add_argument("--max-steps", type=int, default=0, help="stop each arm after this many steps (0: the clock)")
    parser.add_argument(
        "--eval-questions", type=int, default=0, help="held-out questions per evaluation (0: the config's)"
    )
    parser.add_argument("--configs", nargs="+", choices=sorted(CONFIGS), default=list(CONFIGS))
    parser.add_argument("--arms", nargs="+", choices=list(ARMS), default=list(ARMS))
    parser.add_argument("--server-arg", action="append", default=[], help="one more vllm serve argument")
    parser.add_argument("--out", type=Path, default=Path("runs/vllm-race"))
    args = parser.parse_args()

    results: dict[str, dict[str, dict[str, Any]]] = {}
    for config in args.configs:
        for arm in args.arms:
            results.setdefault(config, {})[arm] = run_arm(config, arm, args.out / config / arm, args)
            (args.out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    table = report(results)
    (args.out / "results.md").write_text(table)
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
