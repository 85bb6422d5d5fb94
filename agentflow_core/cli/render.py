"""The readable live view of a solve, written to stderr so stdout keeps only the answer.

Everything in it came from a model or a tool, so every piece goes through ``inert``.
"""

from __future__ import annotations

from typing import Any

import click

from agentflow_core.inert import inert
from agentflow_core.memory import render_result
from agentflow_core.records import Answer, QueryAnalysis, Step, ToolFailure, Trajectory


def _short(text: str, limit: int = 300) -> str:
    text = " ".join(text.split())
    return inert(text if len(text) <= limit else text[: limit - 1] + "…")


def show(record: Any) -> None:
    """An ``Observer`` for ``Solver.asolve``."""
    if isinstance(record, QueryAnalysis):
        click.secho("▶ analysis", bold=True, err=True)
        click.echo(f"  {_short(record.text)}", err=True)
    elif isinstance(record, Step):
        click.secho(f"▶ step {record.index}: {inert(record.decision.tool)}", bold=True, err=True)
        click.echo(f"  sub-goal: {_short(record.decision.sub_goal)}", err=True)
        if record.tool_fits:
            fits = "; ".join(f"{name} {fit.fit.value}" for name, fit in record.tool_fits.items())
            click.echo(f"  tools:    {_short(fits)}", err=True)
        failed = isinstance(record.result, ToolFailure)
        click.secho(f"  result:   {_short(render_result(record.result))}", fg="red" if failed else None, err=True)
        if record.verdict:
            click.echo(f"  verifier: {record.verdict.decision.value}", err=True)
    elif isinstance(record, Answer):
        click.secho("▶ answer", bold=True, err=True)


def summary(trajectory: Trajectory) -> str:
    usage = trajectory.usage
    return (
        f"{len(trajectory.steps)} step(s), stopped by {trajectory.stop_reason.value}, "
        f"{usage.total_tokens} tokens, {trajectory.elapsed_s:.1f} s"
    )
