"""The plugin module named by the ``agentflow`` entry point.

It hands over the spec and the settings class (plain data) and a factory; SymPy is imported by the
factory, so listing tools or starting a solve that does not use ``symbolic_math`` never pays for it.
"""

from __future__ import annotations

from agentflow_core import Tool, ToolContext, ToolRegistrar, hookimpl
from agentflow_sympy.settings import Settings
from agentflow_sympy.spec import SPEC


def make_tool(context: ToolContext) -> Tool:
    from agentflow_sympy.tool import SymbolicMath

    return SymbolicMath(context)


@hookimpl
def register_tools(register: ToolRegistrar) -> None:
    register(SPEC, make_tool, settings=Settings)
