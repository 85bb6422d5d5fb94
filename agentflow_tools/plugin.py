"""The built-in tools' plugin module, published under the ``agentflow`` entry-point group."""

from __future__ import annotations

from agentflow_core import hookimpl
from agentflow_core.registry import ToolRegistrar


@hookimpl
def register_tools(register: ToolRegistrar) -> None:
    # Factories import their module only when the tool is enabled; specs are plain data.
    from agentflow_tools import base_generator

    register(base_generator.SPEC, base_generator.BaseGenerator)
