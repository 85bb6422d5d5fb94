"""The ``agentflow`` command. Library errors become one line on stderr here, and nowhere else."""

from __future__ import annotations

import os
import sys
import warnings
from typing import Any

import click
import pluggy

from agentflow_core.errors import STORAGE_ERRNOS, AgentFlowError, one_line, storage_error

#: Set to see the traceback of an unexpected error instead of its one line.
DEBUG_VARIABLE = "AGENTFLOW_DEBUG"


class AgentFlowGroup(click.Group):
    """Turns every failure into ``Error: <one line>`` and exit status 1.

    Anticipated ones say what to fix; anything else is a bug (ours or a plugin's), still one
    line, with the variable that shows the traceback.
    """

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except AgentFlowError as exc:
            raise click.ClickException(one_line(exc)) from None
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            sys.exit(130)
        except (click.exceptions.ClickException, click.exceptions.Abort, click.exceptions.Exit):
            raise
        except OSError as exc:
            if exc.errno not in STORAGE_ERRNOS:
                raise self._bug(exc) from None
            raise click.ClickException(one_line(storage_error(exc))) from None
        except Exception as exc:
            raise self._bug(exc) from None

    @staticmethod
    def _bug(exc: Exception) -> Exception:
        """An unexpected failure: itself under ``AGENTFLOW_DEBUG`` (for the traceback), else one line."""
        if os.environ.get(DEBUG_VARIABLE, "") not in ("", "0"):
            return exc
        return click.ClickException(
            f"unexpected {type(exc).__name__}: {one_line(exc)} (a bug; {DEBUG_VARIABLE}=1 shows the traceback)"
        )


def make_cli(pm: pluggy.PluginManager | None = None) -> click.Group:
    """A fresh ``agentflow`` group holding every command the plugins (built-ins first) register."""
    from agentflow_core.cli.registrar import CommandRegistrar
    from agentflow_core.plugins import make_plugin_manager

    @click.group(cls=AgentFlowGroup)
    @click.version_option(package_name="agentflow")
    def agentflow() -> None:
        """AgentFlow: plan, execute, verify and answer with tools; train the planner in the flow."""

    commands = CommandRegistrar()
    (pm or make_plugin_manager()).hook.register_commands(cli=commands)
    commands.add_to(agentflow)
    return agentflow


def _show_warning(message: Any, category: type[Warning], *_: Any, **__: Any) -> None:
    click.echo(f"warning: {one_line(Exception(str(message)))}", err=True)


def main() -> None:
    warnings.showwarning = _show_warning
    try:
        cli = make_cli()
    except AgentFlowError as exc:
        click.echo(f"Error: {one_line(exc)}", err=True)
        sys.exit(1)
    cli(prog_name="agentflow")
