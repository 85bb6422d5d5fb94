"""``python -m agentflow_rl.flow_grpo {train,smoke,real}``: for nox and ``accelerate launch``,
and for the two proofs, which ``agentflow train CONFIG`` does not cover."""

from __future__ import annotations

import argparse
import sys

import click

from agentflow_core import AgentFlowError
from agentflow_core.inert import inert
from agentflow_rl import train_cli
from agentflow_rl.flow_grpo import cli


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m agentflow_rl.flow_grpo")
    commands = parser.add_subparsers(dest="command", required=True)
    train = commands.add_parser("train", help="train from a TOML config")
    train.add_argument("config")
    train.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="JSON or TOML, else text; e.g. run.max_steps=5"
    )
    smoke = commands.add_parser("smoke", help="the synthetic proof with its ablation and learning curve")
    smoke.add_argument("--output", default="runs/train-smoke")
    smoke.add_argument("--minutes", type=float, default=15.0)
    smoke.add_argument("--no-ablation", action="store_true")
    real = commands.add_parser("real", help="SmolLM2-135M-Instruct as the Planner")
    real.add_argument("--output", default="runs/train-real")
    real.add_argument("--steps", type=int, default=None)
    plot = commands.add_parser("plot", help="held-out success, KL, gradient norm and reward of runs, side by side")
    plot.add_argument("runs", nargs="+", metavar="LABEL=OUTPUT_DIR", help="a run folder, or its metrics.jsonl")
    plot.add_argument("--out", required=True, help="the PNG to write")
    plot.add_argument("--title", default="Flow-GRPO")
    args = parser.parse_args(argv)
    try:
        if args.command == "train":
            cli.train(args.config, dict(_override(item) for item in args.set))
        elif args.command == "plot":
            _plot(args.runs, args.out, args.title)
        elif args.command == "smoke":
            cli.smoke(args.output, minutes=args.minutes, ablation=not args.no_ablation)
        else:
            cli.real(args.output, steps=args.steps)
    except AgentFlowError as exc:
        print(f"error: {inert(str(exc))}", file=sys.stderr)
        return 1
    return 0


def _plot(runs: list[str], out: str, title: str) -> None:
    from agentflow_rl.flow_grpo.tracking import plot_diagnostics, read_metrics

    pairs = []
    for item in runs:
        label, sep, folder = item.partition("=")
        if not sep:
            raise SystemExit(f"plot: {item!r} is not LABEL=OUTPUT_DIR")
        rows = read_metrics(folder)
        if not rows:
            raise SystemExit(f"plot: {folder} holds no metrics.jsonl")
        pairs.append((label, rows))
    print(plot_diagnostics(pairs, out, title))


def _override(item: str) -> tuple[str, object]:
    try:
        return train_cli._override(item)
    except click.BadParameter as exc:
        raise SystemExit(f"--set {exc.message}") from None


if __name__ == "__main__":
    raise SystemExit(main())
