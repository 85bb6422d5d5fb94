"""The ``cli`` that ``register_commands`` receives: a click group that collects instead of adding.

Plugins use it as any click group (``@cli.command()``, ``cli.add_command(cmd)``); the commands
are checked by the same rules as tools and engines before any is added to ``agentflow``, so a
plugin command called ``solve`` is an error naming both plugins, not a silent replacement. A
plugin that means to replace a command says so: ``cli.add_command(cmd, replace=True)``.
"""

from __future__ import annotations

import attrs
import click

from agentflow_core.errors import PluginError
from agentflow_core.registrar import Registrar


@attrs.frozen
class RegisteredCommand:
    name: str
    command: click.Command
    source: str
    replaces: str | None = None


class CommandRegistrar(click.Group, Registrar[RegisteredCommand]):
    what = "command"

    def __init__(self) -> None:
        click.Group.__init__(self, name="agentflow")
        Registrar.__init__(self)

    def add_command(self, cmd: click.Command, name: str | None = None, *, replace: bool = False) -> None:
        name = name or cmd.name
        if not name or not isinstance(cmd, click.Command):
            raise PluginError(f"register_commands got {cmd!r}, not a named click command")
        self._add(name, RegisteredCommand(name, cmd, self.source), replace=replace)

    def add_to(self, group: click.Group) -> None:
        """Add every collected command to ``group``, once the rules are applied."""
        for name, item in sorted(self.resolve().items()):
            group.add_command(item.command, name)
