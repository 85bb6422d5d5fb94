"""Which tools a solver enables: the configured ones, else the default tools that can run here.

``[agent] tools`` (or ``--tools``) names the tools, and then exactly those are enabled. Left unset, a
solver enables every tool registered with ``default=True`` and, where its readiness check says it
can run on this machine, every tool registered with one: ``base_generator`` always, ``python_coder``
where a Docker daemon answers (its check builds the local sandbox image when it is missing). A
default tool that cannot run is left out with its reason, which ``agentflow solve`` shows as a note.
"""

from __future__ import annotations

from collections.abc import Mapping

import attrs

from agentflow_core.config import Config
from agentflow_core.errors import one_line
from agentflow_core.registry import RegisteredTool, Registry


@attrs.frozen
class ToolChoice:
    """The tools a solver enables, in order, and the default tools it left out."""

    names: tuple[str, ...]
    #: Default tools that cannot run here, each with why (one line); empty when the config named the tools.
    left_out: Mapping[str, str] = attrs.field(factory=dict)


def choose_tools(config: Config, registry: Registry) -> ToolChoice:
    if config.agent.tools is not None:
        return ToolChoice(config.agent.tools)
    names, left_out = [], {}
    for name, tool in registry.tools.items():
        why = _why_not(tool, config.tool_settings(name))
        if why is None:
            names.append(name)
        elif why:
            left_out[name] = why
    return ToolChoice(tuple(names), left_out)


def _why_not(tool: RegisteredTool, settings: Mapping[str, object]) -> str | None:
    """``None`` for a default tool that can run here, ``""`` for a tool that is no default, else why not."""
    if tool.default is True:
        return None
    if tool.default is False:
        return ""
    try:
        return tool.default(settings)
    except Exception as exc:  # a broken check costs its tool, not the solver
        return f"its readiness check ({tool.source}) failed: {type(exc).__name__}: {one_line(exc)}"
