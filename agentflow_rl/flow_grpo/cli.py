"""The training commands: ``agentflow train CONFIG``, and ``python -m agentflow_rl.flow_grpo`` with ``train``,
``smoke``, ``real``, ``plot`` and ``reference`` (the training TOML's reference page).

``train`` is one click command, added to both: each way in calls ``launch.train_from_file``.
torch and accelerate load only when a command runs, so ``agentflow --help`` stays fast.
"""

from __future__ import annotations

import datetime
import json
import tomllib
from typing import Any

import click

from agentflow_core.cli import AgentFlowGroup


def parse_override(item: str) -> tuple[str, Any]:
    """``run.max_steps=5`` -> ``("run.max_steps", 5)``: the value as JSON, else as TOML, else as text."""
    key, sep, raw = item.partition("=")
    if not sep or not key:
        raise click.BadParameter(f"{item!r}: expected KEY=VALUE, e.g. run.max_steps=5", param_hint="--set")
    try:
        return key, json.loads(raw)
    except ValueError:
        pass
    try:  # the config's own syntax: `{ verifier = 30 }`, `'text'`
        value = tomllib.loads(f"value = {raw}")["value"]
    except tomllib.TOMLDecodeError:
        return key, raw
    # TOML reads `2026-12-05` as a date; as a folder or file name it is text.
    return key, raw if isinstance(value, datetime.date | datetime.time) else value


def _overrides(ctx: click.Context, param: click.Parameter, items: tuple[str, ...]) -> dict[str, Any]:
    return dict(parse_override(item) for item in items)


@click.command("train")
@click.argument("config", type=click.Path(dir_okay=False, exists=True))
@click.option(
    "--set",
    "overrides",
    multiple=True,
    metavar="KEY=VALUE",
    callback=_overrides,
    help="Override a config key (repeatable); VALUE is read as JSON or TOML, else as text.",
)
def train_command(config: str, overrides: dict[str, Any]) -> None:
    """Train the modules CONFIG names with Flow-GRPO; a killed run resumes from its last checkpoint."""
    from agentflow_rl.flow_grpo.launch import train_from_file

    train_from_file(config, overrides)


@click.command("smoke")
@click.option("--output", default="runs/train-smoke", show_default=True, help="Folder of both runs and the curve.")
@click.option("--minutes", type=float, default=15.0, show_default=True, help="Wall-clock budget of the main run.")
@click.option("--no-ablation", is_flag=True, help="Skip the run with the advantage switched off.")
def smoke_command(output: str, minutes: float, no_ablation: bool) -> None:
    """The synthetic proof: the tiny policy to 90% held-out success, its ablation, and the learning curve."""
    from agentflow_rl.flow_grpo.proofs import smoke

    smoke(output, minutes=minutes, ablation=not no_ablation)


@click.command("real")
@click.option("--output", default="runs/train-real", show_default=True, help="Folder of the run and its curve.")
@click.option("--steps", type=click.IntRange(min=1), help="Stop after this many steps [default: the config's].")
def real_command(output: str, steps: int | None) -> None:
    """SmolLM2-135M-Instruct as the Planner on the synthetic task (``configs/smollm2.toml``)."""
    from agentflow_rl.flow_grpo.proofs import real

    real(output, steps=steps)


@click.command("plot")
@click.argument("runs", nargs=-1, required=True, metavar="LABEL=OUTPUT_DIR...")
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="The PNG to write.")
@click.option("--title", default="Flow-GRPO", show_default=True)
def plot_command(runs: tuple[str, ...], out: str, title: str) -> None:
    """Held-out success, KL, gradient norm and reward of runs (a run folder, or its metrics.jsonl), side by side."""
    from agentflow_rl.flow_grpo.run.tracking import plot_diagnostics, read_metrics

    pairs = []
    for item in runs:
        label, sep, folder = item.partition("=")
        if not sep:
            raise click.BadParameter(f"{item!r} is not LABEL=OUTPUT_DIR", param_hint="RUNS")
        rows = read_metrics(folder)
        if not rows:
            raise click.BadParameter(f"{folder} holds no metrics.jsonl", param_hint="RUNS")
        pairs.append((label, rows))
    click.echo(plot_diagnostics(pairs, out, title))


@click.command("reference")
def reference_command() -> None:
    """Print the training TOML's reference (Markdown): each table and key, its type, default and meaning."""
    from agentflow_rl.flow_grpo.reference import training_reference

    click.echo(training_reference(), nl=False)


#: ``python -m agentflow_rl.flow_grpo``; errors are one line, as in the ``agentflow`` command.
main = AgentFlowGroup(
    help="Flow-GRPO for nox and accelerate launch: train is agentflow train; smoke and real are the proofs.",
    commands=[train_command, smoke_command, real_command, plot_command, reference_command],
)
