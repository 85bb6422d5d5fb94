"""The plugin module named by the ``agentflow`` entry point.

It hands over the spec (plain data) and a factory; SymPy is imported by the factory, so listing
tools or starting a solve that does not use ``symbolic_math`` never pays for it.
"""

from __future__ import annotations

from collections.abc import Callable

from agentflow_core import Tool, ToolContext, ToolSpec, hookimpl
from agentflow_sympy.spec import SPEC

#: The shape of the ``register`` callback, written with public types only.
RegisterTool = Callable[[ToolSpec, Callable[[ToolContext], Tool]], None]


def make_tool(context: ToolContext) -> Tool:
    from agentflow_sympy.tool import SymbolicMath

    return SymbolicMath(context)


@hookimpl
def register_tools(register: RegisterTool) -> None:
    register(SPEC, make_tool)
