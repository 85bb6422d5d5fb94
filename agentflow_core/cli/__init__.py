"""The ``agentflow`` command. Library errors become one line on stderr here, and nowhere else.

Errors, warnings, log records and tracebacks may quote a server, a model or a plugin, so each of
them passes through ``inert`` on its way to the terminal; commands escape what they print.
"""

from __future__ import annotations

import logging
import os
import sys
import traceback
import warnings
from types import TracebackType
from typing import Any

import click
import pluggy

from agentflow_core.errors import STORAGE_ERRNOS, AgentFlowError, one_line, storage_error
from agentflow_core.inert import InertLogFormatter, inert

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
            raise click.ClickException(inert(one_line(exc))) from None
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            sys.exit(130)
        except click.exceptions.ClickException as exc:
            # click declares it Final; a new exception would lose the subclass (a usage error's usage line).
            exc.message = inert(exc.message)  # type: ignore[misc]
            raise
        except (click.exceptions.Abort, click.exceptions.Exit):
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
            f"unexpected {type(exc).__name__}: {inert(one_line(exc))} (a bug; {DEBUG_VARIABLE}=1 shows the traceback)"
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
    click.echo(f"warning: {inert(one_line(Exception(str(message))))}", err=True)


def _show_traceback(kind: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
    """The traceback ``AGENTFLOW_DEBUG=1`` asks for; its messages may quote anything."""
    sys.stderr.write(inert("".join(traceback.format_exception(kind, exc, tb)), keep_lines=True))


def _inert_diagnostics() -> None:
    """Route warnings, unhandled log records (Python's last-resort handler, which also gets the
    records of servers that leave logging to the application) and tracebacks through ``inert``."""
    warnings.showwarning = _show_warning
    sys.excepthook = _show_traceback
    if logging.lastResort is not None:
        logging.lastResort.setFormatter(InertLogFormatter())


def main() -> None:
    _inert_diagnostics()
    try:
        cli = make_cli()
    except AgentFlowError as exc:
        click.echo(f"Error: {inert(one_line(exc))}", err=True)
        sys.exit(1)
    cli(prog_name="agentflow")
