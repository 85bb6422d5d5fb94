"""``agentflow train CONFIG``: Flow-GRPO from a TOML, as ``nox -s train`` runs it.

torch and accelerate are imported only when the command runs, so the rest of the CLI stays fast.
"""

from __future__ import annotations

import datetime
import json
import tomllib
from typing import Any

import click


def _override(item: str) -> tuple[str, Any]:
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


@click.command("train")
@click.argument("config", type=click.Path(dir_okay=False, exists=True))
@click.option(
    "--set",
    "overrides",
    multiple=True,
    metavar="KEY=VALUE",
    help="Override a config key (repeatable); VALUE is read as JSON or TOML, else as text.",
)
def train_command(config: str, overrides: tuple[str, ...]) -> None:
    """Train the modules CONFIG names with Flow-GRPO; a killed run resumes from its last checkpoint."""
    from agentflow_rl.flow_grpo import cli

    cli.train(config, dict(_override(item) for item in overrides))
