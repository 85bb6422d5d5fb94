"""The built-in commands, registered through the same ``register_commands`` hook a plugin uses,
so that a plugin's command of the same name is a clash, not a silent replacement."""

from __future__ import annotations

import click

from agentflow_core.hookspecs import hookimpl


@hookimpl
def register_commands(cli: click.Group) -> None:
    from agentflow_core.cli import listing, reference, solve

    cli.add_command(solve.solve)
    cli.add_command(reference.config)
    for command in listing.COMMANDS:
        cli.add_command(command)
