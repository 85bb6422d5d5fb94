"""The ``agentflow`` command. Library errors become one line on stderr here, and nowhere else."""

from __future__ import annotations

import sys
import warnings
from typing import Any

import click

from agentflow_core.errors import AgentFlowError


class AgentFlowGroup(click.Group):
    """Turns every anticipated failure into ``Error: <one line>`` and exit status 1."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except AgentFlowError as exc:
            raise click.ClickException(_one_line(exc)) from None
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            sys.exit(130)


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


@click.group(cls=AgentFlowGroup)
@click.version_option(package_name="agentflow")
def cli() -> None:
    """AgentFlow: plan, execute, verify and answer with tools; train the planner in the flow."""


def _show_warning(message: Any, category: type[Warning], *_: Any, **__: Any) -> None:
    click.echo(f"warning: {_one_line(Exception(str(message)))}", err=True)


def main() -> None:
    from agentflow_core.cli.registrar import CommandRegistrar
    from agentflow_core.plugins import make_plugin_manager

    warnings.showwarning = _show_warning
    try:
        commands = CommandRegistrar()
        make_plugin_manager().hook.register_commands(cli=commands)
        commands.add_to(cli)
    except AgentFlowError as exc:
        click.echo(f"Error: {_one_line(exc)}", err=True)
        sys.exit(1)
    cli(prog_name="agentflow")
